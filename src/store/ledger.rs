//! The evaluator's side of the store: the ledger of decisions, the per-account state the
//! triggers need between passes, and the last completed tick of each playbook.
//!
//! Invariants:
//! - [`Store::commit`] writes a chunk's ledger entries, account states and health points
//!   in one sled transaction: after a crash either all of a chunk's decisions are there or
//!   none are, so nothing is half-recorded and a re-run decides the missing ones again,
//!   under the same occurrence keys.
//! - A ledger key is written once: `commit` never replaces an entry already present.
//! - A firing's outbox entries, tasks and field updates are written in that same
//!   transaction, and only when its ledger entry is new: a decided action is never lost
//!   and never doubled. An account a field update changed is marked in the change log in
//!   that transaction too (an incremental pass sees it), and the source's value the
//!   update replaced is kept ([`super::overrides`]) so a sync that repeats it leaves the
//!   update in place.
//! - Ticks are marked complete only after every chunk of the pass has committed.
//! - A chunk's progress mark is written in the chunk's own transaction: a mark says its
//!   accounts' decisions are all there.

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::outbox::{insert_outbox, upsert_task};
use super::{codec, decode, keys, Store, StoreError};
use crate::model::{Account, AccountState, FieldUpdate, HealthPoint, LedgerEntry, OutboxEntry, TaskRequest};

/// What one chunk of an evaluation pass decided, written atomically by [`Store::commit`].
#[derive(Debug, Default)]
pub struct Commit {
    pub entries: Vec<LedgerEntry>,
    /// Accounts whose state changed (the state as it is now; an empty state is removed).
    pub states: Vec<(String, AccountState)>,
    pub health: Vec<(String, HealthPoint)>,
    /// Outbox entries, each with the index in `entries` of the firing that decided it.
    pub outbox: Vec<(usize, OutboxEntry)>,
    /// Tasks, each with the index in `entries` of the firing that asked for it.
    pub tasks: Vec<(usize, TaskRequest)>,
    /// Playbook updates of account fields, each with the index in `entries` of the firing
    /// that decided it.
    pub updates: Vec<(usize, FieldUpdate)>,
    /// When accounts' running sequences or `while_true` windows next come due: written
    /// with their state, so an incremental pass cannot lose a timer to a crash.
    pub wakes: Vec<(DateTime<Utc>, String)>,
    /// The pass this chunk belongs to and the account ids it covered (first and last, in
    /// id order): kept with the decisions, so a pass killed and started again resumes
    /// after the chunks that committed ([`Store::pass_progress`]).
    pub progress: Option<Progress>,
}

/// One committed chunk of a pass: the pass's key and its first and last account ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub pass: String,
    pub first: Vec<u8>,
    pub last: Vec<u8>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.states.is_empty()
            && self.health.is_empty()
            && self.wakes.is_empty()
            && self.progress.is_none()
    }
}

/// A committed chunk's first and last account ids.
pub type ChunkRange = (Vec<u8>, Vec<u8>);

/// `meta` keys of pass progress: `pass/<pass key>/<first account id>` → last account id.
const PROGRESS: &str = "pass/";

fn progress_key(p: &Progress) -> Vec<u8> {
    let mut k = format!("{PROGRESS}{}/", p.pass).into_bytes();
    k.extend_from_slice(&p.first);
    k
}

/// An account as stored, not yet decoded: workers take chunks of these from a shared
/// [`AccountCursor`] and decode them in parallel, outside the cursor's lock.
pub struct EncodedAccount {
    key: sled::IVec,
    value: sled::IVec,
}

impl EncodedAccount {
    /// The account's id (its key), for reporting a record that does not decode.
    pub fn id(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }

    /// The account's key (its id's bytes), for pass progress.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn decode(&self) -> Result<Account, StoreError> {
        decode("accounts", &self.key, &self.value)
    }
}

/// Accounts handed out in chunks: every account in id order, or the given ids.
pub enum AccountCursor {
    /// Boxed: a sled iterator is ten times the size of the other variant.
    All(Box<sled::Iter>),
    Only {
        tree: sled::Tree,
        ids: std::vec::IntoIter<String>,
    },
}

impl AccountCursor {
    /// Up to `n` accounts; empty at the end. A given id with no account is passed over.
    pub fn next_chunk(&mut self, n: usize) -> Result<Vec<EncodedAccount>, StoreError> {
        let mut chunk = Vec::with_capacity(n);
        match self {
            AccountCursor::All(iter) => {
                for kv in iter.by_ref().take(n) {
                    let (key, value) = kv?;
                    chunk.push(EncodedAccount { key, value });
                }
            }
            AccountCursor::Only { tree, ids } => {
                while chunk.len() < n {
                    let Some(id) = ids.next() else { break };
                    if let Some(value) = tree.get(id.as_bytes())? {
                        chunk.push(EncodedAccount { key: id.as_bytes().into(), value });
                    }
                }
            }
        }
        Ok(chunk)
    }
}

impl Store {
    pub fn account_cursor(&self) -> AccountCursor {
        AccountCursor::All(Box::new(self.accounts.iter()))
    }

    /// A cursor over these accounts only, in the order given.
    pub fn account_cursor_for(&self, ids: Vec<String>) -> AccountCursor {
        AccountCursor::Only { tree: self.accounts.clone(), ids: ids.into_iter() }
    }

    /// The evaluator's state for an account (empty when it has none yet).
    pub fn account_state(&self, account_id: &str) -> Result<AccountState, StoreError> {
        match self.state.get(account_id)? {
            Some(v) => decode("state", account_id.as_bytes(), &v),
            None => Ok(AccountState::default()),
        }
    }

    /// Whether this occurrence is already in the ledger.
    pub fn has_fired(&self, account_id: &str, playbook_id: &str, occurrence: &str) -> Result<bool, StoreError> {
        Ok(self.ledger.contains_key(keys::ledger_key(account_id, playbook_id, occurrence))?)
    }

    /// The account's ledger, oldest decision first (its timeline of firings).
    pub fn ledger_of(&self, account_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut entries = self
            .ledger
            .scan_prefix(keys::account_prefix(account_id))
            .map(|kv| {
                let (k, v) = kv?;
                decode("ledger", &k, &v)
            })
            .collect::<Result<Vec<LedgerEntry>, _>>()?;
        entries.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.playbook.cmp(&b.playbook)));
        Ok(entries)
    }

    /// Every ledger entry, in key order (account, playbook, occurrence).
    pub fn ledger(&self) -> impl Iterator<Item = Result<LedgerEntry, StoreError>> + '_ {
        super::stop_at_error({
            self.ledger.iter().map(|kv| {
                let (k, v) = kv?;
                decode("ledger", &k, &v)
            })
        })
    }

    pub fn ledger_count(&self) -> usize {
        self.ledger.len()
    }

    /// Writes a chunk's decisions, states and health points in one transaction. An entry
    /// whose key is already in the ledger is left as it is (and not counted). Returns how
    /// many entries were written.
    pub fn commit(&self, commit: &Commit) -> Result<usize, StoreError> {
        if commit.is_empty() {
            return Ok(0);
        }
        let entries: Vec<(Vec<u8>, Vec<u8>)> = commit
            .entries
            .iter()
            .map(|e| (keys::ledger_key(&e.account, &e.playbook, &e.occurrence), codec::encode(e)))
            .collect();
        let states: Vec<(&str, Option<Vec<u8>>)> =
            commit.states.iter().map(|(id, s)| (id.as_str(), (!s.is_empty()).then(|| codec::encode(s)))).collect();
        let mut health = sled::Batch::default();
        for (id, point) in &commit.health {
            health.insert(keys::health_key(id, point.date), codec::encode(point));
        }
        let mut wakes = sled::Batch::default();
        for (at, id) in &commit.wakes {
            wakes.insert(super::incremental::wake_key(*at, id), &[]);
        }
        let trees = (
            &self.accounts,
            &self.dates,
            &self.changes,
            &self.overrides,
            &self.wakes,
            &self.meta,
            &self.ledger,
            &self.state,
            &self.health,
            &self.outbox,
            &self.outbox_index,
            &self.tasks,
            &self.task_index,
        );
        self.atomic(|| {
            // Drawn inside the gate, like a sync's change marks ([`Store::change_barrier`]).
            let seq = if commit.updates.is_empty() { 0 } else { self.next_change()? };
            trees
                .transaction(
                    |(
                        accounts,
                        dates,
                        changes,
                        overrides,
                        wake_tree,
                        meta,
                        ledger,
                        state,
                        health_tree,
                        outbox,
                        outbox_index,
                        tasks,
                        task_index,
                    )| {
                        let mut new = vec![false; entries.len()];
                        for (i, (key, value)) in entries.iter().enumerate() {
                            if ledger.get(key)?.is_none() {
                                ledger.insert(key.as_slice(), value.as_slice())?;
                                new[i] = true;
                            }
                        }
                        for (i, entry) in &commit.outbox {
                            if new[*i] {
                                insert_outbox(meta, outbox, outbox_index, entry)?;
                            }
                        }
                        for (i, task) in &commit.tasks {
                            if new[*i] {
                                upsert_task(meta, tasks, task_index, task, commit.entries[*i].at)?;
                            }
                        }
                        for (i, update) in &commit.updates {
                            if new[*i] {
                                let trees = super::overrides::Trees { accounts, dates, changes, overrides };
                                super::overrides::apply(&trees, update, seq)?;
                            }
                        }
                        for (id, value) in &states {
                            match value {
                                Some(v) => state.insert(id.as_bytes(), v.as_slice())?,
                                None => state.remove(id.as_bytes())?,
                            };
                        }
                        health_tree.apply_batch(&health)?;
                        wake_tree.apply_batch(&wakes)?;
                        if let Some(p) = &commit.progress {
                            meta.insert(progress_key(p), p.last.as_slice())?;
                        }
                        let written = new.iter().filter(|n| **n).count();
                        super::integrity::add_to_counter(meta, super::integrity::LEDGER_COUNT, written as u64)?;
                        Ok::<_, ConflictableTransactionError<StoreError>>(written)
                    },
                )
                .map_err(|e| match e {
                    TransactionError::Storage(e) => StoreError::from(e),
                    TransactionError::Abort(e) => e,
                })
        })
    }

    /// The chunks of pass `pass` committed so far, as (first, last) account ids: what a
    /// run of the same pass, started again after a crash or a stop, need not redo.
    pub fn pass_progress(&self, pass: &str) -> Result<Vec<ChunkRange>, StoreError> {
        let prefix = format!("{PROGRESS}{pass}/");
        self.meta
            .scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k[prefix.len()..].to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// Forgets the progress of every pass but `keep` (a completed pass keeps none).
    pub fn clear_pass_progress(&self, keep: Option<&str>) -> Result<(), StoreError> {
        let keep = keep.map(|k| format!("{PROGRESS}{k}/"));
        let mut batch = sled::Batch::default();
        for kv in self.meta.scan_prefix(PROGRESS) {
            let (k, _) = kv?;
            if keep.as_ref().is_none_or(|p| !k.starts_with(p.as_bytes())) {
                batch.remove(k);
            }
        }
        self.atomic(|| self.meta.apply_batch(batch))?;
        Ok(())
    }

    /// When the playbook's last pass completed (its tick), if it ever ran.
    pub fn last_tick(&self, playbook_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.ticks.get(playbook_id)? {
            Some(v) => decode("ticks", playbook_id.as_bytes(), &v),
            None => Ok(None),
        }
    }

    pub fn set_last_tick(&self, playbook_id: &str, tick: DateTime<Utc>) -> Result<(), StoreError> {
        self.ticks.insert(playbook_id, codec::encode(&tick))?;
        Ok(())
    }
}
