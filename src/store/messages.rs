//! `messageId`s of the Segment `identify` and `group` calls already applied, so that a
//! retried one changes nothing even when a later call changed the record in between
//! (re-applying the old traits would undo the newer ones). Events need no such record:
//! a `track`'s `messageId` is the event's id.
//!
//! Trees: `messages`: `messageId` → the instant it was applied (ms since the epoch, big
//! endian); `messages_by_time`: that instant ++ `messageId` → nothing, so forgetting the
//! old ones reads only them.
//!
//! Invariants: an id is remembered only after its call was stored (a failure in between
//! leaves the retry to apply it); ids are forgotten [`MESSAGE_MEMORY`] after they were
//! applied, a bounded number per call, so the trees stay the size of a week of calls.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// How long an applied `messageId` is remembered: Segment's SDKs retry for minutes to
/// hours, and a replayed archive is older than this only by choice.
pub const MESSAGE_MEMORY: chrono::Duration = chrono::Duration::days(7);

/// Old ids forgotten per [`Store::remember_messages`] call at least (and twice the ids it
/// remembers, when more): forgetting outpaces remembering, at a cost proportional to it.
const FORGET_PER_CALL: usize = 1_000;

impl Store {
    /// For each id, whether a call with it was applied within [`MESSAGE_MEMORY`] of `now`.
    pub fn seen_messages(&self, ids: &[&str], now: DateTime<Utc>) -> Result<Vec<bool>, StoreError> {
        let horizon = (now - MESSAGE_MEMORY).timestamp_millis();
        ids.iter()
            .map(|id| {
                Ok(self
                    .messages
                    .get(id.as_bytes())?
                    .is_some_and(|v| <[u8; 8]>::try_from(v.as_ref()).is_ok_and(|b| i64::from_be_bytes(b) >= horizon)))
            })
            .collect()
    }

    /// Remembers `ids` as applied at `now`, and forgets some of those older than
    /// [`MESSAGE_MEMORY`].
    pub fn remember_messages(&self, ids: &[&str], now: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let at = now.timestamp_millis().to_be_bytes();
        let mut by_id = sled::Batch::default();
        let mut by_time = sled::Batch::default();
        for id in ids {
            by_id.insert(id.as_bytes(), &at);
            by_time.insert([&at[..], id.as_bytes()].concat(), &[]);
        }
        let horizon = (now - MESSAGE_MEMORY).timestamp_millis().to_be_bytes();
        for kv in self.messages_by_time.range(..&horizon[..]).take(FORGET_PER_CALL.max(2 * ids.len())) {
            let (key, _) = kv?;
            let id = &key[8..];
            // Only when the id was not applied again since (a newer instant).
            if self.messages.get(id)?.is_some_and(|v| v.as_ref() == &key[..8])
                && !ids.iter().any(|i| i.as_bytes() == id)
            {
                by_id.remove(id);
            }
            by_time.remove(key);
        }
        // The time index first: a crash between the two leaves at worst an index key
        // without its id (removed when its time comes), never an id nothing forgets.
        self.messages_by_time.apply_batch(by_time)?;
        self.messages.apply_batch(by_id)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applied_id_is_seen_for_a_week_then_forgotten_and_its_records_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t0: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        assert_eq!(store.seen_messages(&["m1", "m2"], t0).unwrap(), [false, false]);
        store.remember_messages(&["m1"], t0).unwrap();
        assert_eq!(store.seen_messages(&["m1", "m2"], t0 + chrono::Duration::days(6)).unwrap(), [true, false]);
        let later = t0 + chrono::Duration::days(8);
        assert_eq!(store.seen_messages(&["m1"], later).unwrap(), [false]);
        // Forgetting happens on the next call that remembers.
        store.remember_messages(&["m3"], later).unwrap();
        assert!(store.messages.get("m1").unwrap().is_none());
        assert_eq!(store.messages_by_time.len(), 1);
        // An id applied again is remembered from its new instant.
        store.remember_messages(&["m3"], later + chrono::Duration::days(6)).unwrap();
        store.remember_messages(&["m4"], later + chrono::Duration::days(7) + chrono::Duration::hours(1)).unwrap();
        assert_eq!(store.seen_messages(&["m3"], later + chrono::Duration::days(8)).unwrap(), [true]);
    }
}
