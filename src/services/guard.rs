//! The blast-radius guard for people: which playbooks are held and why, and
//! `keel approve` — one pass of the held size let through.
//!
//! Invariant: an approval is written only for a playbook held at that moment (read again
//! in the write's transaction), and approves the size it was held at: a pass that would
//! fire more is held again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::model::{thousands, Approval, GuardRecord};
use crate::store::Store;

/// The guard's records: the held playbooks first, then those with a history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardList {
    pub records: Vec<GuardRecord>,
}

pub fn list(store: &Store) -> Result<GuardList, ServiceError> {
    let mut records: Vec<GuardRecord> =
        store.guards()?.into_iter().filter(|r| r.held.is_some() || !r.history.is_empty()).collect();
    records.sort_by_key(|r| (r.held.is_none(), r.playbook.clone()));
    Ok(GuardList { records })
}

/// Approves the held pass of `playbook`, by `by` (who approves, for the record). With
/// `expected`, only when it is held at that size: a recount since the person looked
/// (the book grew) is not approved unseen.
pub fn approve(
    store: &Store,
    playbook: &str,
    by: &str,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<GuardRecord, ServiceError> {
    if let (Some(want), Some(hold)) = (expected, store.guard(playbook)?.and_then(|r| r.held)) {
        if hold.would_fire != want {
            return Err(ServiceError::InvalidArgument(format!(
                "{playbook} is held at {} firings now, not {}: look again (`keel approve`) and approve that size",
                thousands(hold.would_fire),
                thousands(want)
            )));
        }
    }
    let written = store.update_guard(playbook, |rec| {
        let hold = rec.held.as_ref()?;
        if expected.is_some_and(|want| want != hold.would_fire) {
            return None;
        }
        let size = hold.would_fire;
        rec.approved = Some(Approval { size, at: now, by: by.to_string() });
        rec.log(now, "approved", format!("{by} approved one pass of up to {} firings", thousands(size)));
        Some(None)
    })?;
    match written {
        Some(rec) => {
            tracing::info!(
                playbook,
                by,
                size = rec.approved.as_ref().map_or(0, |a| a.size),
                "guard: held pass approved"
            );
            Ok(rec)
        }
        None => {
            let held = store.guards()?.into_iter().filter(|r| r.held.is_some()).map(|r| r.playbook).collect();
            Err(ServiceError::NotHeld { playbook: playbook.to_string(), held })
        }
    }
}
