//! The daemon's standing for `/readyz` and the store-derived gauges of `/metrics`: is it
//! keeping up with its schedule, and how many outbox entries and tasks wait.
//!
//! Readiness ([`readiness`]) is a pure function of the store's answer, the last finished
//! pass and the schedules in force, so it is tested with the clock pinned.
//!
//! **The schedule interval.** The daemon runs a pass at each tick of the union of the
//! enabled playbooks' schedules (a playbook's own `schedule:`, its schedule trigger's
//! cron, else `evaluation.schedule`). From the last finished pass, T1 is the next tick of
//! that union and T2 the one after; the interval is T2 − T1. The daemon is ready while T2
//! is still ahead: the pass for T1 has had a whole interval to finish. With a regular
//! schedule that is "the last pass finished within twice the interval" (hourly: within
//! about two hours); a weekday schedule's weekend gap is not a late pass on Sunday, since
//! T1 is Monday's tick.
//!
//! Invariants: no clock is read here (callers pass `now`, the daemon's clock); nothing
//! is written.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::ServiceError;
use crate::config::Config;
use crate::lang::schedule::CronSchedule;
use crate::lang::Loaded;
use crate::model::Status;
use crate::store::Store;

/// Whether the daemon is ready, and if not, why (plain words for the 503 body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

/// The readiness decision. `store` is the answer to a read of the store; `schedules` the
/// enabled playbooks' schedules (none: no pass is ever due, so none is late).
pub fn readiness(
    store: Result<(), String>,
    last_pass: Option<DateTime<Utc>>,
    schedules: &[(&CronSchedule, Tz)],
    now: DateTime<Utc>,
) -> Readiness {
    if let Err(e) = store {
        return Readiness::NotReady(format!("the store cannot be read: {e}"));
    }
    if schedules.is_empty() {
        return Readiness::Ready;
    }
    let Some(last) = last_pass else { return Readiness::NotReady("no pass has finished yet".into()) };
    let next = |after: DateTime<Utc>| schedules.iter().filter_map(|(cron, tz)| cron.next_in(*tz, after)).min();
    // No tick ahead at all (a schedule whose every date has passed): nothing can be late.
    let Some(t1) = next(last) else { return Readiness::Ready };
    let Some(t2) = next(t1) else { return Readiness::Ready };
    if now < t2 {
        return Readiness::Ready;
    }
    Readiness::NotReady(format!(
        "the last pass finished {} ago; passes are due every {}",
        span(now - last),
        span(t2 - t1)
    ))
}

/// [`readiness`] for the daemon's store, config and playbooks in force: the store is read
/// (each enabled playbook's last tick) to tell it is open and readable.
///
/// Before this process finished a pass, the latest tick the store completed stands for
/// the last pass: a daemon restarted between two ticks has nothing due, and is as ready
/// as the one it replaced (not "no pass yet" until the next tick, an hour or a week on).
pub fn check(
    store: &Store,
    config: &Config,
    loaded: &Loaded,
    last_pass: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Readiness {
    let enabled: Vec<_> = loaded.set.playbooks.iter().filter(|p| p.enabled).collect();
    let mut latest_tick: Option<DateTime<Utc>> = None;
    let read = enabled
        .iter()
        .try_for_each(|p| store.last_tick(&p.id).map(|t| latest_tick = latest_tick.max(t)))
        // `/readyz` answers anyone: the details (paths, causes) go to the log only.
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness: the store cannot be read");
            "the daemon's log has the details".to_string()
        });
    let last_pass = last_pass.or(latest_tick);
    let schedules: Vec<_> = enabled.iter().map(|p| crate::decide::tick::schedule_of(config, p)).collect();
    readiness(read, last_pass, &schedules, now)
}

/// A span as a person says it: `12 s`, `41 min`, `2 h 5 min`, `3 days`.
fn span(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 if s % 3600 >= 60 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        3600..86_400 => format!("{} h", s / 3600),
        86_400..172_800 => "1 day".into(),
        _ => format!("{} days", s / 86_400),
    }
}

/// What waits in the store: outbox entries pending and dead, tasks open and overdue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub outbox_pending: u64,
    pub outbox_dead: u64,
    pub tasks_open: u64,
    pub tasks_overdue: u64,
}

/// Counts [`Waiting`]. Pending entries are counted on their index (keys only); dead
/// entries and tasks need a read of every outbox entry and task, so a caller asking often
/// caches the answer.
pub fn waiting(store: &Store, now: DateTime<Utc>, today: NaiveDate) -> Result<Waiting, ServiceError> {
    let mut w = Waiting { outbox_pending: store.pending_count() as u64, ..Waiting::default() };
    for entry in store.outbox() {
        w.outbox_dead += u64::from(matches!(entry?.status, Status::Dead { .. }));
    }
    for task in store.tasks() {
        let task = task?;
        w.tasks_open += u64::from(task.is_open());
        w.tasks_overdue += u64::from(task.is_open() && task.is_overdue(now, today));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn cron(s: &str) -> CronSchedule {
        CronSchedule::parse(s).unwrap()
    }

    const UTC: Tz = chrono_tz::UTC;

    #[test]
    fn ready_while_the_second_tick_after_the_last_pass_is_ahead() {
        let every15 = cron("*/15 * * * *");
        let schedules = [(&every15, UTC)];
        let last = Some(at("2026-11-30T10:00:02Z"));
        assert_eq!(readiness(Ok(()), last, &schedules, at("2026-11-30T10:20:00Z")), Readiness::Ready);
        assert_eq!(readiness(Ok(()), last, &schedules, at("2026-11-30T10:29:59Z")), Readiness::Ready);
        assert_eq!(
            readiness(Ok(()), last, &schedules, at("2026-11-30T10:41:30Z")),
            Readiness::NotReady("the last pass finished 41 min ago; passes are due every 15 min".into())
        );
    }

    #[test]
    fn no_pass_yet_and_an_unreadable_store_say_so() {
        let hourly = cron("0 * * * *");
        let now = at("2026-11-30T10:00:00Z");
        assert_eq!(
            readiness(Ok(()), None, &[(&hourly, UTC)], now),
            Readiness::NotReady("no pass has finished yet".into())
        );
        assert_eq!(
            readiness(Err("checksum mismatch in tree ticks".into()), Some(now), &[(&hourly, UTC)], now),
            Readiness::NotReady("the store cannot be read: checksum mismatch in tree ticks".into())
        );
    }

    #[test]
    fn without_an_enabled_playbook_nothing_is_late() {
        assert_eq!(readiness(Ok(()), None, &[], at("2026-11-30T10:00:00Z")), Readiness::Ready);
    }

    #[test]
    fn a_weekday_schedule_is_not_late_over_the_weekend() {
        let weekdays = cron("0 8 * * 1-5");
        let schedules = [(&weekdays, UTC)];
        // Friday 2026-11-27 08:00's pass; Monday's tick is T1, Tuesday's T2.
        let last = Some(at("2026-11-27T08:00:03Z"));
        assert_eq!(readiness(Ok(()), last, &schedules, at("2026-11-29T20:00:00Z")), Readiness::Ready);
        assert_eq!(readiness(Ok(()), last, &schedules, at("2026-12-01T07:59:00Z")), Readiness::Ready);
        assert_eq!(
            readiness(Ok(()), last, &schedules, at("2026-12-01T08:00:00Z")),
            Readiness::NotReady("the last pass finished 3 days ago; passes are due every 1 day".into())
        );
    }

    #[test]
    fn the_union_of_schedules_sets_the_pace() {
        let daily = cron("0 6 * * *");
        let hourly = cron("0 * * * *");
        let schedules = [(&daily, UTC), (&hourly, UTC)];
        let last = Some(at("2026-11-30T10:00:01Z"));
        assert_eq!(
            readiness(Ok(()), last, &schedules, at("2026-11-30T13:05:00Z")),
            Readiness::NotReady("the last pass finished 3 h 4 min ago; passes are due every 1 h".into())
        );
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(Duration::seconds(12)), "12 s");
        assert_eq!(span(Duration::minutes(90)), "1 h 30 min");
        assert_eq!(span(Duration::days(3)), "3 days");
    }
}
