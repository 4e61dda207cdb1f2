//! The daemon: when each playbook is evaluated, reloading what CS Ops change, and the
//! loop that ties it to the clock.
//!
//! [`Daemon`] is the synchronous core, driven by an injected [`Clock`]: tests move "now"
//! through hundreds of days without sleeping. [`run::serve`] is the async loop around it:
//! it sleeps until the next tick, runs passes on worker threads off the runtime, polls for
//! changed files, and stops on a cancellation token.
//!
//! What is due at a wakeup and the pass for it are decided by [`crate::decide::tick`],
//! the code `simulate` dry-runs and `keel test` runs; the daemon commits it, counts it
//! and logs it.
//!
//! Invariants:
//! - One pass at a time: a slow pass delays the next tick, never overlaps it.
//! - A reload that fails `check` changes nothing: the running set stays in force.

pub mod counters;
pub mod run;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

pub use crate::clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use counters::Counters;

use crate::config::Config;
use crate::decide::pass::PassReport;
use crate::decide::tick::{schedule_of, Context, Mode, Options};
pub use crate::decide::tick::{Plan, Tick};
use crate::diagnostic::Diagnostic;
use crate::lang::playbook::Playbook;
use crate::lang::Loaded;
use crate::store::{Store, StoreError};

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
    /// Tells the API (and whoever else watches) which set is in force after a reload.
    loaded_tx: tokio::sync::watch::Sender<Arc<Loaded>>,
    /// …and which config (the API maps, verifies and schedules by the one in force).
    config_tx: tokio::sync::watch::Sender<Arc<Config>>,
}

impl Daemon {
    /// Builds a daemon over an open store with loaded playbooks.
    pub fn new(config: Config, store: Store, loaded: Loaded, clock: Arc<dyn Clock>) -> Daemon {
        let fingerprint = fingerprint(&config);
        let loaded = Arc::new(loaded);
        let daemon = Daemon {
            config_tx: tokio::sync::watch::Sender::new(Arc::new(config.clone())),
            config,
            store,
            loaded_tx: tokio::sync::watch::Sender::new(loaded.clone()),
            loaded,
            clock,
            fingerprint,
            sources: Vec::new(),
            counters: Arc::default(),
        };
        daemon.record_running_set();
        daemon
    }

    /// Records the set in force in the store (`keel plan` compares a working folder with
    /// it), when it differs from the one recorded. Never fails the daemon: a set that
    /// cannot be recorded is logged, and the one recorded before stays.
    fn record_running_set(&self) {
        let Some(sources) = &self.loaded.sources else {
            tracing::info!(
                "the playbook files changed while they were loaded: the running set is recorded at the next reload"
            );
            return;
        };
        for skipped in &sources.skipped {
            tracing::warn!(file = %skipped, "a file is left out of the recorded running set");
        }
        let set = crate::store::RunningSet {
            fingerprint: sources.fingerprint(),
            recorded: self.clock.now(),
            files: sources.files.clone(),
        };
        match self.store.record_running_set(&set) {
            Ok(crate::store::Recorded::Written) => {
                tracing::debug!(fingerprint = %set.fingerprint, files = set.files.len(), "running set recorded")
            }
            Ok(crate::store::Recorded::Unchanged) => {}
            Ok(crate::store::Recorded::TooLarge { bytes }) => tracing::warn!(
                bytes,
                limit = crate::store::RUNNING_SET_MAX_BYTES,
                "the playbooks and rules are too large to record as the running set: `keel plan` compares with the set recorded before"
            ),
            Err(e) => tracing::warn!(error = %e, "the running set could not be recorded: `keel plan` compares with the set recorded before"),
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
            if let Ok(r) = &report {
                self.counters.file_rows.add(&r.kind, r.stored(), r.rejected);
            }
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
    /// The set in force, following reloads (the API reads it).
    pub fn watch_loaded(&self) -> tokio::sync::watch::Receiver<Arc<Loaded>> {
        self.loaded_tx.subscribe()
    }

    /// The config in force, following reloads.
    pub fn watch_config(&self) -> tokio::sync::watch::Receiver<Arc<Config>> {
        self.config_tx.subscribe()
    }

    pub fn loaded_arc(&self) -> Arc<Loaded> {
        self.loaded.clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn context(&self) -> Context<'_> {
        Context { store: &self.store, loaded: &self.loaded, config: &self.config }
    }

    /// Where `pb` stands at `now`, given its last completed tick.
    pub fn plan(&self, pb: &Playbook, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Plan {
        crate::decide::tick::plan(&self.config, pb, last, now)
    }

    /// The next instant a playbook comes due, `now` for one that never ran (None: no
    /// enabled playbook has a next tick).
    pub fn next_wakeup(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        crate::decide::tick::next_wakeup(self.context(), now)
    }

    /// Runs one pass for every playbook due now, and marks their ticks complete (unless
    /// the pass was cancelled).
    pub fn tick(&self, cancel: &AtomicBool) -> Result<Tick, StoreError> {
        let now = self.now();
        let tick = crate::decide::tick::tick(self.context(), now, Mode::Commit, Options::default(), cancel)?;
        // A tick that found nothing to evaluate (a schedule trigger's baseline) finished
        // too: readiness asks whether the daemon keeps up with its ticks, not whether it
        // fired. Recorded before the pass is logged: whoever reads "pass done" finds it.
        if !tick.report.as_ref().is_some_and(|r| r.cancelled) {
            self.counters.pass_finished(self.now());
        }
        if let Some(report) = &tick.report {
            self.counters.count_pass(report);
            self.log(report, &tick.due);
        }
        self.counters.count_held(&tick.held);
        for note in &tick.guard_notes {
            tracing::info!("guard: {note}");
        }
        Ok(tick)
    }

    fn log(&self, report: &PassReport, due: &[(String, DateTime<Utc>)]) {
        let ms = report.elapsed.as_millis() as u64;
        if report.resumed > 0 {
            tracing::info!(
                committed = report.resumed,
                "resumed an interrupted pass: accounts its earlier run committed were not evaluated again"
            );
        }
        let skipped: u64 = report.playbooks.values().map(|s| s.skipped).sum();
        tracing::info!(
            accounts = report.accounts,
            playbooks = due.len(),
            fired = report.fired(),
            skipped,
            errors = report.errors(),
            duration_ms = ms,
            selection = %report.selection,
            "pass done"
        );
        // A playbook that decided something gets its line at info; the rest at debug, so
        // an idle hourly daemon logs one line per pass.
        for (id, tick) in due {
            let s = report.playbooks.get(id).cloned().unwrap_or_default();
            macro_rules! tick_line {
                ($level:ident) => {
                    tracing::$level!(
                        playbook = %id,
                        tick = %tick.format("%Y-%m-%dT%H:%M:%SZ"),
                        accounts = s.evaluated,
                        fired = s.fired,
                        skipped = s.skipped,
                        errors = s.errors,
                        duration_ms = ms,
                        "tick evaluated"
                    )
                };
            }
            if s.fired + s.skipped + s.exited + s.errors > 0 {
                tick_line!(info);
            } else {
                tick_line!(debug);
            }
        }
        for (id, s) in report.playbooks.iter().filter(|(_, s)| s.over_budget > 0) {
            tracing::warn!(
                playbook = %id,
                fired = s.started,
                over = s.over_budget,
                "more accounts would have fired than the guard's count allowed (the data changed during the pass): the rest are counted again at the next pass"
            );
        }
        for f in report.floods() {
            tracing::warn!(playbook = %f.playbook, fired = f.fired, accounts = f.evaluated, "a first pass fired for much of the book: what is already true, not news");
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
        match config.load_playbooks() {
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
                let config = Config { data_dir, ..config };
                self.restart_changed_schedules(&config, &loaded);
                self.config = config;
                // The config may now point at other folders: watch those.
                self.fingerprint = fingerprint(&self.config);
                self.loaded = Arc::new(loaded);
                self.record_running_set();
                self.config_tx.send_replace(Arc::new(self.config.clone()));
                self.loaded_tx.send_replace(self.loaded.clone());
                self.counters.reloads.fetch_add(1, Ordering::Relaxed);
                Reload::Applied
            }
            Err(errors) => self.rejected(errors),
        }
    }

    /// A playbook whose schedule a reload changed counts its new schedule's ticks from
    /// now: the ticks the new schedule would have had since the last pass were never due
    /// (they are not "missed"), so they must not be caught up. When the old schedule has
    /// a tick due that has not run yet (the reload came between its moment and its pass),
    /// the last tick stays where it is and the next pass catches up as after downtime.
    fn restart_changed_schedules(&self, config: &Config, loaded: &Loaded) {
        let now = self.now();
        for pb in &loaded.set.playbooks {
            let Some(old) = self.loaded.set.playbooks.iter().find(|p| p.id == pb.id) else { continue };
            let ((was, was_tz), (is, is_tz)) = (schedule_of(&self.config, old), schedule_of(config, pb));
            if was.source == is.source && was_tz == is_tz {
                continue;
            }
            let result = self.store.last_tick(&pb.id).and_then(|last| match last {
                Some(last) if self.plan(old, Some(last), now) == Plan::Wait => {
                    self.store.set_last_tick(&pb.id, now.max(last)).map(|()| true)
                }
                _ => Ok(false),
            });
            match result {
                Ok(true) => {
                    let next = is.next_in(is_tz, now).map(|t| t.with_timezone(&is_tz));
                    let next = next.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M %Z").to_string());
                    tracing::info!(playbook = %pb.id, from = %was.source, to = %is.source, %next, "schedule changed; its ticks count from now");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(playbook = %pb.id, error = %e, "schedule changed but its last tick could not be moved; the next pass may catch up ticks of the new schedule")
                }
            }
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
