//! A tick: which playbooks are due at a moment, and the one pass that decides for them —
//! the same code whether the daemon commits it, `simulate` dry-runs it, or `keel test`
//! runs it on a temporary store.
//!
//! Invariants:
//! - One pass at a time, for everything due at the moment: each account's scope is built
//!   once for all the due playbooks.
//! - A playbook's tick is marked complete only when its pass finished (committed and not
//!   cancelled); an interrupted pass is run again and the ledger keeps it from firing
//!   anything twice.
//! - Missed ticks after downtime: condition, date and event playbooks simply run once
//!   (their triggers catch up by themselves, within their windows); a schedule trigger
//!   runs its latest missed tick if it is within the catch-up window and notes the older
//!   ones it skips.
//! - A dry run reads exactly what the committing pass reads and writes nothing: no
//!   ledger entry, state, health point, tick mark, progress mark or key.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::guard;
use super::incremental::{self, Selected};
use super::pass::{Budgets, Due, Evaluator, PassReport, Selection};
use super::unsubscribe::Unsubscribe;
use crate::config::Config;
use crate::lang::playbook::{Playbook, Trigger, DEFAULT_CATCH_UP_DAYS};
use crate::lang::schedule::CronSchedule;
use crate::lang::Loaded;
use crate::store::{Commit, Store, StoreError};

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

/// Whether a tick's decisions are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The daemon's pass: decisions, states, health points and tick marks are committed.
    Commit,
    /// `simulate`: the same decisions, returned instead of written.
    DryRun,
}

/// What a tick reads: the store, the playbooks in force and the config.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub store: &'a Store,
    pub loaded: &'a Loaded,
    pub config: &'a Config,
}

/// Narrowing a tick (the authoring tools; the daemon uses the defaults).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Only this playbook (it is still due only when its schedule says so).
    pub playbook: Option<&'a str>,
    /// Only these accounts, instead of the incremental selection.
    pub accounts: Option<&'a [String]>,
    /// Health scores stated for accounts (by id) instead of scoring them: `keel test`.
    pub given_health: Option<&'a BTreeMap<String, f64>>,
    /// Say why a playbook decided nothing for an account (a dry run's `explain`).
    pub explain: bool,
    /// Without the blast-radius guard (`keel test`: a test's book is the playbook's
    /// whole world, and what it fires is what the test asserts).
    pub unguarded: bool,
}

/// A playbook the guard holds at a tick.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Held {
    pub playbook: String,
    pub hold: crate::model::Hold,
    /// Held by this tick's count (false: still held from an earlier pass, waiting for an
    /// approval or its next tick).
    pub counted: bool,
}

/// What a tick did.
#[derive(Debug)]
pub struct Tick {
    /// The evaluation clock of the pass.
    pub at: DateTime<Utc>,
    /// The pass, when anything was due.
    pub report: Option<PassReport>,
    /// Things a person should know (a schedule trigger's first run, skipped ticks).
    pub notes: Vec<String>,
    /// A dry run's decisions, chunk by chunk (empty when committed).
    pub decided: Vec<Commit>,
    /// The playbooks the pass ran, and the tick each stood for.
    pub due: Vec<(String, DateTime<Utc>)>,
    /// Playbooks the blast-radius guard held: they decided nothing.
    pub held: Vec<Held>,
    /// What the guard let through or released, in words.
    pub guard_notes: Vec<String>,
}

/// The cron a playbook is evaluated on, and its zone.
pub fn schedule_of<'p>(config: &'p Config, pb: &'p Playbook) -> (&'p CronSchedule, Tz) {
    match &pb.trigger {
        Trigger::Schedule { cron, timezone, .. } => (cron, timezone.unwrap_or(config.timezone)),
        _ => (pb.schedule.as_ref().unwrap_or(&config.evaluation.schedule), config.timezone),
    }
}

/// Where `pb` stands at `now`, given its last completed tick.
pub fn plan(config: &Config, pb: &Playbook, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Plan {
    let (cron, tz) = schedule_of(config, pb);
    let is_schedule_trigger = matches!(pb.trigger, Trigger::Schedule { .. });
    let Some(last) = last else {
        return if is_schedule_trigger { Plan::Baseline } else { Plan::Run { tick: now, previous: None, missed: 0 } };
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
    if let (n, Some(last_due)) = cron.count_in(tz, latest, now) {
        missed += n;
        latest = last_due;
    }
    if is_schedule_trigger && now - latest > Duration::days(DEFAULT_CATCH_UP_DAYS) {
        return Plan::TooLate { latest, missed: missed + 1 };
    }
    Plan::Run { tick: latest, previous: Some(last), missed }
}

/// The next instant a playbook comes due, `now` for one that never ran (None: no
/// enabled playbook has a next tick).
pub fn next_wakeup(ctx: Context, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut next: Option<DateTime<Utc>> = None;
    let records = ctx.store.guards()?;
    for pb in ctx.loaded.set.playbooks.iter().filter(|p| p.enabled) {
        let (cron, tz) = schedule_of(ctx.config, pb);
        let record = records.iter().find(|r| r.playbook == pb.id);
        let at = match (record.and_then(waiting), ctx.store.last_tick(&pb.id)?) {
            // Held: counted again at its next tick (an approval makes it due now); never
            // before its last completed one (a hold left from before `guard: off`).
            (Some(hold), last) => cron.next_in(tz, last.map_or(hold.tick, |l| l.max(hold.tick))),
            // Never ran: due now (a schedule trigger sets its baseline now).
            (None, None) => Some(now),
            (None, Some(last)) => cron.next_in(tz, last),
        };
        next = match (next, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(next)
}

/// The hold a playbook waits under: held, and not approved since.
fn waiting(record: &crate::model::GuardRecord) -> Option<&crate::model::Hold> {
    record.held.as_ref().filter(|_| record.approved.is_none())
}

/// Decides for every playbook due at `now`; in [`Mode::Commit`] records it all and marks
/// the ticks complete (unless the pass was cancelled).
pub fn tick(
    ctx: Context,
    now: DateTime<Utc>,
    mode: Mode,
    options: Options,
    cancel: &AtomicBool,
) -> Result<Tick, StoreError> {
    let (store, loaded, config) = (ctx.store, ctx.loaded, ctx.config);
    let commit = mode == Mode::Commit;
    let mut due = Vec::new();
    let mut notes = Vec::new();
    let mut held = Vec::new();
    let records = if options.unguarded { Vec::new() } else { store.guards()? };
    let playbooks = loaded.set.playbooks.iter().filter(|p| p.enabled && options.playbook.is_none_or(|id| id == p.id));
    for pb in playbooks {
        let last = store.last_tick(&pb.id)?;
        match plan(config, pb, last, now) {
            Plan::Run { tick, previous, missed } => {
                let record = records.iter().find(|r| r.playbook == pb.id);
                let guarded = guard::limits_for(&config.guard, pb);
                let same = |h: &&crate::model::Hold| {
                    h.tick >= tick && guarded.is_some_and(|l| h.digest == guard::counted(pb, &l))
                };
                if let Some(hold) = record.and_then(waiting).filter(same) {
                    // Held at this tick already: it waits for an approval or its next tick.
                    held.push(Held { playbook: pb.id.clone(), hold: hold.clone(), counted: false });
                    continue;
                }
                // A held playbook's tick stays where it was held: not downtime.
                if missed > 0 && commit && record.is_none_or(|r| r.held.is_none()) {
                    let kind = if matches!(pb.trigger, Trigger::Schedule { .. }) {
                        "runs the latest one, skips the rest"
                    } else {
                        "one pass catches up"
                    };
                    tracing::info!(playbook = %pb.id, missed, latest = %tick, "ticks missed since the last completed pass (downtime or a long pass); {kind}");
                }
                due.push(Due { playbook: pb, tick, previous });
            }
            Plan::Baseline => {
                let (cron, tz) = schedule_of(config, pb);
                let next = cron.next_in(tz, now).map(|t| t.with_timezone(&tz));
                let when = next.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M %Z").to_string());
                notes.push(format!("{}: a schedule trigger's first run; it fires from its next tick, {when}", pb.id));
                if commit {
                    tracing::info!(playbook = %pb.id, next = %when, "first run of a schedule trigger: fires from its next tick");
                    store.set_last_tick(&pb.id, now)?;
                }
            }
            Plan::TooLate { latest, missed } => {
                notes.push(format!(
                    "{}: {missed} missed tick(s), the latest at {latest}, are older than the {DEFAULT_CATCH_UP_DAYS}-day catch-up window: skipped",
                    pb.id
                ));
                if commit {
                    tracing::warn!(playbook = %pb.id, missed, %latest, "missed ticks are all older than the {DEFAULT_CATCH_UP_DAYS}-day catch-up window: skipped");
                    store.set_last_tick(&pb.id, now)?;
                    guard::release(store, &pb.id, now, "its held tick fell out of the catch-up window: skipped")?;
                }
            }
            Plan::Wait => {}
        }
    }
    if due.is_empty() {
        if commit {
            store.flush()?;
        }
        let ran = Vec::new();
        return Ok(Tick { at: now, report: None, notes, decided: Vec::new(), due: ran, held, guard_notes: Vec::new() });
    }
    let tz = config.timezone;
    let date = now.with_timezone(&tz).date_naive();
    let selected = match options.accounts {
        Some(ids) => {
            let mut ids = ids.to_vec();
            ids.sort();
            ids.dedup();
            let why = format!("{} named account(s)", ids.len());
            Selected { selection: Selection::Only(ids), why, barrier: 0, now, date }
        }
        None => incremental::select(store, &due, &loaded.model, tz, now, config.evaluation.incremental, !commit)?,
    };
    let unsubscribe =
        if commit { Unsubscribe::for_store(config, store)? } else { Unsubscribe::for_reading(config, store)? };
    let evaluator = Evaluator {
        selection: &selected.selection,
        unsubscribe: &unsubscribe,
        store,
        engine: &loaded.engine,
        model: &loaded.model,
        set: &loaded.set,
        timezone: tz,
        workers: config.evaluation.workers,
        cancel,
        given_health: options.given_health,
        explain: options.explain && !commit,
        budgets: &Budgets::default(),
    };
    // The guard counts the pass first; a held playbook decides nothing in it.
    // Named accounts are not the pass the daemon runs: the guard cannot count it (a
    // playbook held by the daemon's pass is still left out above).
    let look = if options.unguarded || options.accounts.is_some() {
        guard::Look::default()
    } else {
        guard::look(&evaluator, config, &due, &records, now)?
    };
    if look.cancelled {
        // Shutdown stopped the count: nothing is decided on half a count (the ticks stay
        // due, and the next start counts again).
        let report = PassReport { cancelled: true, ..PassReport::default() };
        return Ok(Tick {
            at: now,
            report: Some(report),
            notes,
            decided: Vec::new(),
            due: Vec::new(),
            held,
            guard_notes: Vec::new(),
        });
    }
    if commit {
        guard::record_holds(store, config, &look, now)?;
    }
    for (id, hold) in look.held() {
        held.push(Held { playbook: id.to_string(), hold: hold.clone(), counted: true });
    }
    due.retain(|d| !look.is_held(&d.playbook.id));
    let mut budgets = Budgets::default();
    for (id, limit) in &look.budgets {
        budgets.set(id, *limit);
    }
    let evaluator = Evaluator { budgets: &budgets, ..evaluator };
    let guard_notes: Vec<String> = look
        .verdicts
        .iter()
        .filter_map(|v| match &v.outcome {
            guard::Outcome::Held(_) => None,
            guard::Outcome::Approved { would_fire, size } => Some(format!(
                "{}: approved pass of {} firings runs (approved up to {})",
                v.playbook,
                crate::model::thousands(*would_fire),
                crate::model::thousands(*size)
            )),
            guard::Outcome::Cleared { would_fire } => Some(format!(
                "{}: no longer held: this pass fires {}, within its guard's limits",
                v.playbook,
                crate::model::thousands(*would_fire)
            )),
            guard::Outcome::Unguarded => Some(format!("{}: no longer held: it is not guarded any more", v.playbook)),
        })
        .collect();
    let ran = due.iter().map(|d| (d.playbook.id.clone(), d.tick)).collect();
    if due.is_empty() {
        // Everything due is held: no pass.
        if commit {
            store.flush()?;
        }
        return Ok(Tick { at: now, report: None, notes, decided: Vec::new(), due: ran, held, guard_notes });
    }
    let (mut report, decided) = match mode {
        Mode::Commit => (evaluator.run(&due, now)?, Vec::new()),
        Mode::DryRun => evaluator.dry_run(&due, now)?,
    };
    report.selection = selected.why.clone();
    if commit {
        if !report.cancelled {
            // Before the tick marks: an approval is used up by the pass it let through
            // (a crash between the two recounts a pass whose firings are in the ledger;
            // the other way round, the approval would let a later pass through).
            guard::record_after(store, &look, now)?;
            for d in &due {
                store.set_last_tick(&d.playbook.id, d.tick)?;
            }
            // Named accounts are not the book: the incremental watermarks stay where
            // they were.
            if options.accounts.is_none() {
                incremental::complete(store, loaded, &due, tz, &selected)?;
            }
            store.clear_pass_progress(None)?;
        }
        store.flush()?;
    }
    Ok(Tick { at: now, report: Some(report), notes, decided, due: ran, held, guard_notes })
}
