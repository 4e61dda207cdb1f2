//! Cron schedules against croniter itself: for a table of the schedules CS teams write
//! (`L`, `DOW#N`, `DOW#L`, weekdays, steps, 29 February, jobs in the hours DST skips and
//! repeats), Keel's next fire times in America/New_York from several start instants must
//! be croniter's. croniter (pinned in scripts/test, which installs it) runs in a real
//! Python process; without python3 or croniter this test fails, it never skips.
//!
//! The one deliberate difference: croniter runs a job whose wall-clock time comes twice on
//! fall-back day (01:30) at both occurrences; Keel runs it once, at the first (a playbook
//! run twice in an hour is a customer emailed twice). The second occurrences are taken out
//! of croniter's list before comparing, and the test checks that this happened only there.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;
use keel::lang::schedule::CronSchedule;

const ZONE: &str = "America/New_York";

const SCHEDULES: &[&str] = &[
    "0 9 * * 1#1",      // the first Monday of the month
    "0 9 L * *",        // the last day of the month
    "30 8 * * 5#L",     // the last Friday
    "0 9 1,L * *",      // the first and the last day
    "0 9 15-L * *",     // the 15th to the end of the month
    "0 9 L * 5",        // the last day, or any Friday (crontab's either)
    "0 10 * * 1#2,4#3", // the second Monday and the third Thursday
    "0 12 * * 1#5",     // a fifth Monday (months without one are passed over)
    "0 2 * * *",        // in the hour skipped on spring-forward day
    "30 2 * * *",
    "30 1 * * *", // in the hour repeated on fall-back day
    "0 9 * * 1-5",
    "*/15 * * * *",
    "0 0 29 2 *",
    "0 8 1 * 1",  // the 1st, or any Monday
    "0 18 * * 7", // Sunday as 7
];

/// UTC instants: an ordinary day, the eves of both DST changes in New York (2026-03-08,
/// 2026-11-01), the minutes just before each change, and a fire time itself (the first
/// Monday of January 2027 at 09:00 EST: "after" is strict).
const STARTS: &[&str] = &[
    "2026-01-30T17:00:00Z",
    "2026-03-07T12:00:00Z",
    "2026-03-08T06:50:00Z",
    "2026-10-31T12:00:00Z",
    "2026-11-01T05:40:00Z",
    "2027-01-04T14:00:00Z",
];

const FIRES: usize = 5;
/// croniter is asked for more, to leave `FIRES` once its second runs in a repeated hour
/// are taken out (`*/15` has four in that hour).
const ASKED: usize = FIRES + 8;

fn croniter(cases: &[(&str, &str)]) -> Vec<Vec<DateTime<Utc>>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/croniter/next.py");
    let input: Vec<(&str, &str, &str, usize)> = cases.iter().map(|(s, at)| (*s, ZONE, *at, ASKED)).collect();
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 is needed to compare with croniter ({e}): run the tests with scripts/test")
        });
    child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "croniter could not be run ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let times: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    times.into_iter().map(|ts| ts.iter().map(|t| t.parse().unwrap()).collect()).collect()
}

fn local(tz: Tz, ts: &[DateTime<Utc>]) -> Vec<String> {
    ts.iter().map(|t| t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %:z").to_string()).collect()
}

/// Whether `t` is the second occurrence of a wall-clock time in `tz` (fall-back day).
fn second_of_a_repeated_time(tz: Tz, t: DateTime<Utc>) -> bool {
    matches!(tz.from_local_datetime(&t.with_timezone(&tz).naive_local()), LocalResult::Ambiguous(_, later) if later == t)
}

#[test]
fn next_fire_times_are_croniters_in_a_dst_zone() {
    let tz: Tz = ZONE.parse().unwrap();
    let cases: Vec<(&str, &str)> = SCHEDULES.iter().flat_map(|s| STARTS.iter().map(move |at| (*s, *at))).collect();
    let theirs = croniter(&cases);
    let mut failures = Vec::new();
    let mut repeated = Vec::new();
    for ((schedule, start), theirs) in cases.iter().zip(theirs) {
        let cron = CronSchedule::parse(schedule).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        let mut at: DateTime<Utc> = start.parse().unwrap();
        let mut ours = Vec::new();
        for _ in 0..FIRES {
            at = cron.next_in(tz, at).unwrap_or_else(|| panic!("{schedule} from {start} has no next fire time"));
            ours.push(at);
        }
        let (twice, once): (Vec<_>, Vec<_>) = theirs.into_iter().partition(|t| second_of_a_repeated_time(tz, *t));
        repeated.extend(twice.iter().map(|t| format!("{schedule} {}", local(tz, &[*t])[0])));
        let theirs = &once[..FIRES];
        if ours != theirs {
            failures.push(format!(
                "{schedule:?} after {start}:\n  keel     {:?}\n  croniter {:?}",
                local(tz, &ours),
                local(tz, theirs)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from croniter:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The difference taken out is only croniter's second run in the repeated hour, and
    // it did come up: both schedules that fire in that hour.
    assert!(repeated.iter().all(|r| r.contains("2026-11-01 01:") && r.ends_with("-05:00")), "{repeated:#?}");
    assert!(repeated.iter().any(|r| r.starts_with("30 1 * * *")), "{repeated:#?}");
    assert!(repeated.iter().any(|r| r.starts_with("*/15 * * * *")), "{repeated:#?}");
}

/// What `keel check` and the config loader show for the new syntax's mistakes: the
/// schedule as written and the field, never an internal form.
#[test]
fn mistakes_in_the_new_syntax_are_named_in_the_users_words() {
    let cases = [
        (
            "0 9 * * 1#6",
            "cron schedule \"0 9 * * 1#6\": day of week \"1#6\": `#` is followed by 1–5 (the first to fifth such weekday of the month) or L (the last)",
        ),
        ("0 9 * * 8#1", "cron schedule \"0 9 * * 8#1\": day of week 8 is out of 0–7"),
        (
            "0 9 * * L",
            "cron schedule \"0 9 * * L\": day of week \"L\": L is the last day of the month in day-of-month; for the last Friday of the month write 5#L",
        ),
        (
            "0 9 L-3 * *",
            "cron schedule \"0 9 L-3 * *\": day of month \"L-3\": offsets from the last day are not supported; L alone is the last day of the month",
        ),
        (
            "0 9 1 * 1#1",
            "cron schedule \"0 9 1 * 1#1\": day of week \"1#1\" (a `#` day) cannot be combined with day of month \"1\"; set the day of month to *",
        ),
        (
            "0 9 * * 1#1,3",
            "cron schedule \"0 9 * * 1#1,3\": day of week \"1#1,3\" mixes `#` days with plain weekdays; use one or the other",
        ),
        ("61 9 * * *", "cron schedule \"61 9 * * *\": minute 61 is out of 0–59"),
    ];
    for (schedule, message) in cases {
        assert_eq!(CronSchedule::parse(schedule).unwrap_err().to_string(), message);
    }
}
