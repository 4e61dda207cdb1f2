//! Cron schedules as CS Ops know them from crontab, on top of the `cron` crate.
//!
//! Accepted: standard 5-field crontab (`min hour dom month dow`) and 6 fields with seconds
//! first. Day-of-week numbers follow crontab: 0–7 with 0 and 7 both Sunday; names
//! (`Mon-Fri`) work too. The `cron` crate numbers weekdays 1–7 from Sunday, so numbers are
//! translated here. Day-of-month and day-of-week both restricted means *either* matches in
//! crontab but *both* in the `cron` crate: such a schedule is kept as two schedules whose
//! union is the crontab meaning.
//!
//! Refused at parse, with the field named: a number out of its field's range ("minute 61
//! is out of 0–59"), a zero step, a backwards range, and a schedule that can never fire
//! (`0 0 31 2 *`), which would otherwise load and silently do nothing.
//!
//! Time zones: [`CronSchedule::next_in`] evaluates the schedule on the zone's wall clock.
//! On a DST change a job whose local time does not exist (02:30 on spring-forward day)
//! runs once at the next existing instant, and a job in the repeated hour (01:30 on
//! fall-back day) runs once, at its first occurrence — where the `cron` crate alone would
//! skip the first and could run the second twice.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use cron::Schedule;

/// Why a cron schedule was refused; `text` is the schedule as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "cron schedule {text:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (with seconds first)"
    )]
    FieldCount { text: String, fields: usize },
    /// One field is wrong, named with its range (checked here, before the `cron` crate).
    #[error("cron schedule {text:?}: {problem}")]
    Field { text: String, problem: FieldProblem },
    /// The `cron` crate refused it; `why` is the last line of its message (the lines
    /// before repeat the expression with a caret).
    #[error("invalid cron schedule {text:?}: {why}")]
    Invalid { text: String, why: String },
    #[error("cron schedule {text:?} never fires: no day matches its day of month and month (like 31 February)")]
    NeverFires { text: String },
}

/// What is wrong with one field of a cron schedule. `field` is the field's name
/// ("minute", "day of month").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("the {field} step in {item:?} must be at least 1")]
    ZeroStep { field: &'static str, item: String },
    #[error("the {field} step in {item:?} is not a number")]
    StepNotANumber { field: &'static str, item: String },
    #[error("{field} {number} is out of {low}–{high}")]
    OutOfRange { field: &'static str, number: String, low: u32, high: u32 },
    #[error("the {field} range {range:?} runs backwards")]
    Backwards { field: &'static str, range: String },
    #[error("bad day of week {0:?}")]
    BadWeekday(String),
    #[error("day of week {0} is out of range 0-7")]
    WeekdayOutOfRange(u32),
    #[error("day-of-week range {0:?} runs backwards")]
    WeekdaysBackwards(String),
}

#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// As written.
    pub source: String,
    /// One schedule, or two (day-of-month only, day-of-week only) for crontab's "either".
    parts: Vec<Schedule>,
}

impl CronSchedule {
    pub fn parse(text: &str) -> Result<CronSchedule, CronError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(CronError::FieldCount { text: text.to_string(), fields: n }),
        };
        let (min, hour, dom, month, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
        let named = [("second", sec, 0, 59), ("minute", min, 0, 59), ("hour", hour, 0, 23)];
        let named = named.into_iter().skip(if fields.len() == 5 { 1 } else { 0 });
        let bad_field = |problem| CronError::Field { text: text.to_string(), problem };
        for (name, field, low, high) in named.chain([("day of month", dom, 1, 31), ("month", month, 1, 12)]) {
            check_field(name, field, low, high).map_err(bad_field)?;
        }
        let dow = translate_weekdays(dow).map_err(bad_field)?;
        let build = |dom: &str, dow: &str| {
            Schedule::from_str(&format!("{sec} {min} {hour} {dom} {month} {dow}")).map_err(|e| {
                // The crate's message repeats the expression with a caret; its last line
                // says what is wrong.
                let e = e.to_string();
                let why = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(&e).trim().to_string();
                CronError::Invalid { text: text.to_string(), why }
            })
        };
        let restricted = |f: &str| f != "*" && f != "?";
        let parts = if restricted(dom) && restricted(&dow) {
            vec![build(dom, "*")?, build("*", &dow)?]
        } else {
            vec![build(dom, &dow)?]
        };
        let schedule = CronSchedule { source: text.to_string(), parts };
        // Every schedule that can fire fires within four years (29 February); none in
        // five, from any start, is one that never does (31 February, 31 April).
        let start = DateTime::<Utc>::from_timestamp(NEVER_FIRES_FROM, 0).expect("a valid instant");
        match schedule.next_after(&start) {
            Some(next) if next - start <= Duration::days(5 * 366) => Ok(schedule),
            _ => Err(CronError::NeverFires { text: text.to_string() }),
        }
    }

    /// The first fire time strictly after `after`, in `after`'s zone.
    pub fn next_after<Z: TimeZone>(&self, after: &DateTime<Z>) -> Option<DateTime<Z>> {
        self.parts.iter().filter_map(|s| s.after(after).next()).min()
    }
}

impl CronSchedule {
    /// The first fire time strictly after `after`, with the schedule read on `tz`'s wall
    /// clock (see the module header for DST).
    pub fn next_in(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Walk candidates in naive local time (the `cron` crate is given them as UTC, which
        // has no DST), then place each on the zone's timeline.
        let mut local = after.with_timezone(&tz).naive_local() - Duration::hours(3);
        for _ in 0..10_000 {
            local = self.next_after(&local.and_utc())?.naive_utc();
            let at = match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => t,
                // A repeated hour: the first occurrence only, so the job runs once.
                LocalResult::Ambiguous(first, _) => first,
                // A skipped hour: the first instant that exists after it.
                LocalResult::None => first_after_gap(tz, local)?,
            }
            .with_timezone(&Utc);
            if at > after {
                return Some(at);
            }
        }
        None
    }
}

/// The first existing instant after a local time that falls in a DST gap. Gaps start
/// and end on whole minutes, so stepping by minutes lands exactly on the gap's end.
fn first_after_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Tz>> {
    (1..=180).find_map(|m| tz.from_local_datetime(&(local + Duration::minutes(m))).earliest())
}

/// 2000-01-01T00:00:00Z: where the "never fires" check starts looking.
const NEVER_FIRES_FROM: i64 = 946_684_800;

/// A numeric cron field's numbers within `low..=high` and its steps positive, so that an
/// out-of-range number is named with its field and range ("minute 61 is out of 0–59")
/// rather than by the `cron` crate's own wording. Names (`Jan`) and `*`/`?` are left to
/// the crate.
fn check_field(name: &'static str, field: &str, low: u32, high: u32) -> Result<(), FieldProblem> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(0) => return Err(FieldProblem::ZeroStep { field: name, item: item.to_string() }),
                Ok(_) => {}
                Err(_) => return Err(FieldProblem::StepNotANumber { field: name, item: item.to_string() }),
            }
        }
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        for part in [a, b] {
            if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
                match part.parse::<u32>() {
                    Ok(n) if (low..=high).contains(&n) => {}
                    _ => return Err(FieldProblem::OutOfRange { field: name, number: part.to_string(), low, high }),
                }
            }
        }
        if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
            if a > b {
                return Err(FieldProblem::Backwards { field: name, range: range.to_string() });
            }
        }
    }
    Ok(())
}

/// crontab day-of-week (0–7, Sunday 0 or 7) → the `cron` crate's (1–7, Sunday 1).
fn translate_weekdays(field: &str) -> Result<String, FieldProblem> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let number = |s: &str| -> Result<Option<u32>, FieldProblem> {
        if s.chars().all(|c| c.is_ascii_digit()) {
            let n: u32 = s.parse().map_err(|_| FieldProblem::BadWeekday(s.to_string()))?;
            if n > 7 {
                return Err(FieldProblem::WeekdayOutOfRange(n));
            }
            Ok(Some(n))
        } else {
            Ok(None) // a name like Mon, left to the cron crate
        }
    };
    let cron_day = |n: u32| if n == 0 || n == 7 { 1 } else { n + 1 };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step_suffix = step.map(|s| format!("/{s}")).unwrap_or_default();
        match range.split_once('-') {
            Some((a, b)) => match (number(a)?, number(b)?) {
                (Some(a), Some(b)) => {
                    if a > b {
                        return Err(FieldProblem::WeekdaysBackwards(item.to_string()));
                    }
                    if b == 7 && a > 0 && step.is_none() {
                        // 5-7 is Fri, Sat, Sun: Sunday wraps to the crate's 1.
                        out.push(format!("{}-7", cron_day(a)));
                        out.push("1".into());
                    } else if b == 7 {
                        out.push(format!("1-7{step_suffix}"));
                    } else {
                        out.push(format!("{}-{}{step_suffix}", cron_day(a), cron_day(b)));
                    }
                }
                _ => out.push(item.to_string()),
            },
            None => match number(range)? {
                Some(n) => out.push(format!("{}{step_suffix}", cron_day(n))),
                None => out.push(item.to_string()),
            },
        }
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Utc, Weekday};

    fn next(expr: &str, from: &str) -> String {
        let from: DateTime<Utc> = from.parse().unwrap();
        CronSchedule::parse(expr).unwrap().next_after(&from).unwrap().format("%a %Y-%m-%d %H:%M").to_string()
    }

    #[test]
    fn crontab_weekdays_mean_what_crontab_means() {
        // 2026-11-22 is a Sunday.
        assert_eq!(next("0 8 * * 1-5", "2026-11-22T12:00:00Z"), "Mon 2026-11-23 08:00");
        assert_eq!(next("0 8 * * 0", "2026-11-23T12:00:00Z"), "Sun 2026-11-29 08:00");
        assert_eq!(next("0 8 * * 7", "2026-11-23T12:00:00Z"), "Sun 2026-11-29 08:00");
        assert_eq!(next("0 8 * * 5-7", "2026-11-23T12:00:00Z"), "Fri 2026-11-27 08:00");
        assert_eq!(next("0 8 * * Mon-Fri", "2026-11-22T12:00:00Z"), "Mon 2026-11-23 08:00");
        assert_eq!(next("30 0 9 * * 1", "2026-11-22T12:00:00Z"), "Mon 2026-11-23 09:00");
    }

    #[test]
    fn day_of_month_or_day_of_week_as_in_crontab() {
        // The 1st of the month *or* any Monday.
        let s = CronSchedule::parse("0 9 1 * 1").unwrap();
        let mut at: DateTime<Utc> = "2026-11-24T00:00:00Z".parse().unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            at = s.next_after(&at).unwrap();
            seen.push((at.day(), at.weekday()));
        }
        assert_eq!(seen, [(30, Weekday::Mon), (1, Weekday::Tue), (7, Weekday::Mon)]);
    }

    /// Expression, zone, after (UTC) → next fire time (local, with offset), checked by
    /// hand against crontab's semantics.
    #[test]
    fn next_fire_times_in_a_zone_across_dst() {
        let table: &[(&str, &str, &str, &str)] = &[
            // Plain days in New York (UTC-5 in winter, UTC-4 in summer).
            ("0 8 * * 1-5", "America/New_York", "2026-11-21T12:00:00Z", "2026-11-23 08:00 -05:00"),
            ("0 8 * * *", "America/New_York", "2026-07-01T13:00:00Z", "2026-07-02 08:00 -04:00"),
            // Spring forward, 2026-03-08: 02:00 → 03:00. 02:30 does not exist: runs once at 03:00.
            ("30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-08 03:00 -04:00"),
            ("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09 02:30 -04:00"),
            // Fall back, 2026-11-01: 01:00–02:00 happens twice. 01:30 runs once, the first time.
            ("30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01 01:30 -04:00"),
            ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02 01:30 -05:00"),
            // Hourly across the repeated hour: 01:00 and 02:00 once each (01:00 EDT, then 02:00 EST).
            ("0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01 02:00 -05:00"),
            // Berlin's spring forward, 2026-03-29: 02:00 → 03:00.
            ("15 2 * * 0", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29 03:00 +02:00"),
            // Day-of-month OR day-of-week: the 1st, or a Monday.
            ("0 9 1 * 1", "Europe/Berlin", "2026-11-24T12:00:00Z", "2026-11-30 09:00 +01:00"),
            // Sunday as 7.
            ("0 18 * * 7", "Asia/Tokyo", "2026-11-23T00:00:00Z", "2026-11-29 18:00 +09:00"),
        ];
        for (expr, zone, after, want) in table {
            let tz: Tz = zone.parse().unwrap();
            let after: DateTime<Utc> = after.parse().unwrap();
            let got = CronSchedule::parse(expr).unwrap().next_in(tz, after).unwrap();
            assert_eq!(
                got.with_timezone(&tz).format("%Y-%m-%d %H:%M %:z").to_string(),
                *want,
                "{expr} in {zone} after {after}"
            );
        }
    }

    #[test]
    fn a_repeated_hour_fires_a_job_once() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let s = CronSchedule::parse("30 1 * * *").unwrap();
        let mut at: DateTime<Utc> = "2026-10-31T12:00:00Z".parse().unwrap();
        let mut fires = Vec::new();
        for _ in 0..3 {
            at = s.next_in(tz, at).unwrap();
            fires.push(at.with_timezone(&tz).format("%m-%d %H:%M").to_string());
        }
        assert_eq!(fires, ["11-01 01:30", "11-02 01:30", "11-03 01:30"]);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        assert!(CronSchedule::parse("0 8 * *").unwrap_err().to_string().contains("has 4 fields"));
        assert!(CronSchedule::parse("0 8 * * 8").unwrap_err().to_string().contains("out of range"));
        assert!(CronSchedule::parse("61 8 * * *").unwrap_err().to_string().contains("minute 61 is out of 0–59"));
        assert!(CronSchedule::parse("0 24 * * *").unwrap_err().to_string().contains("hour 24 is out of 0–23"));
        assert!(CronSchedule::parse("0 8 0 * *").unwrap_err().to_string().contains("day of month 0 is out of 1–31"));
        assert!(CronSchedule::parse("0 8 1 13 *").unwrap_err().to_string().contains("month 13 is out of 1–12"));
        assert!(CronSchedule::parse("60 0 8 * * *").unwrap_err().to_string().contains("second 60 is out of 0–59"));
        assert!(CronSchedule::parse("*/0 8 * * *").unwrap_err().to_string().contains("step"));
        assert!(CronSchedule::parse("0 8 * * 5-2").unwrap_err().to_string().contains("backwards"));
    }

    #[test]
    fn a_bad_field_is_named_with_its_range() {
        let err = CronSchedule::parse("61 8 * * *").unwrap_err();
        assert_eq!(
            err,
            CronError::Field {
                text: "61 8 * * *".into(),
                problem: FieldProblem::OutOfRange { field: "minute", number: "61".into(), low: 0, high: 59 }
            }
        );
        assert_eq!(err.to_string(), "cron schedule \"61 8 * * *\": minute 61 is out of 0–59");
        assert!(matches!(CronSchedule::parse("0 8 * * */x"), Err(CronError::Invalid { .. })));
    }

    #[test]
    fn a_schedule_that_can_never_fire_is_refused() {
        assert!(CronSchedule::parse("0 0 31 2 *").unwrap_err().to_string().contains("never fires"));
        assert!(CronSchedule::parse("0 0 31 4,6 *").unwrap_err().to_string().contains("never fires"));
        // Once every four years is still a schedule.
        assert!(CronSchedule::parse("0 0 29 2 *").is_ok());
        // crontab's "either": 31 February never comes, but Mondays do.
        assert!(CronSchedule::parse("0 0 31 2 1").is_ok());
    }
}
