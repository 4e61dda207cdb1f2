//! The ledger and the evaluator's per-account state: what Keel decided, and what it must
//! remember between passes to decide the next time exactly as the trigger table of
//! `decide::pass` (and the README's "What fires, exactly once")
//! says.
//!
//! Invariants:
//! - A [`LedgerEntry`] is written once under its occurrence key (account, playbook,
//!   occurrence) and never replaced: a key in the ledger never fires again, whatever
//!   restarts, reloads or downtime happen.
//! - [`AccountState`] holds only what cannot be derived from the ledger and the account:
//!   the `on_enter` edge (was the condition true at the last evaluation?), the episode
//!   counter, the last `while_true` firing, and running sequences.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the evaluator decided for one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The trigger fired (or a sequence step came due): the actions are decided.
    Fired,
    /// It came due but was not acted on: older than the catch-up window, or a step's
    /// `when` did not hold. Recorded so "did not fire" is never silent.
    Skipped,
    /// A sequence stopped because its exit condition held.
    Exited,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Fired => "fired",
            Decision::Skipped => "skipped",
            Decision::Exited => "exited",
        }
    }
}

/// One decision, kept under its occurrence key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub playbook: String,
    pub account: String,
    /// The occurrence (the trigger table in `decide::pass`): `episode:3`, `renewal_date=2027-03-01`,
    /// `event:<id>`, `window:<time>`, `tick:<time>`; a sequence's later steps add
    /// `/step:<n>`, its exit `/exit`.
    pub occurrence: String,
    /// When the pass that decided it ran (the evaluation clock).
    pub at: DateTime<Utc>,
    pub decision: Decision,
    /// Why, in words: the trigger and the values it read.
    pub why: String,
    /// The values the trigger's expressions read (`health.band` → `"red"`).
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
    /// The decided actions, rendered (`task "Save plan: Acme" for ana@… (high, due in 3d)`).
    #[serde(default)]
    pub actions: Vec<String>,
}

/// What the evaluator remembers about one account across passes, per playbook id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    #[serde(default)]
    pub playbooks: BTreeMap<String, PlaybookState>,
    /// The health model failed for the account at the last pass (its day's point is
    /// missing): shown on the timeline, retried at the next pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_error: Option<EvalFailure>,
}

impl AccountState {
    /// Nothing to remember: the state need not be stored.
    pub fn is_empty(&self) -> bool {
        self.playbooks.is_empty() && self.health_error.is_none()
    }

    /// Every failure the last pass left, as (what failed, the failure): `(health)` or a
    /// playbook id.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &EvalFailure)> {
        let health = self.health_error.as_ref().map(|f| ("(health)", f));
        health
            .into_iter()
            .chain(self.playbooks.iter().filter_map(|(id, ps)| ps.error.as_ref().map(|f| (id.as_str(), f))))
    }
}

/// An evaluation that failed: a script error, or a sandbox limit (operations, depth,
/// sizes, the wall-clock safety net) that stopped it. A failure is never read as
/// "false": the account's state stays as it was, and the next pass evaluates it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalFailure {
    /// The pass clock of the failed evaluation.
    pub at: DateTime<Utc>,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaybookState {
    /// `on_enter`: the trigger (audience and condition) held at the last evaluation.
    /// Absent state is "unknown", which the trigger rules treat like false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inside: bool,
    /// `on_enter`: episodes entered so far; the next firing is episode `episodes + 1`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub episodes: u32,
    /// `while_true`: the last firing; the next may come `every` after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<DateTime<Utc>>,
    /// Sequences running for this account (one per occurrence that started one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<SequenceState>,
    /// The last evaluation of this playbook for the account failed; cleared by the next
    /// one that succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EvalFailure>,
}

impl PlaybookState {
    pub fn is_empty(&self) -> bool {
        *self == PlaybookState::default()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A running sequence: which occurrence started it, when, and the next step to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceState {
    pub occurrence: String,
    pub started: DateTime<Utc>,
    pub next_step: usize,
}
