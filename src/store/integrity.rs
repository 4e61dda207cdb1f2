//! A store that detects its own damage: the seal checked at every open, `keel store
//! verify`'s full walk, consistent backups and restores.
//!
//! sled checks its own log, but a damaged file can still open "cleanly" with a suffix of
//! the writes gone (tasks and outbox entries missing, the ledger short: the next pass
//! would decide and send again), or make sled panic. Keel guards what it must never
//! silently lose — its decisions and the work they queued — three ways:
//! - **The seal.** After every flush, `keel-seal.json` beside sled's files records the
//!   counters the flush made durable: ledger entries, outbox ids and task ids handed out,
//!   outcomes recorded (delivery attempts, task changes, unsubscribes), accounts,
//!   contacts and events stored.
//!   They only grow, so at open the store must hold at least as many: fewer means durable
//!   writes are gone, and [`Store::open`] refuses with [`StoreError::Damaged`]. The seal
//!   is written (temp file + rename) only after sled's flush returned, so a crash leaves
//!   an older seal — a lower bound, never a false alarm.
//! - **Record checksums** ([`super::codec`]): a damaged record is an error when read.
//! - **Panics** inside sled at open or flush are caught and reported as damage.
//!
//! [`Store::verify`] is the slow, thorough check: every record of every tree decoded
//! (checksums included), every index key against its record and back, the counters
//! against the trees, the seal against the counters.
//!
//! Invariant: the counters live in `meta` and change in the same transaction as what they
//! count ([`Store::commit`] for the ledger; `next_id/*` with the entries they number).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::outbox::{outbox_index_keys, task_index_keys};
use super::{decode, keys, Store, StoreError};
use crate::model::{Contact, Event, OutboxEntry, Task};

/// The seal's file name, inside the store directory (sled ignores files it did not make).
pub const SEAL_FILE: &str = "keel-seal.json";

/// `meta` key of the ledger's entry count.
pub(super) const LEDGER_COUNT: &str = "count/ledger";
/// `meta` keys of the record counts: accounts, contacts and events inserted.
pub(super) const ACCOUNT_COUNT: &str = "count/accounts";
pub(super) const CONTACT_COUNT: &str = "count/contacts";
pub(super) const EVENT_COUNT: &str = "count/events";

/// `meta` key of the outcomes recorded: delivery attempts settled, tasks changed,
/// addresses suppressed.
pub(super) const OUTCOME_COUNT: &str = "count/outcomes";

/// What a flush made durable: counters that only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Ledger entries written.
    pub ledger: u64,
    /// The next outbox id (ids handed out so far + 1).
    pub outbox: u64,
    /// The next task id.
    pub tasks: u64,
    /// Outcomes recorded (delivery attempts, task changes, suppressions).
    #[serde(default)]
    pub outcomes: u64,
    /// Records stored: accounts, contacts, events (never removed by Keel).
    #[serde(default)]
    pub accounts: u64,
    #[serde(default)]
    pub contacts: u64,
    #[serde(default)]
    pub events: u64,
}

impl Seal {
    /// Each counter `now` holds less of than this seal: (what, sealed, now).
    pub fn shortfalls(&self, now: &Seal) -> Vec<(&'static str, u64, u64)> {
        [
            ("ledger entries", self.ledger, now.ledger),
            ("outbox entries", self.outbox - 1, now.outbox - 1),
            ("tasks", self.tasks - 1, now.tasks - 1),
            ("recorded outcomes (deliveries, task changes, unsubscribes)", self.outcomes, now.outcomes),
            ("accounts", self.accounts, now.accounts),
            ("contacts", self.contacts, now.contacts),
            ("events", self.events, now.events),
        ]
        .into_iter()
        .filter(|(_, had, has)| has < had)
        .collect()
    }
}

/// Adds `n` to the `meta` counter `key`, inside the caller's transaction: a counter
/// changes in the same transaction as what it counts.
pub(super) fn add_to_counter(
    meta: &sled::transaction::TransactionalTree,
    key: &str,
    n: u64,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    if n > 0 {
        let now = read_u64(meta.get(key)?);
        meta.insert(key, &(now + n).to_be_bytes())?;
    }
    Ok(())
}

/// What `keel store verify` found.
#[derive(Debug, Default, Serialize)]
pub struct Verification {
    /// Records decoded per tree.
    pub records: BTreeMap<&'static str, u64>,
    /// Every problem, in words (empty: the store is whole).
    pub problems: Vec<String>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, p: String) {
        // A store with a million broken index keys need not print a million lines.
        if self.problems.len() < 1000 {
            self.problems.push(p);
        } else if self.problems.len() == 1000 {
            self.problems.push("… more problems not listed".into());
        }
    }
}

/// sled writes a snapshot to `snap.*.generating` and renames it when complete; one left
/// behind (the disk filled while it was written) is unfinished by definition, and sled
/// would fail on it at every open ("Read corrupted data at file offset None").
pub(super) fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    let entries = match fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::Io(e.into())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing an unfinished store snapshot (the disk was full while it was written)");
            fs::remove_file(entry.path()).map_err(|e| StoreError::Io(e.into()))?;
        }
    }
    Ok(())
}

/// A panic from inside sled, as the damage it reports.
pub(super) fn damaged_by_panic(path: &Path, panic: Box<dyn std::any::Any + Send>) -> StoreError {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into());
    StoreError::Damaged { path: path.to_path_buf(), what: format!("sled failed reading it: {what}") }
}

pub(super) fn read_u64(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()).map_or(0, u64::from_be_bytes)
}

impl Store {
    /// The counters as the store holds them now.
    pub fn counters(&self) -> Result<Seal, StoreError> {
        Ok(Seal {
            ledger: read_u64(self.meta.get(LEDGER_COUNT)?),
            outbox: read_u64(self.meta.get("next_id/outbox")?).max(1),
            tasks: read_u64(self.meta.get("next_id/task")?).max(1),
            outcomes: read_u64(self.meta.get(OUTCOME_COUNT)?),
            accounts: read_u64(self.meta.get(ACCOUNT_COUNT)?),
            contacts: read_u64(self.meta.get(CONTACT_COUNT)?),
            events: read_u64(self.meta.get(EVENT_COUNT)?),
        })
    }

    fn seal_path(&self) -> PathBuf {
        self.path.join(SEAL_FILE)
    }

    /// The seal as last written, if any.
    pub fn seal(&self) -> Result<Option<Seal>, StoreError> {
        match fs::read(self.seal_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Damaged {
                path: self.path.clone(),
                what: format!("its seal file {SEAL_FILE} does not read: {e}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io(e.into())),
        }
    }

    /// Records what the flush that just returned made durable. Called with the write gate
    /// held exclusively, so the counters are exactly the flushed state.
    pub(super) fn write_seal(&self) -> Result<(), StoreError> {
        let seal = self.counters()?;
        let tmp = self.path.join(format!("{SEAL_FILE}.tmp"));
        let body = serde_json::to_vec(&seal).expect("the seal serialises");
        fs::write(&tmp, body).and_then(|()| fs::rename(&tmp, self.seal_path())).map_err(|e| StoreError::Io(e.into()))
    }

    /// At open: the store holds at least what its last seal says was made durable, and
    /// the ledger counter exists (a store from before counters gets one, counted once).
    pub(super) fn check_seal(&self) -> Result<(), StoreError> {
        // A store from before the counters gets them, counted once.
        for (key, tree) in [
            (LEDGER_COUNT, &self.ledger),
            (ACCOUNT_COUNT, &self.accounts),
            (CONTACT_COUNT, &self.contacts),
            (EVENT_COUNT, &self.event_ids),
        ] {
            if self.meta.get(key)?.is_none() {
                self.meta.insert(key, &(tree.len() as u64).to_be_bytes())?;
            }
        }
        let Some(seal) = self.seal()? else { return Ok(()) };
        let lost: Vec<String> = seal
            .shortfalls(&self.counters()?)
            .into_iter()
            .map(|(what, had, has)| format!("{what}: {has} of the {had} it had made durable"))
            .collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Damaged {
                path: self.path.clone(),
                what: format!("writes are missing — {}", lost.join("; ")),
            })
        }
    }

    /// Walks every tree: each record decoded and checksummed, each index key against its
    /// record and each record against its index keys, the counters against the trees,
    /// the seal against the counters. Reads only.
    /// A digest of everything the store holds — every tree's keys and values, in order —
    /// so two stores (or one store before and after a command) can be compared for
    /// content. It is what "a dry run writes nothing" is checked against: sled may rewrite
    /// a page it reads (consolidating the page's fragments into one), so the files' bytes
    /// can change under a read while the content cannot.
    pub fn content_digest(&self) -> Result<String, StoreError> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut names = self.db.tree_names();
        names.sort();
        for name in names {
            h.update((name.len() as u64).to_be_bytes());
            h.update(&name);
            for kv in self.db.open_tree(&name)?.iter() {
                let (k, v) = kv?;
                h.update((k.len() as u64).to_be_bytes());
                h.update(&k);
                h.update((v.len() as u64).to_be_bytes());
                h.update(&v);
            }
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn verify(&self) -> Result<Verification, StoreError> {
        let mut v = Verification::default();
        let trees: [(&'static str, &sled::Tree); 17] = [
            ("accounts", &self.accounts),
            ("contacts", &self.contacts),
            ("events", &self.events),
            ("health", &self.health),
            ("ledger", &self.ledger),
            ("state", &self.state),
            ("ticks", &self.ticks),
            ("outbox", &self.outbox),
            ("tasks", &self.tasks),
            ("suppression", &self.suppression),
            ("sends", &self.sends),
            ("evaluated", &self.evaluated),
            ("overrides", &self.overrides),
            ("contacts_by_account", &self.contacts_by_account),
            ("event_ids", &self.event_ids),
            ("outbox_index", &self.outbox_index),
            ("task_index", &self.task_index),
        ];
        // Trees of records (format byte, checksum, JSON); the last four hold index keys.
        for (name, tree) in &trees[..13] {
            let mut n = 0;
            for kv in tree.iter() {
                let (k, val) = kv?;
                n += 1;
                if let Err(e) = decode::<serde_json::Value>(name, &k, &val) {
                    v.problem(e.to_string());
                }
            }
            v.records.insert(name, n);
        }
        for (name, tree) in &trees[13..] {
            v.records.insert(name, tree.len() as u64);
        }

        // contacts ↔ contacts_by_account
        for kv in self.contacts.iter() {
            let (k, val) = kv?;
            let Ok(c) = decode::<Contact>("contacts", &k, &val) else { continue };
            if !self.contacts_by_account.contains_key(keys::contact_index_key(&c.account_id, &c.id))? {
                v.problem(format!("contact {:?} is missing from its account's index ({:?})", c.id, c.account_id));
            }
        }
        for kv in self.contacts_by_account.iter() {
            let (k, _) = kv?;
            let Some(at) = k.iter().position(|b| *b == keys::SEP) else {
                v.problem(format!("contacts_by_account key {:?} has no separator", String::from_utf8_lossy(&k)));
                continue;
            };
            let (account, contact) = (&k[..at], &k[at + 1..]);
            match self.contacts.get(contact)? {
                Some(val) => {
                    if let Ok(c) = decode::<Contact>("contacts", contact, &val) {
                        if c.account_id.as_bytes() != account {
                            v.problem(format!("contact {:?} is indexed under another account", c.id));
                        }
                    }
                }
                None => v.problem(format!(
                    "contacts_by_account points at contact {:?}, which is not stored",
                    String::from_utf8_lossy(contact)
                )),
            }
        }

        // events ↔ event_ids
        for kv in self.event_ids.iter() {
            let (id, key) = kv?;
            if !self.events.contains_key(&key)? {
                v.problem(format!("event id {:?} points at an event that is not stored", String::from_utf8_lossy(&id)));
            }
        }
        for kv in self.events.iter() {
            let (k, val) = kv?;
            let Ok(e) = decode::<Event>("events", &k, &val) else { continue };
            if self.event_ids.get(e.id.as_bytes())?.as_deref() != Some(&k[..]) {
                v.problem(format!("event {:?} is missing from the event id index", e.id));
            }
        }

        // outbox ↔ outbox_index, tasks ↔ task_index, ids below the counters
        let counters = self.counters()?;
        let mut max_outbox = 0;
        let mut wanted = std::collections::BTreeSet::new();
        for kv in self.outbox.iter() {
            let (k, val) = kv?;
            let Ok(e) = decode::<OutboxEntry>("outbox", &k, &val) else { continue };
            max_outbox = max_outbox.max(e.id);
            for key in outbox_index_keys(&e) {
                if !self.outbox_index.contains_key(&key)? {
                    v.problem(format!("outbox entry {} is missing an index key", e.id));
                }
                wanted.insert(key);
            }
        }
        for kv in self.outbox_index.iter() {
            let (k, _) = kv?;
            if !wanted.contains(&k[..]) {
                v.problem(format!(
                    "outbox_index key {:?} points at no entry in that state",
                    String::from_utf8_lossy(&k)
                ));
            }
        }
        let mut max_task = 0;
        let mut wanted = std::collections::BTreeSet::new();
        for kv in self.tasks.iter() {
            let (k, val) = kv?;
            let Ok(t) = decode::<Task>("tasks", &k, &val) else { continue };
            max_task = max_task.max(t.id);
            for (key, value) in task_index_keys(&t) {
                if self.task_index.get(&key)?.as_deref() != Some(&value[..]) {
                    v.problem(format!("task {} is missing an index key", t.id));
                }
                wanted.insert(key);
            }
        }
        for kv in self.task_index.iter() {
            let (k, _) = kv?;
            if !wanted.contains(&k[..]) {
                v.problem(format!("task_index key {:?} points at no task in that state", String::from_utf8_lossy(&k)));
            }
        }
        if max_outbox >= counters.outbox {
            v.problem(format!("outbox entry {max_outbox} is above the next outbox id {}", counters.outbox));
        }
        if max_task >= counters.tasks {
            v.problem(format!("task {max_task} is above the next task id {}", counters.tasks));
        }
        // Tasks are never removed: every id handed out must be there.
        let tasks = v.records["tasks"];
        if tasks != counters.tasks - 1 {
            v.problem(format!("{tasks} tasks are stored but {} were created", counters.tasks - 1));
        }
        for (tree, counted) in
            [("accounts", counters.accounts), ("contacts", counters.contacts), ("event_ids", counters.events)]
        {
            let stored = v.records[tree];
            if stored != counted {
                v.problem(format!("{stored} {tree} records are stored but {counted} were written"));
            }
        }
        let ledger = v.records["ledger"];
        if ledger != counters.ledger {
            v.problem(format!("{ledger} ledger entries are stored but {} were written", counters.ledger));
        }
        if let Some(seal) = self.seal()? {
            for (what, had, has) in seal.shortfalls(&counters) {
                v.problem(format!("{what}: the store holds {has}, its seal {had} (durable writes are gone)"));
            }
        }
        Ok(v)
    }

    /// A consistent copy of the whole store into `dir` (a new or empty folder): every tree
    /// exported and imported into a fresh store there, sealed, then verified.
    pub fn backup(&self, dir: &Path) -> Result<Verification, StoreError> {
        if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(StoreError::Internal(format!(
                "{} is not empty: a backup goes into a new or empty folder",
                dir.display()
            )));
        }
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let copy = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        copy.import(self.db.export());
        // sled's id generator (the change log's sequence) is not exported: the copy's
        // sequence continues above every number this store handed out.
        let floor = self.next_change()? + 1;
        copy.open_tree("meta")?.insert(super::ID_FLOOR, &floor.to_be_bytes())?;
        copy.flush()?;
        drop(copy);
        drop(_exclusive);
        let copy = Store::open(dir)?;
        copy.flush()?;
        copy.verify()
    }
}

/// Replaces the store at `store_dir` with the backup in `backup`: the backup is verified
/// first (a damaged backup is refused), the current store is moved aside to
/// `<store>.before-restore-<time>` (never deleted), and the backup copied into place.
/// Returns where the old store went.
pub fn restore(store_dir: &Path, backup: &Path, stamp: &str) -> Result<(PathBuf, Verification), StoreError> {
    // Opening would make an empty store where there is none: a mistyped folder must not
    // replace the book with nothing.
    if !backup.join(SEAL_FILE).is_file() {
        return Err(StoreError::Internal(format!(
            "{} holds no Keel backup (no {SEAL_FILE}): `keel store backup DIR` makes one; nothing was changed",
            backup.display()
        )));
    }
    let source = Store::open(backup)?;
    let check = source.verify()?;
    if !check.is_ok() {
        return Err(StoreError::Damaged {
            path: backup.to_path_buf(),
            what: format!("the backup fails verification: {}", check.problems.join("; ")),
        });
    }
    // The current store must not be in use: taking its lock proves no daemon has it.
    let aside = store_dir.with_file_name(format!(
        "{}.before-restore-{stamp}",
        store_dir.file_name().map_or("store".into(), |n| n.to_string_lossy())
    ));
    if store_dir.exists() {
        match std::panic::catch_unwind(|| sled::Config::new().path(store_dir).open()) {
            Ok(Ok(db)) => drop(db),
            Ok(Err(sled::Error::Io(e))) if super::is_lock_conflict(&e) => {
                return Err(StoreError::Locked { path: store_dir.to_path_buf() })
            }
            // A store too damaged to open can still be moved aside.
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        fs::rename(store_dir, &aside).map_err(|e| StoreError::Io(e.into()))?;
    }
    let v = source.backup(store_dir)?;
    Ok((aside, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AccountPatch;

    #[test]
    fn a_store_that_lost_durable_ledger_entries_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.meta.insert(LEDGER_COUNT, &5u64.to_be_bytes()).unwrap();
            store.flush().unwrap();
            // As if the last writes had vanished from sled's files.
            store.meta.insert(LEDGER_COUNT, &3u64.to_be_bytes()).unwrap();
            store.db.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is damaged (writes are missing — ledger entries: 3 of the 5"), "{err}");
        assert!(err.contains("keel store verify"), "{err}");
    }

    #[test]
    fn verify_finds_a_record_that_fails_its_checksum_and_a_dangling_index_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let patch = AccountPatch { id: "A".into(), ..AccountPatch::default() };
        store.upsert_accounts(vec![patch], chrono::Utc::now()).unwrap();
        assert!(store.verify().unwrap().is_ok(), "{:?}", store.verify().unwrap().problems);
        let mut bytes = store.accounts.get("A").unwrap().unwrap().to_vec();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x04;
        store.accounts.insert("A", bytes).unwrap();
        store.contacts_by_account.insert(keys::contact_index_key("A", "C-9"), &[]).unwrap();
        let v = store.verify().unwrap();
        assert!(v.problems.iter().any(|p| p.contains("\"A\" fails its checksum")), "{:?}", v.problems);
        assert!(v.problems.iter().any(|p| p.contains("points at contact \"C-9\"")), "{:?}", v.problems);
    }
}

/// What to tell the user when a panic comes from inside the storage engine: sled 0.34
/// panics on some damaged files where it should return an error. The store catches
/// that where it can (open, flush); the process's panic hook asks this for any other
/// place, so a damaged store still reads as a damaged store, with what to do, and not
/// as a crash of Keel. `None` for a panic anywhere else.
pub fn engine_panic_message(info: &std::panic::PanicHookInfo<'_>) -> Option<String> {
    if !info.location().is_some_and(|l| l.file().contains("sled-0.")) {
        return None;
    }
    let what = info
        .payload()
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| info.payload().downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    Some(format!(
        "the store is damaged (sled failed reading it: {what}): restore a backup (`keel store restore DIR`), see `keel store verify`"
    ))
}
