//! The guard's records ([`GuardRecord`]), one per playbook, in their own tree.
//!
//! Invariant: a record is changed only inside a transaction that reads it again
//! ([`Store::update_guard`]): the daemon's pass and an approval through the API run side
//! by side, and neither may lose the other's write. A hold's notification email is
//! queued in that same transaction, so it is sent once per hold.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::outbox::insert_outbox;
use super::{codec, decode, Store, StoreError};
use crate::model::{GuardRecord, OutboxEntry};

impl Store {
    pub fn guard(&self, playbook: &str) -> Result<Option<GuardRecord>, StoreError> {
        self.guards.get(playbook)?.map(|v| decode("guards", playbook.as_bytes(), &v)).transpose()
    }

    /// Every playbook's record, by id.
    pub fn guards(&self) -> Result<Vec<GuardRecord>, StoreError> {
        self.guards
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode("guards", &k, &v)
            })
            .collect()
    }

    /// Applies `change` to the playbook's record (a default one when it has none) and
    /// writes it, with the email `change` returns queued in the same transaction. `change`
    /// may run more than once (sled retries a transaction that conflicted) and returns
    /// `None` to write nothing. Returns the record as written, or `None`.
    pub fn update_guard(
        &self,
        playbook: &str,
        change: impl Fn(&mut GuardRecord) -> Option<Option<OutboxEntry>>,
    ) -> Result<Option<GuardRecord>, StoreError> {
        self.atomic(|| {
            (&self.guards, &self.meta, &self.outbox, &self.outbox_index)
                .transaction(|(guards, meta, outbox, oindex)| {
                    let mut record = match guards.get(playbook)? {
                        Some(v) => {
                            decode("guards", playbook.as_bytes(), &v).map_err(ConflictableTransactionError::Abort)?
                        }
                        None => GuardRecord { playbook: playbook.to_string(), ..GuardRecord::default() },
                    };
                    let Some(email) = change(&mut record) else { return Ok(None) };
                    if let Some(email) = email {
                        insert_outbox(meta, outbox, oindex, &email)?;
                    }
                    super::integrity::add_to_counter(meta, super::integrity::OUTCOME_COUNT, 1)?;
                    guards.insert(playbook.as_bytes(), codec::encode(&record))?;
                    Ok(Some(record))
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Abort(e) => e,
                    sled::transaction::TransactionError::Storage(e) => StoreError::from(e),
                })
        })
    }
}

/// Where a playbook's customer emails of one day are counted (`meta`).
fn daily_key(playbook: &str, day: chrono::NaiveDate) -> Vec<u8> {
    format!("daily_email/{day}/{playbook}").into_bytes()
}

impl Store {
    /// Takes a place under a playbook's daily cap of customer emails for `day` (the
    /// config's zone), atomically: false when `cap` places are taken. Every send
    /// attempt takes one (a retry after a failed attempt counts again), so the cap
    /// bounds what is tried, never more.
    pub fn take_daily_place(&self, playbook: &str, day: chrono::NaiveDate, cap: u32) -> Result<bool, StoreError> {
        let key = daily_key(playbook, day);
        self.atomic(|| {
            self.meta
                .transaction(|meta| {
                    let taken = super::integrity::read_u64(meta.get(&key)?);
                    if taken >= u64::from(cap) {
                        return Ok(false);
                    }
                    meta.insert(key.as_slice(), &(taken + 1).to_be_bytes())?;
                    Ok(true)
                })
                .map_err(|e: sled::transaction::TransactionError<StoreError>| match e {
                    sled::transaction::TransactionError::Abort(e) => e,
                    sled::transaction::TransactionError::Storage(e) => StoreError::from(e),
                })
        })
    }

    /// The places taken under a playbook's daily cap on `day`.
    pub fn daily_places(&self, playbook: &str, day: chrono::NaiveDate) -> Result<u64, StoreError> {
        Ok(super::integrity::read_u64(self.meta.get(daily_key(playbook, day))?))
    }
}
