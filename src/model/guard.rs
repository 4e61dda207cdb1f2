//! The blast-radius guard's record per playbook: whether a pass of it is held, the
//! approval a person gave, and what happened before (the guard's own ledger).
//!
//! Invariants: a record is only written by the pass that holds or releases the playbook
//! and by an approval; `history` keeps the newest [`KEEP_GUARD_HISTORY`] events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Guard events kept per playbook.
pub const KEEP_GUARD_HISTORY: usize = 50;

/// A pass of a playbook the guard held: it decided nothing for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// When the playbook was first held (a hold lasts across passes until released).
    pub since: DateTime<Utc>,
    /// The tick of the pass held last, which runs once approved.
    pub tick: DateTime<Utc>,
    /// The accounts that pass would have fired for, and the audience they are a share of.
    pub would_fire: u64,
    pub audience: u64,
    /// The limits in words (`500 firings or 10% of the audience`).
    pub limits: String,
    /// The most firings no limit holds, for that audience.
    pub allowed: u64,
    /// Some of the accounts it would fire for (ids), for a person to look at.
    #[serde(default)]
    pub sample: Vec<String>,
    /// The ops address was emailed about this hold.
    #[serde(default)]
    pub notified: bool,
    /// What was counted: the playbook's digest and its limits. An edit or new limits
    /// are counted again at once, not at the next tick.
    #[serde(default)]
    pub digest: String,
}

impl Hold {
    /// "held by guard: would fire 38,211 (92% of audience), limit 500 firings or 10% of
    /// the audience"
    pub fn describe(&self) -> String {
        let share = if self.audience == 0 { 0.0 } else { 100.0 * self.would_fire as f64 / self.audience as f64 };
        format!(
            "held by guard: would fire {} ({share:.0}% of audience {}), limit {}",
            thousands(self.would_fire),
            thousands(self.audience),
            self.limits
        )
    }
}

/// A person's go-ahead for a held pass: it lets through a pass of up to `size` firings,
/// once (not forever).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub size: u64,
    pub at: DateTime<Utc>,
    /// Who approved (the CLI's user or the API token's name).
    pub by: String,
}

/// What the guard did, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardEvent {
    pub at: DateTime<Utc>,
    /// `held`, `approved`, `released` (ran after an approval), `cleared` (shrank below
    /// the limit).
    pub what: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardRecord {
    pub playbook: String,
    #[serde(default)]
    pub held: Option<Hold>,
    #[serde(default)]
    pub approved: Option<Approval>,
    /// The playbook's audience at its last full pass: an incremental pass sees only the
    /// accounts that changed, and a share is of the whole audience.
    #[serde(default)]
    pub audience: Option<u64>,
    #[serde(default)]
    pub history: Vec<GuardEvent>,
}

impl GuardRecord {
    pub fn log(&mut self, at: DateTime<Utc>, what: &str, detail: String) {
        self.history.push(GuardEvent { at, what: what.into(), detail });
        let extra = self.history.len().saturating_sub(KEEP_GUARD_HISTORY);
        self.history.drain(..extra);
    }
}

/// `38211` → `38,211`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
