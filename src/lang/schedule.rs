//! Cron schedules as CS Ops write them: crontab's five fields, plus the monthly cadences
//! croniter and Quartz-style schedulers accept (`L`, `DOW#N`, `DOW#L`).
//!
//! Accepted: 5 fields (`min hour dom month dow`) or 6 with seconds first. Each field is a
//! list of `*`, numbers, names (`Jan`, `Mon`), ranges (`1-5`, `Mon-Fri`) and steps
//! (`*/15`, `0-30/10`, `5/15` = from 5 every 15). Day-of-week follows crontab: 0–7 with 0
//! and 7 both Sunday. On top of crontab, with croniter's meaning:
//! - `L` in day-of-month is the month's last day (`1,L`, and `15-L` = the 15th to the end);
//! - `DOW#N` in day-of-week is the Nth such weekday of the month (`1#1` the first Monday,
//!   N 1–5; a month without a fifth Monday has no `1#5`), `DOW#L` the last (`5#L`; croniter
//!   spells it `L5`).
//!
//! Day-of-month and day-of-week both restricted means *either* matches, as in crontab and
//! croniter (`0 9 L * 5`: the last day and every Friday). A `#` day-of-week with a
//! restricted day-of-month is refused: croniter then silently ignores the day of month
//! (and fails when the two never coincide) and Quartz refuses it, so no reading of it is
//! one a user could rely on. Mixing `#` days with plain ones (`1#1,3`) is refused, as
//! croniter refuses it. So every schedule Keel accepts fires when croniter says it does
//! (checked against croniter itself in the tests), except in a repeated DST hour, below.
//!
//! Why an evaluator of our own rather than the `cron` crate it used to wrap: the crate has
//! no `L` or `#`; it ANDs the day fields (crontab ORs them), numbers weekdays 1–7 from
//! Sunday, words its errors about its own six-field form ("Minutes must be less than
//! 59"), applies its own DST rules and ends in 2099. Computing `L`/`#` on top of it would
//! have meant re-parsing the day fields anyway, keeping two schedules for the OR, and
//! translating its errors back; what would remain of the crate is stepping through three
//! sets of seconds, minutes and hours. So each field is parsed here into a set of values
//! and a schedule is matched day by day: every message names the field and quotes what
//! the user wrote.
//!
//! Refused at parse, with the field named: a number out of its field's range ("minute 61
//! is out of 0–59"), a zero step, a backwards range, an unknown name, `L` where it means
//! nothing, and a schedule that can never fire (`0 0 31 2 *`), which would otherwise load
//! and silently do nothing.
//!
//! Time zones: [`CronSchedule::next_in`] evaluates the schedule on the zone's wall clock.
//! On a DST change a job whose local time does not exist (02:30 on spring-forward day)
//! runs once at the next existing instant (as croniter), and a job in the repeated hour
//! (01:30 on fall-back day) runs once, at its first occurrence, where croniter runs it
//! twice: a playbook run twice in an hour is a customer emailed twice.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Why a cron schedule was refused; `text` is the schedule as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "cron schedule {text:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (with seconds first)"
    )]
    FieldCount { text: String, fields: usize },
    /// One field is wrong, named with its range.
    #[error("cron schedule {text:?}: {problem}")]
    Field { text: String, problem: FieldProblem },
    #[error("cron schedule {text:?} never fires: no day matches its day of month and month (like 31 February)")]
    NeverFires { text: String },
}

/// What is wrong with one field of a cron schedule. `field` is the field's name
/// ("minute", "day of month"); `item` is the comma-separated part as written.
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
    #[error("{field} {item:?} is not {expected}")]
    NotAValue { field: &'static str, item: String, expected: &'static str },
    #[error(
        "day of week {item:?}: `#` is followed by 1–5 (the first to fifth such weekday of the month) or L (the last)"
    )]
    BadNth { item: String },
    #[error("day of week {item:?}: `#` follows one weekday, like 1#1 (the first Monday)")]
    NthOfMany { item: String },
    #[error("day of week {item:?}: L is the last day of the month in day-of-month; for the last Friday of the month write 5#L")]
    LastInWeekday { item: String },
    #[error(
        "day of month {item:?}: offsets from the last day are not supported; L alone is the last day of the month"
    )]
    LastOffset { item: String },
    #[error("day of week {field:?} mixes `#` days with plain weekdays; use one or the other")]
    NthMixed { field: String },
    #[error("day of week {dow:?} (a `#` day) cannot be combined with day of month {dom:?}; set the day of month to *")]
    NthWithDayOfMonth { dom: String, dow: String },
}

/// Which occurrence of a weekday in its month a `#` item names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nth {
    /// The first to fifth (1–5).
    Number(u32),
    /// The last.
    Last,
}

#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// As written.
    pub source: String,
    /// Bit n set: value n matches. Seconds and minutes 0–59, hours 0–23, days of month
    /// 1–31, months 1–12, weekdays 0–6 from Sunday.
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// `L` in day-of-month.
    last_day: bool,
    /// `DOW#N` / `DOW#L` items: (weekday 0–6 from Sunday, which one).
    nth: Vec<(u32, Nth)>,
    /// Both day fields restricted: either matching is enough (crontab's OR).
    either_day: bool,
}

const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far ahead a schedule is searched: every schedule that fires at all fires within
/// 28 years (the calendar's weekday/leap-year cycle), or 40 across a century's missing
/// 29 February (`1#5` in February), so fifty years without a match is a schedule that
/// never fires.
const SEARCH_DAYS: u32 = 50 * 366;

impl CronSchedule {
    pub fn parse(text: &str) -> Result<CronSchedule, CronError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(CronError::FieldCount { text: text.to_string(), fields: n }),
        };
        let (min, hour, dom, month, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
        let bad = |problem| CronError::Field { text: text.to_string(), problem };
        let seconds = parse_set("second", sec, 0, 59, &[], 0).map_err(bad)?;
        let minutes = parse_set("minute", min, 0, 59, &[], 0).map_err(bad)?;
        let hours = parse_set("hour", hour, 0, 23, &[], 0).map_err(bad)?;
        let (days, last_day) = parse_days_of_month(dom).map_err(bad)?;
        let months = parse_set("month", month, 1, 12, MONTHS, 1).map_err(bad)?;
        let (weekdays, nth) = parse_days_of_week(dow).map_err(bad)?;
        let restricted = |f: &str| f != "*" && f != "?";
        if !nth.is_empty() && restricted(dom) {
            return Err(bad(FieldProblem::NthWithDayOfMonth { dom: dom.to_string(), dow: dow.to_string() }));
        }
        let either_day = restricted(dom) && restricted(dow);
        let schedule = CronSchedule {
            source: text.to_string(),
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            last_day,
            nth,
            either_day,
        };
        let start = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date").and_time(NaiveTime::MIN);
        match schedule.next_local(start) {
            Some(_) => Ok(schedule),
            None => Err(CronError::NeverFires { text: text.to_string() }),
        }
    }

    /// The first fire time strictly after `after`, on `after`'s zone's wall clock (a
    /// local time that does not exist is passed over; in a repeated hour, the first).
    pub fn next_after<Z: TimeZone>(&self, after: &DateTime<Z>) -> Option<DateTime<Z>> {
        let tz = after.timezone();
        let mut local = after.naive_local();
        for _ in 0..10_000 {
            local = self.next_local(local)?;
            if let Some(t) = tz.from_local_datetime(&local).earliest() {
                if t > *after {
                    return Some(t);
                }
            }
        }
        None
    }

    /// The first fire time strictly after `after`, with the schedule read on `tz`'s wall
    /// clock (see the module header for DST).
    pub fn next_in(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Walk candidates in naive local time (no DST there), then place each on the
        // zone's timeline. Starting three hours back catches a local time that a gap
        // moves forward past `after`'s own wall clock.
        let mut local = after.with_timezone(&tz).naive_local() - Duration::hours(3);
        // Bounded: a schedule every second walks 10,800 candidates in those three hours.
        for _ in 0..100_000 {
            local = self.next_local(local)?;
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

    /// The fire times strictly after `after` and at or before `until`: how many, and the
    /// last. The same times [`CronSchedule::next_in`] gives one call at a time, found in
    /// one walk: counting a day of a per-second schedule's ticks visits each candidate
    /// once, where a `next_in` per tick re-walks three hours of candidates every time.
    pub fn count_in(&self, tz: Tz, after: DateTime<Utc>, until: DateTime<Utc>) -> (u64, Option<DateTime<Utc>>) {
        let (mut n, mut last) = (0u64, None::<DateTime<Utc>>);
        if until <= after {
            return (n, last);
        }
        let mut local = after.with_timezone(&tz).naive_local() - Duration::hours(3);
        let end = until.with_timezone(&tz).naive_local() + Duration::hours(3);
        while let Some(next) = self.next_local(local) {
            local = next;
            if local > end {
                break;
            }
            let at = match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => t,
                LocalResult::Ambiguous(first, _) => first,
                LocalResult::None => match first_after_gap(tz, local) {
                    Some(t) => t,
                    None => continue,
                },
            }
            .with_timezone(&Utc);
            // Candidates come in wall-clock order; a gap maps several onto one instant,
            // counted once, as `next_in` (strictly after the previous) would.
            if at > after && at <= until && last.is_none_or(|l| at > l) {
                n += 1;
                last = Some(at);
            }
        }
        (n, last)
    }

    /// The first matching wall-clock time strictly after `after`.
    fn next_local(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = after.date();
        let mut from = Some(after.time());
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                if let Some(t) = self.next_time(from) {
                    return Some(date.and_time(t));
                }
            }
            date = date.succ_opt()?;
            from = None;
        }
        None
    }

    /// The first time of day in the schedule strictly after `after` (from midnight
    /// inclusive when `None`).
    fn next_time(&self, after: Option<NaiveTime>) -> Option<NaiveTime> {
        let (h0, m0, s0) = match after {
            Some(t) => (t.hour(), t.minute(), t.second() + 1),
            None => (0, 0, 0),
        };
        for h in (h0..24).filter(|h| bit(self.hours, *h)) {
            let m_from = if h == h0 { m0 } else { 0 };
            for m in (m_from..60).filter(|m| bit(self.minutes, *m)) {
                let s_from = if h == h0 && m == m0 { s0 } else { 0 };
                if let Some(s) = (s_from..60).find(|s| bit(self.seconds, *s)) {
                    return NaiveTime::from_hms_opt(h, m, s);
                }
            }
        }
        None
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if !bit(self.months, date.month()) {
            return false;
        }
        let last = last_day_of_month(date);
        let by_month_day = bit(self.days, date.day()) || (self.last_day && date.day() == last);
        let weekday = date.weekday().num_days_from_sunday();
        let by_weekday = bit(self.weekdays, weekday)
            || self.nth.iter().any(|&(w, n)| {
                w == weekday
                    && match n {
                        Nth::Number(k) => (date.day() - 1) / 7 + 1 == k,
                        Nth::Last => date.day() + 7 > last,
                    }
            });
        if self.either_day {
            by_month_day || by_weekday
        } else {
            by_month_day && by_weekday
        }
    }
}

fn bit(set: u64, n: u32) -> bool {
    set & (1 << n) != 0
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (y, m) = if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.pred_opt()).map_or(31, |d| d.day())
}

/// The first existing instant after a local time that falls in a DST gap. Gaps start
/// and end on whole minutes, so stepping by minutes lands exactly on the gap's end.
fn first_after_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Tz>> {
    (1..=180).find_map(|m| tz.from_local_datetime(&(local + Duration::minutes(m))).earliest())
}

/// One field's comma-separated list as a set of values within `low..=high`. `names`
/// (lowercase, three letters) stand for `name_base`, `name_base + 1`, …
fn parse_set(
    field: &'static str,
    text: &str,
    low: u32,
    high: u32,
    names: &[&str],
    name_base: u32,
) -> Result<u64, FieldProblem> {
    let mut set = 0;
    for item in text.split(',') {
        for v in parse_item(field, item, low, high, names, name_base)? {
            set |= 1 << v;
        }
    }
    Ok(set)
}

/// One item (`*`, `5`, `Mon`, `1-5`, `*/15`, `0-30/10`, `5/15`) as its values.
fn parse_item(
    field: &'static str,
    item: &str,
    low: u32,
    high: u32,
    names: &[&str],
    name_base: u32,
) -> Result<Vec<u32>, FieldProblem> {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (item, None),
    };
    let step = match step {
        None => 1,
        Some(s) => match s.parse::<u32>() {
            Ok(0) => return Err(FieldProblem::ZeroStep { field, item: item.to_string() }),
            Ok(n) => n,
            Err(_) => return Err(FieldProblem::StepNotANumber { field, item: item.to_string() }),
        },
    };
    let value = |s: &str| -> Result<u32, FieldProblem> {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
            return match s.parse::<u32>() {
                Ok(n) if (low..=high).contains(&n) => Ok(n),
                _ => Err(FieldProblem::OutOfRange { field, number: s.to_string(), low, high }),
            };
        }
        let lower = s.to_ascii_lowercase();
        match names.iter().position(|n| *n == lower) {
            Some(i) => Ok(name_base + i as u32),
            None => Err(FieldProblem::NotAValue {
                field,
                item: item.to_string(),
                expected: if names.is_empty() {
                    "a number, a range (1-5) or a step (*/15)"
                } else {
                    "a number, a name (Jan, Mon), a range or a step"
                },
            }),
        }
    };
    let (a, b) = if range == "*" || (range == "?" && matches!(field, "day of month" | "day of week")) {
        (low, high)
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (value(a)?, value(b)?);
        if a > b {
            return Err(FieldProblem::Backwards { field, range: range.to_string() });
        }
        (a, b)
    } else {
        let a = value(range)?;
        (a, if item.contains('/') { high } else { a })
    };
    Ok((a..=b).step_by(step as usize).collect())
}

/// Day-of-month: the days 1–31, and whether `L` (the last day) is among them.
fn parse_days_of_month(text: &str) -> Result<(u64, bool), FieldProblem> {
    const FIELD: &str = "day of month";
    let (mut set, mut last) = (0, false);
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            last = true;
            continue;
        }
        let item_values = if let Some(from) = upper.strip_suffix("-L").filter(|f| !f.contains(['L', '/'])) {
            // `15-L`: the 15th to the last day, which is 15-31 in every month.
            parse_item(FIELD, &format!("{from}-31"), 1, 31, &[], 0).map_err(|e| match e {
                FieldProblem::NotAValue { field, expected, .. } => {
                    FieldProblem::NotAValue { field, item: item.to_string(), expected }
                }
                other => other,
            })?
        } else if upper.starts_with("L-") {
            return Err(FieldProblem::LastOffset { item: item.to_string() });
        } else if upper.contains('L') || upper.contains('W') {
            return Err(FieldProblem::NotAValue {
                field: FIELD,
                item: item.to_string(),
                expected: "a day 1–31, a range, a step, or L (the last day of the month)",
            });
        } else {
            parse_item(FIELD, item, 1, 31, &[], 0)?
        };
        for v in item_values {
            set |= 1 << v;
        }
    }
    Ok((set, last))
}

/// Day-of-week: the plain weekdays (0–6 from Sunday; 7 is Sunday too), and the `#` items.
fn parse_days_of_week(text: &str) -> Result<(u64, Vec<(u32, Nth)>), FieldProblem> {
    const FIELD: &str = "day of week";
    let (mut set, mut nth) = (0u64, Vec::new());
    for item in text.split(',') {
        if let Some((day, which)) = item.split_once('#') {
            if day.contains(['-', '/', '*', '?']) || day.is_empty() {
                return Err(FieldProblem::NthOfMany { item: item.to_string() });
            }
            let day = parse_item(FIELD, day, 0, 7, WEEKDAYS, 0)?[0] % 7;
            let which = match which {
                "L" | "l" => Nth::Last,
                n => match n.parse::<u32>() {
                    Ok(k) if (1..=5).contains(&k) => Nth::Number(k),
                    _ => return Err(FieldProblem::BadNth { item: item.to_string() }),
                },
            };
            nth.push((day, which));
        } else if item.contains(['L', 'l']) {
            return Err(FieldProblem::LastInWeekday { item: item.to_string() });
        } else {
            for v in parse_item(FIELD, item, 0, 7, WEEKDAYS, 0)? {
                set |= 1 << (v % 7);
            }
        }
    }
    if !nth.is_empty() && set != 0 {
        return Err(FieldProblem::NthMixed { field: text.to_string() });
    }
    Ok((set, nth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    #[test]
    fn counting_ticks_in_one_walk_finds_what_next_in_finds_one_at_a_time() {
        // Across both DST changes of New York and of Sydney, with schedules dense and sparse.
        let windows = [
            ("2026-03-07T20:00:00Z", "2026-03-09T12:00:00Z"),
            ("2026-10-31T20:00:00Z", "2026-11-02T12:00:00Z"),
            ("2026-04-04T10:00:00Z", "2026-04-05T20:00:00Z"),
            ("2026-10-03T10:00:00Z", "2026-10-04T20:00:00Z"),
        ];
        let schedules = ["*/7 * * * *", "30 2 * * *", "0 * * * *", "15 1,2,3 * * *", "10 */5 * * * *", "0 9 * * 1-5"];
        for tz in [chrono_tz::America::New_York, chrono_tz::Australia::Sydney, chrono_tz::UTC] {
            for expr in schedules {
                let cron = CronSchedule::parse(expr).unwrap();
                for (from, to) in windows {
                    let (from, to): (DateTime<Utc>, DateTime<Utc>) = (from.parse().unwrap(), to.parse().unwrap());
                    let (mut n, mut last, mut at) = (0u64, None, from);
                    while let Some(t) = cron.next_in(tz, at).filter(|t| *t <= to) {
                        n += 1;
                        last = Some(t);
                        at = t;
                    }
                    assert_eq!(cron.count_in(tz, from, to), (n, last), "{expr} in {tz} from {from} to {to}");
                }
            }
        }
    }

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
        assert!(CronSchedule::parse("0 8 * * 8").unwrap_err().to_string().contains("day of week 8 is out of 0–7"));
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
        assert_eq!(
            CronSchedule::parse("0 8 * * */x").unwrap_err().to_string(),
            "cron schedule \"0 8 * * */x\": the day of week step in \"*/x\" is not a number"
        );
    }

    /// Fire days from 2026-01-01 (UTC), as "Mon 01-05".
    fn days(expr: &str, count: usize) -> Vec<String> {
        let s = CronSchedule::parse(expr).unwrap();
        let mut at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        (0..count)
            .map(|_| {
                at = s.next_after(&at).unwrap();
                at.format("%a %m-%d").to_string()
            })
            .collect()
    }

    #[test]
    fn l_is_the_last_day_of_each_month() {
        assert_eq!(days("0 9 L * *", 4), ["Sat 01-31", "Sat 02-28", "Tue 03-31", "Thu 04-30"]);
        assert_eq!(days("0 9 1,L * *", 4), ["Thu 01-01", "Sat 01-31", "Sun 02-01", "Sat 02-28"]);
        assert_eq!(days("0 9 28-L 2 *", 2), ["Sat 02-28", "Sun 02-28"]);
        // 2028 is a leap year: February's last day is the 29th.
        let s = CronSchedule::parse("0 9 L 2 *").unwrap();
        let from: DateTime<Utc> = "2028-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(s.next_after(&from).unwrap().format("%m-%d").to_string(), "02-29");
        // With a restricted day of week, either is enough (as crontab and croniter).
        assert_eq!(days("0 9 L * 6", 5), ["Sat 01-03", "Sat 01-10", "Sat 01-17", "Sat 01-24", "Sat 01-31"]);
        assert_eq!(days("0 9 L * 5", 6)[4..], ["Fri 01-30", "Sat 01-31"]);
    }

    #[test]
    fn hash_is_the_nth_or_last_weekday_of_the_month() {
        assert_eq!(days("0 9 * * 1#1", 3), ["Mon 01-05", "Mon 02-02", "Mon 03-02"]);
        assert_eq!(days("0 9 * * Mon#1", 1), ["Mon 01-05"]);
        assert_eq!(days("0 9 * * 0#1", 2), days("0 9 * * 7#1", 2));
        assert_eq!(days("30 8 * * 5#L", 3), ["Fri 01-30", "Fri 02-27", "Fri 03-27"]);
        // Months without a fifth Monday are passed over.
        assert_eq!(days("0 9 * * 1#5", 3), ["Mon 03-30", "Mon 06-29", "Mon 08-31"]);
        assert_eq!(days("0 9 * * 1#1,5#L", 3), ["Mon 01-05", "Fri 01-30", "Mon 02-02"]);
        // A fifth Monday in February comes once in years; it is still a schedule.
        let s = CronSchedule::parse("0 9 * 2 1#5").unwrap();
        let from: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(s.next_after(&from).unwrap().format("%Y-%m-%d").to_string(), "2044-02-29");
    }

    #[test]
    fn mistakes_in_the_day_fields_are_named() {
        let err = |e: &str| CronSchedule::parse(e).unwrap_err().to_string();
        assert!(err("0 9 * * 1#6").contains("`#` is followed by 1–5"), "{}", err("0 9 * * 1#6"));
        assert!(err("0 9 * * 1#0").contains("`#` is followed by 1–5"));
        assert!(err("0 9 * * 8#1").contains("day of week 8 is out of 0–7"));
        assert!(err("0 9 * * 1-5#1").contains("`#` follows one weekday"));
        assert!(err("0 9 * * L").contains("for the last Friday of the month write 5#L"));
        assert!(err("0 9 * * L5").contains("write 5#L"));
        assert!(err("0 9 L-3 * *").contains("offsets from the last day are not supported"));
        assert!(err("0 9 15W * *").contains("day of month \"15W\" is not"));
        assert!(err("0 9 1 * 1#1").contains("cannot be combined with day of month \"1\""));
        assert!(err("0 9 * * 1#1,3").contains("mixes `#` days with plain weekdays"));
        assert!(err("0 9 * * Mox").contains("day of week \"Mox\" is not"));
        assert!(CronSchedule::parse("0 9 ? * *").is_ok());
        assert!(err("? 9 * * *").contains("minute \"?\" is not"));
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
