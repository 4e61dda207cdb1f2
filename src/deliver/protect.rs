//! Quiet hours and business days in the recipient's time zone: when a customer-facing
//! email may go out. Outside the window a send is deferred to the next allowed instant,
//! never dropped.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::config::Protections;

/// `None` when `now` is inside the sending window in `tz`; otherwise the next instant that
/// is (the end of the quiet hours on the next business day).
pub fn next_window(p: &Protections, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if p.business_days.is_empty() {
        return None;
    }
    let local = now.with_timezone(&tz).naive_local();
    if allowed(p, local) {
        return None;
    }
    // Candidates: the end of the quiet hours (or midnight) on each of the next 8 days.
    let open = p.quiet_hours.map_or(NaiveTime::MIN, |(_, end)| end);
    (0..=8)
        .map(|d| (local.date() + Duration::days(d)).and_time(open))
        .chain(std::iter::once(local.date().and_time(NaiveTime::MIN) + Duration::days(1)))
        .filter(|c| *c > local && allowed(p, *c))
        .min()
        .map(|c| resolve(tz, c))
}

/// Why `now` is outside the window in `tz`, in words for the outbox history.
pub fn why_not(p: &Protections, tz: Tz, now: DateTime<Utc>) -> String {
    let local = now.with_timezone(&tz).naive_local();
    if !business_day(p, local.weekday()) {
        format!("{} is not a business day in {tz}", local.format("%A"))
    } else {
        let (start, end) = p.quiet_hours.unwrap_or_default();
        format!(
            "{} in {tz} is in quiet hours ({}–{})",
            local.format("%H:%M"),
            start.format("%H:%M"),
            end.format("%H:%M")
        )
    }
}

fn allowed(p: &Protections, local: NaiveDateTime) -> bool {
    business_day(p, local.weekday()) && !quiet(p, local.time())
}

fn business_day(p: &Protections, d: Weekday) -> bool {
    p.business_days.contains(&d)
}

fn quiet(p: &Protections, t: NaiveTime) -> bool {
    match p.quiet_hours {
        None => false,
        Some((start, end)) if start > end => t >= start || t < end,
        Some((start, end)) => t >= start && t < end,
    }
}

/// A local time as an instant; in a DST gap, the first instant after it.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => resolve(tz, local + Duration::minutes(30)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn quiet_hours_and_weekends_defer_to_the_next_window_in_the_recipients_zone() {
        let p = Protections::default(); // 20:00–08:00, Monday to Friday
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Tuesday 10:00 in Berlin: send now.
        assert_eq!(next_window(&p, berlin, at("2026-11-24T09:00:00Z")), None);
        // Tuesday 22:30 in Berlin: Wednesday 08:00 Berlin.
        assert_eq!(next_window(&p, berlin, at("2026-11-24T21:30:00Z")), Some(at("2026-11-25T07:00:00Z")));
        // Wednesday 06:00 in Berlin (05:00 UTC): 08:00 the same day.
        assert_eq!(next_window(&p, berlin, at("2026-11-25T05:00:00Z")), Some(at("2026-11-25T07:00:00Z")));
        // Friday 21:00 in Berlin: Monday 08:00.
        assert_eq!(next_window(&p, berlin, at("2026-11-27T20:00:00Z")), Some(at("2026-11-30T07:00:00Z")));
        // Saturday noon: Monday 08:00.
        assert_eq!(next_window(&p, berlin, at("2026-11-28T11:00:00Z")), Some(at("2026-11-30T07:00:00Z")));
        assert_eq!(
            why_not(&p, berlin, at("2026-11-24T21:30:00Z")),
            "22:30 in Europe/Berlin is in quiet hours (20:00–08:00)"
        );
        assert_eq!(why_not(&p, berlin, at("2026-11-28T11:00:00Z")), "Saturday is not a business day in Europe/Berlin");
        // The same instant is a Tuesday afternoon in New York: send now.
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(next_window(&p, ny, at("2026-11-24T21:30:00Z")), None);
    }

    #[test]
    fn no_quiet_hours_means_any_hour_of_a_business_day() {
        let p = Protections { quiet_hours: None, ..Protections::default() };
        let tz: Tz = "UTC".parse().unwrap();
        assert_eq!(next_window(&p, tz, at("2026-11-24T23:30:00Z")), None);
        assert_eq!(next_window(&p, tz, at("2026-11-28T23:30:00Z")), Some(at("2026-11-30T00:00:00Z")));
    }
}
