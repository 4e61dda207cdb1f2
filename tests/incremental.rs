//! Incremental evaluation fires exactly what a full pass would: two daemons, one with
//! `evaluation.incremental: false`, fed the same syncs on the same clock, hour by hour
//! over two weeks (across the end of daylight saving time in New York), with a restart,
//! 30 hours of downtime and a playbook edited midway. Every kind of trigger and timer is
//! in play: `on_enter`, `while_true` in hours and in days, date triggers with an offset
//! and a catch-up window, a sequence with `when` and `exit`, events (one stamped ahead of
//! the clock), a schedule trigger, a playbook that reads the date on its own daily
//! schedule, and contacts moving between accounts. The ledgers, account states and
//! outboxes must be equal, and the incremental daemon must have evaluated far fewer
//! accounts — otherwise the test proves nothing.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keel::daemon::{Daemon, ManualClock, Reload};
use keel::lang::Loaded;
use keel::model::{AccountPatch, ContactPatch, Decision, Event, LedgerEntry};
use keel::store::Store;

use crate::util::Workspace;

const CONFIG: &str = "timezone: America/New_York\nevaluation:\n  schedule: \"0 * * * *\"\n  workers: 2\n";
const FULL: &str = "  incremental: false\n";

const HEALTH: &str = "bands: { green: 80, yellow: 60 }\ndamping: { margin: 0 }\ncategories:\n  all: { weight: 1, score: account.metrics.score }\n";

const PLAYBOOKS: &[(&str, &str)] = &[
    (
        "red",
        "id: red\nname: Red\ntrigger:\n  condition: account.health.band == \"red\"\nactions:\n  - task: { title: \"Save {{ account.name }}\", owner: o@keel.example }\n",
    ),
    (
        "tickets",
        "id: tickets\nname: Tickets\ntrigger:\n  condition: account.metrics.tickets > 5\n  fire: while_true\n  every: 5h\nactions:\n  - task: { title: Tickets, owner: o@keel.example }\n",
    ),
    (
        "quiet",
        "id: quiet\nname: Quiet\naudience: account.contacts.len() > 0\ntrigger:\n  condition: account.metrics.logins < 3\n  fire: while_true\n  every: 2d\nactions:\n  - task: { title: Quiet, owner: o@keel.example }\n",
    ),
    (
        "renewal",
        "id: renewal\nname: Renewal\ntrigger:\n  date: renewal_date\n  offset: -30d\n  catch_up: 3d\n  condition: account.metrics.nps < 8\nactions:\n  - task: { title: Renewal, owner: o@keel.example }\n",
    ),
    (
        "go-live",
        "id: go-live\nname: Go-live\ntrigger:\n  date: fields.go_live\nexit: account.metrics.logins >= 10\nsteps:\n  - after: 0d\n    actions: [ { task: { title: Kickoff, owner: o@keel.example } } ]\n  - after: 6h\n    when: account.metrics.logins < 5\n    actions: [ { task: { title: Nudge, owner: o@keel.example } } ]\n  - after: 2d\n    actions: [ { task: { title: Check-in, owner: o@keel.example } } ]\n",
    ),
    (
        "escalated",
        "id: escalated\nname: Escalated\ntrigger:\n  event: ticket_escalated\n  condition: event.properties.severity == \"high\"\nactions:\n  - task: { title: Escalated, owner: o@keel.example }\n",
    ),
    (
        "near-renewal",
        "id: near-renewal\nname: Near renewal\nschedule: \"0 8 * * *\"\ntrigger:\n  condition: days_until(account.renewal_date) <= 10 && account.health.band != \"green\"\nactions:\n  - task: { title: Near, owner: o@keel.example }\n",
    ),
    (
        "no-contact",
        "id: no-contact\nname: No contact\ntrigger:\n  condition: account.contacts.len() == 0\nactions:\n  - task: { title: Find a contact, owner: o@keel.example }\n",
    ),
    (
        "weekly",
        "id: weekly\nname: Weekly\ntrigger:\n  schedule: \"0 9 * * 1\"\n  condition: account.health.band == \"yellow\"\nactions:\n  - task: { title: Weekly, owner: o@keel.example }\n",
    ),
];

/// A deterministic stream of numbers (xorshift), so both daemons get the same syncs.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Twin {
    ws: Workspace,
    keel: Option<Daemon>,
    clock: Arc<ManualClock>,
    evaluated: u64,
}

impl Twin {
    fn new(extra: &str, clock: &Arc<ManualClock>) -> Twin {
        let ws = Workspace::new(&format!("{CONFIG}{extra}"));
        ws.write("rules/health.yaml", HEALTH);
        for (name, text) in PLAYBOOKS {
            ws.write(&format!("playbooks/{name}.yaml"), text);
        }
        Twin { ws, keel: None, clock: clock.clone(), evaluated: 0 }
    }

    fn keel(&mut self) -> &mut Daemon {
        let (ws, clock) = (&self.ws, &self.clock);
        self.keel.get_or_insert_with(|| {
            let config = ws.config();
            let store = Store::open(&config.store_dir()).unwrap();
            let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).unwrap_or_else(|e| panic!("{e:?}"));
            Daemon::new(config, store, loaded, clock.clone())
        })
    }

    fn store(&mut self) -> Store {
        self.keel().store().clone()
    }

    fn tick(&mut self) {
        if let Some(r) = self.keel().tick(&AtomicBool::new(false)).unwrap().report {
            assert_eq!(r.errors(), 0, "{:?}", r.failures);
            self.evaluated += r.accounts;
        }
    }
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("C{i:02}")).collect()
}

/// One hour's syncs: a few accounts' numbers and dates, a contact moving, some events.
fn syncs(
    dice: &mut Dice,
    now: DateTime<Utc>,
    accounts: &[String],
) -> (Vec<AccountPatch>, Vec<ContactPatch>, Vec<Event>) {
    let today = now.date_naive();
    let mut patches = Vec::new();
    for _ in 0..dice.below(4) {
        let id = accounts[dice.below(accounts.len() as u64) as usize].clone();
        let mut p = AccountPatch { id, ..AccountPatch::default() };
        match dice.below(6) {
            0 => p.metrics.push(("score".into(), [90.0, 70.0, 45.0][dice.below(3) as usize])),
            1 => p.metrics.push(("tickets".into(), dice.below(10) as f64)),
            2 => p.metrics.push(("logins".into(), dice.below(14) as f64)),
            3 => p.metrics.push(("nps".into(), dice.below(11) as f64)),
            4 => p.renewal_date = Some(today + Duration::days(3 + dice.below(35) as i64)),
            _ => {
                let day = today + Duration::days(dice.below(3) as i64);
                p.fields.push(("go_live".into(), serde_json::Value::String(day.to_string())));
            }
        }
        patches.push(p);
    }
    let mut contacts = Vec::new();
    if dice.below(3) == 0 {
        let to = accounts[dice.below(accounts.len() as u64) as usize].clone();
        contacts.push(ContactPatch {
            id: format!("P{:02}", dice.below(accounts.len() as u64)),
            account_id: Some(to),
            email: Some("p@customer.example".into()),
            ..ContactPatch::default()
        });
    }
    let mut events = Vec::new();
    for _ in 0..dice.below(3) {
        let account_id = accounts[dice.below(accounts.len() as u64) as usize].clone();
        // Mostly a little late; one in eight stamped 90 minutes ahead of the clock.
        let offset = if dice.below(8) == 0 { 90 } else { -(dice.below(120) as i64) };
        let severity = if dice.below(2) == 0 { "high" } else { "low" };
        events.push(Event {
            id: format!("e{}", dice.below(1 << 40)),
            account_id,
            contact_id: None,
            name: "ticket_escalated".into(),
            timestamp: now + Duration::minutes(offset),
            properties: serde_json::json!({ "severity": severity }).as_object().unwrap().clone(),
        });
    }
    (patches, contacts, events)
}

fn book(accounts: &[String], today: NaiveDate) -> (Vec<AccountPatch>, Vec<ContactPatch>) {
    let patches = accounts
        .iter()
        .enumerate()
        .map(|(i, id)| AccountPatch {
            id: id.clone(),
            name: Some(format!("Customer {i}")),
            renewal_date: Some(today + Duration::days(5 + i as i64)),
            fields: if i % 2 == 0 {
                vec![("go_live".into(), serde_json::Value::String((today + Duration::days(i as i64 % 9)).to_string()))]
            } else {
                Vec::new()
            },
            metrics: vec![
                ("score".into(), [90.0, 70.0, 45.0][i % 3]),
                ("tickets".into(), (i % 8) as f64),
                ("logins".into(), (i % 13) as f64),
                ("nps".into(), (i % 11) as f64),
            ],
            ..AccountPatch::default()
        })
        .collect();
    let contacts = (0..accounts.len() / 2)
        .map(|i| ContactPatch {
            id: format!("P{i:02}"),
            account_id: Some(accounts[i * 2].clone()),
            email: Some(format!("p{i}@customer.example")),
            ..ContactPatch::default()
        })
        .collect();
    (patches, contacts)
}

#[test]
fn an_incremental_pass_fires_exactly_what_a_full_pass_would() {
    let start: DateTime<Utc> = "2026-10-26T04:00:00Z".parse().unwrap(); // Monday, midnight in New York
    let clock = Arc::new(ManualClock::new(start));
    let mut twins = [Twin::new("", &clock), Twin::new(FULL, &clock)];
    let accounts = ids(40);
    let (patches, contacts) = book(&accounts, start.date_naive());
    for t in &mut twins {
        let store = t.store();
        store.upsert_accounts(patches.clone(), start).unwrap();
        store.upsert_contacts(contacts.clone(), start).unwrap();
    }
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let hours = 14 * 24;
    for h in 0..hours {
        let now = start + Duration::hours(h);
        clock.set(now);
        let (patches, contacts, events) = syncs(&mut dice, now, &accounts);
        // Keel is down from hour 150 for 30 hours; the CRM keeps changing meanwhile.
        let down = (150..180).contains(&h);
        for t in &mut twins {
            if h == 100 || h == 180 {
                t.keel = None; // a restart: the store is closed and reopened
            }
            let store = t.store();
            store.upsert_accounts(patches.clone(), now).unwrap();
            store.upsert_contacts(contacts.clone(), now).unwrap();
            store.upsert_events(events.clone()).unwrap();
            drop(store);
            if h == 220 {
                // CS Ops edit a playbook: its next pass is a full one.
                t.ws.write("playbooks/tickets.yaml", &PLAYBOOKS[1].1.replace("every: 5h", "every: 4h"));
                assert!(matches!(t.keel().reload_if_changed(), Reload::Applied));
            }
            if !down {
                t.tick();
            }
        }
    }

    let [mut inc, mut full] = twins;
    let (a, b) = (inc.store(), full.store());
    let ledger = |s: &Store| -> Vec<LedgerEntry> { s.ledger().map(Result::unwrap).collect() };
    let (la, lb) = (ledger(&a), ledger(&b));
    if let Some(i) = (0..la.len().max(lb.len())).find(|&i| la.get(i) != lb.get(i)) {
        panic!("ledgers differ at entry {i}:\nincremental: {:#?}\nfull: {:#?}", la.get(i), lb.get(i));
    }
    for id in &accounts {
        assert_eq!(a.account_state(id).unwrap(), b.account_state(id).unwrap(), "state of {id}");
    }
    let keys = |s: &Store| -> Vec<String> {
        let mut k: Vec<String> = s.outbox().map(|e| e.unwrap().key).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&a), keys(&b));

    // The comparison means something only if every playbook fired, and a good deal.
    let mut fired: BTreeMap<&str, usize> = BTreeMap::new();
    for e in la.iter().filter(|e| e.decision == Decision::Fired) {
        *fired.entry(e.playbook.as_str()).or_default() += 1;
    }
    for (id, _) in PLAYBOOKS {
        assert!(fired.get(id).copied().unwrap_or(0) >= 2, "{id} fired {:?} times: {fired:?}", fired.get(id));
    }
    assert!(la.iter().any(|e| e.decision == Decision::Skipped), "no skipped decision exercised");
    // And only if the incremental daemon really left accounts out.
    assert!(
        inc.evaluated * 3 < full.evaluated,
        "incremental evaluated {} accounts, full {}",
        inc.evaluated,
        full.evaluated
    );
}

#[test]
fn a_quiet_pass_evaluates_nothing_and_a_change_evaluates_only_its_account() {
    let start: DateTime<Utc> = "2026-10-26T14:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let mut t = Twin::new("", &clock);
    let accounts = ids(40);
    let (patches, contacts) = book(&accounts, start.date_naive());
    let store = t.store();
    store.upsert_accounts(patches, start).unwrap();
    store.upsert_contacts(contacts, start).unwrap();
    let pass = |t: &mut Twin, at: DateTime<Utc>| {
        clock.set(at);
        let r = t.keel().tick(&AtomicBool::new(false)).unwrap().report.unwrap();
        (r.accounts, r.selection)
    };
    let (n, why) = pass(&mut t, start);
    assert_eq!((n, why.as_str()), (40, "escalated has not been evaluated before"));
    // An hour on, nothing synced, no timer due: nothing to evaluate.
    let (n, why) = pass(&mut t, start + Duration::hours(1));
    assert_eq!((n, why.as_str()), (0, "incremental: 0 changed, 0 timers due, 0 dates due"));
    // Re-importing the same data changes nothing either; one real change is one account.
    let (again, _) = book(&accounts, start.date_naive());
    store.upsert_accounts(again, start).unwrap();
    let change = AccountPatch { id: "C07".into(), metrics: vec![("score".into(), 10.0)], ..AccountPatch::default() };
    store.upsert_accounts(vec![change], start).unwrap();
    let (n, why) = pass(&mut t, start + Duration::hours(2));
    assert_eq!((n, why.as_str()), (1, "incremental: 1 changed, 0 timers due, 0 dates due"));
    assert!(store.ledger_of("C07").unwrap().iter().any(|e| e.playbook == "red"), "C07 turned red");
}
