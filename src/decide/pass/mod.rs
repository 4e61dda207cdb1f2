//! One evaluation pass: the due playbooks over every account, deciding what fires and
//! recording it in the ledger, by the trigger table ([`trigger`]).
//!
//! Per account, once per pass: health is scored for the day (and the day's point stored
//! when it changed), the account view is put in a Rhai scope, and every due playbook reads
//! that same scope. Per playbook, [`trigger`] decides against the account's stored
//! state and the ledger. The same pass runs committed (the daemon, `keel test`) or as a
//! dry run (`simulate`): [`Evaluator::run`] and [`Evaluator::dry_run`] share every step
//! but the commit.
//!
//! Invariants:
//! - **Nothing half-recorded.** Accounts are evaluated in chunks on worker threads; each
//!   chunk's ledger entries, states and health points land in one transaction
//!   ([`Store::commit`]) with the chunk's progress mark. A cancelled pass stops between
//!   chunks; a pass killed or stopped and started again skips the committed chunks.
//! - **Once per occurrence.** A key found in the ledger is never decided again.
//! - **Failures stay local, and are never a quiet "false".** A script error or a sandbox
//!   limit fails one playbook for one account: its state is left as it was (so an
//!   `on_enter` edge is not lost), the failure is kept on the account's state (the
//!   timeline shows it), the account is woken for the next pass, and the pass goes on.
//!   A store error is not an account's failure: it stops the pass.

mod report;
mod trigger;

pub use report::{Explained, Failure, PassReport, PlaybookStats};
pub use trigger::{date_due, DateDue};
use trigger::{Decisions, Fail};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::lang::health::HealthModel;
use crate::lang::playbook::{Fire, Playbook, PlaybookSet, Trigger, DEFAULT_CATCH_UP_DAYS};
use crate::lang::script::{AccountScope, ScriptEngine};
use crate::lang::view::{AccountView, HealthField, HealthView};
use crate::model::{Account, Decision, EvalFailure, Event, HealthPoint, PlaybookState};
use crate::store::{ChunkRange, Commit, EncodedAccount, Progress, Store, StoreError};

/// Accounts a worker takes from the cursor at a time, and commits in one transaction.
pub const CHUNK: usize = 256;

/// A playbook due in this pass, and the tick it is due for.
#[derive(Debug, Clone, Copy)]
pub struct Due<'a> {
    pub playbook: &'a Playbook,
    /// The scheduled instant this pass stands for (schedule triggers key firings by it).
    pub tick: DateTime<Utc>,
    /// The playbook's previous completed tick, if it ran before: a date trigger that fell
    /// due since then but is older than its catch-up window is recorded as skipped.
    pub previous: Option<DateTime<Utc>>,
}

/// Which accounts a pass evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every account (a full pass).
    All,
    /// Only these (an incremental pass: the accounts that changed or came due), in id order.
    Only(Vec<String>),
}

/// Everything a pass reads; shared by the worker threads.
pub struct Evaluator<'a> {
    pub store: &'a Store,
    pub engine: &'a ScriptEngine,
    pub model: &'a HealthModel,
    pub set: &'a PlaybookSet,
    /// The configured zone: "today" is the pass's day there.
    pub timezone: Tz,
    /// Worker threads for Rhai evaluation (at least 1).
    pub workers: usize,
    /// Set to stop the pass between chunks (shutdown).
    pub cancel: &'a AtomicBool,
    /// Signs the unsubscribe links of customer-facing mail.
    pub unsubscribe: &'a crate::decide::unsubscribe::Unsubscribe,
    pub selection: &'a Selection,
    /// Health scores stated by id instead of scored (`keel test`'s `health:`); the band
    /// comes from the model's thresholds.
    pub given_health: Option<&'a BTreeMap<String, f64>>,
    /// Say why each playbook decided nothing for an account ([`PassReport::quiet`]).
    pub explain: bool,
    /// The most accounts each guarded playbook may newly fire for in this pass: what its
    /// count allowed. Data that changed between the count and the pass (a push through
    /// the API) cannot widen the pass past it.
    pub budgets: &'a Budgets,
}

/// Per playbook, the new firings a pass may still make ([`Evaluator::budgets`]).
#[derive(Debug, Default)]
pub struct Budgets(BTreeMap<String, (u64, std::sync::atomic::AtomicU64)>);

impl Budgets {
    pub fn set(&mut self, playbook: &str, limit: u64) {
        self.0.insert(playbook.to_string(), (limit, std::sync::atomic::AtomicU64::new(0)));
    }

    /// Takes a place for one new firing of `playbook`; false when its budget is spent.
    fn take(&self, playbook: &str) -> bool {
        match self.0.get(playbook) {
            None => true,
            Some((limit, used)) => used.fetch_add(1, Ordering::Relaxed) < *limit,
        }
    }
}

/// Where a pass's decisions go.
#[derive(Clone, Copy)]
enum Output<'s> {
    /// Committed chunk by chunk (the daemon, `keel test`).
    Commit,
    /// Returned (a dry run).
    Collect(&'s Mutex<Vec<Commit>>),
    /// Only counted, nothing rendered ([`Evaluator::count`], the guard's look ahead).
    Count,
}

impl Evaluator<'_> {
    /// Evaluates `due` over the selected accounts as of `now`, committing each chunk's
    /// decisions as it goes.
    pub fn run(&self, due: &[Due], now: DateTime<Utc>) -> Result<PassReport, StoreError> {
        // A run of this same pass (same playbooks, files and ticks) that was killed or
        // stopped committed some chunks: their accounts are decided, so this run resumes
        // after them. Another pass's leftovers are stale.
        let pass = pass_key(due);
        self.store.clear_pass_progress(Some(&pass))?;
        let mut done = self.store.pass_progress(&pass)?;
        done.sort();
        if !done.is_empty() {
            tracing::info!(chunks = done.len(), "resuming an interrupted pass after the chunks it committed");
        }
        self.evaluate(due, now, &pass, &done, Output::Commit)
    }

    /// The same pass, deciding exactly what [`Self::run`] would and writing nothing: each
    /// chunk's decisions (ledger entries with their outbox entries and tasks) come back
    /// instead of being committed. Interrupted passes are not resumed: a dry run
    /// decides for every selected account.
    pub fn dry_run(&self, due: &[Due], now: DateTime<Utc>) -> Result<(PassReport, Vec<Commit>), StoreError> {
        let sink = Mutex::new(Vec::new());
        let report = self.evaluate(due, now, &pass_key(due), &[], Output::Collect(&sink))?;
        Ok((report, sink.into_inner().expect("sink lock")))
    }

    /// The same pass, only counted: per playbook, the accounts it would newly fire for
    /// ([`PlaybookStats::started`], with a sample of them) and its audience among the
    /// selected accounts ([`PlaybookStats::audience`]). Nothing is rendered or written;
    /// it is how the blast-radius guard looks at a pass before it is run.
    pub fn count(&self, due: &[Due], now: DateTime<Utc>) -> Result<PassReport, StoreError> {
        self.evaluate(due, now, &pass_key(due), &[], Output::Count)
    }

    fn evaluate(
        &self,
        due: &[Due],
        now: DateTime<Utc>,
        pass: &str,
        done: &[ChunkRange],
        output: Output,
    ) -> Result<PassReport, StoreError> {
        let started = Instant::now();
        let date = now.with_timezone(&self.timezone).date_naive();
        let cursor = Mutex::new(match self.selection {
            Selection::All => self.store.account_cursor(),
            Selection::Only(ids) => self.store.account_cursor_for(ids.clone()),
        });
        let mut report = PassReport::default();
        for d in due {
            report.playbooks.entry(d.playbook.id.clone()).or_default().first_pass = d.previous.is_none();
        }
        let results: Vec<Result<PassReport, StoreError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.workers.max(1))
                .map(|_| {
                    s.spawn(|| {
                        // The pass's day on each worker thread, not the engine's: a dry
                        // run the API serves beside a pass keeps to its own day.
                        let _day = self.engine.on_day(date);
                        Worker::new(self, due, now, date, output).run(&cursor, pass, done)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("an evaluation worker panicked")).collect()
        });
        for r in results {
            report.merge(r?);
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

/// The key of a pass: the playbooks it runs (their files, by digest) and the ticks it
/// stands for (a playbook's first pass: "first"). A pass started again after a crash has
/// the same key; an edit or a later tick makes a new one.
pub fn pass_key(due: &[Due]) -> String {
    // A playbook's first pass stands for "now", which moves on at each restart: it is
    // the same pass however often it is started again until it completes.
    let ticks: Vec<String> =
        due.iter().map(|d| if d.previous.is_some() { d.tick.to_rfc3339() } else { "first".into() }).collect();
    let mut parts: Vec<&str> = Vec::with_capacity(due.len() * 3);
    for (d, tick) in due.iter().zip(&ticks) {
        parts.extend([d.playbook.id.as_str(), d.playbook.digest.as_str(), tick.as_str()]);
    }
    crate::lang::digest(&parts)
}

/// Whether `key` lies in one of the committed chunks (sorted by first id).
fn committed(done: &[ChunkRange], key: &[u8]) -> bool {
    let i = done.partition_point(|(first, _)| first.as_slice() <= key);
    i > 0 && key <= done[i - 1].1.as_slice()
}

/// One worker thread's scope and buffers, reused across its accounts.
struct Worker<'e, 'a> {
    ev: &'e Evaluator<'a>,
    due: &'e [Due<'e>],
    now: DateTime<Utc>,
    date: NaiveDate,
    scope: AccountScope,
    needs_events: bool,
    report: PassReport,
    /// The health model's failure for the account being evaluated, kept on its state.
    health_failure: Option<String>,
    output: Output<'e>,
}

impl<'e, 'a> Worker<'e, 'a> {
    fn new(ev: &'e Evaluator<'a>, due: &'e [Due<'e>], now: DateTime<Utc>, date: NaiveDate, output: Output<'e>) -> Self {
        let needs_events = due.iter().any(|d| matches!(d.playbook.trigger, Trigger::Event { .. }));
        let mut report = PassReport::default();
        for d in due {
            report.playbooks.insert(d.playbook.id.clone(), PlaybookStats::default());
        }
        Worker { ev, due, now, date, scope: ev.engine.scope(), needs_events, report, health_failure: None, output }
    }

    fn run(
        mut self,
        cursor: &Mutex<crate::store::AccountCursor>,
        pass: &str,
        done: &[ChunkRange],
    ) -> Result<PassReport, StoreError> {
        loop {
            if self.ev.cancel.load(Ordering::Relaxed) {
                self.report.cancelled = true;
                break;
            }
            // Only taking the raw records holds the lock; decoding happens in parallel.
            let chunk: Vec<EncodedAccount> = cursor.lock().expect("cursor lock").next_chunk(CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            let mut commit = Commit {
                progress: Some(Progress {
                    pass: pass.to_string(),
                    first: chunk[0].key().to_vec(),
                    last: chunk[chunk.len() - 1].key().to_vec(),
                }),
                ..Commit::default()
            };
            for encoded in &chunk {
                if committed(done, encoded.key()) {
                    self.report.resumed += 1;
                    continue;
                }
                match encoded.decode() {
                    Ok(account) => self.account(&account, &mut commit)?,
                    Err(e) => self.report.fail("(account)", &encoded.id(), e.to_string()),
                }
            }
            match self.output {
                Output::Commit => {
                    self.ev.store.commit(&commit)?;
                    tracing::debug!(accounts = chunk.len(), "chunk committed");
                }
                Output::Count => {}
                // What a dry run reports: the decisions, not the bookkeeping behind them.
                Output::Collect(sink) => {
                    let decided = Commit {
                        entries: commit.entries,
                        outbox: commit.outbox,
                        tasks: commit.tasks,
                        health: commit.health,
                        updates: commit.updates,
                        ..Commit::default()
                    };
                    sink.lock().expect("sink lock").push(decided);
                }
            }
        }
        Ok(self.report)
    }

    fn account(&mut self, account: &Account, commit: &mut Commit) -> Result<(), StoreError> {
        let store = self.ev.store;
        self.report.accounts += 1;
        self.health_failure = None;
        let contacts = store.contacts_of(&account.id)?;
        // The account goes into the Rhai scope once: health is scored with it there, and
        // the health it scored is then added to it.
        let base = AccountView { account, health: None, contacts: &contacts };
        if let Err(e) = self.scope.set_account(&base) {
            self.report.fail("(account)", &account.id, e.to_string());
            return Ok(());
        }
        let health = self.health(account, commit)?;
        if let Err(e) = self.scope.set_account_property("health", &HealthField(&health)) {
            self.report.fail("(account)", &account.id, e.to_string());
            return Ok(());
        }
        let view = AccountView { account, health, contacts: &contacts };
        let events: Vec<Event> = if self.needs_events {
            let from = self.now - Duration::days(DEFAULT_CATCH_UP_DAYS);
            let to = self.now + Duration::days(DEFAULT_CATCH_UP_DAYS);
            let mut events: Vec<Event> = store.events_of(&account.id, from, to).collect::<Result<_, _>>()?;
            // An event stamped ahead of the pass clock (a client's clock runs fast) counts
            // from its time on: a wake then, as no sync will mark the account again.
            let ahead = events.iter().position(|e| e.timestamp > self.now).unwrap_or(events.len());
            commit.wakes.extend(events.drain(ahead..).map(|e| (e.timestamp, account.id.clone())));
            events
        } else {
            Vec::new()
        };
        let mut state = store.account_state(&account.id)?;
        let health_error = self.health_failure.take().map(|message| EvalFailure { at: self.now, message });
        let mut retry = health_error.is_some();
        let mut changed = state.health_error != health_error;
        state.health_error = health_error;
        for due in self.due {
            let id = &due.playbook.id;
            let before = state.playbooks.get(id).cloned().unwrap_or_default();
            let mut ps = before.clone();
            ps.error = None;
            if self.ev.explain {
                let explained = self.explained(due.playbook, &account.id, &events);
                self.report.explained.push(explained);
            }
            let mut out = Decisions::new(&view);
            if matches!(self.output, Output::Count) {
                // The share the guard limits is of the playbook's audience; an audience
                // that fails to evaluate is not counted in it (the failure is counted below).
                let inside = match &due.playbook.audience {
                    None => true,
                    Some(a) => matches!(a.truth(self.ev.engine, &mut self.scope), Ok(crate::lang::script::Truth::True)),
                };
                if inside {
                    self.report.playbooks.get_mut(id).expect("every due playbook has stats").audience += 1;
                }
            }
            let result = self.playbook(due, &mut ps, &events, &mut out);
            self.report.playbooks.get_mut(id).expect("every due playbook has stats").evaluated += 1;
            match result {
                Ok(()) => {
                    if let Some(why) = out.quiet.take().filter(|_| out.entries.is_empty()) {
                        self.report.quiet.push(Failure {
                            playbook: id.clone(),
                            account: account.id.clone(),
                            error: why,
                        });
                    }
                    // A new occurrence fired (not a later step of a running sequence):
                    // what the guard counts (set by the trigger table's `fire`).
                    let starts = out.started;
                    if starts && !matches!(self.output, Output::Count) && !self.ev.budgets.take(id) {
                        // Past what the guard's count allowed: nothing of it is applied
                        // (its state stays, so the same firing is decided again), and the
                        // account is woken for the next pass, which counts it.
                        self.report.playbooks.get_mut(id).expect("every due playbook has stats").over_budget += 1;
                        retry = true;
                        self.scope.clear_vars();
                        continue;
                    }
                    if starts {
                        let sample = self.report.started_sample.entry(id.clone()).or_default();
                        if sample.len() < report::KEEP_SAMPLE {
                            sample.push(account.id.clone());
                        }
                    }
                    let stats = self.report.playbooks.get_mut(id).expect("every due playbook has stats");
                    stats.started += u64::from(starts);
                    stats.dead += out.dead;
                    stats.failed_tasks += out.failed_tasks;
                    for e in &out.entries {
                        match e.decision {
                            Decision::Fired => stats.fired += 1,
                            Decision::Skipped => stats.skipped += 1,
                            Decision::Exited => stats.exited += 1,
                        }
                    }
                    let base = commit.entries.len();
                    commit.entries.extend(out.entries);
                    commit.outbox.extend(out.outbox.into_iter().map(|(i, e)| (base + i, e)));
                    commit.tasks.extend(out.tasks.into_iter().map(|(i, t)| (base + i, t)));
                    commit.updates.extend(out.updates.into_iter().map(|(i, u)| (base + i, u)));
                    if ps != before {
                        changed = true;
                        if ps.is_empty() {
                            state.playbooks.remove(id);
                        } else {
                            state.playbooks.insert(id.clone(), ps);
                        }
                    }
                }
                // The store failed under the decision: nothing of this chunk is
                // committed, and the pass stops with the store's error.
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Eval(e)) => {
                    // A failure is not a decision: the state stays as it was (an
                    // `on_enter` edge is not lost), the failure is kept for the timeline,
                    // and the account is woken for the next pass.
                    let failed =
                        PlaybookState { error: Some(EvalFailure { at: self.now, message: e.clone() }), ..before };
                    changed = true;
                    state.playbooks.insert(id.clone(), failed);
                    retry = true;
                    self.report.fail(id, &account.id, e);
                }
            }
            // `event` belongs to one trigger evaluation only.
            self.scope.clear_vars();
        }
        // A full pass also rewrites the wakes of unchanged states: it is how timers set
        // before the wake log existed, or under a playbook since edited, get one.
        if changed || *self.ev.selection == Selection::All {
            self.wakes(&account.id, &state, commit);
        }
        if retry {
            commit.wakes.push((self.now + Duration::seconds(1), account.id.clone()));
        }
        if changed {
            commit.states.push((account.id.clone(), state));
        }
        Ok(())
    }

    /// When each of the account's timers comes due: the next step of each running
    /// sequence, and the next `while_true` window. Past or present instants are left out
    /// (this pass has just handled them).
    fn wakes(&self, account_id: &str, state: &crate::model::AccountState, commit: &mut Commit) {
        let mut times: Vec<DateTime<Utc>> = Vec::new();
        for (id, ps) in &state.playbooks {
            let Some(pb) = self.ev.set.playbooks.iter().find(|p| p.id == *id && p.enabled) else { continue };
            if let (Trigger::Condition { fire: Fire::WhileTrue { every }, .. }, Some(last)) =
                (&pb.trigger, ps.last_fired)
            {
                times.push(self.due_at(last, *every));
            }
            for seq in &ps.sequences {
                if let Some(step) = pb.steps.get(seq.next_step) {
                    times.push(self.due_at(seq.started, step.after));
                }
            }
        }
        times.sort();
        times.dedup();
        commit.wakes.extend(times.into_iter().filter(|t| *t > self.now).map(|t| (t, account_id.to_string())));
    }

    /// Scores the account for the pass's day. The day's point is stored when it is new or
    /// differs from the one stored (a quiet pass writes nothing); damping reads the band of
    /// the latest point before the day.
    /// The account (without health) is in scope.
    fn health(&mut self, account: &Account, commit: &mut Commit) -> Result<Option<HealthView>, StoreError> {
        let store = self.ev.store;
        let latest = store.health_on_or_before(&account.id, self.date)?;
        let (today, previous) = match latest {
            Some(p) if p.date == self.date => {
                let before = store.health_on_or_before(&account.id, self.date - Duration::days(1))?;
                (Some(p), before)
            }
            other => (None, other),
        };
        let given = self.ev.given_health.and_then(|g| g.get(&account.id)).map(|&score| {
            Ok(Some(HealthPoint {
                date: self.date,
                score,
                band: self.ev.model.bands.raw(score),
                components: BTreeMap::new(),
            }))
        });
        let scored = given.unwrap_or_else(|| {
            self.ev.model.score(self.ev.engine, &mut self.scope, self.date, previous.map(|p| p.band))
        });
        let point = match scored {
            Ok(Some(point)) => point,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.report.fail("(health)", &account.id, e.to_string());
                self.health_failure = Some(e.to_string());
                // The stored point of the day, if any, still stands.
                return today.map(|p| crate::decide::health::with_trend(store, &account.id, p)).transpose();
            }
        };
        if today.as_ref() != Some(&point) {
            commit.health.push((account.id.clone(), point.clone()));
        }
        crate::decide::health::with_trend(store, &account.id, point).map(Some)
    }
}
