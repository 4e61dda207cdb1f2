//! What a pass reports: per playbook, how many accounts it evaluated, fired, skipped,
//! stopped and failed for, and the first failures in full (every one is counted).

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use serde::Serialize;

use crate::lang::explain::Part;

/// How many failures a report keeps in full (the count is always exact).
const KEEP_FAILURES: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlaybookStats {
    /// Accounts the playbook was evaluated for.
    pub evaluated: u64,
    pub fired: u64,
    pub skipped: u64,
    pub exited: u64,
    pub errors: u64,
    /// Emails and webhooks decided dead: a template failed for the account.
    pub dead: u64,
    /// Tasks opened with a part whose template failed.
    pub failed_tasks: u64,
    /// This was the playbook's first pass (it never completed one before).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub first_pass: bool,
    /// Accounts it newly fired for (a new occurrence, not a later step of a running
    /// sequence): what the blast-radius guard limits.
    #[serde(default)]
    pub started: u64,
    /// Of the accounts evaluated, those in its audience (counted by the guard's look
    /// ahead only; 0 otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audience: u64,
    /// Accounts it would have newly fired for past the budget the guard's count allowed
    /// (data changed between the count and the pass): not applied, counted again at the
    /// next pass.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub over_budget: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Accounts kept per playbook in [`PassReport::started_sample`].
pub const KEEP_SAMPLE: usize = 10;

/// A first pass fires for more than this share of the accounts it evaluated…
pub const FLOOD_SHARE: f64 = 0.2;
/// …and at least this many times: a first pass over a book decides "what is already
/// true", and that much of it at once is worth a look before anyone gets the mail.
pub const FLOOD_MIN: u64 = 20;

/// A playbook whose first pass fired for much of its audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flood {
    pub playbook: String,
    pub fired: u64,
    pub evaluated: u64,
}

/// A playbook that failed for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub playbook: String,
    pub account: String,
    pub error: String,
}

/// A playbook's audience and condition for one account, each sub-expression with its
/// value ([`crate::lang::explain`]), in the scope the pass decided in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    pub playbook: String,
    pub account: String,
    pub audience: Option<Part>,
    pub condition: Option<Part>,
    /// What the condition was evaluated with, or why it was not (an event trigger's
    /// condition reads the event: the latest matching one, if any).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub accounts: u64,
    pub playbooks: BTreeMap<String, PlaybookStats>,
    /// The first failures (all are counted in `playbooks`).
    pub failures: Vec<Failure>,
    /// Stopped by shutdown before every account was evaluated.
    pub cancelled: bool,
    /// Accounts an earlier, interrupted run of this same pass had already decided and
    /// committed: this run resumed after them.
    pub resumed: u64,
    /// Which accounts the pass took, and why (a full pass's reason, or what an
    /// incremental pass found).
    pub selection: String,
    /// With `explain`: why a playbook decided nothing for an account (`error` holds the
    /// reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quiet: Vec<Failure>,
    /// With `explain`: each playbook's audience and condition taken apart for each
    /// account, as this pass evaluated them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explained: Vec<Explained>,
    #[serde(skip)]
    pub elapsed: StdDuration,
    /// Per playbook, some of the accounts it newly fired for (at most [`KEEP_SAMPLE`]).
    #[serde(skip)]
    pub started_sample: BTreeMap<String, Vec<String>>,
}

impl PassReport {
    pub(super) fn merge(&mut self, other: PassReport) {
        self.accounts += other.accounts;
        for (id, s) in other.playbooks {
            let t = self.playbooks.entry(id).or_default();
            t.evaluated += s.evaluated;
            t.fired += s.fired;
            t.skipped += s.skipped;
            t.exited += s.exited;
            t.errors += s.errors;
            t.dead += s.dead;
            t.failed_tasks += s.failed_tasks;
            t.first_pass |= s.first_pass;
            t.started += s.started;
            t.audience += s.audience;
            t.over_budget += s.over_budget;
        }
        for (id, sample) in other.started_sample {
            let mine = self.started_sample.entry(id).or_default();
            let room = KEEP_SAMPLE.saturating_sub(mine.len());
            mine.extend(sample.into_iter().take(room));
            mine.sort();
        }
        let room = KEEP_FAILURES.saturating_sub(self.failures.len());
        self.failures.extend(other.failures.into_iter().take(room));
        self.cancelled |= other.cancelled;
        self.quiet.extend(other.quiet);
        self.explained.extend(other.explained);
        self.resumed += other.resumed;
    }

    pub(super) fn fail(&mut self, playbook: &str, account: &str, error: String) {
        self.playbooks.entry(playbook.to_string()).or_default().errors += 1;
        if self.failures.len() < KEEP_FAILURES {
            self.failures.push(Failure { playbook: playbook.into(), account: account.into(), error });
        }
    }

    /// The playbooks whose first pass fired for more than [`FLOOD_SHARE`] of the accounts
    /// they evaluated (and at least [`FLOOD_MIN`] times).
    pub fn floods(&self) -> Vec<Flood> {
        self.playbooks
            .iter()
            .filter(|(_, s)| s.first_pass && s.fired >= FLOOD_MIN && s.fired as f64 > FLOOD_SHARE * s.evaluated as f64)
            .map(|(id, s)| Flood { playbook: id.clone(), fired: s.fired, evaluated: s.evaluated })
            .collect()
    }

    pub fn fired(&self) -> u64 {
        self.playbooks.values().map(|s| s.fired).sum()
    }

    pub fn errors(&self) -> u64 {
        self.playbooks.values().map(|s| s.errors).sum()
    }
}
