//! The daemon's logic driven by an injected clock: 400 simulated days over a book whose
//! health and renewal dates change, with a restart, downtime and a reload in the middle.
//! The real sled store on disk; the expected firings come from a small oracle written
//! straight from the trigger table (README, "What fires, exactly once"), not from the
//! evaluator's code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use keel::daemon::{Clock, Daemon, ManualClock, Reload};
use keel::lang::Loaded;
use keel::model::{AccountPatch, Decision, LedgerEntry};
use keel::store::Store;

use crate::util::Workspace;

const CONFIG: &str = "timezone: America/New_York\nevaluation:\n  schedule: \"0 8 * * *\"\n  workers: 2\n";

/// Health is the `score` metric, bands at the reference 80/60, no damping: the test
/// steers bands directly.
const HEALTH: &str = "bands: { green: 80, yellow: 60 }\ndamping: { margin: 0 }\ncategories:\n  all: { weight: 1, score: account.metrics.score }\n";

fn renewal(days: i64) -> String {
    format!(
        "id: renewal-{days}\nname: Renewal -{days}\ntrigger:\n  date: renewal_date\n  offset: -{days}d\nactions:\n  - task: {{ title: \"Renewal in {days} days: {{{{ account.name }}}}\", owner: \"{{{{ account.owner }}}}\" }}\n"
    )
}

const RED: &str = "id: red\nname: Red health\ntrigger:\n  condition: account.health.band == \"red\"\nactions:\n  - task: { title: \"Save plan: {{ account.name }}\", owner: \"{{ account.manager }}\" }\n";

fn workspace() -> Workspace {
    let ws = Workspace::new(CONFIG);
    ws.write("rules/health.yaml", HEALTH);
    for days in [90, 60, 30] {
        ws.write(&format!("playbooks/renewal-{days}.yaml"), &renewal(days));
    }
    ws.write("playbooks/red.yaml", RED);
    ws
}

fn daemon(ws: &Workspace, clock: &Arc<ManualClock>) -> Daemon {
    let config = ws.config();
    let store = Store::open(&config.store_dir()).unwrap();
    let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).unwrap_or_else(|e| panic!("{e:?}"));
    Daemon::new(config, store, loaded, clock.clone())
}

/// 08:00 in New York on day `d` of the run.
fn morning(start: NaiveDate, d: i64) -> DateTime<Utc> {
    let day = start + Duration::days(d);
    New_York.from_local_datetime(&day.and_hms_opt(8, 0, 0).unwrap()).unwrap().with_timezone(&Utc)
}

const ACCOUNTS: usize = 24;
const DAYS: i64 = 400;
/// The account with the scripted health episode yellow → red → green → red.
const EPISODE: usize = 0;

/// The health score of account `i` on day `d`: a scripted episode for [`EPISODE`], a
/// deterministic walk between the three bands for the others.
fn score(i: usize, d: i64) -> f64 {
    if i == EPISODE {
        return match d {
            0..=49 => 85.0,
            50..=99 => 70.0,
            100..=149 => 50.0,
            150..=199 => 90.0,
            _ => 50.0,
        };
    }
    let h = (i as i64 * 7919 + (d / 13) * 104_729) % 97;
    match h % 3 {
        0 => 90.0,
        1 => 70.0,
        _ => 45.0,
    }
}

/// Account `i`'s renewal date on day `d`: a first date spread over the run; the day after
/// a renewal passes, the CRM moves it a year on (a new occurrence for every offset).
fn renewal_on(start: NaiveDate, i: usize, d: i64) -> NaiveDate {
    let mut r = start + Duration::days(40 + 17 * i as i64);
    while start + Duration::days(d) > r {
        r += Duration::days(365);
    }
    r
}

fn patch(start: NaiveDate, i: usize, d: i64) -> AccountPatch {
    AccountPatch {
        id: format!("A{i:02}"),
        name: Some(format!("Account {i}")),
        owner: Some("csm@keel.example".into()),
        manager: Some("mgr@keel.example".into()),
        renewal_date: Some(renewal_on(start, i, d)),
        metrics: vec![("score".into(), score(i, d))],
        ..AccountPatch::default()
    }
}

fn fired(store: &Store) -> Vec<LedgerEntry> {
    store.ledger().map(Result::unwrap).filter(|e| e.decision == Decision::Fired).collect()
}

#[test]
fn four_hundred_days_fire_each_renewal_offset_and_each_red_episode_once() {
    let ws = workspace();
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let clock = Arc::new(ManualClock::new(morning(start, 0)));
    let mut keel = Some(daemon(&ws, &clock));
    // Days Keel is down: a restart on day 200, four days of downtime from day 250 (inside
    // the 7-day catch-up window) and ten from day 321 (longer than it).
    let down: BTreeSet<i64> = (250..254).chain(321..331).collect();
    let no_cancel = AtomicBool::new(false);
    let mut decided: BTreeMap<String, u64> = BTreeMap::new();

    for d in 0..DAYS {
        clock.set(morning(start, d));
        // The CRM sync happens whether or not Keel evaluates that day.
        let patches: Vec<AccountPatch> = (0..ACCOUNTS).map(|i| patch(start, i, d)).collect();
        if down.contains(&d) {
            keel = None;
            let store = Store::open(&ws.config().store_dir()).unwrap();
            store.upsert_accounts(patches, clock.now()).unwrap();
            store.flush().unwrap();
            continue;
        }
        if d == 200 || d == 254 || d == 331 {
            keel = None; // the store is closed ...
        }
        let k = keel.get_or_insert_with(|| daemon(&ws, &clock)); // ... and reopened
        k.store().upsert_accounts(patches, clock.now()).unwrap();
        if d == 300 {
            // CS Ops edit the red playbook (a new title) while the daemon runs.
            ws.write("playbooks/red.yaml", &RED.replace("Save plan:", "Save plan now:"));
            assert!(matches!(k.reload_if_changed(), Reload::Applied));
        }
        let report = k.tick(&no_cancel).unwrap().report.expect("the daily 08:00 tick is due");
        for (id, s) in &report.playbooks {
            *decided.entry(id.clone()).or_default() += s.fired;
        }
        // Nothing is due again at the same moment.
        assert!(k.tick(&no_cancel).unwrap().report.is_none(), "day {d}: a second pass at the same tick");
    }
    let keel = keel.unwrap();
    let fired = fired(keel.store());
    let fired_or_skipped: Vec<LedgerEntry> = keel.store().ledger().map(Result::unwrap).collect();
    let keel_skips = |id: &str, all: &[LedgerEntry]| {
        all.iter()
            .filter(|e| e.playbook == id && e.decision == Decision::Skipped)
            .map(|e| (e.account.clone(), e.occurrence.clone()))
            .collect()
    };

    // Oracle: renewal offsets. A pass day t fires (account, renewal R, offset) when the
    // account's renewal date is R on day t and R - offset ≤ t < R - offset + 7 days.
    let pass_days: Vec<i64> = (0..DAYS).filter(|d| !down.contains(d)).collect();
    let mut all_skips = 0;
    for offset in [90, 60, 30] {
        let mut expected = BTreeSet::new();
        for i in 0..ACCOUNTS {
            for &t in &pass_days {
                let r = renewal_on(start, i, t);
                let due = r - Duration::days(offset);
                let today = start + Duration::days(t);
                if due <= today && today - due < Duration::days(7) {
                    expected.insert((format!("A{i:02}"), format!("renewal_date={r}")));
                }
            }
        }
        let id = format!("renewal-{offset}");
        let got: Vec<(String, String)> =
            fired.iter().filter(|e| e.playbook == id).map(|e| (e.account.clone(), e.occurrence.clone())).collect();
        let got_set: BTreeSet<_> = got.iter().cloned().collect();
        assert_eq!(got.len(), got_set.len(), "{id}: an occurrence recorded twice");
        assert_eq!(got_set, expected, "{id}: fired vs. expected");
        assert_eq!(decided[&id], expected.len() as u64, "{id}: decided more often than recorded (a double fire)");
        // What fell due during the long downtime and is older than the window at the
        // restart is recorded as skipped, not silently dropped; so is what fell due
        // before the first pass.
        let mut expected_skips = BTreeSet::new();
        for i in 0..ACCOUNTS {
            let r = renewal_on(start, i, 331);
            let due = (r - Duration::days(offset) - start).num_days();
            // Down from day 321; at the restart on day 331 a due day ≤ 324 is ≥ 7 days old.
            if (321..=324).contains(&due) {
                expected_skips.insert((format!("A{i:02}"), format!("renewal_date={r}")));
            }
            // The first pass, too, records what fell due before it beyond the window:
            // no date goes by without a visible decision.
            let r0 = renewal_on(start, i, 0);
            if (r0 - Duration::days(offset) - start).num_days() <= -7 {
                expected_skips.insert((format!("A{i:02}"), format!("renewal_date={r0}")));
            }
        }
        let skips: BTreeSet<(String, String)> = keel_skips(&id, &fired_or_skipped);
        assert_eq!(skips, expected_skips, "{id}: skipped after the long downtime");
        all_skips += skips.len();
        // Every account renews at least once inside the 400 days: each offset fires for
        // more than one renewal date of the same account somewhere in the book.
        assert!(expected.len() > ACCOUNTS, "{id}: the run covers second renewals ({} firings)", expected.len());
    }

    assert!(all_skips >= 1, "the long downtime covers a due day exactly at the window's edge (7 days)");

    // Oracle: red on_enter. On each pass day, an account whose band is red and was not
    // red at its previous evaluation (or was never evaluated) enters a new episode.
    let band = |s: f64| {
        if s >= 80.0 {
            "green"
        } else if s >= 60.0 {
            "yellow"
        } else {
            "red"
        }
    };
    for i in 0..ACCOUNTS {
        let mut episodes = 0;
        let mut previous: Option<&str> = None;
        for &t in &pass_days {
            let now = band(score(i, t));
            if now == "red" && previous != Some("red") {
                episodes += 1;
            }
            previous = Some(now);
        }
        let id = format!("A{i:02}");
        let mut got: Vec<&str> =
            fired.iter().filter(|e| e.playbook == "red" && e.account == id).map(|e| e.occurrence.as_str()).collect();
        got.sort_by_key(|o| o.trim_start_matches("episode:").parse::<u32>().unwrap());
        let want: Vec<String> = (1..=episodes).map(|n| format!("episode:{n}")).collect();
        assert_eq!(got, want, "red episodes of {id}");
    }
    assert_eq!(decided["red"], fired.iter().filter(|e| e.playbook == "red").count() as u64);

    // The scripted episode: yellow → red (day 100) → green → red (day 200, the restart day).
    let episode: Vec<&LedgerEntry> = fired.iter().filter(|e| e.playbook == "red" && e.account == "A00").collect();
    assert_eq!(episode.len(), 2, "yellow → red → green → red fires red twice: {episode:#?}");
    let days: Vec<i64> =
        episode.iter().map(|e| (e.at.with_timezone(&New_York).date_naive() - start).num_days()).collect();
    assert_eq!(days, [100, 200]);
    assert_eq!(episode[0].values["health.band"], "red", "the entry records the value the trigger read");
    assert!(episode[1].actions[0].contains("Save plan: Account 0"), "{:?}", episode[1].actions);
    // The reload on day 300 took effect for later episodes (and re-fired nothing).
    let reloaded = morning(start, 300);
    let later: Vec<&LedgerEntry> = fired.iter().filter(|e| e.playbook == "red" && e.at > reloaded).collect();
    assert!(!later.is_empty() && later.iter().all(|e| e.actions[0].contains("Save plan now:")), "{later:#?}");
}

/// A daemon over a small workspace, stepped day by day at 08:00 New York.
struct Sim {
    ws: Workspace,
    clock: Arc<ManualClock>,
    keel: Option<Daemon>,
    start: NaiveDate,
}

impl Sim {
    fn new(playbooks: &[(&str, &str)]) -> Sim {
        let ws = Workspace::new(CONFIG);
        ws.write("rules/health.yaml", HEALTH);
        for (name, text) in playbooks {
            ws.write(&format!("playbooks/{name}.yaml"), text);
        }
        let start = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(); // a Monday
        let clock = Arc::new(ManualClock::new(morning(start, 0)));
        Sim { ws, clock, keel: None, start }
    }

    fn keel(&mut self) -> &Daemon {
        let (ws, clock) = (&self.ws, &self.clock);
        self.keel.get_or_insert_with(|| daemon(ws, clock))
    }

    fn at(&mut self, d: i64) -> &mut Sim {
        self.clock.set(morning(self.start, d));
        self
    }

    fn accounts(&mut self, patches: Vec<AccountPatch>) -> &mut Sim {
        let now = self.clock.now();
        self.keel().store().upsert_accounts(patches, now).unwrap();
        self
    }

    /// Runs what is due; returns the playbook firings this pass decided.
    fn tick(&mut self) -> u64 {
        let report = self.keel().tick(&AtomicBool::new(false)).unwrap().report;
        report.map_or(0, |r| r.fired())
    }

    /// Applies what the workspace's files now say, as the running daemon does.
    fn reload(&mut self) {
        self.keel();
        assert!(matches!(self.keel.as_mut().unwrap().reload_if_changed(), Reload::Applied));
    }

    /// Closes the store, as a stopped daemon does; the next call reopens it.
    fn restart(&mut self) -> &mut Sim {
        self.keel = None;
        self
    }

    fn ledger(&mut self) -> Vec<(String, String, Decision)> {
        self.keel().store().ledger().map(Result::unwrap).map(|e| (e.account, e.occurrence, e.decision)).collect()
    }
}

fn account(id: &str, metrics: &[(&str, f64)]) -> AccountPatch {
    AccountPatch {
        id: id.into(),
        owner: Some("csm@keel.example".into()),
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..AccountPatch::default()
    }
}

#[test]
fn while_true_refires_at_most_once_per_every() {
    let pb = "id: low\nname: Low logins\ntrigger:\n  condition: account.metrics.logins < 5\n  fire: while_true\n  every: 7d\nactions:\n  - task: { title: Low, owner: \"{{ account.owner }}\" }\n";
    let mut sim = Sim::new(&[("low", pb)]);
    let mut fired_on = Vec::new();
    for d in 0..30 {
        let logins = if (21..25).contains(&d) { 50.0 } else { 1.0 };
        if sim.at(d).accounts(vec![account("A", &[("score", 90.0), ("logins", logins)])]).tick() > 0 {
            fired_on.push(d);
        }
        if d == 10 {
            sim.restart();
        }
    }
    // True days 0–20 and 25–29: fires on day 0, then every 7 days while true; after the
    // false spell, again on day 25 (more than 7 days after day 14).
    assert_eq!(fired_on, [0, 7, 14, 25]);
}

#[test]
fn an_event_fires_once_per_event_id_even_late_or_twice() {
    let pb = "id: signup\nname: Welcome\ntrigger:\n  event: Signed Up\n  condition: event.properties.plan == \"pro\"\nactions:\n  - task: { title: Welcome, owner: \"{{ account.owner }}\" }\n";
    let mut sim = Sim::new(&[("signup", pb)]);
    sim.at(0).accounts(vec![account("A", &[("score", 90.0)])]);
    assert_eq!(sim.tick(), 0);
    let event = |id: &str, days_ago: i64, plan: &str, sim: &Sim| keel::model::Event {
        id: id.into(),
        account_id: "A".into(),
        contact_id: None,
        name: "Signed Up".into(),
        timestamp: sim.clock.now() - Duration::days(days_ago),
        properties: serde_json::json!({ "plan": plan }).as_object().unwrap().clone(),
    };
    // Day 3: an event from day 1 arrives late, with a duplicate of another id, a
    // non-matching plan, and one from before the 7-day window.
    sim.at(3);
    let events =
        vec![event("e-late", 2, "pro", &sim), event("e-free", 1, "free", &sim), event("e-old", 9, "pro", &sim)];
    sim.keel().store().upsert_events(events).unwrap();
    assert_eq!(sim.tick(), 1, "the late event fires; the free plan and the 9-day-old one do not");
    // Day 4: the same event arrives twice more (a Segment retry, a re-imported file).
    sim.at(4);
    let again = vec![event("e-late", 3, "pro", &sim), event("e-late", 3, "pro", &sim)];
    sim.keel().store().upsert_events(again).unwrap();
    assert_eq!(sim.restart().tick(), 0, "an event id fires once, across restarts");
    let ledger = sim.ledger();
    assert_eq!(ledger, [("A".to_string(), "event:e-late".to_string(), Decision::Fired)]);
}

#[test]
fn a_schedule_trigger_fires_once_per_tick_and_catches_up_only_its_latest_missed_tick() {
    let pb = "id: weekly\nname: Weekly check-in\ntrigger:\n  schedule: \"0 9 * * 1\"\nactions:\n  - task: { title: Check in, owner: \"{{ account.owner }}\" }\n";
    let mut sim = Sim::new(&[("weekly", pb)]);
    sim.at(0).accounts(vec![account("A", &[("score", 90.0)]), account("B", &[("score", 90.0)])]);
    // Monday 08:00: a first start is not downtime; the 09:00 tick comes later.
    assert_eq!(sim.tick(), 0);
    sim.clock.set(morning(sim.start, 0) + Duration::hours(1));
    assert_eq!(sim.tick(), 2, "each account at the tick");
    // The same tick again, after restarts and reloads: nothing.
    for _ in 0..3 {
        sim.restart();
        assert_eq!(sim.tick(), 0);
    }
    // Down from Tuesday to Wednesday two weeks later: two Mondays missed; only the latest
    // (two days ago, inside the catch-up window) runs.
    assert_eq!(sim.restart().at(16).tick(), 2);
    let ticks: BTreeSet<String> = sim.ledger().into_iter().map(|(_, o, _)| o).collect();
    let start = sim.start;
    let monday = |d: i64| format!("tick:{}", (morning(start, d) + Duration::hours(1)).to_rfc3339());
    assert_eq!(ticks, BTreeSet::from([monday(0), monday(14)]));
    // Down again until Thursday of the third week: Monday 21 is skipped, Monday 28 runs.
    assert_eq!(sim.restart().at(31).tick(), 2);
    let ticks: BTreeSet<String> = sim.ledger().into_iter().map(|(_, o, _)| o).collect();
    assert_eq!(ticks, BTreeSet::from([monday(0), monday(14), monday(28)]));
}

#[test]
fn a_sequence_advances_step_by_step_across_restarts_and_stops_on_exit() {
    let pb = r#"id: onboarding
name: Tech-touch onboarding
trigger:
  date: start_date
exit: account.metrics.logins >= 10
steps:
  - after: 0d
    actions: [ { task: { title: Welcome, owner: "{{ account.owner }}" } } ]
  - after: 3d
    when: account.metrics.logins < 1
    actions: [ { task: { title: Nudge, owner: "{{ account.owner }}" } } ]
  - after: 14d
    actions: [ { task: { title: Webinar, owner: "{{ account.owner }}" } } ]
"#;
    let mut sim = Sim::new(&[("onboarding", pb)]);
    let start = sim.start;
    let new_customer = |id: &str, logins: f64| AccountPatch {
        start_date: Some(start),
        ..account(id, &[("score", 90.0), ("logins", logins)])
    };
    // Q never logs in; R logs in a little by day 2 and a lot by day 10.
    for d in 0..20 {
        let r_logins = match d {
            0..=1 => 0.0,
            2..=9 => 3.0,
            _ => 12.0,
        };
        sim.at(d).accounts(vec![new_customer("Q", 0.0), new_customer("R", r_logins)]).tick();
        if d == 5 || d == 12 {
            sim.restart();
        }
    }
    let ledger: Vec<(String, String, Decision)> = sim.ledger();
    let occ = format!("start_date={start}");
    let row = |a: &str, o: String, d: Decision| (a.to_string(), o, d);
    assert_eq!(
        ledger,
        [
            row("Q", occ.clone(), Decision::Fired),
            row("Q", format!("{occ}/step:2"), Decision::Fired),
            row("Q", format!("{occ}/step:3"), Decision::Fired),
            row("R", occ.clone(), Decision::Fired),
            row("R", format!("{occ}/exit"), Decision::Exited),
            row("R", format!("{occ}/step:2"), Decision::Skipped),
        ]
    );
    // Q's steps came on their days: the nudge on day 3, the webinar on day 14 (calendar
    // days: across the DST change of 8 March, 08:00 is an hour earlier in UTC).
    let q: Vec<LedgerEntry> = sim.keel().store().ledger_of("Q").unwrap();
    let days: Vec<i64> = q.iter().map(|e| (e.at.with_timezone(&New_York).date_naive() - start).num_days()).collect();
    assert_eq!(days, [0, 3, 14]);
    assert!(q[1].actions[0].contains("Nudge"), "{:?}", q[1].actions);
    // Finished and exited sequences leave no state behind.
    let state = sim.keel().store().account_state("Q").unwrap();
    assert!(state.playbooks.get("onboarding").is_none_or(|p| p.sequences.is_empty()), "{state:?}");
}

#[test]
fn a_cancelled_pass_records_nothing_half_and_runs_again_at_the_next_start() {
    let mut sim = Sim::new(&[("red", RED)]);
    let book: Vec<AccountPatch> = (0..600).map(|i| account(&format!("R{i:03}"), &[("score", 40.0)])).collect();
    sim.at(0).accounts(book);
    // Shutdown arrived before the first chunk: nothing is decided, the tick stays due.
    let cancelled = sim.keel().tick(&AtomicBool::new(true)).unwrap().report.unwrap();
    assert!(cancelled.cancelled);
    assert_eq!((cancelled.fired(), sim.keel().store().ledger_count()), (0, 0));
    assert_eq!(sim.keel().store().last_tick("red").unwrap(), None, "an interrupted tick is not marked complete");
    // The next start runs it, every account once.
    assert_eq!(sim.restart().tick(), 600);
    assert_eq!(sim.keel().store().ledger_count(), 600);
}

#[test]
fn a_schedule_edited_while_running_counts_its_ticks_from_the_edit_not_as_missed() {
    let weekly = "id: check\nname: Check-in\ntrigger:\n  schedule: \"0 9 * * 1\"\nactions:\n  - task: { title: Check in, owner: \"{{ account.owner }}\" }\n";
    let mut sim = Sim::new(&[("check", weekly)]);
    sim.at(0).accounts(vec![account("A", &[("score", 90.0)])]);
    assert_eq!(sim.tick(), 0, "the baseline");
    let monday = morning(sim.start, 0);
    sim.clock.set(monday + Duration::hours(1));
    assert_eq!(sim.tick(), 1, "Monday 09:00");
    // 10:30: CS Ops make it every 15 minutes. The new schedule's 09:15 … 10:30 ticks were
    // never due: the daemon counts from the edit.
    let edited = monday + Duration::minutes(150);
    sim.clock.set(edited);
    sim.ws.write("playbooks/check.yaml", &weekly.replace("0 9 * * 1", "*/15 * * * *"));
    sim.reload();
    assert_eq!(sim.keel().store().last_tick("check").unwrap(), Some(edited));
    let at = monday + Duration::minutes(165);
    sim.clock.set(at);
    let k = sim.keel();
    let last = k.store().last_tick("check").unwrap();
    assert_eq!(
        k.plan(&k.loaded().set.playbooks[0], last, at),
        keel::daemon::Plan::Run { tick: at, previous: last, missed: 0 }
    );
    assert_eq!(sim.tick(), 1, "10:45, the new schedule's first tick");
    // An edit that leaves the schedule alone moves nothing.
    sim.ws.write(
        "playbooks/check.yaml",
        &weekly.replace("0 9 * * 1", "*/15 * * * *").replace("Check in", "Check in now"),
    );
    sim.clock.set(at + Duration::minutes(5));
    sim.reload();
    assert_eq!(sim.keel().store().last_tick("check").unwrap(), Some(at));
}

#[test]
fn a_schedule_tick_older_than_the_catch_up_window_is_skipped_and_said() {
    let pb = "id: monthly\nname: Monthly review\ntrigger:\n  schedule: \"0 9 1 * *\"\nactions:\n  - task: { title: Review, owner: \"{{ account.owner }}\" }\n";
    let mut sim = Sim::new(&[("monthly", pb)]);
    sim.at(0).accounts(vec![account("A", &[("score", 90.0)])]);
    assert_eq!(sim.tick(), 0, "a first start sets the baseline");
    // Down from 2 March until 20 April: the 1 April tick is 19 days old.
    let tick = sim.restart().at(49).keel().tick(&AtomicBool::new(false)).unwrap();
    assert!(tick.report.is_none(), "nothing runs late");
    assert!(tick.notes.iter().any(|n| n.contains("older than the 7-day catch-up window")), "{:?}", tick.notes);
    assert!(sim.ledger().is_empty());
    // The next tick (1 May, 09:00) fires as usual.
    sim.clock.set(morning(sim.start, 60) + Duration::hours(1));
    assert_eq!(sim.tick(), 1);
}

/// The API answers with the config in force: a reload (here a new time zone, as a new
/// unsubscribe secret or column mapping would be) reaches it without a restart, while its
/// own `api.*` settings stay those it started with.
#[test]
fn the_api_follows_a_reloaded_config() {
    let ws = workspace();
    let clock = Arc::new(ManualClock::new(morning(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(), 0)));
    let mut keel = daemon(&ws, &clock);
    let state = keel::api::ApiState::new(
        keel.config().clone(),
        keel.store().clone(),
        clock.clone(),
        keel.watch_loaded(),
        keel.counters.clone(),
        Arc::new(keel::deliver::DeliveryCounters::default()),
    )
    .follow_config(keel.watch_config());
    assert_eq!(state.config().timezone, New_York);
    ws.write("keel.yaml", &CONFIG.replace("America/New_York", "Europe/Berlin"));
    assert!(matches!(keel.reload_if_changed(), Reload::Applied));
    assert_eq!(state.config().timezone, chrono_tz::Europe::Berlin);
    assert_eq!(state.start_config.timezone, New_York, "what it started with is kept for api.*");
}
