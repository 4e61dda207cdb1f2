//! Tasks: Gainsight's CTAs ("calls to action") for CSMs and managers, kept in the store.
//!
//! Invariants:
//! - At most one *open* task (open or snoozed) per playbook and account: a playbook firing
//!   again while its task is open updates that task (title, due date, priority, the
//!   occurrences that asked for it) instead of adding a second one.
//! - An overdue task escalates at most once (`escalated` is set in the same transaction
//!   that writes the escalation email to the outbox).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: u64,
    pub account: String,
    pub playbook: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub owner: String,
    pub due: Option<DateTime<Utc>>,
    pub priority: String,
    pub status: TaskStatus,
    /// Snoozed until this day (in the config's zone); open again from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<NaiveDate>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The ledger occurrences that created or updated it.
    #[serde(default)]
    pub occurrences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
}

impl Task {
    /// Open or snoozed: the playbook updates it rather than opening another.
    pub fn is_open(&self) -> bool {
        matches!(self.status, TaskStatus::Open | TaskStatus::Snoozed)
    }

    /// Open, or snoozed until a day that has come: on a CSM's list today.
    pub fn is_awake(&self, today: NaiveDate) -> bool {
        match self.status {
            TaskStatus::Open => true,
            TaskStatus::Snoozed => self.snoozed_until.is_none_or(|d| d <= today),
            _ => false,
        }
    }

    /// Awake and past its due time.
    pub fn is_overdue(&self, now: DateTime<Utc>, today: NaiveDate) -> bool {
        self.is_awake(today) && self.due.is_some_and(|d| d < now)
    }

    /// When the escalation is due, if it has one not yet sent.
    pub fn escalation_due(&self) -> Option<DateTime<Utc>> {
        let e = self.escalation.as_ref()?;
        if e.sent.is_some() || !self.is_open() {
            return None;
        }
        Some(self.due? + chrono::Duration::minutes(e.after_minutes))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
    Snoozed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
            TaskStatus::Snoozed => "snoozed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// Who hears about the task when it is overdue by `after_minutes`, and whether they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub after_minutes: i64,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<DateTime<Utc>>,
}

/// A task a firing asks for; the commit that records the firing creates it or updates the
/// open one of the same playbook and account.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub account: String,
    pub playbook: String,
    pub occurrence: String,
    pub title: String,
    pub description: Option<String>,
    pub owner: String,
    pub due: Option<DateTime<Utc>>,
    pub priority: String,
    pub escalation: Option<Escalation>,
}
