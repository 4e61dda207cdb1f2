//! One evaluation pass: the due playbooks over every account, deciding what fires and
//! recording it in the ledger, by the trigger table below.
//!
//! Per account, once per pass: health is scored for the day (and the day's point stored
//! when it changed), the account view is put in a Rhai scope, and every due playbook reads
//! that same scope. Per playbook, the trigger decides against the account's stored
//! [`AccountState`] and the ledger:
//!
//! | trigger | fires when | occurrence |
//! |---|---|---|
//! | `on_enter` | audience and condition hold now and did not at the last evaluation (or never evaluated) | `episode:N` |
//! | `while_true` | they hold, and the last firing is at least `every` ago | `window:<time>` |
//! | date + offset | the due day has come, within the catch-up window | `<field>=<date>` |
//! | event | a matching event of the last catch-up window not yet in the ledger | `event:<id>` |
//! | schedule | the playbook's tick (each account in audience and condition) | `tick:<time>` |
//!
//! A fired occurrence starts its sequence: the first step runs now if its delay is 0, the
//! rest on later passes when due (`after` counts from the firing), each step keyed
//! `<occurrence>/step:N`, the sequence stopping when `exit` holds.
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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::plan::{Firing, Planner};
use super::time;
use crate::lang::duration::Span;
use crate::lang::health::HealthModel;
use crate::lang::playbook::{Fire, Playbook, PlaybookSet, Step, Trigger, DEFAULT_CATCH_UP_DAYS};
use crate::lang::render::{context, describe_in, one_line};
use crate::lang::script::{AccountScope, EvalError, Expression, ScriptEngine, Truth};
use crate::lang::view::{AccountView, HealthField, HealthView};
use crate::model::{
    Account, Decision, EvalFailure, Event, HealthPoint, LedgerEntry, OutboxEntry, PlaybookState, SequenceState,
    TaskRequest,
};
use crate::store::{ChunkRange, Commit, EncodedAccount, Progress, Store, StoreError};

/// Accounts a worker takes from the cursor at a time, and commits in one transaction.
pub const CHUNK: usize = 256;

/// How many failures a report keeps in full (the count is always exact).
const KEEP_FAILURES: usize = 100;

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
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlaybookStats {
    /// Accounts the playbook was evaluated for.
    pub evaluated: u64,
    pub fired: u64,
    pub skipped: u64,
    pub exited: u64,
    pub errors: u64,
    /// Emails and webhooks decided dead: a template failed for the account.
    pub dead: u64,
    /// Tasks opened with a part whose template failed.
    pub failed_tasks: u64,
}

/// A playbook that failed for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub playbook: String,
    pub account: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub accounts: u64,
    pub playbooks: BTreeMap<String, PlaybookStats>,
    /// The first failures (all are counted in `playbooks`).
    pub failures: Vec<Failure>,
    /// Stopped by shutdown before every account was evaluated.
    pub cancelled: bool,
    /// Accounts an earlier, interrupted run of this same pass had already decided and
    /// committed: this run resumed after them.
    pub resumed: u64,
    /// Which accounts the pass took, and why (a full pass's reason, or what an
    /// incremental pass found).
    pub selection: String,
    #[serde(skip)]
    pub elapsed: StdDuration,
}

impl PassReport {
    fn merge(&mut self, other: PassReport) {
        self.accounts += other.accounts;
        for (id, s) in other.playbooks {
            let t = self.playbooks.entry(id).or_default();
            t.evaluated += s.evaluated;
            t.fired += s.fired;
            t.skipped += s.skipped;
            t.exited += s.exited;
            t.errors += s.errors;
            t.dead += s.dead;
            t.failed_tasks += s.failed_tasks;
        }
        let room = KEEP_FAILURES.saturating_sub(self.failures.len());
        self.failures.extend(other.failures.into_iter().take(room));
        self.cancelled |= other.cancelled;
        self.resumed += other.resumed;
    }

    fn fail(&mut self, playbook: &str, account: &str, error: String) {
        self.playbooks.entry(playbook.to_string()).or_default().errors += 1;
        if self.failures.len() < KEEP_FAILURES {
            self.failures.push(Failure { playbook: playbook.into(), account: account.into(), error });
        }
    }

    pub fn fired(&self) -> u64 {
        self.playbooks.values().map(|s| s.fired).sum()
    }

    pub fn errors(&self) -> u64 {
        self.playbooks.values().map(|s| s.errors).sum()
    }
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
        self.evaluate(due, now, &pass, &done, None)
    }

    /// The same pass, deciding exactly what [`Self::run`] would and writing nothing: each
    /// chunk's decisions (ledger entries with their outbox entries and tasks) come back
    /// instead of being committed. Interrupted passes are not resumed: a dry run
    /// decides for every selected account.
    pub fn dry_run(&self, due: &[Due], now: DateTime<Utc>) -> Result<(PassReport, Vec<Commit>), StoreError> {
        let sink = Mutex::new(Vec::new());
        let report = self.evaluate(due, now, &pass_key(due), &[], Some(&sink))?;
        Ok((report, sink.into_inner().expect("sink lock")))
    }

    fn evaluate(
        &self,
        due: &[Due],
        now: DateTime<Utc>,
        pass: &str,
        done: &[ChunkRange],
        sink: Option<&Mutex<Vec<Commit>>>,
    ) -> Result<PassReport, StoreError> {
        let started = Instant::now();
        let date = now.with_timezone(&self.timezone).date_naive();
        self.engine.set_today(date);
        let cursor = Mutex::new(match self.selection {
            Selection::All => self.store.account_cursor(),
            Selection::Only(ids) => self.store.account_cursor_for(ids.clone()),
        });
        let mut report = PassReport::default();
        for d in due {
            report.playbooks.entry(d.playbook.id.clone()).or_default();
        }
        let results: Vec<Result<PassReport, StoreError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.workers.max(1))
                .map(|_| s.spawn(|| Worker::new(self, due, now, date).run(&cursor, pass, done, sink)))
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
}

/// What one playbook decided for one account: ledger entries, and the outbox entries and
/// tasks of its firings (each with the index of its firing in `entries`).
struct Decisions<'v> {
    entries: Vec<LedgerEntry>,
    outbox: Vec<(usize, OutboxEntry)>,
    tasks: Vec<(usize, TaskRequest)>,
    updates: Vec<(usize, crate::model::FieldUpdate)>,
    /// Of the work above: outbox entries decided dead, tasks whose templates failed.
    dead: u64,
    failed_tasks: u64,
    view: &'v AccountView<'v>,
}

impl<'v> Decisions<'v> {
    fn new(view: &'v AccountView<'v>) -> Self {
        Decisions {
            entries: Vec::new(),
            outbox: Vec::new(),
            tasks: Vec::new(),
            updates: Vec::new(),
            dead: 0,
            failed_tasks: 0,
            view,
        }
    }

    /// Records a firing with its work; work that cannot be planned fails the playbook.
    fn push_fired(&mut self, entry: LedgerEntry, work: crate::decide::plan::Work) -> Result<(), String> {
        if let Some(e) = &work.failure {
            return Err(e.clone());
        }
        let i = self.entries.len();
        self.entries.push(entry);
        self.dead += work.dead();
        self.failed_tasks += work.failed_tasks;
        self.outbox.extend(work.outbox.into_iter().map(|e| (i, e)));
        self.tasks.extend(work.tasks.into_iter().map(|t| (i, t)));
        self.updates.extend(work.updates.into_iter().map(|u| (i, u)));
        Ok(())
    }
}

impl<'e, 'a> Worker<'e, 'a> {
    fn new(ev: &'e Evaluator<'a>, due: &'e [Due<'e>], now: DateTime<Utc>, date: NaiveDate) -> Self {
        let needs_events = due.iter().any(|d| matches!(d.playbook.trigger, Trigger::Event { .. }));
        let mut report = PassReport::default();
        for d in due {
            report.playbooks.insert(d.playbook.id.clone(), PlaybookStats::default());
        }
        Worker { ev, due, now, date, scope: ev.engine.scope(), needs_events, report, health_failure: None }
    }

    fn run(
        mut self,
        cursor: &Mutex<crate::store::AccountCursor>,
        pass: &str,
        done: &[ChunkRange],
        sink: Option<&Mutex<Vec<Commit>>>,
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
            match sink {
                None => {
                    self.ev.store.commit(&commit)?;
                    tracing::debug!(accounts = chunk.len(), "chunk committed");
                }
                // What a dry run reports: the decisions, not the bookkeeping behind them.
                Some(sink) => {
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
            self.report.fail("(account)", &account.id, e);
            return Ok(());
        }
        let health = self.health(account, commit)?;
        if let Err(e) = self.scope.set_account_property("health", &HealthField(&health)) {
            self.report.fail("(account)", &account.id, e);
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
            let mut out = Decisions::new(&view);
            let result = self.playbook(due, &mut ps, &events, &mut out);
            let stats = self.report.playbooks.get_mut(id).expect("every due playbook has stats");
            stats.evaluated += 1;
            match result {
                Ok(()) => {
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
                Err(e) => {
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

    fn truth(&mut self, expr: &Expression) -> Result<Truth, String> {
        expr.truth(self.ev.engine, &mut self.scope).map_err(|e: EvalError| e.to_string())
    }

    /// Audience and an optional extra condition, as one yes/no (unknown is no).
    fn holds(&mut self, audience: Option<&Expression>, condition: Option<&Expression>) -> Result<bool, String> {
        for expr in [audience, condition].into_iter().flatten() {
            if self.truth(expr)? != Truth::True {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn playbook(
        &mut self,
        due: &Due,
        ps: &mut PlaybookState,
        events: &[Event],
        out: &mut Decisions,
    ) -> Result<(), String> {
        let pb = due.playbook;
        let store = self.ev.store;
        let account_id = &out.view.account.id;
        let fired = |occurrence: &str| store.has_fired(account_id, &pb.id, occurrence).map_err(|e| e.to_string());
        match &pb.trigger {
            Trigger::Condition { condition, fire } => {
                let holds = self.holds(pb.audience.as_ref(), Some(condition))?;
                match fire {
                    Fire::OnEnter => {
                        if holds && !ps.inside {
                            ps.episodes += 1;
                            let occurrence = format!("episode:{}", ps.episodes);
                            let was = if ps.episodes == 1 { "false or never evaluated" } else { "false" };
                            let why = format!("`{}` became true (before: {was})", one_line(condition.source()));
                            if !fired(&occurrence)? {
                                self.fire(pb, ps, occurrence, why, None, out)?;
                            }
                        }
                        ps.inside = holds;
                    }
                    Fire::WhileTrue { every } => {
                        let window_open = ps.last_fired.is_none_or(|last| self.elapsed(last, *every));
                        if holds && window_open {
                            let occurrence = format!("window:{}", self.now.to_rfc3339());
                            let why =
                                format!("`{}` is true; fires at most every {every}", one_line(condition.source()));
                            ps.last_fired = Some(self.now);
                            if !fired(&occurrence)? {
                                self.fire(pb, ps, occurrence, why, None, out)?;
                            }
                        }
                    }
                }
            }
            Trigger::Date { field, offset, catch_up, condition } => {
                let account = out.view.account;
                let (name, value) = (field.name(), field.value(account));
                let Some(value) = value else { return self.sequences(pb, ps, out) };
                let due_day = value + Duration::minutes(offset.minutes());
                if due_day <= self.date {
                    let occurrence = format!("{name}={value}");
                    if !fired(&occurrence)? && self.holds(pb.audience.as_ref(), condition.as_ref())? {
                        let late = (self.date - due_day).num_days();
                        let window = catch_up.to_chrono().max(Duration::days(1));
                        if Duration::days(late) < window {
                            let when = if late == 0 {
                                "due today".to_string()
                            } else {
                                format!("due {late} days ago, within the {catch_up} catch-up")
                            };
                            let why = format!("{name} {value} {offset} = {due_day}, {when}");
                            self.fire(pb, ps, occurrence, why, None, out)?;
                        } else if due
                            .previous
                            .is_some_and(|p| due_day >= p.with_timezone(&self.ev.timezone).date_naive())
                        {
                            // It fell due while Keel was not running, too long ago to act on.
                            let why = format!(
                                "{name} {value} {offset} = {due_day}: fell due {late} days ago, older than the {catch_up} catch-up window"
                            );
                            tracing::info!(playbook = %pb.id, account = %account_id, %due_day, "skipped: older than the catch-up window");
                            out.entries.push(self.entry(pb, out.view, occurrence, Decision::Skipped, why, Vec::new()));
                        }
                    }
                }
            }
            Trigger::Event { name, condition } => {
                if self.holds(pb.audience.as_ref(), None)? {
                    for event in events.iter().filter(|e| e.name == *name) {
                        let occurrence = format!("event:{}", event.id);
                        if fired(&occurrence)? {
                            continue;
                        }
                        if let Some(c) = condition {
                            self.scope.clear_vars();
                            self.scope.set_var("event", event)?;
                            if self.truth(c)? != Truth::True {
                                continue;
                            }
                        }
                        let why = format!(
                            "event {:?} at {} (id {})",
                            event.name,
                            event.timestamp.format("%Y-%m-%d %H:%M UTC"),
                            event.id
                        );
                        self.fire(pb, ps, occurrence, why, Some(event), out)?;
                    }
                }
            }
            Trigger::Schedule { cron, timezone, condition } => {
                let occurrence = format!("tick:{}", due.tick.to_rfc3339());
                if !fired(&occurrence)? && self.holds(pb.audience.as_ref(), condition.as_ref())? {
                    let tz = timezone.unwrap_or(self.ev.timezone);
                    let why = format!(
                        "schedule `{}` ticked at {}",
                        cron.source,
                        due.tick.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
                    );
                    self.fire(pb, ps, occurrence, why, None, out)?;
                }
            }
        }
        self.sequences(pb, ps, out)
    }

    /// Records a firing: the first step's actions when it is due now, and a sequence
    /// state when more steps follow.
    fn fire(
        &mut self,
        pb: &Playbook,
        ps: &mut PlaybookState,
        occurrence: String,
        mut why: String,
        event: Option<&Event>,
        out: &mut Decisions,
    ) -> Result<(), String> {
        let first = &pb.steps[0];
        let mut next_step = 0;
        let mut actions = Vec::new();
        let mut work = Default::default();
        if first.after.minutes() == 0 {
            next_step = 1;
            if self.step_holds(first)? {
                (actions, work) = self.render(pb, first, out.view, event, &occurrence);
            } else {
                why.push_str("; the first step's `when` did not hold");
            }
        }
        if next_step < pb.steps.len() {
            ps.sequences.push(SequenceState { occurrence: occurrence.clone(), started: self.now, next_step });
        }
        let mut entry = self.entry(pb, out.view, occurrence, Decision::Fired, why, actions);
        entry.values = self.values(pb, out.view);
        out.push_fired(entry, work)
    }

    /// Advances the playbook's running sequences: exit when `exit` holds, otherwise every
    /// step that has come due (within the catch-up window; older ones are skipped).
    fn sequences(&mut self, pb: &Playbook, ps: &mut PlaybookState, out: &mut Decisions) -> Result<(), String> {
        if ps.sequences.is_empty() {
            return Ok(());
        }
        let catch_up = Duration::days(DEFAULT_CATCH_UP_DAYS);
        let mut keep = Vec::with_capacity(ps.sequences.len());
        for mut seq in std::mem::take(&mut ps.sequences) {
            let started_now = seq.started == self.now;
            let next_due = pb.steps.get(seq.next_step).is_some_and(|s| self.elapsed(seq.started, s.after));
            if !started_now && next_due {
                if let Some(exit) = &pb.exit {
                    if self.truth(exit)? == Truth::True {
                        let why = format!("`{}` holds: the sequence stops", one_line(exit.source()));
                        let occurrence = format!("{}/exit", seq.occurrence);
                        out.entries.push(self.entry(pb, out.view, occurrence, Decision::Exited, why, Vec::new()));
                        continue;
                    }
                }
            }
            while let Some(step) = pb.steps.get(seq.next_step) {
                if !self.elapsed(seq.started, step.after) {
                    break;
                }
                let due_at = seq.started + step.after.to_chrono();
                let occurrence = format!("{}/step:{}", seq.occurrence, seq.next_step + 1);
                let late = self.now - due_at;
                let mut work = Default::default();
                let entry = if late > catch_up {
                    let why = format!(
                        "step {} (after {}) fell due {}, older than the catch-up window",
                        seq.next_step + 1,
                        step.after,
                        due_at.format("%Y-%m-%d")
                    );
                    self.entry(pb, out.view, occurrence, Decision::Skipped, why, Vec::new())
                } else if !self.step_holds(step)? {
                    let when = step.when.as_ref().map_or("", |w| w.source());
                    let why =
                        format!("step {} (after {}): `{}` did not hold", seq.next_step + 1, step.after, one_line(when));
                    self.entry(pb, out.view, occurrence, Decision::Skipped, why, Vec::new())
                } else {
                    let why = format!(
                        "step {} of the sequence started by {}, after {}",
                        seq.next_step + 1,
                        seq.occurrence,
                        step.after
                    );
                    let actions;
                    (actions, work) = self.render(pb, step, out.view, None, &occurrence);
                    self.entry(pb, out.view, occurrence, Decision::Fired, why, actions)
                };
                out.push_fired(entry, work)?;
                seq.next_step += 1;
            }
            if seq.next_step < pb.steps.len() {
                keep.push(seq);
            }
        }
        ps.sequences = keep;
        Ok(())
    }

    /// Whether `span` has passed since `since` at this pass ([`time::elapsed`]).
    fn elapsed(&self, since: DateTime<Utc>, span: Span) -> bool {
        time::elapsed(self.ev.timezone, self.now, self.date, since, span)
    }

    /// The first instant [`Self::elapsed`] holds ([`time::due_at`]).
    fn due_at(&self, since: DateTime<Utc>, span: Span) -> DateTime<Utc> {
        time::due_at(self.ev.timezone, since, span)
    }

    fn step_holds(&mut self, step: &Step) -> Result<bool, String> {
        match &step.when {
            Some(w) => Ok(self.truth(w)? == Truth::True),
            None => Ok(true),
        }
    }

    /// A step's actions in words (for the ledger) and as work (outbox entries, tasks).
    fn render(
        &self,
        pb: &Playbook,
        step: &Step,
        view: &AccountView,
        event: Option<&Event>,
        occurrence: &str,
    ) -> (Vec<String>, crate::decide::plan::Work) {
        // One template context for the ledger's words and the outbox's work: building it
        // serialises the whole view, the larger part of rendering.
        let ctx = context(view, pb, event, self.date);
        let words = step.actions.iter().map(|a| describe_in(self.ev.set, a, view, &ctx)).collect();
        let planner = Planner { set: self.ev.set, unsubscribe: self.ev.unsubscribe, timezone: self.ev.timezone };
        let firing =
            Firing { playbook: pb, view, event, occurrence, now: self.now, date: self.date, tick: self.tick_of(pb) };
        (words, planner.plan(&step.actions, &firing, &ctx))
    }

    /// The tick this pass stands for, for a playbook (digests group by it).
    fn tick_of(&self, pb: &Playbook) -> DateTime<Utc> {
        self.due.iter().find(|d| std::ptr::eq(d.playbook, pb)).map_or(self.now, |d| d.tick)
    }

    fn entry(
        &self,
        pb: &Playbook,
        view: &AccountView,
        occurrence: String,
        decision: Decision,
        why: String,
        actions: Vec<String>,
    ) -> LedgerEntry {
        LedgerEntry {
            playbook: pb.id.clone(),
            account: view.account.id.clone(),
            occurrence,
            at: self.now,
            decision,
            why,
            values: BTreeMap::new(),
            actions,
        }
    }

    /// The values the playbook's audience and trigger read, from the account view.
    fn values(&self, pb: &Playbook, view: &AccountView) -> BTreeMap<String, serde_json::Value> {
        let trigger_exprs: Vec<&Expression> = match &pb.trigger {
            Trigger::Condition { condition, .. } => vec![condition],
            Trigger::Date { condition, .. }
            | Trigger::Event { condition, .. }
            | Trigger::Schedule { condition, .. } => condition.iter().collect(),
        };
        let mut paths: Vec<String> = pb.audience.iter().chain(trigger_exprs).flat_map(|e| e.reads()).collect();
        if let Trigger::Date { field, .. } = &pb.trigger {
            paths.push(field.name());
        }
        if paths.is_empty() {
            return BTreeMap::new();
        }
        let doc = serde_json::to_value(view).unwrap_or_default();
        paths
            .into_iter()
            .map(|path| {
                let value = path.split('.').try_fold(&doc, |v, k| v.get(k)).cloned().unwrap_or(serde_json::Value::Null);
                (path, value)
            })
            .collect()
    }
}
