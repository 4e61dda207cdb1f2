//! The trigger table: what one playbook decides for one account at a pass, against the
//! account's stored [`PlaybookState`] and the ledger.
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
//! Invariant: deciding reads; only the pass's commit writes. A script failure is
//! [`Fail::Eval`] (one playbook, one account); a store failure is [`Fail::Store`], which
//! stops the pass — it is never counted as one account's failure.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{Due, Worker};
use crate::decide::plan::{Firing, Planner};
use crate::decide::time;
use crate::lang::duration::Span;
use crate::lang::playbook::{CatchUp, DateField, Fire, Playbook, Step, Trigger, DEFAULT_CATCH_UP_DAYS};
use crate::lang::render::{context, describe_in, one_line};
use crate::lang::script::{EvalError, Expression, Truth};
use crate::lang::view::AccountView;
use crate::model::{Decision, Event, LedgerEntry, OutboxEntry, PlaybookState, SequenceState, TaskRequest};
use crate::store::StoreError;

/// Why a playbook could not decide for an account.
#[derive(Debug)]
pub(super) enum Fail {
    /// A script error, a sandbox limit, work that cannot be planned: this playbook, this
    /// account; the pass goes on.
    Eval(String),
    /// The store failed: the pass stops.
    Store(StoreError),
}

impl From<String> for Fail {
    fn from(message: String) -> Fail {
        Fail::Eval(message)
    }
}

/// Where a date trigger stands on a pass's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateDue {
    /// The due day has not come.
    NotYet,
    /// Due `late` days ago (0: today), inside the catch-up window: fire.
    Fire { late: i64 },
    /// Due `late` days ago, past the catch-up window: recorded as skipped (once: the
    /// ledger keeps the key), so no date passes without a visible decision.
    Skip { late: i64 },
}

/// The date trigger's rule, as a pure function: `due_day` (the field's `date` plus the
/// offset) against the pass's `date` and the catch-up window.
pub fn date_due(today: NaiveDate, due_day: NaiveDate, date: NaiveDate, catch_up: CatchUp) -> DateDue {
    if due_day > today {
        return DateDue::NotYet;
    }
    let late = (today - due_day).num_days();
    let inside = match catch_up {
        CatchUp::Span(span) => Duration::days(late) < span.to_chrono().max(Duration::days(1)),
        CatchUp::UntilDate => today <= date,
    };
    if inside {
        DateDue::Fire { late }
    } else {
        DateDue::Skip { late }
    }
}

/// What one playbook decided for one account: ledger entries, and the outbox entries and
/// tasks of its firings (each with the index of its firing in `entries`).
pub(super) struct Decisions<'v> {
    pub(super) entries: Vec<LedgerEntry>,
    pub(super) outbox: Vec<(usize, OutboxEntry)>,
    pub(super) tasks: Vec<(usize, TaskRequest)>,
    pub(super) updates: Vec<(usize, crate::model::FieldUpdate)>,
    /// Of the work above: outbox entries decided dead, tasks whose templates failed.
    pub(super) dead: u64,
    pub(super) failed_tasks: u64,
    /// With `explain`: why this playbook decided nothing for the account.
    pub(super) quiet: Option<String>,
    /// A new occurrence fired (not a later step of a running sequence): what the
    /// blast-radius guard counts and budgets.
    pub(super) started: bool,
    view: &'v AccountView<'v>,
}

impl<'v> Decisions<'v> {
    pub(super) fn new(view: &'v AccountView<'v>) -> Self {
        Decisions {
            entries: Vec::new(),
            outbox: Vec::new(),
            tasks: Vec::new(),
            updates: Vec::new(),
            dead: 0,
            failed_tasks: 0,
            quiet: None,
            started: false,
            view,
        }
    }

    /// Records a firing with its work; work that cannot be planned fails the playbook.
    fn push_fired(&mut self, entry: LedgerEntry, work: crate::decide::plan::Work) -> Result<(), Fail> {
        if let Some(e) = &work.failure {
            return Err(Fail::Eval(e.clone()));
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

impl Worker<'_, '_> {
    fn truth(&mut self, expr: &Expression) -> Result<Truth, Fail> {
        expr.truth(self.ev.engine, &mut self.scope).map_err(|e: EvalError| Fail::Eval(e.to_string()))
    }

    /// Audience and an optional extra condition, as one yes/no (unknown is no).
    fn holds(&mut self, audience: Option<&Expression>, condition: Option<&Expression>) -> Result<bool, Fail> {
        for expr in [audience, condition].into_iter().flatten() {
            if self.truth(expr)? != Truth::True {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) fn playbook(
        &mut self,
        due: &Due,
        ps: &mut PlaybookState,
        events: &[Event],
        out: &mut Decisions,
    ) -> Result<(), Fail> {
        let pb = due.playbook;
        let store = self.ev.store;
        let account_id = &out.view.account.id;
        let fired = |occurrence: &str| store.has_fired(account_id, &pb.id, occurrence).map_err(Fail::Store);
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
                            } else if self.ev.explain {
                                out.quiet = Some(format!("{occurrence} is already in the ledger"));
                            }
                        } else if self.ev.explain {
                            out.quiet = Some(if holds {
                                format!(
                                    "`{}` is still true since episode {}: it fires again only after it has been false",
                                    one_line(condition.source()),
                                    ps.episodes
                                )
                            } else {
                                self.not_holding(pb, Some(condition), out.view)?
                            });
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
                        } else if self.ev.explain {
                            out.quiet = Some(match ps.last_fired.filter(|_| holds) {
                                Some(last) => format!(
                                    "`{}` is true, but it fired {}; it fires again from {} (every {every})",
                                    one_line(condition.source()),
                                    last.format("%Y-%m-%d %H:%M UTC"),
                                    self.due_at(last, *every).format("%Y-%m-%d %H:%M UTC")
                                ),
                                None => self.not_holding(pb, Some(condition), out.view)?,
                            });
                        }
                    }
                }
            }
            Trigger::Date { field, offset, catch_up, condition } => {
                let account = out.view.account;
                let (name, value) = (field.name(), field.value(account));
                let Some(value) = value else {
                    if self.ev.explain {
                        out.quiet = Some(self.outside_or(pb, out.view, format!("the account has no {name}"))?);
                    }
                    return self.sequences(pb, ps, out);
                };
                let due_day = value + Duration::minutes(offset.minutes());
                let verdict = date_due(self.date, due_day, value, *catch_up);
                if verdict == DateDue::NotYet {
                    if self.ev.explain {
                        let days = (due_day - self.date).num_days();
                        let unit = if days == 1 { "day" } else { "days" };
                        let why = format!("{name} {value} {offset} = {due_day}: not due yet (in {days} {unit})");
                        out.quiet = Some(self.outside_or(pb, out.view, why)?);
                    }
                    return self.sequences(pb, ps, out);
                }
                let occurrence = format!("{name}={value}");
                let decided = fired(&occurrence)?;
                if self.ev.explain && decided {
                    out.quiet = Some(format!("{occurrence} is already in the ledger (`keel accounts show` lists it)"));
                }
                // Audience and condition are evaluated once per account (a pass's hot path).
                let holds = !decided && self.holds(pb.audience.as_ref(), condition.as_ref())?;
                if self.ev.explain && !decided && !holds {
                    out.quiet = Some(self.not_holding(pb, condition.as_ref(), out.view)?);
                }
                if holds {
                    let skip = match verdict {
                        DateDue::Fire { late } => match self.superseded_by(pb, field, *offset, value)? {
                            Some((later, later_day)) => Some(format!(
                                "{name} {value} {offset} = {due_day}: {later} ({later_day}) is the most recent step due, and only it fires"
                            )),
                            None => {
                                let when = match (late, catch_up) {
                                    (0, _) => "due today".to_string(),
                                    (1, CatchUp::UntilDate) => format!("due yesterday, caught up until {value}"),
                                    (1, _) => format!("due yesterday, within the {catch_up} catch-up"),
                                    (_, CatchUp::UntilDate) => format!("due {late} days ago, caught up until {value}"),
                                    _ => format!("due {late} days ago, within the {catch_up} catch-up"),
                                };
                                let why = format!("{name} {value} {offset} = {due_day}, {when}");
                                self.fire(pb, ps, occurrence.clone(), why, None, out)?;
                                None
                            }
                        },
                        DateDue::Skip { late } => Some(match catch_up {
                            CatchUp::UntilDate => format!("{name} {value} {offset} = {due_day}: {value} has passed"),
                            CatchUp::Span(_) => format!(
                                "{name} {value} {offset} = {due_day}: fell due {late} days ago, older than the {catch_up} catch-up window"
                            ),
                        }),
                        DateDue::NotYet => None,
                    };
                    if let Some(why) = skip {
                        tracing::debug!(playbook = %pb.id, account = %account_id, %due_day, "date trigger skipped: {why}");
                        out.entries.push(self.entry(pb, out.view, occurrence, Decision::Skipped, why, Vec::new()));
                    }
                }
            }
            Trigger::Event { name, condition } => {
                if self.ev.explain {
                    out.quiet = Some(if self.holds(pb.audience.as_ref(), None)? {
                        format!("no {name:?} event of the last {DEFAULT_CATCH_UP_DAYS} days that is not already decided meets the trigger")
                    } else {
                        self.not_holding(pb, None, out.view)?
                    });
                }
                if self.holds(pb.audience.as_ref(), None)? {
                    for event in events.iter().filter(|e| e.name == *name) {
                        let occurrence = format!("event:{}", event.id);
                        if fired(&occurrence)? {
                            continue;
                        }
                        if let Some(c) = condition {
                            self.scope.clear_vars();
                            self.scope.set_var("event", event).map_err(|e| e.to_string())?;
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
                let decided = fired(&occurrence)?;
                if self.ev.explain {
                    out.quiet = Some(if decided {
                        format!("{occurrence} is already in the ledger")
                    } else {
                        self.not_holding(pb, condition.as_ref(), out.view)?
                    });
                }
                if !decided && self.holds(pb.audience.as_ref(), condition.as_ref())? {
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

    /// "Outside the audience" when it is, else `why` (`explain` only).
    fn outside_or(&mut self, pb: &Playbook, view: &AccountView, why: String) -> Result<String, Fail> {
        match &pb.audience {
            Some(a) if self.truth(a)? != Truth::True => self.not_holding(pb, None, view),
            _ => Ok(why),
        }
    }

    /// Why the audience or the trigger's condition does not hold, with the values read
    /// (`explain` only).
    fn not_holding(
        &mut self,
        pb: &Playbook,
        condition: Option<&Expression>,
        view: &AccountView,
    ) -> Result<String, Fail> {
        let word = |t: Truth| match t {
            Truth::True => "true",
            Truth::False => "false",
            Truth::Unknown => "unknown (a value it reads is missing)",
        };
        let read: Vec<String> = self.values(pb, view).iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let read = if read.is_empty() { String::new() } else { format!(" (read: {})", read.join(", ")) };
        if let Some(audience) = &pb.audience {
            let t = self.truth(audience)?;
            if t != Truth::True {
                return Ok(format!("outside the audience: `{}` is {}{read}", one_line(audience.source()), word(t)));
            }
        }
        if let Some(c) = condition {
            let t = self.truth(c)?;
            if t != Truth::True {
                return Ok(format!("`{}` is {}{read}", one_line(c.source()), word(t)));
            }
        }
        Ok(format!("audience and condition hold{read}"))
    }

    /// The playbook's audience and condition taken apart in this account's scope
    /// (`explain` only): what [`Self::playbook`] is about to evaluate.
    pub(super) fn explained(&mut self, pb: &Playbook, account: &str, events: &[Event]) -> super::Explained {
        let engine = self.ev.engine;
        let audience = pb.audience.as_ref().map(|a| a.explain(engine, &mut self.scope));
        let (condition, note) = match &pb.trigger {
            Trigger::Condition { condition, .. } => (Some(condition), None),
            Trigger::Date { condition, .. } | Trigger::Schedule { condition, .. } => (condition.as_ref(), None),
            Trigger::Event { name, condition: Some(c) } => {
                match events.iter().filter(|e| e.name == *name).max_by_key(|e| e.timestamp) {
                    Some(event) if self.scope.set_var("event", event).is_ok() => (
                        Some(c),
                        Some(format!(
                            "the condition reads `event`: shown for the latest {name:?} event (id {}, {})",
                            event.id,
                            event.timestamp.format("%Y-%m-%d %H:%M UTC")
                        )),
                    ),
                    _ => {
                        let days = DEFAULT_CATCH_UP_DAYS;
                        let why = format!(
                            "the condition reads `event`: no {name:?} event of the last {days} days to show it with"
                        );
                        (None, Some(why))
                    }
                }
            }
            Trigger::Event { condition: None, .. } => (None, None),
        };
        let condition = condition.map(|c| c.explain(engine, &mut self.scope));
        self.scope.clear_vars();
        super::Explained { playbook: pb.id.clone(), account: account.to_string(), audience, condition, note }
    }

    /// For a date trigger that catches up until the date: the enabled playbook on the
    /// same field, also catching up until the date, whose step is due too and closer to
    /// the date (the most recent due step), for this account's audience and condition.
    /// Renewal preparation started late sends −30's task, not −90's, −60's and −30's at
    /// once.
    fn superseded_by(
        &mut self,
        pb: &Playbook,
        field: &DateField,
        offset: Span,
        value: NaiveDate,
    ) -> Result<Option<(String, NaiveDate)>, Fail> {
        let set = self.ev.set;
        let mut best: Option<(&Playbook, NaiveDate)> = None;
        for other in set.playbooks.iter().filter(|p| p.enabled && p.id != pb.id) {
            let Trigger::Date { field: f, offset: o, catch_up: CatchUp::UntilDate, condition } = &other.trigger else {
                continue;
            };
            if f != field || o.minutes() <= offset.minutes() {
                continue;
            }
            let due_day = value + Duration::minutes(o.minutes());
            if due_day > self.date || best.is_some_and(|(_, d)| d >= due_day) {
                continue;
            }
            if self.holds(other.audience.as_ref(), condition.as_ref())? {
                best = Some((other, due_day));
            }
        }
        Ok(best.map(|(p, d)| (p.id.clone(), d)))
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
    ) -> Result<(), Fail> {
        let first = &pb.steps[0];
        let mut next_step = 0;
        let mut actions = Vec::new();
        let mut work = Default::default();
        if first.after.minutes() == 0 {
            next_step = 1;
            if self.step_holds(first)? {
                if !self.counting() {
                    (actions, work) = self.render(pb, first, out.view, event, &occurrence);
                }
            } else {
                why.push_str("; the first step's `when` did not hold");
            }
        }
        if next_step < pb.steps.len() {
            ps.sequences.push(SequenceState { occurrence: occurrence.clone(), started: self.now, next_step });
        }
        let mut entry = self.entry(pb, out.view, occurrence, Decision::Fired, why, actions);
        entry.values = self.values(pb, out.view);
        out.push_fired(entry, work)?;
        out.started = true;
        Ok(())
    }

    /// Advances the playbook's running sequences: exit when `exit` holds, otherwise every
    /// step that has come due (within the catch-up window; older ones are skipped).
    fn sequences(&mut self, pb: &Playbook, ps: &mut PlaybookState, out: &mut Decisions) -> Result<(), Fail> {
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
                    let mut actions = Vec::new();
                    if !self.counting() {
                        (actions, work) = self.render(pb, step, out.view, None, &occurrence);
                    }
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

    /// A count only ([`super::Evaluator::count`]): nothing is rendered.
    fn counting(&self) -> bool {
        matches!(self.output, super::Output::Count)
    }

    /// Whether `span` has passed since `since` at this pass ([`time::elapsed`]).
    fn elapsed(&self, since: DateTime<Utc>, span: Span) -> bool {
        time::elapsed(self.ev.timezone, self.now, self.date, since, span)
    }

    /// The first instant [`Self::elapsed`] holds ([`time::due_at`]).
    pub(super) fn due_at(&self, since: DateTime<Utc>, span: Span) -> DateTime<Utc> {
        time::due_at(self.ev.timezone, since, span)
    }

    fn step_holds(&mut self, step: &Step) -> Result<bool, Fail> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_trigger_fires_inside_its_window_and_is_skipped_after_it() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let week = CatchUp::Span(Span::parse("7d").unwrap());
        let today = d("2026-11-22");
        let renewal = d("2027-01-01");
        assert_eq!(date_due(today, d("2026-11-23"), renewal, week), DateDue::NotYet);
        assert_eq!(date_due(today, today, renewal, week), DateDue::Fire { late: 0 });
        assert_eq!(date_due(today, d("2026-11-16"), renewal, week), DateDue::Fire { late: 6 });
        // Seven days late is outside a 7-day window: a visible skip, on a first pass too.
        assert_eq!(date_due(today, d("2026-11-15"), renewal, week), DateDue::Skip { late: 7 });
        // A window shorter than a day still covers the due day itself.
        let none = CatchUp::Span(Span::parse("0d").unwrap());
        assert_eq!(date_due(today, today, renewal, none), DateDue::Fire { late: 0 });
        // Until the date: 67 days late still fires while the renewal is ahead, and on its
        // day; the day after, it is skipped.
        let until = CatchUp::UntilDate;
        assert_eq!(date_due(today, d("2026-09-16"), d("2026-12-15"), until), DateDue::Fire { late: 67 });
        assert_eq!(date_due(today, d("2026-08-24"), today, until), DateDue::Fire { late: 90 });
        assert_eq!(date_due(today, d("2026-08-23"), d("2026-11-21"), until), DateDue::Skip { late: 91 });
    }
}
