//! The deliverer's side of the store: the outbox, tasks, the suppression list and the
//! per-contact send record behind frequency caps.
//!
//! Trees and key layouts (ids are 8 bytes big-endian, times as in [`keys::time_bytes`]):
//! - `outbox`: `id` → [`OutboxEntry`].
//! - `outbox_index`: `d time id` (pending entries by `next_at`: "what is due" is one range
//!   scan), `a account \0 id` (an account's timeline), `g group \0 id` (a digest's pending
//!   items).
//! - `tasks`: `id` → [`Task`]; `task_index`: `o account \0 playbook` → id (the open task of
//!   a playbook for an account), `a account \0 id`, `e time id` (escalations by due time).
//! - `suppression`: lower-cased email → [`Suppression`]; `sends`: lower-cased email → the
//!   customer-facing sends inside the longest cap period ([`SendMark`]s), with `meta`'s
//!   `hold/<entry id>` → email for each mark an attempt in flight holds.
//!
//! Invariants:
//! - An entry and its index keys change together, in one transaction.
//! - A cap mark is taken by one send attempt, and is either held by it (the hold key in
//!   `meta`, written in the same transaction), confirmed (delivered) or gone: a crash
//!   leaves only holds, which the next start reclaims.
//! - Outbox entries and tasks a firing decided are written by [`Store::commit`] in the
//!   same transaction as its ledger entry, and only when that ledger entry is new.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::{codec, decode, keys, Store, StoreError};
use crate::model::{OutboxEntry, Status, Task, TaskRequest};

/// Why an address receives no customer-facing mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub email: String,
    /// `unsubscribed`, `bounced`, or `do-not-contact`.
    pub reason: String,
    pub at: DateTime<Utc>,
    /// Where it came from: `keel contacts unsubscribe`, `unsubscribe link`, `SMTP 550 …`.
    pub source: String,
}

/// One customer-facing send counted against an address's frequency cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMark {
    pub at: DateTime<Utc>,
    /// The outbox entry whose attempt took it (0 in records written before marks named
    /// their entry).
    #[serde(default)]
    pub entry: u64,
    /// Taken by an attempt whose outcome is not recorded yet. A delivered email confirms
    /// it; a failed attempt, or the start after a crash, releases it.
    #[serde(default)]
    pub held: bool,
}

/// A `sends` record element as stored: a mark, or a bare time (the format before marks
/// named their entry: a confirmed send).
#[derive(Deserialize)]
#[serde(untagged)]
enum MarkRecord {
    Mark(SendMark),
    Legacy(DateTime<Utc>),
}

impl From<MarkRecord> for SendMark {
    fn from(r: MarkRecord) -> SendMark {
        match r {
            MarkRecord::Mark(m) => m,
            MarkRecord::Legacy(at) => SendMark { at, entry: 0, held: false },
        }
    }
}

/// `meta` keys of the marks held by attempts in flight: `hold/` ++ entry id → address.
const HOLD_PREFIX: &[u8] = b"hold/";

fn hold_key(entry: u64) -> Vec<u8> {
    let mut k = HOLD_PREFIX.to_vec();
    k.extend_from_slice(&id_bytes(entry));
    k
}

fn read_marks(sends: &TransactionalTree, key: &str) -> Result<Vec<SendMark>, Abort> {
    Ok(match sends.get(key.as_bytes())? {
        Some(v) => decode::<Vec<MarkRecord>>("sends", key.as_bytes(), &v)
            .map_err(abort)?
            .into_iter()
            .map(SendMark::from)
            .collect(),
        None => Vec::new(),
    })
}

/// The frequency-cap rule, for the send and for a dry run alike: with sends at `marks`,
/// one more at `now` would exceed `max` per `per` until the returned instant (`None`: it
/// fits).
pub fn cap_full(
    marks: impl Iterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
    max: u32,
    per: Duration,
) -> Option<DateTime<Utc>> {
    let mut inside: Vec<DateTime<Utc>> = marks.filter(|at| *at > now - per).collect();
    inside.sort();
    if inside.len() < max as usize {
        return None;
    }
    // The send that must leave the window first for one more to fit.
    Some(inside.get(inside.len() - max as usize).map_or(now, |at| *at) + per)
}

/// A frequency cap's answer for one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapCheck {
    /// Under the cap: the send is recorded against it.
    Reserved,
    /// At the cap; the next send fits at this instant.
    Full { until: DateTime<Utc> },
}

pub(super) fn id_bytes(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn due_key(at: DateTime<Utc>, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'd');
    k.extend_from_slice(&keys::time_bytes(at));
    k.extend_from_slice(&id_bytes(id));
    k
}

fn tagged(tag: u8, a: &str, b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + a.len() + b.len());
    k.push(tag);
    k.extend_from_slice(a.as_bytes());
    k.push(keys::SEP);
    k.extend_from_slice(b);
    k
}

fn account_key(account: &str, id: u64) -> Vec<u8> {
    tagged(b'a', account, &id_bytes(id))
}

fn group_key(group: &str, id: u64) -> Vec<u8> {
    tagged(b'g', group, &id_bytes(id))
}

fn open_task_key(account: &str, playbook: &str) -> Vec<u8> {
    tagged(b'o', account, playbook.as_bytes())
}

fn escalation_key(at: DateTime<Utc>, id: u64) -> Vec<u8> {
    let mut k = due_key(at, id);
    k[0] = b'e';
    k
}

fn id_of(key: &[u8]) -> u64 {
    let tail: [u8; 8] = key[key.len() - 8..].try_into().expect("index keys end with an 8-byte id");
    u64::from_be_bytes(tail)
}

type Abort = ConflictableTransactionError<StoreError>;

/// The next id of a kind (`outbox`, `task`): small, contiguous numbers a person can type
/// (`keel tasks done 12`), kept in `meta` and taken inside the caller's transaction.
fn next_id(meta: &TransactionalTree, kind: &str) -> Result<u64, Abort> {
    let key = format!("next_id/{kind}");
    let id = match meta.get(&key)? {
        Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
        None => 1,
    };
    meta.insert(key.as_bytes(), &(id + 1).to_be_bytes())?;
    Ok(id)
}

/// Counts one more recorded outcome (a delivery attempt's, a task's change, a
/// suppression) in the transaction that records it: the seal's `outcomes`, so an outcome
/// that vanished from a damaged store is noticed, not re-sent.
fn bump(meta: &TransactionalTree) -> Result<(), Abort> {
    Ok(super::integrity::add_to_counter(meta, super::integrity::OUTCOME_COUNT, 1)?)
}

fn abort(e: StoreError) -> Abort {
    ConflictableTransactionError::Abort(e)
}

fn flatten(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::from(e),
    }
}

/// The index keys an entry has in its current state.
pub(super) fn outbox_index_keys(e: &OutboxEntry) -> Vec<Vec<u8>> {
    let mut k = vec![account_key(&e.account, e.id)];
    if e.status == Status::Pending {
        k.push(due_key(e.next_at, e.id));
        if let crate::model::Payload::Email(m) = &e.payload {
            if let Some(d) = &m.digest {
                k.push(group_key(&d.group, e.id));
            }
        }
    }
    k
}

/// Writes an outbox entry and its index keys, replacing the keys of the entry it replaces.
pub(super) fn put_outbox(
    outbox: &TransactionalTree,
    index: &TransactionalTree,
    entry: &OutboxEntry,
) -> Result<(), Abort> {
    if let Some(old) = outbox.get(id_bytes(entry.id))? {
        let old: OutboxEntry = decode("outbox", &id_bytes(entry.id), &old).map_err(abort)?;
        for k in outbox_index_keys(&old) {
            index.remove(k)?;
        }
    }
    for k in outbox_index_keys(entry) {
        index.insert(k, &[])?;
    }
    outbox.insert(&id_bytes(entry.id), codec::encode(entry))?;
    Ok(())
}

/// The index keys a task has in its current state.
pub(super) fn task_index_keys(t: &Task) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut k = vec![(account_key(&t.account, t.id), Vec::new())];
    if t.is_open() {
        k.push((open_task_key(&t.account, &t.playbook), id_bytes(t.id).to_vec()));
    }
    if let Some(at) = t.escalation_due() {
        k.push((escalation_key(at, t.id), Vec::new()));
    }
    k
}

pub(super) fn put_task(tasks: &TransactionalTree, index: &TransactionalTree, task: &Task) -> Result<(), Abort> {
    if let Some(old) = tasks.get(id_bytes(task.id))? {
        let old: Task = decode("tasks", &id_bytes(task.id), &old).map_err(abort)?;
        for (k, _) in task_index_keys(&old) {
            index.remove(k)?;
        }
    }
    for (k, v) in task_index_keys(task) {
        index.insert(k, v)?;
    }
    tasks.insert(&id_bytes(task.id), codec::encode(task))?;
    Ok(())
}

/// Creates the task a firing asks for, or updates the open one of the same playbook and
/// account (never a second open task).
pub(super) fn upsert_task(
    meta: &TransactionalTree,
    tasks: &TransactionalTree,
    index: &TransactionalTree,
    req: &TaskRequest,
    now: DateTime<Utc>,
) -> Result<u64, Abort> {
    let open = index.get(open_task_key(&req.account, &req.playbook))?;
    let existing = match open {
        Some(id) => {
            let id = id_of(&id);
            match tasks.get(id_bytes(id))? {
                Some(v) => Some(decode::<Task>("tasks", &id_bytes(id), &v).map_err(abort)?),
                None => None,
            }
        }
        None => None,
    };
    let task = match existing {
        Some(mut t) => {
            t.title = req.title.clone();
            t.description = req.description.clone();
            t.owner = req.owner.clone();
            t.due = req.due.or(t.due);
            t.priority = req.priority.clone();
            t.updated = now;
            t.occurrences.push(req.occurrence.clone());
            if let (Some(new), Some(old)) = (&req.escalation, &t.escalation) {
                // The escalation already sent stays sent; its settings follow the playbook.
                t.escalation = Some(crate::model::Escalation { sent: old.sent, ..new.clone() });
            } else {
                t.escalation = req.escalation.clone();
            }
            t
        }
        None => Task {
            id: next_id(meta, "task")?,
            account: req.account.clone(),
            playbook: req.playbook.clone(),
            title: req.title.clone(),
            description: req.description.clone(),
            owner: req.owner.clone(),
            due: req.due,
            priority: req.priority.clone(),
            status: crate::model::TaskStatus::Open,
            snoozed_until: None,
            created: now,
            updated: now,
            occurrences: vec![req.occurrence.clone()],
            escalation: req.escalation.clone(),
        },
    };
    put_task(tasks, index, &task)?;
    Ok(task.id)
}

impl Store {
    // ---- outbox ---------------------------------------------------------------------

    pub fn outbox_entry(&self, id: u64) -> Result<Option<OutboxEntry>, StoreError> {
        self.outbox.get(id_bytes(id))?.map(|v| decode("outbox", &id_bytes(id), &v)).transpose()
    }

    /// Every outbox entry, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = Result<OutboxEntry, StoreError>> + '_ {
        super::stop_at_error({
            self.outbox.iter().map(|kv| {
                let (k, v) = kv?;
                decode("outbox", &k, &v)
            })
        })
    }

    pub fn outbox_count(&self) -> usize {
        self.outbox.len()
    }

    /// Pending entries whose `next_at` has come, earliest first, at most `limit`.
    pub fn outbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let end = due_key(now, u64::MAX);
        let mut out = Vec::new();
        for kv in self.outbox_index.range(vec![b'd']..=end).take(limit) {
            let (k, _) = kv?;
            if let Some(e) = self.outbox_entry(id_of(&k))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// When the earliest pending entry is due.
    pub fn next_outbox_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        for kv in self.outbox_index.scan_prefix([b'd']).take(1) {
            let (k, _) = kv?;
            if let Some(e) = self.outbox_entry(id_of(&k))? {
                return Ok(Some(e.next_at));
            }
        }
        Ok(None)
    }

    pub fn pending_count(&self) -> usize {
        self.outbox_index.scan_prefix([b'd']).count()
    }

    /// An account's outbox entries, oldest first.
    pub fn outbox_of(&self, account: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        self.entries_under(&tagged(b'a', account, &[]))
    }

    /// The pending items of a digest group.
    pub fn digest_items(&self, group: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        self.entries_under(&tagged(b'g', group, &[]))
    }

    /// The outbox entries an `outbox_index` prefix points at.
    fn entries_under(&self, prefix: &[u8]) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for kv in self.outbox_index.scan_prefix(prefix) {
            let (k, _) = kv?;
            out.extend(self.outbox_entry(id_of(&k))?);
        }
        Ok(out)
    }

    /// Writes entries as they are now (state, `next_at`, history) with their index keys, in
    /// one transaction: a digest's items change together.
    pub fn update_outbox(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        self.atomic(|| {
            (&self.outbox, &self.outbox_index, &self.meta)
                .transaction(|(outbox, index, meta)| {
                    for e in entries {
                        put_outbox(outbox, index, e)?;
                    }
                    bump(meta)
                })
                .map_err(flatten)
        })
    }

    /// Removes finished entries (delivered, suppressed, dropped) that finished before
    /// `before`; returns how many. Pending and dead entries stay.
    pub fn purge_outbox(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut purged = 0;
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            let e: OutboxEntry = decode("outbox", &k, &v)?;
            if e.status.finished_at().is_some_and(|at| at < before) {
                self.atomic(|| {
                    (&self.outbox, &self.outbox_index)
                        .transaction(|(outbox, index)| {
                            for key in outbox_index_keys(&e) {
                                index.remove(key)?;
                            }
                            outbox.remove(&k)?;
                            Ok::<_, Abort>(())
                        })
                        .map_err(flatten)
                })?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    // ---- tasks ----------------------------------------------------------------------

    pub fn task(&self, id: u64) -> Result<Option<Task>, StoreError> {
        self.tasks.get(id_bytes(id))?.map(|v| decode("tasks", &id_bytes(id), &v)).transpose()
    }

    /// Every task, oldest first.
    pub fn tasks(&self) -> impl Iterator<Item = Result<Task, StoreError>> + '_ {
        super::stop_at_error({
            self.tasks.iter().map(|kv| {
                let (k, v) = kv?;
                decode("tasks", &k, &v)
            })
        })
    }

    pub fn tasks_of(&self, account: &str) -> Result<Vec<Task>, StoreError> {
        let prefix = tagged(b'a', account, &[]);
        let mut out = Vec::new();
        for kv in self.task_index.scan_prefix(prefix) {
            let (k, _) = kv?;
            if let Some(t) = self.task(id_of(&k))? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Writes a task as it is now (status, snooze) with its index keys.
    pub fn update_task(&self, task: &Task) -> Result<(), StoreError> {
        self.atomic(|| {
            (&self.tasks, &self.task_index, &self.meta)
                .transaction(|(tasks, index, meta)| {
                    put_task(tasks, index, task)?;
                    bump(meta)
                })
                .map_err(flatten)
        })
    }

    /// Open tasks whose escalation is due by `now`.
    pub fn due_escalations(&self, now: DateTime<Utc>) -> Result<Vec<Task>, StoreError> {
        let mut end = escalation_key(now, u64::MAX);
        end[0] = b'e';
        let mut out = Vec::new();
        for kv in self.task_index.range(vec![b'e']..=end) {
            let (k, _) = kv?;
            if let Some(t) = self.task(id_of(&k))? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Writes `after` in place of task `before.id` only if the stored task still equals
    /// `before` (compare and swap); returns false, writing nothing, when another writer
    /// (a pass, an escalation, another API request) changed it since it was read, so
    /// the caller reads it again instead of overwriting that change.
    pub fn replace_task(&self, before: &Task, after: &Task) -> Result<bool, StoreError> {
        self.atomic(|| {
            (&self.tasks, &self.task_index, &self.meta)
                .transaction(|(tasks, index, meta)| {
                    let key = id_bytes(before.id);
                    let stored = match tasks.get(key)? {
                        Some(v) => Some(decode::<Task>("tasks", &key, &v).map_err(abort)?),
                        None => None,
                    };
                    if stored.as_ref() != Some(before) {
                        return Ok(false);
                    }
                    put_task(tasks, index, after)?;
                    bump(meta)?;
                    Ok(true)
                })
                .map_err(flatten)
        })
    }

    /// Marks a task escalated (`sent` at) and queues its escalation email, in one
    /// transaction: an overdue task escalates once. The task is read again inside it:
    /// when it was closed, snoozed or escalated since `due_escalations` listed it (the API
    /// runs beside the daemon), nothing is written and false is returned.
    pub fn escalate(&self, id: u64, sent: DateTime<Utc>, email: OutboxEntry) -> Result<bool, StoreError> {
        self.atomic(|| {
            (&self.meta, &self.tasks, &self.task_index, &self.outbox, &self.outbox_index)
                .transaction(|(meta, tasks, tindex, outbox, oindex)| {
                    let key = id_bytes(id);
                    let Some(v) = tasks.get(key)? else { return Ok(false) };
                    let mut task: Task = decode("tasks", &key, &v).map_err(abort)?;
                    if task.escalation_due().is_none_or(|due| due > sent) {
                        return Ok(false);
                    }
                    if let Some(e) = task.escalation.as_mut() {
                        e.sent = Some(sent);
                    }
                    insert_outbox(meta, outbox, oindex, &email)?;
                    put_task(tasks, tindex, &task)?;
                    bump(meta)?;
                    Ok(true)
                })
                .map_err(flatten)
        })
    }

    // ---- suppression and caps -------------------------------------------------------

    pub fn suppression(&self, email: &str) -> Result<Option<Suppression>, StoreError> {
        let key = email.trim().to_lowercase();
        self.suppression.get(&key)?.map(|v| decode("suppression", key.as_bytes(), &v)).transpose()
    }

    /// Adds an address to the suppression list; returns false when it was already there
    /// (the first reason stands).
    pub fn suppress(&self, email: &str, reason: &str, source: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let key = email.trim().to_lowercase();
        let s = Suppression { email: key.clone(), reason: reason.into(), at, source: source.into() };
        let value = codec::encode(&s);
        self.atomic(|| {
            (&self.suppression, &self.meta)
                .transaction(|(suppression, meta)| {
                    if suppression.get(key.as_bytes())?.is_some() {
                        return Ok(false);
                    }
                    suppression.insert(key.as_bytes(), value.as_slice())?;
                    bump(meta)?;
                    Ok(true)
                })
                .map_err(flatten)
        })
    }

    /// Every suppressed address, in order.
    pub fn suppressions(&self) -> impl Iterator<Item = Result<Suppression, StoreError>> + '_ {
        super::stop_at_error({
            self.suppression.iter().map(|kv| {
                let (k, v) = kv?;
                decode("suppression", &k, &v)
            })
        })
    }

    /// Checks the frequency cap (`max` customer-facing sends per `per`) for an address and,
    /// when there is room, records a mark *held* by the attempt of outbox entry `entry` —
    /// atomically, so two workers cannot both take the last place. The caller takes it
    /// just before sending and settles it ([`Store::settle_send`]) when the attempt's
    /// outcome is recorded; a mark still held at the next start is reclaimed
    /// ([`Store::reclaim_sends`]). A mark the same entry held before (an attempt that
    /// failed) is replaced, never counted twice.
    pub fn reserve_send(
        &self,
        email: &str,
        entry: u64,
        now: DateTime<Utc>,
        max: u32,
        per: Duration,
    ) -> Result<CapCheck, StoreError> {
        let key = email.trim().to_lowercase();
        self.atomic(|| {
            (&self.sends, &self.meta)
                .transaction(|(sends, meta)| {
                    let mut marks = read_marks(sends, &key)?;
                    marks.retain(|m| !(m.entry == entry && entry != 0));
                    if let Some(until) = cap_full(marks.iter().map(|m| m.at), now, max, per) {
                        return Ok(CapCheck::Full { until });
                    }
                    marks.push(SendMark { at: now, entry, held: true });
                    sends.insert(key.as_bytes(), codec::encode(&marks))?;
                    meta.insert(hold_key(entry), key.as_bytes())?;
                    Ok(CapCheck::Reserved)
                })
                .map_err(flatten)
        })
    }

    /// When the sends counted against `email`'s cap were (or are held), read-only: what
    /// a dry run weighs a planned email against.
    pub fn cap_marks(&self, email: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let key = email.trim().to_lowercase();
        Ok(match self.sends.get(key.as_bytes())? {
            Some(v) => decode::<Vec<MarkRecord>>("sends", key.as_bytes(), &v)?
                .into_iter()
                .map(|m| SendMark::from(m).at)
                .collect(),
            None => Vec::new(),
        })
    }

    /// Settles the mark entry `entry`'s attempt holds on an address: confirmed when the
    /// email was delivered (it counts against the cap from then on), released otherwise
    /// (the entry will be tried again, or will not be sent at all).
    pub fn settle_send(&self, email: &str, entry: u64, delivered: bool) -> Result<(), StoreError> {
        let key = email.trim().to_lowercase();
        self.atomic(|| {
            (&self.sends, &self.meta)
                .transaction(|(sends, meta)| {
                    let mut marks = read_marks(sends, &key)?;
                    if delivered {
                        for m in marks.iter_mut().filter(|m| m.entry == entry) {
                            m.held = false;
                        }
                    } else {
                        marks.retain(|m| !(m.held && m.entry == entry));
                    }
                    if marks.is_empty() {
                        sends.remove(key.as_bytes())?;
                    } else {
                        sends.insert(key.as_bytes(), codec::encode(&marks))?;
                    }
                    meta.remove(hold_key(entry))?;
                    Ok(())
                })
                .map_err(flatten)
        })
    }

    /// At start, before any attempt runs: every cap mark still held belongs to an attempt
    /// that never finished (the process was killed or stopped while it waited or sent).
    /// A mark whose entry is recorded delivered is confirmed; any other is released, so a
    /// crash never leaves a customer capped by sends that did not happen. Returns
    /// (released, confirmed).
    pub fn reclaim_sends(&self) -> Result<(usize, usize), StoreError> {
        let mut holds = Vec::new();
        for kv in self.meta.scan_prefix(HOLD_PREFIX) {
            let (k, email) = kv?;
            let id = id_of(&k);
            holds.push((id, String::from_utf8_lossy(&email).into_owned()));
        }
        let (mut released, mut confirmed) = (0, 0);
        for (id, email) in holds {
            let delivered = self.outbox_entry(id)?.is_some_and(|e| matches!(e.status, Status::Delivered { .. }));
            self.settle_send(&email, id, delivered)?;
            if delivered {
                confirmed += 1;
            } else {
                released += 1;
            }
        }
        Ok((released, confirmed))
    }

    /// The cap marks recorded for an address (tests and `keel store verify`).
    pub fn send_marks(&self, email: &str) -> Result<Vec<SendMark>, StoreError> {
        let key = email.trim().to_lowercase();
        match self.sends.get(&key)? {
            Some(v) => {
                Ok(decode::<Vec<MarkRecord>>("sends", key.as_bytes(), &v)?.into_iter().map(SendMark::from).collect())
            }
            None => Ok(Vec::new()),
        }
    }

    /// The key that signs unsubscribe tokens when no `KEEL_UNSUBSCRIBE_SECRET` is set:
    /// The unsubscribe key, if one was made (read-only).
    pub fn existing_unsubscribe_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get("unsubscribe_key")?.map(|k| k.to_vec()))
    }

    /// 32 random bytes made on first use and kept in the store, so links stay valid
    /// across restarts.
    pub fn unsubscribe_key(&self) -> Result<Vec<u8>, StoreError> {
        let meta = &self.meta;
        if let Some(k) = meta.get("unsubscribe_key")? {
            return Ok(k.to_vec());
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| StoreError::Corrupt {
            tree: "meta",
            key: "unsubscribe_key".into(),
            reason: format!("no randomness from the OS: {e}"),
        })?;
        // Two first users at once: the first key written wins, both use it.
        let _ = meta.compare_and_swap("unsubscribe_key", None as Option<&[u8]>, Some(&key[..]))?;
        Ok(meta.get("unsubscribe_key")?.expect("just written").to_vec())
    }
}

/// Inside [`Store::commit`]'s transaction: a firing's outbox entries (ids assigned here).
pub(super) fn insert_outbox(
    meta: &TransactionalTree,
    outbox: &TransactionalTree,
    index: &TransactionalTree,
    entry: &OutboxEntry,
) -> Result<(), Abort> {
    let mut e = entry.clone();
    e.id = next_id(meta, "outbox")?;
    put_outbox(outbox, index, &e)
}
