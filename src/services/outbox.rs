//! The outbox as operators see it: what waits, what went dead ([`list`]), and putting
//! dead entries back in the queue ([`retry`]).
//!
//! Invariants: [`retry`] only ever touches dead entries — pending, delivered, suppressed
//! and dropped ones are left exactly as they are (one named by id is refused with
//! [`ServiceError::NotDead`]); a retried entry starts again with no attempts, due now,
//! its history kept with a note saying it was put back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::model::{OutboxEntry, Status};
use crate::store::Store;

/// Which entries [`list`] shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// Waiting to be delivered (deferred ones too).
    #[default]
    Pending,
    /// The last attempt failed, or the receiver refused for good.
    Dead,
    /// Every entry, whatever its status.
    All,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    pub which: Which,
    /// Only this account's.
    pub account: Option<String>,
    /// At most this many (the oldest); reading stops there.
    pub limit: Option<usize>,
}

/// Entries in id order (the order they were decided).
pub fn list(store: &Store, query: &ListQuery) -> Result<Vec<OutboxEntry>, ServiceError> {
    let limit = query.limit.unwrap_or(usize::MAX);
    let keep = |e: &OutboxEntry| {
        let status_ok = match query.which {
            Which::All => true,
            Which::Dead => is_dead(e),
            Which::Pending => e.status == Status::Pending,
        };
        status_ok && query.account.as_ref().is_none_or(|a| *a == e.account)
    };
    Ok(match &query.account {
        Some(a) => store.outbox_of(a)?.into_iter().filter(keep).take(limit).collect(),
        None => store.outbox().filter(|e| e.as_ref().map_or(true, keep)).take(limit).collect::<Result<_, _>>()?,
    })
}

/// What [`retry`] puts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryTarget {
    /// This entry (it must be dead).
    One(u64),
    /// Every dead entry.
    AllDead,
}

/// What the history of a retried entry says.
pub const RETRY_NOTE: &str = "put back by `keel outbox retry`";

/// Puts dead entries back in the queue, due `now`; returns them as stored.
pub fn retry(store: &Store, target: RetryTarget, now: DateTime<Utc>) -> Result<Vec<OutboxEntry>, ServiceError> {
    let targets: Vec<OutboxEntry> = match target {
        RetryTarget::One(id) => {
            let e = store.outbox_entry(id)?.ok_or_else(|| ServiceError::not_found("outbox entry", id))?;
            if !is_dead(&e) {
                return Err(ServiceError::NotDead { id, status: e.status.name() });
            }
            vec![e]
        }
        RetryTarget::AllDead => {
            store.outbox().filter(|e| e.as_ref().map_or(true, is_dead)).collect::<Result<_, _>>()?
        }
    };
    let mut back = Vec::with_capacity(targets.len());
    for mut e in targets {
        e.status = Status::Pending;
        e.attempts = 0;
        e.next_at = now;
        e.note(now, RETRY_NOTE);
        back.push(e);
    }
    store.update_outbox(&back)?;
    store.flush()?;
    Ok(back)
}

/// How many outbox entries are dead. The outbox keeps no index by state, so this reads
/// every entry: once per `run --once`, not per pass of the daemon.
pub fn dead_count(store: &Store) -> Result<u64, ServiceError> {
    let mut n = 0;
    for entry in store.outbox() {
        n += u64::from(is_dead(&entry?));
    }
    Ok(n)
}

fn is_dead(e: &OutboxEntry) -> bool {
    matches!(e.status, Status::Dead { .. })
}
