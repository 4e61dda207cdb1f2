//! The embedded store: accounts, contacts and events on sled (0.34, the stable line).
//!
//! Nothing outside this module touches sled. The rest of Keel sees [`Store`]: typed
//! records in, typed records out, upserts that report what they changed. That keeps the
//! door open for a PostgreSQL backend (several daemons, leases on due
//! work) — it would implement this same surface; it is not built until an issue asks.
//!
//! Invariants:
//! - Every value starts with a record-format byte ([`codec`]), so records can be migrated.
//! - A batch of upserts lands atomically (one sled batch or transaction per call), and
//!   [`Store::flush`] makes it durable; commands flush before they report success.
//! - The store knows when it is damaged ([`integrity`]): every flush seals the counters
//!   it made durable, every open checks them, records carry checksums, and a panic inside
//!   sled at open or flush is reported as damage — never a silent, partial store.
//! - One store, one process: sled locks the directory, and a second opener gets
//!   [`StoreError::Locked`], never a shared, corrupting view.

mod codec;
mod guard;
mod incremental;
mod integrity;
mod keys;
mod ledger;
mod messages;
mod outbox;
mod overrides;
mod running;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::model::{Account, AccountPatch, Contact, ContactPatch, Event, HealthPoint};

pub use codec::RECORD_FORMAT;
pub use incremental::Evaluated;
use integrity::{damaged_by_panic, remove_unfinished_snapshots};
pub use integrity::{engine_panic_message, restore, Seal, Verification, SEAL_FILE};
pub use ledger::{AccountCursor, ChunkRange, Commit, EncodedAccount, Progress};
pub use messages::MESSAGE_MEMORY;
pub use outbox::{cap_full, CapCheck, SendMark, Suppression};
pub use overrides::Overrides;
pub use running::{Recorded, RunningSet, MAX_BYTES as RUNNING_SET_MAX_BYTES};

/// `meta` key: added to sled's id generator, which a backup does not carry over, so a
/// restored store's change sequence continues above the original's.
const ID_FLOOR: &str = "id_floor";

/// Layout version of the store as a whole (trees and key formats), kept in the `meta`
/// tree. Bumped when a key layout changes; [`Store::open`] refuses a newer layout.
pub const STORE_LAYOUT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {} is in use by another keel process; stop it, or set a different data_dir", path.display())]
    Locked { path: PathBuf },
    #[error("could not open the store at {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: EngineError,
    },
    #[error("the store at {} was written by a newer Keel (layout {found}; this build knows layout {STORE_LAYOUT}); upgrade keel", path.display())]
    NewerLayout { path: PathBuf, found: u8 },
    #[error("{tree} record {key:?} was written by a newer Keel (record format {found}; this build reads format {RECORD_FORMAT}); upgrade keel")]
    NewerRecord { tree: &'static str, key: String, found: u8 },
    #[error("the store is damaged: {tree} record {key:?} {reason}; restore a backup (`keel store restore DIR`), see `keel store verify`")]
    Corrupt { tree: &'static str, key: String, reason: String },
    #[error("the store at {} is damaged ({what}): restore a backup (`keel store restore DIR`), see `keel store verify`", path.display())]
    Damaged { path: PathBuf, what: String },
    #[error("the disk holding the store at {} is full: free some space and run the command again (nothing was changed)", path.display())]
    DiskFull { path: PathBuf },
    #[error("store I/O failed")]
    Io(#[source] EngineError),
    #[error("the store is damaged (it read corrupted data: {0}): restore a backup (`keel store restore DIR`), see `keel store verify`")]
    EngineCorrupt(EngineError),
    #[error("the disk holding the store is full ({0}): free some space and run the command again; what was written before stays")]
    NoSpace(io::Error),
    #[error("{0}")]
    Internal(String),
}

impl StoreError {
    /// The store is damaged (or cannot be written at all): nothing may be decided from it.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::Damaged { .. }
                | StoreError::EngineCorrupt(_)
                | StoreError::NoSpace(_)
                | StoreError::DiskFull { .. }
        )
    }
}

/// The storage engine's own error, kept as the source of a [`StoreError`] without its
/// type: callers match on [`StoreError`]'s variants, never on an engine's errors, so a
/// second backend can stand behind the same errors.
#[derive(Debug)]
pub struct EngineError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<sled::Error> for EngineError {
    fn from(e: sled::Error) -> EngineError {
        EngineError(Box::new(e))
    }
}

impl From<io::Error> for EngineError {
    fn from(e: io::Error) -> EngineError {
        EngineError(Box::new(e))
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        match e {
            sled::Error::Corruption { .. } => StoreError::EngineCorrupt(e.into()),
            sled::Error::Io(io) if io.kind() == io::ErrorKind::StorageFull => StoreError::NoSpace(io),
            e => StoreError::Io(e.into()),
        }
    }
}

/// What an upsert did with one incoming record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Inserted,
    Updated,
    Unchanged,
    /// The record cannot be stored as it stands; the reason is for the person who sent it.
    Rejected(String),
}

/// Cheap to clone: every clone is a handle on the same open database.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    /// Keeps explicit flushes apart from sled's atomic writes. sled 0.34 deadlocks when a
    /// flush (which holds its concurrency-control lock shared while it waits for the log
    /// to be stable) meets a transaction or batch waiting for that lock exclusively: the
    /// lock is writer-preferring, so sled's own log flusher can no longer take it shared
    /// and the flush never finishes (seen in the delivery benchmark: both runtime threads
    /// in `transaction`, every flush waiting). Atomic writes hold this gate shared,
    /// [`Store::flush`] exclusively, so the two never wait on each other inside sled.
    gate: std::sync::Arc<std::sync::RwLock<()>>,
    /// Group commit for [`Store::durable`]: atomic writes done, and the count the last
    /// flush covered.
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    flushed: std::sync::Arc<std::sync::Mutex<u64>>,
    /// [`ID_FLOOR`] as read at open.
    id_floor: u64,
    accounts: sled::Tree,
    contacts: sled::Tree,
    contacts_by_account: sled::Tree,
    events: sled::Tree,
    event_ids: sled::Tree,
    health: sled::Tree,
    ledger: sled::Tree,
    state: sled::Tree,
    ticks: sled::Tree,
    meta: sled::Tree,
    outbox: sled::Tree,
    outbox_index: sled::Tree,
    tasks: sled::Tree,
    task_index: sled::Tree,
    suppression: sled::Tree,
    sends: sled::Tree,
    changes: sled::Tree,
    dates: sled::Tree,
    wakes: sled::Tree,
    evaluated: sled::Tree,
    /// Fields a playbook's update set, per account ([`overrides`]).
    overrides: sled::Tree,
    /// Segment identify/group `messageId`s applied ([`messages`]).
    messages: sled::Tree,
    messages_by_time: sled::Tree,
    /// The blast-radius guard's record per playbook ([`guard`]).
    guards: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `path`, a directory, and checks it is whole: a
    /// store that lost writes it had made durable, or that sled cannot read back, is
    /// refused with [`StoreError::Damaged`], never opened as if it were fine.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        remove_unfinished_snapshots(path)?;
        // sled 0.34 panics on some damaged files instead of returning an error (seen:
        // "tried to serialize Uninitialized"); at this boundary that is a damaged store.
        let opened = std::panic::catch_unwind(|| Store::open_sled(path));
        let store = match opened {
            Ok(r) => r?,
            Err(panic) => return Err(damaged_by_panic(path, panic)),
        };
        store.check_seal()?;
        Ok(store)
    }

    /// Opens the store without refusing it for lost writes: for `keel store verify`,
    /// which reports them with everything else it finds. sled's own failures and panics
    /// are still errors.
    pub fn open_for_inspection(path: &Path) -> Result<Store, StoreError> {
        remove_unfinished_snapshots(path)?;
        match std::panic::catch_unwind(|| Store::open_sled(path)) {
            Ok(r) => r,
            Err(panic) => Err(damaged_by_panic(path, panic)),
        }
    }

    fn open_sled(path: &Path) -> Result<Store, StoreError> {
        // sled's background flusher holds the database (and its file lock) for a moment
        // after the last handle is dropped, so a store closed and reopened in one process
        // (a restart in tests, a reload) can find it still locked: retry briefly before
        // saying another process has it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        // HighThroughput: sled's write-optimised segment handling. At 100,000 accounts it
        // took the first full pass from 15.8 s to 13.7-14.0 s and the import from 21.6k to
        // 21.9-23.1k accounts/s, the store on disk within 2% of the default's size.
        let db = loop {
            match sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if is_lock_conflict(&e) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked { path: path.to_path_buf() });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(sled::Error::Io(e)) if e.kind() == io::ErrorKind::StorageFull => {
                    // sled may have begun a snapshot it could not write: never leave it.
                    let _ = remove_unfinished_snapshots(path);
                    return Err(StoreError::DiskFull { path: path.to_path_buf() });
                }
                Err(sled::Error::Unsupported(what)) => {
                    return Err(StoreError::Damaged {
                        path: path.to_path_buf(),
                        what: format!("sled cannot read its own files: {what}"),
                    })
                }
                Err(sled::Error::Corruption { .. }) => {
                    return Err(StoreError::Damaged {
                        path: path.to_path_buf(),
                        what: "sled reports corrupted data in its files".into(),
                    })
                }
                Err(source) => return Err(StoreError::Open { path: path.to_path_buf(), source: source.into() }),
            }
        };
        let meta = db.open_tree("meta")?;
        let layout = match meta.get("layout")?.as_deref() {
            None => None,
            Some([found]) if *found <= STORE_LAYOUT => Some(*found),
            Some(other) => {
                return Err(StoreError::NewerLayout {
                    path: path.to_path_buf(),
                    found: other.first().copied().unwrap_or(u8::MAX),
                })
            }
        };
        let id_floor = integrity::read_u64(meta.get(ID_FLOOR)?);
        let store = Store {
            id_floor,
            path: path.to_path_buf(),
            gate: Default::default(),
            writes: Default::default(),
            flushed: Default::default(),
            accounts: db.open_tree("accounts")?,
            contacts: db.open_tree("contacts")?,
            contacts_by_account: db.open_tree("contacts_by_account")?,
            events: db.open_tree("events")?,
            event_ids: db.open_tree("event_ids")?,
            health: db.open_tree("health")?,
            ledger: db.open_tree("ledger")?,
            state: db.open_tree("state")?,
            ticks: db.open_tree("ticks")?,
            outbox: db.open_tree("outbox")?,
            meta,
            outbox_index: db.open_tree("outbox_index")?,
            tasks: db.open_tree("tasks")?,
            task_index: db.open_tree("task_index")?,
            suppression: db.open_tree("suppression")?,
            sends: db.open_tree("sends")?,
            changes: db.open_tree("changes")?,
            dates: db.open_tree("dates")?,
            wakes: db.open_tree("wakes")?,
            evaluated: db.open_tree("evaluated")?,
            overrides: db.open_tree("overrides")?,
            messages: db.open_tree("messages")?,
            messages_by_time: db.open_tree("messages_by_time")?,
            guards: db.open_tree("guards")?,
            db,
        };
        if layout != Some(STORE_LAYOUT) {
            // Layout 2 added the date index (and the change and wake logs, which start
            // empty: with no `evaluated` watermark the first pass is a full one).
            if layout.is_some() {
                store.rebuild_date_index()?;
            }
            store.meta.insert("layout", &[STORE_LAYOUT])?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every write so far durable. sled writes are only in memory until flushed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut flushed = self.flushed.lock().unwrap_or_else(|e| e.into_inner());
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let covers = self.writes.load(std::sync::atomic::Ordering::SeqCst);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.db.flush())) {
            Ok(r) => r?,
            Err(panic) => return Err(damaged_by_panic(&self.path, panic)),
        };
        self.write_seal()?;
        *flushed = covers;
        Ok(())
    }

    /// Makes durable every write that completed before the call, sharing one flush with
    /// every caller waiting at the same time: a flush that started after those writes
    /// covers them (group commit). Callers that must not answer before their writes
    /// survive a crash (an ingest acknowledged, a send recorded) await this; the store's
    /// own flush discipline stays inside the store.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let done = self.writes.load(std::sync::atomic::Ordering::SeqCst);
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            if *store.flushed.lock().unwrap_or_else(|e| e.into_inner()) >= done {
                return Ok(());
            }
            store.flush()
        })
        .await
        .map_err(|e| StoreError::Internal(format!("the flush task failed: {e}")))?
    }

    /// Runs one atomic write (a transaction or batch) inside the gate and counts it.
    pub(crate) fn atomic<T>(&self, write: impl FnOnce() -> T) -> T {
        let _shared = self.gate.read().unwrap_or_else(|e| e.into_inner());
        let out = write();
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        out
    }

    // ---- accounts -------------------------------------------------------------------

    pub fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        self.accounts.get(id)?.map(|v| decode("accounts", id.as_bytes(), &v)).transpose()
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Every account, in id order, decoded as the iterator advances (no full load).
    pub fn accounts(&self) -> impl Iterator<Item = Result<Account, StoreError>> + '_ {
        stop_at_error({
            self.accounts.iter().map(|kv| {
                let (k, v) = kv?;
                decode("accounts", &k, &v)
            })
        })
    }

    /// Applies a batch of account patches atomically; one [`Outcome`] per patch, in order.
    /// A patch that repeats what is stored is `Unchanged` and writes nothing.
    pub fn upsert_accounts(&self, patches: Vec<AccountPatch>, now: DateTime<Utc>) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(patches.len());
        // Rows for the same account in one batch see each other's effect.
        let mut pending: HashMap<String, Account> = HashMap::new();
        // The date index keys of each account as stored before this batch.
        let mut stored_dates: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        // Accounts with fields a playbook set, as this batch leaves them; those changed are
        // written with the accounts ([`overrides`]).
        let any_overrides = !self.overrides.is_empty();
        let mut overridden: HashMap<String, (Overrides, bool)> = HashMap::new();
        for mut patch in patches {
            if any_overrides {
                if !overridden.contains_key(&patch.id) {
                    overridden.insert(patch.id.clone(), (self.overrides_of(&patch.id)?, false));
                }
                let (kept, dirty) = overridden.get_mut(&patch.id).expect("just loaded");
                *dirty |= overrides::reconcile(kept, &mut patch);
            }
            // A record already dirty in this batch must be written whatever this row does.
            let (existing, dirty) = match pending.remove(&patch.id) {
                Some(a) => (Some(a), true),
                None => (self.account(&patch.id)?, false),
            };
            let (account, outcome) = match existing {
                Some(mut account) => {
                    if !dirty {
                        stored_dates.insert(account.id.clone(), incremental::date_keys(&account));
                    }
                    let changed = patch.apply(&mut account, now);
                    (account, if changed { Outcome::Updated } else { Outcome::Unchanged })
                }
                None => {
                    let mut account = Account::new(patch.id.clone(), now);
                    patch.apply(&mut account, now);
                    (account, Outcome::Inserted)
                }
            };
            if dirty || outcome != Outcome::Unchanged {
                pending.insert(account.id.clone(), account);
            }
            outcomes.push(outcome);
        }
        if pending.is_empty() && !overridden.values().any(|(_, dirty)| *dirty) {
            return Ok(outcomes);
        }
        let mut batch = sled::Batch::default();
        let mut dates = sled::Batch::default();
        for (id, account) in &pending {
            batch.insert(id.as_bytes(), codec::encode(account));
            let new = incremental::date_keys(account);
            let old = stored_dates.remove(id).unwrap_or_default();
            for key in old.iter().filter(|k| !new.contains(k)) {
                dates.remove(key.as_slice());
            }
            for key in new.into_iter().filter(|k| !old.contains(k)) {
                dates.insert(key, &[]);
            }
        }
        let mut kept = sled::Batch::default();
        for (id, (o, _)) in overridden.iter().filter(|(_, (_, dirty))| *dirty) {
            match o.is_empty() {
                true => kept.remove(id.as_bytes()),
                false => kept.insert(id.as_bytes(), codec::encode(o)),
            }
        }
        self.atomic(|| {
            let seq = self.next_change()?;
            let mut changes = sled::Batch::default();
            for id in pending.keys() {
                changes.insert(incremental::change_key(seq, id), &[]);
            }
            transact(
                &[&self.accounts, &self.dates, &self.changes, &self.overrides],
                &[&batch, &dates, &changes, &kept],
                &self.meta,
                (integrity::ACCOUNT_COUNT, inserted(&outcomes)),
            )
        })?;
        Ok(outcomes)
    }

    // ---- contacts -------------------------------------------------------------------

    pub fn contact(&self, id: &str) -> Result<Option<Contact>, StoreError> {
        self.contacts.get(id)?.map(|v| decode("contacts", id.as_bytes(), &v)).transpose()
    }

    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    /// The account's contacts, by contact id (a prefix scan of the index).
    pub fn contacts_of(&self, account_id: &str) -> Result<Vec<Contact>, StoreError> {
        let mut out = Vec::new();
        for kv in self.contacts_by_account.scan_prefix(keys::account_prefix(account_id)) {
            let (k, _) = kv?;
            let contact_id = &k[account_id.len() + 1..];
            if let Some(v) = self.contacts.get(contact_id)? {
                out.push(decode("contacts", contact_id, &v)?);
            }
        }
        Ok(out)
    }

    /// Applies contact patches atomically (the contact and its account index move together).
    /// A new contact must name its account; an update may leave it out.
    pub fn upsert_contacts(&self, patches: Vec<ContactPatch>, now: DateTime<Utc>) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(patches.len());
        let mut pending: HashMap<String, Contact> = HashMap::new();
        let mut index = sled::Batch::default();
        // Accounts a contact left: their view changed too.
        let mut moved_from: Vec<String> = Vec::new();
        for patch in patches {
            let (existing, dirty) = match pending.remove(&patch.id) {
                Some(c) => (Some(c), true),
                None => (self.contact(&patch.id)?, false),
            };
            match existing {
                Some(mut contact) => {
                    let old_account = contact.account_id.clone();
                    let changed = patch.apply(&mut contact, now);
                    if contact.account_id != old_account {
                        moved_from.push(old_account.clone());
                        index.remove(keys::contact_index_key(&old_account, &contact.id));
                        index.insert(keys::contact_index_key(&contact.account_id, &contact.id), &[]);
                    }
                    outcomes.push(if changed { Outcome::Updated } else { Outcome::Unchanged });
                    if changed || dirty {
                        pending.insert(contact.id.clone(), contact);
                    }
                }
                None => match patch.into_new(now) {
                    Some(contact) => {
                        index.insert(keys::contact_index_key(&contact.account_id, &contact.id), &[]);
                        outcomes.push(Outcome::Inserted);
                        pending.insert(contact.id.clone(), contact);
                    }
                    None => outcomes.push(Outcome::Rejected("a new contact needs an account_id".into())),
                },
            }
        }
        let mut batch = sled::Batch::default();
        let mut accounts = std::collections::BTreeSet::new();
        for (id, contact) in &pending {
            batch.insert(id.as_bytes(), codec::encode(contact));
            accounts.insert(contact.account_id.as_str());
        }
        accounts.extend(moved_from.iter().map(String::as_str));
        self.atomic(|| {
            let changes = self.change_marks(accounts.iter().copied())?;
            transact(
                &[&self.contacts, &self.contacts_by_account, &self.changes],
                &[&batch, &index, &changes],
                &self.meta,
                (integrity::CONTACT_COUNT, inserted(&outcomes)),
            )
        })?;
        Ok(outcomes)
    }

    // ---- events ---------------------------------------------------------------------

    pub fn event_count(&self) -> usize {
        self.event_ids.len()
    }

    /// The account's events with `from <= timestamp < to`, oldest first: one range scan.
    pub fn events_of(
        &self,
        account_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = Result<Event, StoreError>> + '_ {
        stop_at_error({
            self.events.range(keys::event_bound(account_id, from)..keys::event_bound(account_id, to)).map(|kv| {
                let (k, v) = kv?;
                decode("events", &k, &v)
            })
        })
    }

    /// Stores events, once per id: an id seen before with the same content is
    /// `Unchanged` (Segment retries, re-imported files); with new content it replaces
    /// the old event (`Updated`).
    pub fn upsert_events(&self, events: Vec<Event>) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(events.len());
        // event id -> (key it is stored under, the event), for ids already seen in this batch.
        let mut seen: HashMap<String, (Vec<u8>, Event)> = HashMap::new();
        let mut batch = sled::Batch::default();
        let mut ids = sled::Batch::default();
        for event in events {
            let previous = match seen.get(&event.id) {
                Some((key, e)) => Some((key.clone(), e.clone())),
                None => match self.event_ids.get(&event.id)? {
                    Some(key) => {
                        let stored = self.events.get(&key)?.ok_or_else(|| StoreError::Corrupt {
                            tree: "event_ids",
                            key: event.id.clone(),
                            reason: "points at an event that is not stored".into(),
                        })?;
                        Some((key.to_vec(), decode::<Event>("events", &key, &stored)?))
                    }
                    None => None,
                },
            };
            let key = keys::event_key(&event.account_id, event.timestamp, &event.id);
            let outcome = match previous {
                Some((_, ref old)) if *old == event => Outcome::Unchanged,
                Some((old_key, _)) => {
                    if old_key != key {
                        batch.remove(old_key);
                    }
                    Outcome::Updated
                }
                None => Outcome::Inserted,
            };
            if outcome != Outcome::Unchanged {
                batch.insert(key.clone(), codec::encode(&event));
                ids.insert(event.id.as_bytes(), key.clone());
                seen.insert(event.id.clone(), (key, event));
            }
            outcomes.push(outcome);
        }
        let accounts: std::collections::BTreeSet<&str> = seen.values().map(|(_, e)| e.account_id.as_str()).collect();
        self.atomic(|| {
            let changes = self.change_marks(accounts.iter().copied())?;
            transact(
                &[&self.events, &self.event_ids, &self.changes],
                &[&batch, &ids, &changes],
                &self.meta,
                (integrity::EVENT_COUNT, inserted(&outcomes)),
            )
        })?;
        Ok(outcomes)
    }
}

impl Store {
    // ---- health history -------------------------------------------------------------

    /// Records health points (one per account and day; a second point for the same day
    /// replaces the first, so re-scoring a day is idempotent), atomically.
    pub fn record_health(&self, points: &[(&str, &HealthPoint)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (account_id, point) in points {
            batch.insert(keys::health_key(account_id, point.date), codec::encode(point));
        }
        self.atomic(|| self.health.apply_batch(batch))?;
        Ok(())
    }

    /// The account's latest health point on or before `date`.
    pub fn health_on_or_before(&self, account_id: &str, date: NaiveDate) -> Result<Option<HealthPoint>, StoreError> {
        let start = keys::account_prefix(account_id);
        let end = keys::health_key(account_id, date);
        match self.health.range(start..=end).next_back() {
            Some(kv) => {
                let (k, v) = kv?;
                Ok(Some(decode("health", &k, &v)?))
            }
            None => Ok(None),
        }
    }

    /// The account's health points from `from` to `to` inclusive, oldest first.
    pub fn health_history(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<HealthPoint>, StoreError> {
        self.health
            .range(keys::health_key(account_id, from)..=keys::health_key(account_id, to))
            .map(|kv| {
                let (k, v) = kv?;
                decode("health", &k, &v)
            })
            .collect()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Applies each batch to its tree in one transaction: all land or none does; and adds
/// `inserted` to the `meta` counter `count` in the same transaction (the seal's counts of
/// records, see [`integrity`]).
fn transact(
    trees: &[&sled::Tree],
    batches: &[&sled::Batch],
    meta: &sled::Tree,
    (count, inserted): (&str, u64),
) -> Result<(), StoreError> {
    let mut all: Vec<&sled::Tree> = trees.to_vec();
    all.push(meta);
    all.as_slice()
        .transaction(|ts| {
            for (t, b) in ts.iter().zip(batches) {
                t.apply_batch(b)?;
            }
            integrity::add_to_counter(ts.last().expect("meta is the last tree"), count, inserted)?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            TransactionError::Storage(e) => StoreError::from(e),
            TransactionError::Abort(()) => unreachable!("the closure never aborts"),
        })
}

impl Store {
    /// Change marks for these accounts under one new sequence number (call inside
    /// [`Store::atomic`]).
    fn change_marks<'a>(&self, accounts: impl Iterator<Item = &'a str>) -> Result<sled::Batch, StoreError> {
        let seq = self.next_change()?;
        let mut changes = sled::Batch::default();
        for id in accounts {
            changes.insert(incremental::change_key(seq, id), &[]);
        }
        Ok(changes)
    }
}

fn inserted(outcomes: &[Outcome]) -> u64 {
    outcomes.iter().filter(|o| **o == Outcome::Inserted).count() as u64
}

fn decode<T: DeserializeOwned>(tree: &'static str, key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    codec::decode(value).map_err(|e| {
        let key = String::from_utf8_lossy(key).replace('\0', "/");
        match e {
            codec::DecodeError::TooNew(found) => StoreError::NewerRecord { tree, key, found },
            codec::DecodeError::Empty => StoreError::Corrupt { tree, key, reason: "is empty".into() },
            codec::DecodeError::Unknown(f) => {
                StoreError::Corrupt { tree, key, reason: format!("has format byte {f}, which no Keel writes") }
            }
            codec::DecodeError::Checksum { stored, computed } => StoreError::Corrupt {
                tree,
                key,
                reason: format!("fails its checksum (stored {stored:08x}, computed {computed:08x})"),
            },
            codec::DecodeError::Json(e) => StoreError::Corrupt { tree, key, reason: format!("does not decode: {e}") },
        }
    })
}

/// Ends an iterator after its first error. On a damaged page sled's iterator returns the
/// same error again and again without moving on: a caller that skips errors (counting
/// the good records) would loop forever.
fn stop_at_error<T>(iter: impl Iterator<Item = Result<T, StoreError>>) -> impl Iterator<Item = Result<T, StoreError>> {
    let mut failed = false;
    iter.map_while(move |r| {
        if failed {
            return None;
        }
        failed = r.is_err();
        Some(r)
    })
}

/// sled reports a held directory lock as a plain I/O error from its `try_lock`.
pub(super) fn is_lock_conflict(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_a_newer_keel_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.accounts.insert("A", &[RECORD_FORMAT + 1, b'{', b'}']).unwrap();
        let err = store.account("A").unwrap_err();
        assert!(matches!(err, StoreError::NewerRecord { found, .. } if found == RECORD_FORMAT + 1), "{err:?}");
        assert!(err.to_string().contains("upgrade keel"), "{err}");
    }

    #[test]
    fn a_layout_1_store_gets_its_date_index_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let patch = AccountPatch { id: "A".into(), renewal_date: Some(day), ..AccountPatch::default() };
            store.upsert_accounts(vec![patch], Utc::now()).unwrap();
            // As a layout-1 store was: no date index.
            store.dates.clear().unwrap();
            store.meta.insert("layout", &[1]).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let found: Vec<String> = store.dated_between("renewal_date", day, day).map(Result::unwrap).collect();
        assert_eq!(found, ["A"]);
        assert_eq!(store.meta.get("layout").unwrap().as_deref(), Some(&[STORE_LAYOUT][..]));
    }

    #[test]
    fn the_date_index_follows_an_account_s_dates() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let at = |date: &str, field: &str| -> Vec<String> {
            store.dated_between(field, d(date), d(date)).map(Result::unwrap).collect()
        };
        let mut patch = AccountPatch { id: "A".into(), renewal_date: Some(d("2027-03-01")), ..AccountPatch::default() };
        patch.fields.push(("go_live".into(), serde_json::json!("2027-01-15")));
        store.upsert_accounts(vec![patch], Utc::now()).unwrap();
        assert_eq!(
            (at("2027-03-01", "renewal_date"), at("2027-01-15", "fields.go_live")),
            (vec!["A".into()], vec!["A".into()])
        );
        let moved = AccountPatch { id: "A".into(), renewal_date: Some(d("2028-03-01")), ..AccountPatch::default() };
        store.upsert_accounts(vec![moved], Utc::now()).unwrap();
        assert!(at("2027-03-01", "renewal_date").is_empty());
        assert_eq!(at("2028-03-01", "renewal_date"), ["A"]);
        assert_eq!(at("2027-01-15", "fields.go_live"), ["A"]);
    }

    #[test]
    fn a_store_with_a_newer_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.db.open_tree("meta").unwrap().insert("layout", &[STORE_LAYOUT + 1]).unwrap();
            store.flush().unwrap();
        }
        assert!(matches!(Store::open(dir.path()), Err(StoreError::NewerLayout { .. })));
    }
}
