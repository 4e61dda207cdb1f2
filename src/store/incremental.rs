//! What an incremental pass reads to find the few accounts it must evaluate, instead of
//! scanning the book (see `daemon::incremental` for the reasoning).
//!
//! Three logs and a watermark per playbook:
//! - `changes`: `seq(8, BE) account_id` for every account whose record, contacts or
//!   events a sync changed. `seq` comes from sled's monotonic id generator, drawn inside
//!   the write's gate, so [`Store::change_barrier`] (which holds the gate exclusively)
//!   returns a number above every change already written and below every later one.
//! - `dates`: `field \0 day(4, BE) account_id` for each date a date trigger can name
//!   ([`Account::trigger_dates`]), kept in step with the account in the same transaction:
//!   "whose renewal date is between these days" is one range scan.
//! - `wakes`: `time(8) account_id` — when an account's running sequence or `while_true`
//!   window next comes due. Written by the pass ([`Commit::wakes`]) with the account state.
//! - `evaluated`: per playbook, how far its last completed pass read those logs
//!   ([`Evaluated`]).
//!
//! Invariant: a log entry is pruned only once every enabled playbook's watermark is past
//! it; a playbook whose watermark is older than what was pruned gets a full pass.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{codec, decode, keys, Store, StoreError};
use crate::model::Account;

/// How far a playbook's last completed pass read the store's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluated {
    /// Changes below this sequence number were seen.
    pub seq: u64,
    /// The pass clock: wakes up to this instant were seen.
    pub at: DateTime<Utc>,
    /// The pass's day in the configured zone: due dates up to it were seen, and
    /// time-dependent expressions were last evaluated on it.
    pub date: NaiveDate,
    /// What the decisions were made with (playbook, rules, zone): a different basis
    /// needs a full pass.
    pub basis: String,
}

/// Where a date index entry's account id starts: after `field \0 day(4)`.
fn date_key(field: &str, day: NaiveDate, account_id: &str) -> Vec<u8> {
    let mut key = date_prefix(field, day);
    key.extend_from_slice(account_id.as_bytes());
    key
}

fn date_prefix(field: &str, day: NaiveDate) -> Vec<u8> {
    use chrono::Datelike;
    let mut key = Vec::with_capacity(field.len() + 5 + 24);
    key.extend_from_slice(field.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(&(day.num_days_from_ce() as u32).to_be_bytes());
    key
}

/// The date index keys of an account.
pub(super) fn date_keys(account: &Account) -> Vec<Vec<u8>> {
    account.trigger_dates().map(|(f, d)| date_key(&f, d, &account.id)).collect()
}

pub(super) fn change_key(seq: u64, account_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + account_id.len());
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(account_id.as_bytes());
    key
}

pub(super) fn wake_key(at: DateTime<Utc>, account_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + account_id.len());
    key.extend_from_slice(&keys::time_bytes(at));
    key.extend_from_slice(account_id.as_bytes());
    key
}

fn id_after(key: &[u8], skip: usize) -> String {
    String::from_utf8_lossy(&key[skip..]).into_owned()
}

impl Store {
    /// A change sequence number above every change written so far and below every later
    /// one: the watermark a pass starting now reads changes up to.
    pub fn change_barrier(&self) -> Result<u64, StoreError> {
        // Exclusive: no write is between drawing its number and landing.
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        Ok(self.db.generate_id()? + self.id_floor)
    }

    /// Draws the sequence number for a write's change marks; call it inside
    /// [`Store::atomic`], so [`Store::change_barrier`] cannot fall between the two.
    pub(super) fn next_change(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + self.id_floor)
    }

    /// Accounts changed by syncs with `from <= seq < to` (an account may repeat).
    pub fn changed_between(&self, from: u64, to: u64) -> impl Iterator<Item = Result<String, StoreError>> + '_ {
        super::stop_at_error({
            self.changes.range(from.to_be_bytes()..to.to_be_bytes()).map(|kv| Ok(id_after(&kv?.0, 8)))
        })
    }

    /// Accounts with a date `field` from `from` to `to` inclusive.
    pub fn dated_between(
        &self,
        field: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Iterator<Item = Result<String, StoreError>> + '_ {
        super::stop_at_error({
            let skip = field.len() + 5;
            let end = date_prefix(field, to + chrono::Duration::days(1));
            self.dates.range(date_prefix(field, from)..end).map(move |kv| Ok(id_after(&kv?.0, skip)))
        })
    }

    /// Accounts with a wake from `from` to `to` inclusive.
    pub fn waking_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = Result<String, StoreError>> + '_ {
        super::stop_at_error({
            let end = keys::time_bytes(to + chrono::Duration::microseconds(1));
            self.wakes.range(keys::time_bytes(from)..end).map(|kv| Ok(id_after(&kv?.0, 8)))
        })
    }

    pub fn evaluated(&self, playbook_id: &str) -> Result<Option<Evaluated>, StoreError> {
        self.evaluated.get(playbook_id)?.map(|v| decode("evaluated", playbook_id.as_bytes(), &v)).transpose()
    }

    pub fn set_evaluated(&self, playbook_id: &str, e: &Evaluated) -> Result<(), StoreError> {
        self.evaluated.insert(playbook_id, codec::encode(e))?;
        Ok(())
    }

    /// Changes below this sequence number may have been pruned.
    pub fn changes_floor(&self) -> Result<u64, StoreError> {
        Ok(self.meta.get("changes_floor")?.map_or(0, |v| v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0)))
    }

    /// Drops the changes below `seq` and the wakes before `at`: every enabled playbook has
    /// read past them. Returns how many entries went.
    pub fn prune_logs(&self, seq: u64, at: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut pruned = 0;
        if seq > self.changes_floor()? {
            self.meta.insert("changes_floor", &seq.to_be_bytes())?;
        }
        for (tree, end) in [(&self.changes, seq.to_be_bytes()), (&self.wakes, keys::time_bytes(at))] {
            // Batches of 10,000 keep a pruning after a full import from building a
            // million-entry batch in memory.
            loop {
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for kv in tree.range(..end).take(10_000) {
                    batch.remove(kv?.0);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                self.atomic(|| tree.apply_batch(batch))?;
                pruned += n;
            }
        }
        Ok(pruned)
    }

    /// Builds the date index from the accounts (a store written before it existed).
    pub(super) fn rebuild_date_index(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for account in self.accounts() {
            for key in date_keys(&account?) {
                batch.insert(key, &[]);
                n += 1;
            }
            if n >= 10_000 {
                self.dates.apply_batch(std::mem::take(&mut batch))?;
                n = 0;
            }
        }
        self.dates.apply_batch(batch)?;
        Ok(())
    }
}
