//! `simulate`: what the playbooks would fire at a moment, for which accounts, and why —
//! with no side effects. Nothing is written: health is scored in memory the way an
//! evaluation pass would score it, and no ledger entry, task or email is made.
//!
//! Trigger semantics follow the trigger table, read against the store as it is:
//! - condition `on_enter`: true on the day, and false or unknown the day before. The day
//!   before is the account with its stored health of that day (metrics are as stored
//!   now: the store keeps no metric history). An account with no stored health history
//!   was never evaluated: unknown, so it fires, as the daemon's first pass will (its edge
//!   state, issue [3/5], replaces this approximation).
//! - condition `while_true`: true on the day (the ledger's `every` window is not known
//!   here; the reason says so).
//! - date + offset: due on a day within the catch-up window ending on the day.
//! - event: each matching event of the day.
//! - schedule: a tick falls on the day (in the trigger's or the config's time zone).
//!
//! Only a playbook's first step is shown as what fires; later steps are listed by delay.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::lang::health::HealthModel;
use crate::lang::playbook::{Fire, Playbook, PlaybookSet, Trigger};
use crate::lang::render::{describe, one_line};
use crate::lang::script::{AccountScope, ScriptEngine, Truth};
use crate::lang::view::AccountView;
use crate::model::{Account, Event};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub playbook: Option<String>,
    pub account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub playbook: String,
    pub account: String,
    pub account_name: String,
    /// The values the trigger read.
    pub why: String,
    /// The first step's actions, rendered.
    pub actions: Vec<String>,
    /// Later steps, by delay (`3d`, `14d`).
    pub later_steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub playbook: String,
    pub account: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: NaiveDate,
    pub timezone: String,
    pub accounts: u64,
    pub playbooks: Vec<String>,
    pub firings: Vec<Firing>,
    pub failures: Vec<Failure>,
}

pub struct Simulator<'a> {
    pub set: &'a PlaybookSet,
    pub model: &'a HealthModel,
    pub engine: &'a ScriptEngine,
    pub store: &'a Store,
    /// The configured zone: the day being simulated is a day there.
    pub timezone: Tz,
    /// Health to use for the day instead of scoring it, by account id (playbook tests
    /// state health directly).
    pub given_health: Option<&'a std::collections::BTreeMap<String, crate::model::HealthPoint>>,
}

impl Simulator<'_> {
    pub fn run(&self, date: NaiveDate, filter: &Filter) -> Result<Report, StoreError> {
        let playbooks: Vec<&Playbook> = self
            .set
            .playbooks
            .iter()
            .filter(|p| p.enabled && filter.playbook.as_ref().is_none_or(|id| *id == p.id))
            .collect();
        let mut report = Report {
            date,
            timezone: self.timezone.to_string(),
            accounts: 0,
            playbooks: playbooks.iter().map(|p| p.id.clone()).collect(),
            firings: Vec::new(),
            failures: Vec::new(),
        };
        let yesterday = date - Duration::days(1);
        self.engine.set_today(yesterday);
        let mut scope_prev = self.engine.scope();
        self.engine.set_today(date);
        let mut scope = self.engine.scope();

        let accounts: Box<dyn Iterator<Item = Result<Account, StoreError>>> = match &filter.account {
            Some(id) => Box::new(self.store.account(id)?.map(Ok).into_iter()),
            None => Box::new(self.store.accounts()),
        };
        for account in accounts {
            let account = account?;
            report.accounts += 1;
            let contacts = self.store.contacts_of(&account.id)?;
            // Health as the pass would score it today (in memory), and as stored yesterday.
            let stored_yesterday = self.store.health_on_or_before(&account.id, yesterday)?;
            let base = AccountView { account: &account, health: None, contacts: &contacts };
            if let Err(error) = scope.set_account(&base) {
                report.failures.push(Failure { playbook: "(health)".into(), account: account.id.clone(), error });
                continue;
            }
            let scored = match self.given_health.and_then(|given| given.get(&account.id)) {
                Some(point) => Ok(Some(point.clone())),
                None => self.model.score(self.engine, &mut scope, date, stored_yesterday.as_ref().map(|p| p.band)),
            };
            let health_today = match scored {
                Ok(Some(point)) => Some(crate::decide::health::with_trend(self.store, &account.id, point)?),
                Ok(None) => None,
                Err(e) => {
                    report.failures.push(Failure {
                        playbook: "(health)".into(),
                        account: account.id.clone(),
                        error: e.to_string(),
                    });
                    None
                }
            };
            let prev_health = match stored_yesterday {
                Some(p) => Some(crate::decide::health::with_trend(self.store, &account.id, p)?),
                None => None,
            };
            let now = AccountView { account: &account, health: health_today, contacts: &contacts };
            let prev = AccountView { account: &account, health: prev_health, contacts: &contacts };
            if let Err(error) = scope.set_account(&now).and_then(|()| scope_prev.set_account(&prev)) {
                report.failures.push(Failure { playbook: "(account)".into(), account: account.id.clone(), error });
                continue;
            }
            let mut scopes = Scopes { now: &mut scope, prev: &mut scope_prev };
            for playbook in &playbooks {
                match self.evaluate(playbook, &now, &prev, &mut scopes, date) {
                    Ok(firings) => report.firings.extend(firings),
                    Err(error) => report.failures.push(Failure {
                        playbook: playbook.id.clone(),
                        account: account.id.clone(),
                        error,
                    }),
                }
            }
        }
        Ok(report)
    }

    fn evaluate(
        &self,
        playbook: &Playbook,
        now: &AccountView,
        prev: &AccountView,
        scopes: &mut Scopes,
        date: NaiveDate,
    ) -> Result<Vec<Firing>, String> {
        let truth = |expr: &crate::lang::script::Expression, scope: &mut AccountScope| {
            expr.truth(self.engine, scope).map_err(|e| e.to_string())
        };
        if let Some(audience) = &playbook.audience {
            if truth(audience, scopes.now)? != Truth::True {
                return Ok(Vec::new());
            }
        }
        let mut whys: Vec<(String, Option<&Event>)> = Vec::new();
        let events: Vec<Event>;
        match &playbook.trigger {
            Trigger::Condition { condition, fire } => {
                if truth(condition, scopes.now)? == Truth::True {
                    match fire {
                        Fire::OnEnter => {
                            // Never evaluated before (no stored history): unknown, which
                            // fires — as the first real pass will with no edge state.
                            let before = if prev.health.is_none() {
                                Truth::Unknown
                            } else {
                                self.engine.set_today(date - Duration::days(1));
                                let before = truth(condition, scopes.prev);
                                self.engine.set_today(date);
                                before?
                            };
                            if before != Truth::True {
                                let was = match (before, prev.health.is_some()) {
                                    (Truth::False, _) => "false",
                                    (_, true) => "unknown",
                                    (_, false) => "unknown: first evaluation",
                                };
                                whys.push((
                                    format!(
                                        "`{}` became true (the day before: {was}){}",
                                        one_line(condition.source()),
                                        health_change(now, prev)
                                    ),
                                    None,
                                ));
                            }
                        }
                        Fire::WhileTrue { every } => whys.push((
                            format!(
                                "`{}` is true{}; re-fires at most every {every}",
                                one_line(condition.source()),
                                health_change(now, prev)
                            ),
                            None,
                        )),
                    }
                }
            }
            Trigger::Date { field, offset, catch_up, condition } => {
                let (name, value) = (field.name(), field.value(now.account));
                if let Some(value) = value {
                    let due = value + Duration::minutes(offset.minutes());
                    let late = (date - due).num_days();
                    if late >= 0 && Duration::days(late) < catch_up.to_chrono().max(Duration::days(1)) {
                        let when = if late == 0 {
                            "due today".to_string()
                        } else {
                            format!("due {late} days ago, within the {catch_up} catch-up")
                        };
                        if condition.as_ref().map_or(Ok(Truth::True), |c| truth(c, scopes.now))? == Truth::True {
                            whys.push((format!("{name} {value} {offset} = {due}, {when}"), None));
                        }
                    }
                }
            }
            Trigger::Event { name, condition } => {
                let (start, end) = day_bounds(date, self.timezone);
                events = self
                    .store
                    .events_of(&now.account.id, start, end)
                    .filter(|e| e.as_ref().map_or(true, |e| e.name == *name))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                for event in &events {
                    let ok = match condition {
                        Some(c) => {
                            scopes.now.set_var("event", event)?;
                            truth(c, scopes.now)? == Truth::True
                        }
                        None => true,
                    };
                    if ok {
                        whys.push((
                            format!(
                                "event {:?} at {} (id {})",
                                event.name,
                                event.timestamp.format("%Y-%m-%d %H:%M UTC"),
                                event.id
                            ),
                            Some(event),
                        ));
                    }
                }
                // `event` belongs to this trigger only: later playbooks must not see it.
                scopes.now.clear_vars();
            }
            Trigger::Schedule { cron, timezone, condition } => {
                let tz = timezone.unwrap_or(self.timezone);
                let (start, end) = day_bounds(date, tz);
                let before = (start - Duration::seconds(1)).with_timezone(&tz);
                if let Some(tick) = cron.next_after(&before).filter(|t| t.with_timezone(&Utc) < end) {
                    if condition.as_ref().map_or(Ok(Truth::True), |c| truth(c, scopes.now))? == Truth::True {
                        whys.push((
                            format!("schedule `{}` ticks at {}", cron.source, tick.format("%Y-%m-%d %H:%M %Z")),
                            None,
                        ));
                    }
                }
            }
        }
        let mut firings = Vec::new();
        for (why, event) in whys {
            let first = &playbook.steps[0];
            let actions = if first.after.minutes() == 0 {
                first.actions.iter().map(|a| describe(self.set, a, playbook, now, event, date)).collect()
            } else {
                Vec::new()
            };
            let skip = usize::from(first.after.minutes() == 0);
            firings.push(Firing {
                playbook: playbook.id.clone(),
                account: now.account.id.clone(),
                account_name: now.account.display_name().to_string(),
                why,
                actions,
                later_steps: playbook.steps.iter().skip(skip).map(|s| s.after.to_string()).collect(),
            });
        }
        Ok(firings)
    }
}

struct Scopes<'s> {
    now: &'s mut AccountScope,
    prev: &'s mut AccountScope,
}

/// ", health 54.2 red (the day before 63.0 yellow)" when there is health to show.
fn health_change(now: &AccountView, prev: &AccountView) -> String {
    match (&now.health, &prev.health) {
        (Some(n), Some(p)) => format!("; health {:.1} {} (the day before {:.1} {})", n.score, n.band, p.score, p.band),
        (Some(n), None) => format!("; health {:.1} {} (not scored the day before)", n.score, n.band),
        _ => String::new(),
    }
}

/// The UTC instants where `date` starts and ends in `tz`.
fn day_bounds(date: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        // A zone whose midnight is skipped (DST) starts the day at its first instant.
        tz.from_local_datetime(&midnight)
            .earliest()
            .unwrap_or_else(|| tz.from_utc_datetime(&midnight))
            .with_timezone(&Utc)
    };
    (start_of(date), start_of(date + Duration::days(1)))
}
