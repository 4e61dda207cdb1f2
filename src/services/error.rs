//! [`ServiceError`]: why a service refused or failed, typed so that each front end (the
//! command line, the HTTP API, the manager's page) can say it in its own words — the CLI
//! names its flags, an API answers 404 or 400.
//!
//! Invariants: every variant is about the caller's input or the store, never a panic;
//! store errors pass through unchanged (same message, same causes), so a damaged store
//! reads the same from every front end.

use chrono::NaiveDate;

use crate::decide::unsubscribe::TokenError;
use crate::model::{SegmentError, TaskStatus};
use crate::store::StoreError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No record `id` of kind `what` (`account`, `task`, `outbox entry`).
    #[error("no {what} {id:?}")]
    NotFound { what: &'static str, id: String },
    /// A playbook id no loaded playbook has: the ones there are, and the nearest.
    #[error("no playbook {id:?}{}; the playbooks are: {}", suggestion.as_ref().map_or(String::new(), |s| format!(" (did you mean {s:?}?)")), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownPlaybook { id: String, known: Vec<String>, suggestion: Option<String> },
    /// An argument no record could satisfy (not an email address, …).
    #[error("{0}")]
    InvalidArgument(String),
    /// A paging cursor that is not one a listing returned, or continues another order.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// A segment name that is neither standard nor plain.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A task is snoozed to a day that is not after today (in the config's zone).
    #[error("snooze day {until} is not after today ({today})")]
    NotAfterToday { until: NaiveDate, today: NaiveDate },
    /// Done, cancelled or snoozed only apply to an open (or snoozed) task.
    #[error("task {id} is {} already", status.as_str())]
    TaskClosed { id: u64, status: TaskStatus },
    /// Only dead outbox entries are put back in the queue.
    #[error("outbox entry {id} is {status}, not dead: only dead entries are retried")]
    NotDead { id: u64, status: &'static str },
    /// `keel approve` for a playbook the guard does not hold.
    #[error("{playbook} is not held by the guard: there is nothing to approve{}", if held.is_empty() { " (no playbook is held)".to_string() } else { format!(" (held: {})", held.join(", ")) })]
    NotHeld { playbook: String, held: Vec<String> },
    /// An unsubscribe token that this Keel did not issue.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// An email template no playbook uses.
    #[error("no email template {name:?} used by the playbooks; known: {}", known.join(", "))]
    UnknownTemplate { name: String, known: Vec<String> },
    /// Several playbooks send the template: which one's action to preview?
    #[error("email template {template:?} is sent by several playbooks ({}); pass --playbook to say which", playbooks.join(", "))]
    AmbiguousTemplate { template: String, playbooks: Vec<String> },
    /// `--playbook` names a playbook that does not send the template.
    #[error("playbook {playbook:?} does not send the email template {template:?}; it is sent by: {}", if sent_by.is_empty() { "no playbook".to_string() } else { sent_by.join(", ") })]
    NotSentBy { template: String, playbook: String, sent_by: Vec<String> },
    /// Customer mail goes to each contact: the preview needs one.
    #[error("playbook {playbook} sends {template:?} to the account's contacts: pass --contact ADDRESS to preview it for one ({})", if contacts.is_empty() { format!("account {account} has no contact with an address") } else { format!("{account}'s: {}", contacts.join(", ")) })]
    NeedsContact { template: String, playbook: String, account: String, contacts: Vec<String> },
    /// `--contact` for internal mail, which no contact receives.
    #[error("playbook {playbook} sends {template:?} to {to:?}, not to contacts: drop --contact")]
    NotCustomerMail { template: String, playbook: String, to: String },
    /// A preview for a contact the account does not have.
    #[error("account {account} has no contact with the address {address}")]
    NoSuchContact { account: String, address: String },
    /// A template failed for the account, or the message could not be built.
    #[error("{0}")]
    Render(String),
    /// The config holds a value the service cannot use (`email.from` not an address).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sync of one kind's file failed as a whole (unreadable, no id column, not JSON);
    /// the files synced before it stay synced.
    #[error("sync of {kind} stopped")]
    Sync {
        kind: &'static str,
        #[source]
        source: SyncError,
    },
    /// The daemon holding the store answered a request through its API with an error:
    /// its words (a service error's own message, said on the daemon's side).
    #[error("{message}")]
    Daemon { status: u16, message: String },
    /// A set of playbooks and rules that does not load (`which`: `working` or `running`):
    /// every problem, at its file, line and column.
    #[error("the {which} set of playbooks and rules does not load:\nerror: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\nerror: "))]
    SetDoesNotLoad { which: &'static str, errors: Vec<crate::diagnostic::Diagnostic> },
    /// The store is in use by a daemon whose API this command could not use.
    #[error("{0}")]
    Unreachable(String),
}

impl ServiceError {
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> ServiceError {
        ServiceError::NotFound { what, id: id.to_string() }
    }
}
