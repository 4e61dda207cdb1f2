//! `keel explain PLAYBOOK ACCOUNT [--at …]`: why a playbook did or did not fire for an
//! account — the playbook and its schedule, the audience and condition taken apart with
//! each sub-expression's value, the trigger state, the decision at the moment asked
//! about, the ledger entries and where each delivery stands.
//!
//! Invariants:
//! - **One decision implementation.** The decision is the real pass's, dry-run: this
//!   calls [`simulate`] for the playbook and the account (which runs
//!   [`crate::decide::tick::tick`] in `Mode::DryRun` with `explain`), and the
//!   sub-expression values are the ones that pass computed in its own scope
//!   ([`crate::lang::explain`]). What delivery would do with a dry run's mail is
//!   [`crate::deliver::forecast`]'s, through simulate. Nothing here decides.
//! - **Nothing is written**, as for simulate.
//! - **Bounded:** at most [`LEDGER_SHOWN`] ledger entries (most recent first; the total
//!   is said), values cut by [`crate::lang::explain::bounded`].
//! - When the playbook is not due at the moment (its last pass was at or after it, or
//!   its schedule has no tick between), the dry run is of its next tick, and the
//!   answer says so: what it decided at its last pass is in the ledger.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::simulate::{self, Firing, Other};
use super::ServiceError;
use crate::decide::pass::{date_due, DateDue};
use crate::decide::tick::{self, Context, Plan};
use crate::lang::explain::Part;
use crate::lang::playbook::{CatchUp, Fire, Playbook, Trigger};
use crate::lang::render::one_line;
use crate::model::{LedgerEntry, OutboxEntry, Payload, Status, Task};

/// Ledger entries shown, most recent first.
pub const LEDGER_SHOWN: usize = 10;
/// How far ahead a date trigger's last catch-up day is looked for.
const WINDOW_DAYS: i64 = 400;

/// The moment to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum At {
    /// A day: its last second in the config's zone — everything due by its end, in one
    /// pass, as `simulate --at DAY` reads it.
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

impl At {
    /// `YYYY-MM-DD` or an RFC 3339 instant.
    pub fn parse(text: &str) -> Result<At, String> {
        let text = text.trim();
        text.parse::<NaiveDate>().map(At::Day).or_else(|_| text.parse::<DateTime<Utc>>().map(At::Instant)).map_err(
            |_| format!("{text:?} is neither a date (2026-11-22) nor an RFC 3339 instant (2026-11-22T08:00:00Z)"),
        )
    }

    /// As [`At::parse`] reads it back.
    pub fn to_param(self) -> String {
        match self {
            At::Day(d) => d.to_string(),
            At::Instant(t) => t.to_rfc3339(),
        }
    }

    pub fn moment(self, tz: Tz) -> DateTime<Utc> {
        match self {
            At::Day(d) => crate::decide::time::end_of_day(tz, d),
            At::Instant(t) => t,
        }
    }
}

/// What to explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub playbook: String,
    pub account: String,
    /// Default: now.
    pub at: Option<At>,
}

/// Why a playbook did or did not fire for an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The moment asked about, and the day when a day was given.
    pub at: DateTime<Utc>,
    pub day: Option<NaiveDate>,
    pub timezone: String,
    pub playbook: PlaybookInfo,
    pub account: AccountInfo,
    pub due: Due,
    /// Each sub-expression with its value, as the dry-run pass evaluated it (none when
    /// no pass ran, or the playbook has no such expression).
    pub audience: Option<Part>,
    pub condition: Option<Part>,
    /// What the condition was evaluated with, or why it is not shown.
    pub condition_note: Option<String>,
    pub state: State,
    pub decision: Decision,
    /// This playbook's ledger entries for the account, most recent first, at most
    /// [`LEDGER_SHOWN`].
    pub ledger: Vec<Recorded>,
    pub ledger_total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookInfo {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// `condition`, `date`, `event` or `schedule`.
    pub kind: String,
    /// The trigger in words.
    pub trigger: String,
    pub audience: Option<String>,
    /// The cron it is evaluated on, its zone, and whose it is.
    pub schedule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub id: String,
    pub name: String,
}

/// The playbook's place on the clock at the moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Due {
    /// A pass of the playbook is due at the moment.
    pub due: bool,
    /// Its last completed pass.
    pub last_pass: Option<DateTime<Utc>>,
    /// Its next tick after the last pass (or after the moment, when it never ran).
    pub next_tick: Option<DateTime<Utc>>,
    /// Why it is or is not due, in words.
    pub why: String,
}

/// What the store keeps for the playbook and the account between passes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    /// The store keeps nothing for this playbook and account (never evaluated, or
    /// nothing to remember: outside, no episode, no sequence).
    pub nothing_kept: bool,
    /// `on_enter`: whether audience and condition held at the last evaluation, and the
    /// episodes so far.
    pub inside: Option<bool>,
    pub episodes: u32,
    /// `while_true`: the last firing, and when its next window opens.
    pub last_fired: Option<DateTime<Utc>>,
    pub next_window: Option<DateTime<Utc>>,
    pub sequences: Vec<Sequence>,
    pub date: Option<DateState>,
    /// The last evaluation failed (it is retried at the next pass).
    pub error: Option<String>,
}

/// A running sequence and its next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    pub occurrence: String,
    pub started: DateTime<Utc>,
    /// 1-based, as the ledger counts steps (`…/step:2`).
    pub next_step: usize,
    pub after: String,
    pub due: DateTime<Utc>,
}

/// A date trigger for the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DateState {
    pub field: String,
    /// The account's date (none: the account has no such date).
    pub value: Option<NaiveDate>,
    pub offset: String,
    pub catch_up: String,
    /// The date plus the offset.
    pub due_day: Option<NaiveDate>,
    /// The last day it may still fire (the catch-up window's end); none past
    /// [`WINDOW_DAYS`].
    pub last_day: Option<NaiveDate>,
}

/// What the dry-run pass decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The moment of the dry-run pass (the moment asked about, or the playbook's next
    /// tick when it was not due then); none when no pass ran.
    pub at: Option<DateTime<Utc>>,
    pub verdict: Verdict,
    pub firings: Vec<Firing>,
    /// Skips and sequence exits.
    pub other: Vec<Other>,
    /// Why nothing was decided (the pass's own `explain` reasons).
    pub why_nothing: Vec<String>,
    pub failures: Vec<String>,
    /// A schedule trigger's first run, missed ticks, files newer than the store.
    pub notes: Vec<String>,
    /// The blast-radius guard holds the playbook's pass (`held by guard: would fire …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// The decision in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Fires,
    /// Only skips or sequence exits.
    DecidesOther,
    /// Nothing: see `why_nothing`.
    Quiet,
    /// The evaluation failed.
    Failed,
    /// The blast-radius guard holds the playbook's pass: nothing is decided until
    /// `keel approve` (see `held`).
    Held,
    /// No pass ran: the playbook is disabled, or a schedule trigger only starts counting.
    NotRun,
}

/// A ledger entry with what became of its work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub entry: LedgerEntry,
    pub deliveries: Vec<Stored>,
    pub tasks: Vec<TaskState>,
}

/// An email or webhook in the outbox and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub id: u64,
    pub channel: String,
    pub to: String,
    pub summary: String,
    pub state: Delivery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Delivery {
    Sent {
        at: DateTime<Utc>,
    },
    /// Not attempted yet.
    Pending {
        due: DateTime<Utc>,
    },
    /// Held back by quiet hours, a non-business day or the frequency cap.
    Deferred {
        until: DateTime<Utc>,
        why: String,
    },
    Retrying {
        attempts: u32,
        next: DateTime<Utc>,
    },
    Suppressed {
        reason: String,
    },
    Dropped {
        reason: String,
    },
    Dead {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    pub id: u64,
    pub title: String,
    pub owner: String,
    pub status: String,
    pub due: Option<DateTime<Utc>>,
}

/// Explains `request.playbook` for `request.account` at `request.at` (default `now`).
pub fn explain(ctx: Context, request: &Request, now: DateTime<Utc>) -> Result<Explanation, ServiceError> {
    let (store, config) = (ctx.store, ctx.config);
    let set = &ctx.loaded.set;
    let Some(pb) = set.get(&request.playbook) else {
        let known: Vec<String> = set.playbooks.iter().map(|p| p.id.clone()).collect();
        let suggestion =
            crate::diagnostic::did_you_mean(&request.playbook, known.iter().map(String::as_str)).map(str::to_string);
        return Err(ServiceError::UnknownPlaybook { id: request.playbook.clone(), known, suggestion });
    };
    let account =
        store.account(&request.account)?.ok_or_else(|| ServiceError::not_found("account", &request.account))?;
    let tz = config.timezone;
    let at = request.at.map_or(now, |a| a.moment(tz));
    crate::decide::time::check_moment(at).map_err(ServiceError::InvalidArgument)?;

    let last = store.last_tick(&pb.id)?;
    let (cron, zone) = tick::schedule_of(config, pb);
    let stamp = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string();
    // When the dry run runs, and where the playbook stands.
    let (due, pass_at) = match (pb.enabled, tick::plan(config, pb, last, at)) {
        (false, _) => {
            let why = "disabled (`enabled: false`): it is never evaluated".to_string();
            (Due { due: false, last_pass: last, next_tick: None, why }, None)
        }
        (true, Plan::Run { tick, previous, .. }) => {
            let why = match previous {
                None => "due: it never ran, so its first pass runs now".to_string(),
                Some(p) if tick == at => format!("due: a tick since its last pass ({})", stamp(p)),
                Some(p) => format!("due: its tick {} came since its last pass ({})", stamp(tick), stamp(p)),
            };
            (Due { due: true, last_pass: last, next_tick: Some(tick), why }, Some(at))
        }
        (true, Plan::Baseline) => {
            let next = cron.next_in(zone, at);
            let why = "a schedule trigger that never ran: its first pass starts counting and fires from its next tick"
                .to_string();
            (Due { due: false, last_pass: None, next_tick: next, why }, Some(at))
        }
        (true, Plan::TooLate { latest, missed }) => {
            let why = format!(
                "its {missed} missed tick(s), the latest {}, are older than the catch-up window: skipped",
                stamp(latest)
            );
            (Due { due: false, last_pass: last, next_tick: cron.next_in(zone, at), why }, Some(at))
        }
        (true, Plan::Wait) => {
            let next = last.and_then(|l| cron.next_in(zone, l));
            let last_words = last.map_or("never".to_string(), stamp);
            let why = match next {
                Some(n) => format!(
                    "not due: its last pass was {last_words} and its next tick is {}; shown: the pass of that tick",
                    stamp(n)
                ),
                None => format!("not due: its last pass was {last_words} and its schedule has no later tick"),
            };
            (Due { due: false, last_pass: last, next_tick: next, why }, next)
        }
    };

    let mut decision = Decision {
        at: pass_at,
        verdict: Verdict::NotRun,
        firings: Vec::new(),
        other: Vec::new(),
        why_nothing: Vec::new(),
        failures: Vec::new(),
        notes: Vec::new(),
        held: None,
    };
    let (mut audience, mut condition, mut condition_note) = (None, None, None);
    if let Some(pass_at) = pass_at {
        let sim = simulate::Request { at: pass_at, playbook: Some(pb.id.clone()), account: Some(account.id.clone()) };
        let report = simulate::simulate(ctx, &sim)?;
        if let Some(e) = report.explained.into_iter().find(|e| e.playbook == pb.id && e.account == account.id) {
            (audience, condition, condition_note) = (e.audience, e.condition, e.note);
        }
        decision.firings = report.firings;
        decision.other = report.skipped.into_iter().chain(report.exited).collect();
        decision.failures = report.failures.into_iter().map(|f| f.error).collect();
        decision.why_nothing = report.why_nothing;
        decision.notes = report.notes;
        decision.held = report.held.iter().find(|h| h.playbook == pb.id).map(|h| h.hold.describe());
        if decision.held.is_some() {
            // Held: nothing is decided (simulate shows the held pass's firings; explain
            // says what happens).
            decision.firings.clear();
            decision.other.clear();
        }
        decision.verdict = if decision.held.is_some() {
            Verdict::Held
        } else if !decision.failures.is_empty() {
            Verdict::Failed
        } else if !decision.firings.is_empty() {
            Verdict::Fires
        } else if !decision.other.is_empty() {
            Verdict::DecidesOther
        } else if report.playbooks.contains(&pb.id) {
            Verdict::Quiet
        } else {
            Verdict::NotRun
        };
    }

    let state = state_of(ctx, pb, &account)?;
    let mut entries: Vec<LedgerEntry> =
        store.ledger_of(&account.id)?.into_iter().filter(|e| e.playbook == pb.id).collect();
    entries.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.occurrence.cmp(&a.occurrence)));
    let ledger_total = entries.len();
    entries.truncate(LEDGER_SHOWN);
    let outbox = store.outbox_of(&account.id)?;
    let tasks = store.tasks_of(&account.id)?;
    let ledger = entries
        .into_iter()
        .map(|entry| {
            let deliveries = outbox
                .iter()
                .filter(|o| o.playbook == entry.playbook && o.occurrence == entry.occurrence)
                .map(stored)
                .collect();
            let tasks = tasks
                .iter()
                .filter(|t| t.playbook == entry.playbook && t.occurrences.contains(&entry.occurrence))
                .map(task_state)
                .collect();
            Recorded { entry, deliveries, tasks }
        })
        .collect();

    Ok(Explanation {
        at,
        day: match request.at {
            Some(At::Day(d)) => Some(d),
            _ => None,
        },
        timezone: tz.to_string(),
        playbook: PlaybookInfo {
            id: pb.id.clone(),
            name: pb.name.clone(),
            enabled: pb.enabled,
            kind: pb.trigger.kind().to_string(),
            trigger: trigger_words(pb, config.timezone),
            audience: pb.audience.as_ref().map(|a| one_line(a.source())),
            schedule: schedule_words(ctx, pb),
        },
        account: AccountInfo { id: account.id.clone(), name: account.display_name().to_string() },
        due,
        audience,
        condition,
        condition_note,
        state,
        decision,
        ledger,
        ledger_total,
    })
}

/// The trigger as a sentence.
fn trigger_words(pb: &Playbook, tz: Tz) -> String {
    let with = |c: &Option<crate::lang::script::Expression>| {
        c.as_ref().map_or(String::new(), |c| format!(", when `{}` holds", one_line(c.source())))
    };
    match &pb.trigger {
        Trigger::Condition { condition, fire: Fire::OnEnter } => {
            format!("on_enter: fires when `{}` turns true, once per episode", one_line(condition.source()))
        }
        Trigger::Condition { condition, fire: Fire::WhileTrue { every } } => {
            format!("while_true: fires while `{}` is true, at most every {every}", one_line(condition.source()))
        }
        Trigger::Date { field, offset, catch_up, condition } => {
            format!("date: fires once on {} {offset} (catch-up: {catch_up}){}", field.name(), with(condition))
        }
        Trigger::Event { name, condition } => format!("event: fires for each {name:?} event{}", with(condition)),
        Trigger::Schedule { cron, timezone, condition } => format!(
            "schedule: fires at each tick of `{}` ({}) for each account in the audience{}",
            cron.source,
            timezone.unwrap_or(tz),
            with(condition)
        ),
    }
}

fn schedule_words(ctx: Context, pb: &Playbook) -> String {
    let (cron, zone) = tick::schedule_of(ctx.config, pb);
    let whose = match (&pb.trigger, &pb.schedule) {
        (Trigger::Schedule { .. }, _) => "its trigger's cron",
        (_, Some(_)) => "its own schedule",
        (_, None) => "the config's evaluation.schedule",
    };
    format!("`{}` ({zone}), {whose}", cron.source)
}

/// What the store keeps between passes for `pb` and `account`, with the times its
/// timers come due.
fn state_of(ctx: Context, pb: &Playbook, account: &crate::model::Account) -> Result<State, ServiceError> {
    let tz = ctx.config.timezone;
    let all = ctx.store.account_state(&account.id)?;
    let ps = all.playbooks.get(&pb.id);
    let mut state = State { nothing_kept: ps.is_none(), ..State::default() };
    if let (None, Trigger::Condition { fire: Fire::OnEnter, .. }) = (ps, &pb.trigger) {
        state.inside = Some(false);
    }
    if let Some(ps) = ps {
        state.episodes = ps.episodes;
        state.error = ps.error.as_ref().map(|e| e.message.clone());
        if let Trigger::Condition { fire, .. } = &pb.trigger {
            match fire {
                Fire::OnEnter => state.inside = Some(ps.inside),
                Fire::WhileTrue { every } => {
                    state.last_fired = ps.last_fired;
                    state.next_window = ps.last_fired.map(|l| crate::decide::time::due_at(tz, l, *every));
                }
            }
        }
        state.sequences = ps
            .sequences
            .iter()
            .filter_map(|s| {
                let step = pb.steps.get(s.next_step)?;
                Some(Sequence {
                    occurrence: s.occurrence.clone(),
                    started: s.started,
                    next_step: s.next_step + 1,
                    after: step.after.to_string(),
                    due: crate::decide::time::due_at(tz, s.started, step.after),
                })
            })
            .collect();
    }
    if let Trigger::Date { field, offset, catch_up, .. } = &pb.trigger {
        let value = field.value(account);
        let due_day = value.map(|v| v + Duration::minutes(offset.minutes()));
        // The window's end, by the trigger's own rule: the last day it still fires.
        let last_day = value.zip(due_day).and_then(|(v, d)| {
            let fires = |day: NaiveDate| matches!(date_due(day, d, v, *catch_up), DateDue::Fire { .. });
            let mut last = None;
            for n in 0..WINDOW_DAYS {
                let day = d + Duration::days(n);
                if !fires(day) {
                    return last.or(Some(d - Duration::days(1)));
                }
                last = Some(day);
            }
            None
        });
        state.date = Some(DateState {
            field: field.name(),
            value,
            offset: offset.to_string(),
            catch_up: match catch_up {
                CatchUp::UntilDate => "until_date".into(),
                CatchUp::Span(s) => s.to_string(),
            },
            due_day,
            last_day,
        });
    }
    Ok(state)
}

/// Where an outbox entry stands, as the outbox records it.
fn stored(o: &OutboxEntry) -> Stored {
    let state = match &o.status {
        Status::Pending if o.attempts > 0 => Delivery::Retrying { attempts: o.attempts, next: o.next_at },
        Status::Pending if o.history.is_empty() => Delivery::Pending { due: o.next_at },
        Status::Pending => {
            let note = o.last_note();
            Delivery::Deferred { until: o.next_at, why: note.strip_prefix("deferred: ").unwrap_or(note).to_string() }
        }
        Status::Delivered { at } => Delivery::Sent { at: *at },
        Status::Suppressed { reason, .. } => Delivery::Suppressed { reason: reason.clone() },
        Status::Dropped { reason, .. } => Delivery::Dropped { reason: reason.clone() },
        Status::Dead { error, .. } => Delivery::Dead { error: error.clone() },
    };
    let to = match &o.payload {
        Payload::Email(e) => e.to.clone(),
        Payload::Webhook(_) => o.target(),
    };
    Stored { id: o.id, channel: o.channel().as_str().to_string(), to, summary: o.summary(), state }
}

fn task_state(t: &Task) -> TaskState {
    TaskState {
        id: t.id,
        title: t.title.clone(),
        owner: t.owner.clone(),
        status: t.status.as_str().to_string(),
        due: t.due,
    }
}
