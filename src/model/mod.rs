//! The records Keel keeps about a book of business: accounts, their contacts, and the
//! product-usage events they generate.
//!
//! Invariants shared by every record:
//! - `id` is the stable external id (the CRM's, or Segment's `messageId`): non-empty, at
//!   most [`MAX_ID_LEN`] bytes, no control characters (the store uses `\0` as a key
//!   separator, and ids end up in email headers later).
//! - Syncing is an *upsert*: a source row becomes a `*Patch` carrying only the fields the
//!   row had; applying a patch reports whether anything actually changed, so re-importing
//!   the same file is a no-op and says so.

mod account;
mod contact;
mod event;
mod guard;
mod health;
mod ledger;
mod outbox;
pub mod schema;
mod task;

pub use account::{
    field_text, updatable, update_value, Account, AccountPatch, FieldUpdate, Segment, SegmentError, UpdateError,
    UPDATABLE,
};
pub use contact::{Contact, ContactPatch};
pub use event::{Event, EventPatch};
pub use guard::{thousands, Approval, GuardEvent, GuardRecord, Hold, KEEP_GUARD_HISTORY};
pub use health::{Band, HealthPoint};
pub use ledger::{AccountState, Decision, EvalFailure, LedgerEntry, PlaybookState, SequenceState};
pub use outbox::{
    delivery_key, Audience, CapPolicy, Channel, DigestItem, Email, Note, OutboxEntry, Payload, Status, Webhook,
};
pub use task::{Escalation, Task, TaskRequest, TaskStatus};

/// Longest id accepted, in bytes. CRM ids are 18 characters; Segment message ids are
/// UUIDs; 256 leaves room for composite ids without letting a bad column in.
pub const MAX_ID_LEN: usize = 256;

/// Why an external id was refused, in words a CS Ops person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id is empty")]
    Empty,
    /// The id's length in bytes.
    #[error("id is {0} bytes long; the limit is {MAX_ID_LEN}")]
    TooLong(usize),
    /// The first control character found.
    #[error("id contains the control character {0:?}")]
    ControlCharacter(char),
}

/// Checks an external id.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(id.len()));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(IdError::ControlCharacter(c));
    }
    Ok(())
}

/// The `updated_at` of a record deserialised without one (test files): the epoch.
fn epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::UNIX_EPOCH
}

/// Sets `slot` to `value` and says whether that changed it. The building block of every
/// patch: a field the source did not carry is `None` and leaves the record alone.
fn set_if<T: PartialEq>(slot: &mut T, value: Option<T>) -> bool {
    match value {
        Some(v) if *slot != v => {
            *slot = v;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_id_says_what_is_wrong_with_it() {
        assert_eq!(validate_id("0015g00000XyZ"), Ok(()));
        assert_eq!(validate_id("").unwrap_err().to_string(), "id is empty");
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(validate_id(&long).unwrap_err().to_string(), "id is 257 bytes long; the limit is 256");
        assert_eq!(validate_id("a\0b").unwrap_err().to_string(), "id contains the control character '\\0'");
    }
}
