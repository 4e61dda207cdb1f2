//! The running set: the playbooks, templates, rules and health model the daemon last
//! loaded and runs (at its start, at each reload it applied, and at `keel run --once`),
//! as their texts, so `keel plan` can compare a working folder with what is in force.
//!
//! One `meta` key ([`KEY`]) holds one record: a fingerprint (a digest over every file),
//! when it was recorded, and the texts keyed by their path relative to their folder
//! (`playbooks/renewal-90.yaml`, `rules/health.rhai`; see `lang::sources`).
//!
//! Invariants:
//! - Written only when the fingerprint differs from the one recorded: a restart or a
//!   reload of the same files writes nothing.
//! - Bounded: a set whose texts exceed [`MAX_BYTES`] is not written (the caller is told,
//!   and logs it); the record in place stays, as it is the best knowledge there is.
//! - Advisory: nothing decides from it. A failure to record it never stops the daemon.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{codec, decode, Store, StoreError};

/// The `meta` key of the running set.
const KEY: &str = "running_set";

/// The most text a recorded set holds (the shipped set is about 20 KB; the loaders limit
/// one template or description to 1 MiB).
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// A set of files as the daemon loaded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningSet {
    /// A digest over every key and text (`lang::sources::Sources::fingerprint`).
    pub fingerprint: String,
    /// When it was recorded (the daemon's clock).
    pub recorded: DateTime<Utc>,
    /// Path relative to its folder → text.
    pub files: BTreeMap<String, String>,
}

/// What [`Store::record_running_set`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The set is recorded now.
    Written,
    /// The recorded set has the same fingerprint: nothing written.
    Unchanged,
    /// Over [`MAX_BYTES`]: not written.
    TooLarge { bytes: usize },
}

impl Store {
    /// The running set last recorded, if any daemon or `run --once` ever recorded one.
    pub fn running_set(&self) -> Result<Option<RunningSet>, StoreError> {
        match self.meta.get(KEY)? {
            Some(raw) => Ok(Some(decode("meta", KEY.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    /// Records `set` as the running set, unless the one recorded has its fingerprint or it
    /// is over [`MAX_BYTES`]. Not flushed: the caller's next flush makes it durable.
    pub fn record_running_set(&self, set: &RunningSet) -> Result<Recorded, StoreError> {
        let bytes: usize = set.files.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_BYTES {
            return Ok(Recorded::TooLarge { bytes });
        }
        // Only the fingerprint is compared: a record that no longer decodes (damage) is
        // replaced rather than kept.
        if let Ok(Some(old)) = self.running_set() {
            if old.fingerprint == set.fingerprint {
                return Ok(Recorded::Unchanged);
            }
        }
        self.meta.insert(KEY, codec::encode(set))?;
        Ok(Recorded::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_written_when_its_fingerprint_changes_and_not_when_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.running_set().unwrap(), None);
        let at: DateTime<Utc> = "2026-11-23T13:30:00Z".parse().unwrap();
        let files = BTreeMap::from([("playbooks/a.yaml".to_string(), "id: a\n".to_string())]);
        let set = RunningSet { fingerprint: "f1".into(), recorded: at, files };
        assert_eq!(store.record_running_set(&set).unwrap(), Recorded::Written);
        let later = RunningSet { recorded: at + chrono::Duration::hours(1), ..set.clone() };
        assert_eq!(store.record_running_set(&later).unwrap(), Recorded::Unchanged);
        assert_eq!(store.running_set().unwrap(), Some(set.clone()), "the first recording stands");
        let huge = RunningSet {
            fingerprint: "f2".into(),
            recorded: at,
            files: BTreeMap::from([("playbooks/b.yaml".to_string(), "x".repeat(MAX_BYTES + 1))]),
        };
        assert!(matches!(store.record_running_set(&huge).unwrap(), Recorded::TooLarge { .. }));
        assert_eq!(store.running_set().unwrap(), Some(set));
    }
}
