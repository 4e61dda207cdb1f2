//! Time as the pass counts it: whole days on the calendar of the configured zone, shorter
//! spans as instants. One place for it, so a timer's wake, the pass that acts on it and
//! the tools that dry-run it agree to the second.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::lang::duration::Span;

const DAY: i64 = 24 * 60;

/// The years a pass may stand for: a clock outside them is a typo, not a plan (and keeps
/// every date the pass computes from it, due dates and windows, far from the calendar's
/// ends).
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=2099;

/// Whether a pass may run at `at`: an error in words when its year is outside [`YEARS`].
pub fn check_moment(at: DateTime<Utc>) -> Result<(), String> {
    use chrono::Datelike;
    if YEARS.contains(&at.year()) {
        Ok(())
    } else {
        Err(format!(
            "{} is outside the years Keel runs passes for ({}–{})",
            at.format("%Y-%m-%d"),
            YEARS.start(),
            YEARS.end()
        ))
    }
}

/// Whether `span` has passed since `since` at `now` (`date`: `now`'s day in `tz`). Whole
/// days count on the calendar, so a daily 08:00 pass acts on the seventh day of `7d` even
/// across a DST change, or when last week's tick ran a few seconds late.
pub fn elapsed(tz: Tz, now: DateTime<Utc>, date: NaiveDate, since: DateTime<Utc>, span: Span) -> bool {
    if span.minutes() % DAY == 0 {
        let since_day = since.with_timezone(&tz).date_naive();
        (date - since_day).num_days() >= span.minutes() / DAY
    } else {
        now >= since + span.to_chrono()
    }
}

/// The first instant at which [`elapsed`]`(since, span)` holds: for whole days, the start
/// of the day in `tz` (the first instant of that local date, also when a DST change skips
/// its midnight).
pub fn due_at(tz: Tz, since: DateTime<Utc>, span: Span) -> DateTime<Utc> {
    if span.minutes() % DAY != 0 {
        return since + span.to_chrono();
    }
    let day = since.with_timezone(&tz).date_naive();
    match day.checked_add_signed(Duration::days(span.minutes() / DAY)) {
        Some(due) => start_of_day(tz, due),
        // Past the end of the calendar: never.
        None => DateTime::<Utc>::MAX_UTC,
    }
}

/// The first instant of `day` in `tz`. A zone whose clocks skip midnight starts the day
/// at the end of the gap: the first minute that exists.
pub fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    (0..DAY)
        .find_map(|m| tz.from_local_datetime(&(midnight + Duration::minutes(m))).earliest())
        .map_or_else(|| Utc.from_utc_datetime(&midnight), |t| t.with_timezone(&Utc))
}

/// The last second of `day` in `tz`: "a day" for `simulate --at DATE` and `keel test`,
/// everything due by then decided in one pass, as the daemon would after downtime.
pub fn end_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    match day.succ_opt() {
        Some(next) => start_of_day(tz, next) - Duration::seconds(1),
        // The calendar's last day: its last second in UTC.
        None => Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN)) + Duration::seconds(24 * 3600 - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn span(text: &str) -> Span {
        Span::parse(text).unwrap()
    }

    #[test]
    fn a_timer_is_due_exactly_when_the_pass_counts_its_span_elapsed() {
        // New York: 7 days after a Saturday evening across the November DST change is
        // the next Saturday's local midnight (05:00 UTC, not 04:00).
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(due_at(ny, at("2026-10-31T22:00:00Z"), span("7d")), at("2026-11-07T05:00:00Z"));
        // Short spans are plain instants.
        assert_eq!(due_at(ny, at("2026-10-31T22:00:00Z"), span("90m")), at("2026-10-31T23:30:00Z"));
        // Santiago skips 00:00–01:00 on its spring change (2026-09-06): the day starts at 01:00.
        let scl: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(due_at(scl, at("2026-09-05T12:00:00Z"), span("1d")), at("2026-09-06T04:00:00Z"));
        // And the pass agrees with the wake: not elapsed a second before, elapsed at it.
        let due = at("2026-11-07T05:00:00Z");
        let day = |t: DateTime<Utc>| t.with_timezone(&ny).date_naive();
        let before = due - Duration::seconds(1);
        assert!(!elapsed(ny, before, day(before), at("2026-10-31T22:00:00Z"), span("7d")));
        assert!(elapsed(ny, due, day(due), at("2026-10-31T22:00:00Z"), span("7d")));
    }

    #[test]
    fn a_day_ends_one_second_before_the_next_one_starts_in_its_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(end_of_day(ny, "2026-11-22".parse().unwrap()), at("2026-11-23T04:59:59Z"));
        // The DST day is 25 hours long.
        assert_eq!(end_of_day(ny, "2026-11-01".parse().unwrap()), at("2026-11-02T04:59:59Z"));
        assert_eq!(start_of_day(ny, "2026-11-01".parse().unwrap()), at("2026-11-01T04:00:00Z"));
        // The calendar's ends do not overflow.
        assert!(end_of_day(ny, NaiveDate::MAX) > at("2026-01-01T00:00:00Z"));
        let near_the_end = DateTime::<Utc>::MAX_UTC - Duration::days(2);
        assert_eq!(due_at(chrono_tz::UTC, near_the_end, span("3650d")), DateTime::<Utc>::MAX_UTC);
    }
}
