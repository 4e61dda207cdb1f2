//! The daemon: when each playbook is evaluated, reloading what CS Ops change, and the
//! loop that ties it to the clock.
//!
//! [`Daemon`] is the synchronous core, driven by an injected [`Clock`]: tests move "now"
//! through hundreds of days without sleeping. [`run::serve`] is the async loop around it:
//! it sleeps until the next tick, runs passes on worker threads off the runtime, polls for
//! changed files, and stops on a cancellation token.
//!
//! Invariants:
//! - One pass at a time. Everything due at a wakeup is evaluated in *one* pass (each
//!   account's scope is built once for all of them); a slow pass delays the next tick,
//!   never overlaps it.
//! - A playbook's tick is marked complete only when its pass finished; an interrupted pass
//!   is run again and the ledger keeps it from firing anything twice.
//! - Missed ticks after downtime: condition, date and event playbooks simply run once (their
//!   triggers catch up by themselves, within their windows); a schedule trigger runs its
//!   latest missed tick if it is within the catch-up window and logs the older ones it skips.
//! - A reload that fails `check` changes nothing: the running set stays in force.

pub mod run;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

pub use crate::clock::{Clock, ManualClock, OffsetClock, SystemClock};

use crate::config::Config;
use crate::decide::incremental;
use crate::decide::pass::{Due, Evaluator, PassReport};
use crate::diagnostic::Diagnostic;
use crate::lang::playbook::{Playbook, Trigger, DEFAULT_CATCH_UP_DAYS};
use crate::lang::schedule::CronSchedule;
use crate::lang::Loaded;
use crate::store::{Store, StoreError};

/// Counters for `/metrics` (kept from the start so the API only has to print them).
#[derive(Debug, Default)]
pub struct Counters {
    pub passes: AtomicU64,
    pub accounts_evaluated: AtomicU64,
    pub fired: AtomicU64,
    pub skipped: AtomicU64,
    pub errors: AtomicU64,
    pub slow_passes: AtomicU64,
    pub reloads: AtomicU64,
    pub rejected_reloads: AtomicU64,
}

/// What a reload check found.
#[derive(Debug)]
pub enum Reload {
    /// No file changed.
    Unchanged,
    /// The new config, rules and playbooks are in force.
    Applied,
    /// The change fails `check`; these are its errors, and the previous set keeps running.
    Rejected(Vec<Diagnostic>),
}

/// What a wakeup did.
#[derive(Debug)]
pub struct Tick {
    /// The evaluation clock of the pass.
    pub at: DateTime<Utc>,
    /// The pass, when anything was due.
    pub report: Option<PassReport>,
    /// Things a person should know (a schedule trigger's first run, skipped ticks).
    pub notes: Vec<String>,
}

/// A playbook's place on the clock.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Due now, for this tick.
    Run { tick: DateTime<Utc>, previous: Option<DateTime<Utc>>, missed: u64 },
    /// A schedule trigger seen for the first time: it starts counting from now and fires
    /// at its next tick (a first start is not downtime to catch up on).
    Baseline,
    /// Its missed ticks are all older than the catch-up window: skipped, and counted.
    TooLate { latest: DateTime<Utc>, missed: u64 },
    /// Nothing due.
    Wait,
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub struct Daemon {
    config: Config,
    store: Store,
    loaded: Arc<Loaded>,
    clock: Arc<dyn Clock>,
    fingerprint: Fingerprint,
    /// The configured source files as last imported (empty: not yet).
    sources: Fingerprint,
    pub counters: Arc<Counters>,
}

impl Daemon {
    /// Builds a daemon over an open store with loaded playbooks.
    pub fn new(config: Config, store: Store, loaded: Loaded, clock: Arc<dyn Clock>) -> Daemon {
        let fingerprint = fingerprint(&config);
        Daemon {
            config,
            store,
            loaded: Arc::new(loaded),
            clock,
            fingerprint,
            sources: Vec::new(),
            counters: Arc::default(),
        }
    }

    /// Imports the files the config names under `sync.*.file` (accounts, contacts, events,
    /// in that order) when they are new or changed since the last import: the daemon
    /// keeps the store current with the files a CRM export drops. A file that cannot be
    /// read is reported and the others still import.
    pub fn sync_sources(&mut self) -> Vec<Result<crate::sync::SyncReport, crate::sync::SyncError>> {
        use crate::sync::sync_file;
        let sync = &self.config.sync;
        let files: Vec<PathBuf> =
            [&sync.accounts.file, &sync.contacts.file, &sync.events.file].into_iter().flatten().cloned().collect();
        let now_print = stat(files.clone());
        if now_print == self.sources {
            return Vec::new();
        }
        let now = self.clock.now();
        let mut out = Vec::new();
        for (i, (path, _, _)) in now_print.iter().enumerate() {
            if self.sources.get(i) == now_print.get(i) {
                continue;
            }
            let report = if Some(path) == sync.accounts.file.as_ref() {
                sync_file(&self.store, path, &sync.accounts.spec, now, &())
            } else if Some(path) == sync.contacts.file.as_ref() {
                sync_file(&self.store, path, &sync.contacts.spec, now, &())
            } else {
                sync_file(&self.store, path, &sync.events.spec, now, &())
            };
            out.push(report);
        }
        self.sources = now_print;
        out
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The playbooks in force, shared (the deliverer renders digests with them).
    pub fn loaded_arc(&self) -> Arc<Loaded> {
        self.loaded.clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The cron a playbook is evaluated on, and its zone.
    fn schedule_of<'p>(&'p self, pb: &'p Playbook) -> (&'p CronSchedule, Tz) {
        match &pb.trigger {
            Trigger::Schedule { cron, timezone, .. } => (cron, timezone.unwrap_or(self.config.timezone)),
            _ => (pb.schedule.as_ref().unwrap_or(&self.config.evaluation.schedule), self.config.timezone),
        }
    }

    /// Where `pb` stands at `now`, given its last completed tick.
    pub fn plan(&self, pb: &Playbook, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Plan {
        let (cron, tz) = self.schedule_of(pb);
        let is_schedule_trigger = matches!(pb.trigger, Trigger::Schedule { .. });
        let Some(last) = last else {
            return if is_schedule_trigger {
                Plan::Baseline
            } else {
                Plan::Run { tick: now, previous: None, missed: 0 }
            };
        };
        // The latest tick at or before `now`, and how many came before it since `last`.
        // Only ticks inside the catch-up window can run, so after a long downtime the walk
        // starts at the window's edge: a per-second schedule down for a year costs a
        // week of ticks, not 31 million (and `missed` is then a lower bound).
        let Some(first) = cron.next_in(tz, last).filter(|t| *t <= now) else { return Plan::Wait };
        let edge = now - Duration::days(DEFAULT_CATCH_UP_DAYS);
        let (mut latest, mut missed) = (first, 0u64);
        if first < edge {
            if let Some(t) = cron.next_in(tz, edge).filter(|t| *t <= now) {
                (latest, missed) = (t, 1);
            }
        }
        while let Some(next) = cron.next_in(tz, latest).filter(|t| *t <= now) {
            missed += 1;
            latest = next;
        }
        if is_schedule_trigger && now - latest > Duration::days(DEFAULT_CATCH_UP_DAYS) {
            return Plan::TooLate { latest, missed: missed + 1 };
        }
        Plan::Run { tick: latest, previous: Some(last), missed }
    }

    /// The next instant a playbook comes due, `now` for one that never ran (None: no
    /// enabled playbook has a next tick).
    pub fn next_wakeup(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut next: Option<DateTime<Utc>> = None;
        for pb in self.loaded.set.playbooks.iter().filter(|p| p.enabled) {
            let (cron, tz) = self.schedule_of(pb);
            let at = match self.store.last_tick(&pb.id)? {
                // Never ran: due now (a schedule trigger sets its baseline now).
                None => Some(now),
                Some(last) => cron.next_in(tz, last),
            };
            next = match (next, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(next)
    }

    /// Runs one pass for every playbook due now, and marks their ticks complete (unless
    /// the pass was cancelled).
    pub fn tick(&self, cancel: &AtomicBool) -> Result<Tick, StoreError> {
        let now = self.now();
        let mut due = Vec::new();
        let mut notes = Vec::new();
        for pb in self.loaded.set.playbooks.iter().filter(|p| p.enabled) {
            let last = self.store.last_tick(&pb.id)?;
            match self.plan(pb, last, now) {
                Plan::Run { tick, previous, missed } => {
                    if missed > 0 {
                        let kind = if matches!(pb.trigger, Trigger::Schedule { .. }) {
                            "runs the latest one, skips the rest"
                        } else {
                            "one pass catches up"
                        };
                        tracing::info!(playbook = %pb.id, missed, latest = %tick, "missed ticks while not running; {kind}");
                    }
                    due.push(Due { playbook: pb, tick, previous });
                }
                Plan::Baseline => {
                    let (cron, tz) = self.schedule_of(pb);
                    let next = cron.next_in(tz, now).map(|t| t.with_timezone(&tz));
                    tracing::info!(playbook = %pb.id, next = ?next, "first run of a schedule trigger: fires from its next tick");
                    let when = next.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M %Z").to_string());
                    notes.push(format!(
                        "{}: a schedule trigger's first run; it fires from its next tick, {when}",
                        pb.id
                    ));
                    self.store.set_last_tick(&pb.id, now)?;
                }
                Plan::TooLate { latest, missed } => {
                    tracing::warn!(playbook = %pb.id, missed, %latest, "missed ticks are all older than the {DEFAULT_CATCH_UP_DAYS}-day catch-up window: skipped");
                    notes.push(format!(
                        "{}: {missed} missed tick(s), the latest at {latest}, are older than the {DEFAULT_CATCH_UP_DAYS}-day catch-up window: skipped",
                        pb.id
                    ));
                    self.store.set_last_tick(&pb.id, now)?;
                }
                Plan::Wait => {}
            }
        }
        if due.is_empty() {
            self.store.flush()?;
            return Ok(Tick { at: now, report: None, notes });
        }
        let loaded = &self.loaded;
        let tz = self.config.timezone;
        let date = now.with_timezone(&tz).date_naive();
        let selected =
            incremental::select(&self.store, &due, &loaded.model, tz, now, date, self.config.evaluation.incremental)?;
        let unsubscribe = crate::decide::unsubscribe::Unsubscribe::for_store(&self.config, &self.store)?;
        let evaluator = Evaluator {
            selection: &selected.selection,
            unsubscribe: &unsubscribe,
            store: &self.store,
            engine: &loaded.engine,
            model: &loaded.model,
            set: &loaded.set,
            timezone: self.config.timezone,
            workers: self.config.evaluation.workers,
            cancel,
        };
        let mut report = evaluator.run(&due, now)?;
        report.selection = selected.why.clone();
        if !report.cancelled {
            for d in &due {
                self.store.set_last_tick(&d.playbook.id, d.tick)?;
            }
            incremental::complete(&self.store, loaded, &due, tz, &selected)?;
            self.store.clear_pass_progress(None)?;
        }
        self.store.flush()?;
        self.count(&report);
        self.log(&report, &due);
        Ok(Tick { at: now, report: Some(report), notes })
    }

    fn count(&self, report: &PassReport) {
        let c = &self.counters;
        c.passes.fetch_add(1, Ordering::Relaxed);
        c.accounts_evaluated.fetch_add(report.accounts, Ordering::Relaxed);
        c.fired.fetch_add(report.fired(), Ordering::Relaxed);
        c.skipped.fetch_add(report.playbooks.values().map(|s| s.skipped).sum(), Ordering::Relaxed);
        c.errors.fetch_add(report.errors(), Ordering::Relaxed);
    }

    fn log(&self, report: &PassReport, due: &[Due]) {
        let ms = report.elapsed.as_millis() as u64;
        if report.resumed > 0 {
            tracing::info!(
                committed = report.resumed,
                "resumed an interrupted pass: accounts its earlier run committed were not evaluated again"
            );
        }
        tracing::info!(accounts = report.accounts, duration_ms = ms, selection = %report.selection, "pass done");
        for d in due {
            let s = report.playbooks.get(&d.playbook.id).cloned().unwrap_or_default();
            tracing::info!(
                playbook = %d.playbook.id,
                tick = %d.tick.format("%Y-%m-%dT%H:%M:%SZ"),
                accounts = s.evaluated,
                fired = s.fired,
                skipped = s.skipped,
                errors = s.errors,
                duration_ms = ms,
                "tick evaluated"
            );
        }
        for f in &report.failures {
            tracing::warn!(playbook = %f.playbook, account = %f.account, error = %f.error, "evaluation failed");
        }
        if report.cancelled {
            tracing::warn!(
                accounts = report.accounts,
                "pass stopped by shutdown; at the next start it resumes after the chunks it committed"
            );
        }
        if report.elapsed > self.config.evaluation.tick_limit {
            self.counters.slow_passes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                duration_ms = ms,
                limit_ms = self.config.evaluation.tick_limit.as_millis() as u64,
                "pass took longer than evaluation.tick_limit"
            );
        }
    }

    /// Reloads the config, rules, templates and playbooks when any of their files changed.
    /// The store stays open: a changed `data_dir` is reported and needs a restart.
    pub fn reload_if_changed(&mut self) -> Reload {
        let now = fingerprint(&self.config);
        if now == self.fingerprint {
            return Reload::Unchanged;
        }
        self.fingerprint = now;
        let config = match Config::load(&self.config.file) {
            Ok(c) => c,
            Err(crate::config::ConfigError::Invalid(d)) => return self.rejected(vec![*d]),
            Err(e) => {
                let d = Diagnostic {
                    file: self.config.file.clone(),
                    position: None,
                    key: None,
                    message: e.to_string(),
                    snippet: None,
                    help: None,
                };
                return self.rejected(vec![d]);
            }
        };
        match Loaded::load(&config.rules_dir, &config.playbooks_dir) {
            Ok(loaded) => {
                // As at start: a webhook that cannot expand its `${VAR}` here is refused.
                let unset = loaded.set.unset_environment();
                if !unset.is_empty() {
                    return self.rejected(unset);
                }
                if config.data_dir != self.config.data_dir {
                    tracing::warn!(data_dir = %config.data_dir.display(), "data_dir changed: the store stays where it is until a restart");
                }
                let data_dir = self.config.data_dir.clone();
                self.config = Config { data_dir, ..config };
                // The config may now point at other folders: watch those.
                self.fingerprint = fingerprint(&self.config);
                self.loaded = Arc::new(loaded);
                self.counters.reloads.fetch_add(1, Ordering::Relaxed);
                Reload::Applied
            }
            Err(errors) => self.rejected(errors),
        }
    }

    fn rejected(&self, errors: Vec<Diagnostic>) -> Reload {
        self.counters.rejected_reloads.fetch_add(1, Ordering::Relaxed);
        Reload::Rejected(errors)
    }
}

/// Every file a reload depends on, with its size and modification time.
fn fingerprint(config: &Config) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = vec![config.file.clone()];
    for (dir, exts) in [
        (config.rules_dir.clone(), &["rhai", "yaml", "yml"][..]),
        (config.playbooks_dir.clone(), &["yaml", "yml"][..]),
        (config.playbooks_dir.join("templates"), &["txt", "html"][..]),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            files.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().and_then(|x| x.to_str()).is_some_and(|x| exts.contains(&x))),
            );
        }
    }
    files.sort();
    stat(files)
}

/// Size and modification time of each file (a missing file: 0 and none).
fn stat(files: Vec<PathBuf>) -> Fingerprint {
    files
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let (len, modified) = meta.map_or((0, None), |m| (m.len(), m.modified().ok()));
            (p, len, modified)
        })
        .collect()
}
