//! The services the CLI, the HTTP API and the manager's page share, called as a library on
//! a real sled store in a temp dir: what each front end relies on them for — filters and
//! order of the accounts list, an account's timeline, the snooze and closing rules of
//! tasks, retry touching only dead entries, the suppression list, the book's counts.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keel::model::{
    Audience, CapPolicy, Decision, Email, HealthPoint, LedgerEntry, OutboxEntry, Payload, Status, TaskRequest,
    TaskStatus,
};
use keel::services::{accounts, book, check, contacts, outbox, tasks, ServiceError};
use keel::store::{Commit, Store};

use crate::util::{now, Workspace, CRM_CONFIG};

const ACCOUNTS: &str = "\
Account ID,Account Name,Segment,ARR,CSM,Manager,Renewal Date,Stage,Industry
A-1,Acme Analytics,Enterprise,480000,ana@keel.example,mo@keel.example,2027-02-01,adoption,Software
A-2,Bluepeak Health,Mid-Market,62000,ben@keel.example,mo@keel.example,2026-12-20,renewal,Healthcare
A-3,Cobalt Retail,SMB,5400,Digital@Keel.example,mo@keel.example,2027-09-30,onboarding,Retail
A-4,Delta Freight,SMB,7100,digital@keel.example,mo@keel.example,,onboarding,Logistics
A-5,Echo Labs,,,digital@keel.example,,2026-11-01,onboarding,Science
";

/// A workspace whose store holds [`ACCOUNTS`].
fn book_of_business() -> (Workspace, Store) {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", ACCOUNTS);
    let store = ws.store();
    let report = ws.sync(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!(report.rejected, 0, "{:?}", report.errors);
    (ws, store)
}

fn list(store: &Store, query: &accounts::ListQuery) -> Result<accounts::AccountList, ServiceError> {
    accounts::list(store, query, now(), chrono_tz::Europe::Berlin)
}

fn ids(list: &accounts::AccountList) -> Vec<&str> {
    list.accounts.iter().map(|a| a.id.as_str()).collect()
}

fn ledger(account: &str, playbook: &str, occurrence: &str, at: DateTime<Utc>) -> LedgerEntry {
    LedgerEntry {
        playbook: playbook.into(),
        account: account.into(),
        occurrence: occurrence.into(),
        at,
        decision: Decision::Fired,
        why: format!("{playbook} fired"),
        values: Default::default(),
        actions: vec![format!("email from {playbook}")],
    }
}

fn email(account: &str, playbook: &str, occurrence: &str, to: &str, status: Status) -> OutboxEntry {
    OutboxEntry {
        id: 0,
        account: account.into(),
        playbook: playbook.into(),
        occurrence: occurrence.into(),
        key: format!("{account}/{playbook}/{occurrence}/{to}"),
        created: now(),
        payload: Payload::Email(Email {
            to: to.into(),
            audience: Audience::Internal,
            template: "t".into(),
            subject: format!("about {account}"),
            text: "hello".into(),
            html: None,
            unsubscribe_url: None,
            digest: None,
            on_cap: CapPolicy::Defer,
        }),
        status,
        next_at: now(),
        attempts: 3,
        history: Vec::new(),
    }
}

fn task(account: &str, playbook: &str, due: Option<DateTime<Utc>>) -> TaskRequest {
    TaskRequest {
        account: account.into(),
        playbook: playbook.into(),
        occurrence: "episode:1".into(),
        title: format!("Call {account}"),
        description: None,
        owner: "ana@keel.example".into(),
        due,
        priority: "high".into(),
        escalation: None,
    }
}

/// One firing per (account, playbook) with its outbox entries and task, committed as a
/// pass would.
fn fire(store: &Store, account: &str, playbook: &str, outbox: Vec<OutboxEntry>, task: Option<TaskRequest>) {
    let commit = Commit {
        entries: vec![ledger(account, playbook, "episode:1", now() - Duration::hours(1))],
        outbox: outbox.into_iter().map(|e| (0, e)).collect(),
        tasks: task.into_iter().map(|t| (0, t)).collect(),
        ..Commit::default()
    };
    assert_eq!(store.commit(&commit).unwrap(), 1);
}

#[test]
fn accounts_list_filters_by_segment_and_owner_case_insensitively() {
    let (_ws, store) = book_of_business();
    let query = |segment: Option<&str>, owner: Option<&str>| accounts::ListQuery {
        segment: segment.map(Into::into),
        owner: owner.map(Into::into),
        ..accounts::ListQuery::default()
    };
    let smb = list(&store, &query(Some("SMB"), None)).unwrap();
    assert_eq!(ids(&smb), ["A-4", "A-3"], "a CRM spelling of the segment works");
    assert_eq!(smb.arr, 12_500.0, "the ARR of the listed accounts only");
    let digital = list(&store, &query(None, Some("DIGITAL@keel.example"))).unwrap();
    assert_eq!(ids(&digital), ["A-4", "A-3", "A-5"], "owner matches whatever the case");
    let both = list(&store, &query(Some("mid market"), Some("ana@keel.example"))).unwrap();
    assert!(both.accounts.is_empty(), "both filters apply");
    let bad = list(&store, &query(Some("not/a segment"), None)).unwrap_err();
    assert!(matches!(bad, ServiceError::Segment(_)), "{bad:?}");
}

#[test]
fn accounts_list_sorts_missing_values_last_and_breaks_ties_on_id() {
    let (_ws, store) = book_of_business();
    let sorted = |sort, reverse, limit| {
        let list = list(&store, &accounts::ListQuery { sort, reverse, limit, ..Default::default() });
        ids(&list.unwrap()).into_iter().map(String::from).collect::<Vec<_>>()
    };
    use accounts::SortKey::*;
    assert_eq!(sorted(Arr, false, None), ["A-1", "A-2", "A-4", "A-3", "A-5"], "largest ARR first, none last");
    assert_eq!(sorted(Renewal, false, None), ["A-5", "A-2", "A-1", "A-3", "A-4"], "soonest renewal first, none last");
    assert_eq!(sorted(Name, false, None), ["A-1", "A-2", "A-3", "A-4", "A-5"]);
    assert_eq!(sorted(Id, true, None), ["A-5", "A-4", "A-3", "A-2", "A-1"]);
    assert_eq!(sorted(Arr, false, Some(2)), ["A-1", "A-2"], "the limit applies after sorting");
}

/// Every page of `query` at `limit`, following `next_cursor`; `between` runs after each page.
fn pages(store: &Store, query: &accounts::ListQuery, limit: usize, mut between: impl FnMut(usize)) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = None;
    for page in 0.. {
        let q = accounts::ListQuery { limit: Some(limit), after, ..query.clone() };
        let list = list(store, &q).unwrap();
        assert!(list.accounts.len() <= limit);
        seen.extend(ids(&list).into_iter().map(String::from));
        between(page);
        match list.next_cursor {
            Some(c) => after = Some(accounts::Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    seen
}

#[test]
fn accounts_list_pages_by_cursor_in_every_order_and_accounts_added_between_pages_shift_nothing() {
    use keel::model::Band::*;
    let (ws, store) = book_of_business();
    store.record_health(&[("A-2", &point("2026-12-01", 41.5, Red)), ("A-3", &point("2026-11-30", 41.5, Red))]).unwrap();
    use accounts::SortKey::*;
    for sort in [Arr, Renewal, Name, Id, Health] {
        for reverse in [false, true] {
            let query = accounts::ListQuery { sort, reverse, ..Default::default() };
            let whole: Vec<String> = ids(&list(&store, &query).unwrap()).into_iter().map(String::from).collect();
            for limit in [1, 2, 5] {
                assert_eq!(pages(&store, &query, limit, |_| {}), whole, "{sort:?} reverse={reverse} limit={limit}");
            }
        }
    }
    // After the first page of two (A-1, A-2 by ARR), accounts sorting before and after the
    // position arrive: the pages go on from where they were, and list the later one.
    let query = accounts::ListQuery::default();
    let seen = pages(&store, &query, 2, |page| {
        if page == 0 {
            ws.write("more.csv", "Account ID,Account Name,ARR\nA-0,Zero,900000\nA-9,Nine,100\n");
            ws.sync(&store, "more.csv", |c| &c.sync.accounts);
        }
    });
    assert_eq!(
        seen,
        ["A-1", "A-2", "A-4", "A-3", "A-9", "A-5"],
        "none twice, none skipped; A-0 sorts before the position"
    );

    let cursor = list(&store, &accounts::ListQuery { limit: Some(1), ..Default::default() }).unwrap().next_cursor;
    let cursor = accounts::Cursor::decode(&cursor.unwrap()).unwrap();
    let other = list(&store, &accounts::ListQuery { sort: Name, after: Some(cursor), ..Default::default() });
    assert!(matches!(other, Err(ServiceError::InvalidCursor(_))), "a cursor continues its own order only: {other:?}");
    assert!(matches!(accounts::Cursor::decode("not a cursor"), Err(ServiceError::InvalidCursor(_))));
}

fn point(date: &str, score: f64, band: keel::model::Band) -> HealthPoint {
    HealthPoint { date: date.parse().unwrap(), score, band, components: Default::default() }
}

#[test]
fn accounts_list_shows_health_as_of_today_filters_by_band_and_sorts_lowest_first() {
    use keel::model::Band::*;
    let (_ws, store) = book_of_business();
    store
        .record_health(&[
            ("A-1", &point("2026-11-20", 85.0, Green)),
            // Scored after today (2026-12-01 in Berlin): not what the list shows.
            ("A-1", &point("2026-12-05", 20.0, Red)),
            ("A-2", &point("2026-12-01", 41.5, Red)),
            ("A-3", &point("2026-11-30", 41.5, Red)),
            ("A-5", &point("2026-11-01", 70.0, Yellow)),
        ])
        .unwrap();
    let all = list(&store, &accounts::ListQuery::default()).unwrap();
    let health: Vec<_> = all.accounts.iter().map(|a| (a.id.as_str(), a.health.map(|h| (h.score, h.band)))).collect();
    assert_eq!(
        health,
        [
            ("A-1", Some((85.0, Green))),
            ("A-2", Some((41.5, Red))),
            ("A-4", None),
            ("A-3", Some((41.5, Red))),
            ("A-5", Some((70.0, Yellow)))
        ],
        "the latest point on or before today, none for an account never scored"
    );
    let json = serde_json::to_value(&all.accounts[0]).unwrap();
    assert_eq!((json["id"].as_str(), json["health"]["band"].as_str()), (Some("A-1"), Some("green")), "{json}");
    assert_eq!(json["health"]["score"].as_f64(), Some(85.0), "{json}");

    let query = |band, sort, limit| accounts::ListQuery { band, sort, limit, ..Default::default() };
    let by_health = list(&store, &query(None, accounts::SortKey::Health, None)).unwrap();
    assert_eq!(ids(&by_health), ["A-2", "A-3", "A-5", "A-1", "A-4"], "lowest first, ties by id, unscored last");
    let red = list(&store, &query(Some(Red), accounts::SortKey::Arr, None)).unwrap();
    assert_eq!(ids(&red), ["A-2", "A-3"], "only the band, in the asked order");
    assert_eq!(red.arr, 67_400.0);
    let worst = list(&store, &query(None, accounts::SortKey::Health, Some(1))).unwrap();
    assert_eq!(ids(&worst), ["A-2"], "the limit applies after the health sort");
    let green_smb =
        list(&store, &accounts::ListQuery { band: Some(Green), segment: Some("smb".into()), ..Default::default() });
    assert!(green_smb.unwrap().accounts.is_empty());
}

#[test]
fn tasks_and_outbox_lists_stop_at_the_limit() {
    let (_ws, store) = book_of_business();
    let day = |d: i64| Some(now() + Duration::days(d));
    fire(
        &store,
        "A-1",
        "p1",
        vec![email("A-1", "p1", "o", "x@keel.example", Status::Pending)],
        Some(task("A-1", "p1", day(3))),
    );
    fire(
        &store,
        "A-2",
        "p2",
        vec![email("A-2", "p2", "o", "y@keel.example", Status::Pending)],
        Some(task("A-2", "p2", day(1))),
    );
    fire(
        &store,
        "A-3",
        "p3",
        vec![email("A-3", "p3", "o", "z@keel.example", Status::Pending)],
        Some(task("A-3", "p3", day(2))),
    );
    let tz = chrono_tz::Europe::Berlin;
    let two = tasks::list(&store, &tasks::ListQuery { limit: Some(2), ..Default::default() }, now(), tz).unwrap();
    let accounts: Vec<_> = two.tasks.iter().map(|t| t.account.as_str()).collect();
    assert_eq!(accounts, ["A-2", "A-3"], "the soonest due");
    assert_eq!(two.matched, 3, "and how many there were");
    let q = outbox::ListQuery { limit: Some(2), ..Default::default() };
    let first: Vec<_> = outbox::list(&store, &q).unwrap().iter().map(|e| e.target()).collect();
    assert_eq!(first, ["x@keel.example", "y@keel.example"], "the oldest two");
    let q = outbox::ListQuery { limit: Some(0), account: Some("A-1".into()), ..Default::default() };
    assert!(outbox::list(&store, &q).unwrap().is_empty());
}

#[test]
fn an_accounts_timeline_holds_its_decisions_their_deliveries_and_escalations() {
    let (ws, store) = book_of_business();
    fire(
        &store,
        "A-1",
        "renewal",
        vec![email("A-1", "renewal", "episode:1", "ana@keel.example", Status::Pending)],
        None,
    );
    fire(
        &store,
        "A-2",
        "renewal",
        vec![email("A-2", "renewal", "episode:1", "ben@keel.example", Status::Pending)],
        None,
    );
    // A task escalation: an outbox entry no decision made.
    let escalation = email("A-1", "renewal", "task:1/escalation", "mo@keel.example", Status::Pending);
    store
        .commit(&Commit {
            entries: vec![ledger("A-1", "kickoff", "episode:1", now())],
            outbox: vec![(0, escalation)],
            ..Commit::default()
        })
        .unwrap();
    let day = |d: &str| d.parse::<NaiveDate>().unwrap();
    let point = |date: &str, score: f64| HealthPoint {
        date: day(date),
        score,
        band: keel::model::Band::Green,
        components: Default::default(),
    };
    store.record_health(&[("A-1", &point("2026-10-20", 70.0)), ("A-1", &point("2026-11-30", 85.0))]).unwrap();

    let query = accounts::ShowQuery { id: "A-1".into(), events_days: 30, now: now(), timezone: ws.config().timezone };
    let detail = accounts::show(&store, &query, None).unwrap();
    assert_eq!(detail.account.id, "A-1");
    let timeline: Vec<_> = detail.timeline.iter().map(|e| e.playbook.as_str()).collect();
    assert_eq!(timeline, ["renewal", "kickoff"], "this account's decisions only, oldest first");
    let renewal = &detail.timeline[0];
    let mail: Vec<_> = detail.deliveries_of(renewal).map(|d| d.target()).collect();
    assert_eq!(mail, ["ana@keel.example"], "a decision's deliveries are its own");
    assert!(detail.deliveries_of(&detail.timeline[1]).next().is_none(), "the escalation is no decision's");
    let escalations: Vec<_> = detail.escalations().map(|d| d.occurrence.as_str()).collect();
    assert_eq!(escalations, ["task:1/escalation"]);
    assert_eq!(detail.health.as_ref().map(|p| p.score), Some(85.0), "the latest point");
    assert_eq!(detail.health_30_days_before.as_ref().map(|p| p.date), Some(day("2026-10-20")), "the trend's base");
    assert_eq!(detail.today, day("2026-12-01"));

    let missing = accounts::show(&store, &accounts::ShowQuery { id: "A-9".into(), ..query }, None).unwrap_err();
    assert!(matches!(&missing, ServiceError::NotFound { what: "account", id } if id == "A-9"), "{missing:?}");
}

#[test]
fn the_book_overview_counts_accounts_arr_and_renewals_per_segment() {
    let (ws, store) = book_of_business();
    let book = book::overview(&store, now(), ws.config().timezone).unwrap();
    let rows: Vec<_> = book.segments.iter().map(|r| (r.segment.as_str(), r.accounts, r.arr, r.renewing)).collect();
    assert_eq!(
        rows,
        [
            ("enterprise", 1, 480_000.0, 1),
            ("mid_market", 1, 62_000.0, 1),
            ("smb", 2, 12_500.0, 0),
            // A-5 renewed a month ago: not coming up.
            ("(none)", 1, 0.0, 0),
        ]
    );
    assert_eq!((book.total.accounts, book.total.arr, book.total.renewing), (5, 554_500.0, 2));
    assert_eq!(book.today, "2026-12-01".parse::<NaiveDate>().unwrap());
    assert_eq!((book.contacts, book.events), (0, 0));
}

#[test]
fn tasks_list_open_ones_soonest_due_first_and_flags_the_overdue() {
    let (ws, store) = book_of_business();
    let tz = ws.config().timezone;
    fire(&store, "A-1", "later", vec![], Some(task("A-1", "later", Some(now() + Duration::days(3)))));
    fire(&store, "A-2", "late", vec![], Some(task("A-2", "late", Some(now() - Duration::days(1)))));
    fire(&store, "A-3", "whenever", vec![], Some(task("A-3", "whenever", None)));
    let list = tasks::list(&store, &tasks::ListQuery::default(), now(), tz).unwrap();
    let order: Vec<_> = list.tasks.iter().map(|t| t.account.as_str()).collect();
    assert_eq!(order, ["A-2", "A-1", "A-3"], "soonest due first, no due date last");
    let late = list.tasks[0].id;
    assert_eq!(list.overdue, [late]);

    tasks::done(&store, late, now()).unwrap();
    let open = tasks::list(&store, &tasks::ListQuery::default(), now(), tz).unwrap();
    assert_eq!(open.tasks.len(), 2, "a done task leaves the open list");
    let all =
        tasks::list(&store, &tasks::ListQuery { status: tasks::StatusFilter::All, ..Default::default() }, now(), tz)
            .unwrap();
    assert_eq!(all.tasks.len(), 3, "--all lists it still");
    let overdue = tasks::list(&store, &tasks::ListQuery { overdue: true, ..Default::default() }, now(), tz).unwrap();
    assert!(overdue.tasks.is_empty());
}

#[test]
fn snoozing_moves_the_due_date_to_the_wake_day_and_hides_the_task_until_then() {
    let (ws, store) = book_of_business();
    let tz = ws.config().timezone;
    fire(&store, "A-1", "save", vec![], Some(task("A-1", "save", Some(now() - Duration::days(1)))));
    let id = store.tasks().next().unwrap().unwrap().id;
    let until: NaiveDate = "2026-12-05".parse().unwrap();
    let snoozed = tasks::snooze(&store, &tasks::SnoozeArgs { id, until, now: now(), timezone: tz }).unwrap();
    assert_eq!(snoozed.status, TaskStatus::Snoozed);
    assert_eq!(snoozed.snoozed_until, Some(until));
    // Midnight in Berlin is 23:00 UTC the day before.
    assert_eq!(snoozed.due, Some("2026-12-04T23:00:00Z".parse().unwrap()), "due again the day it wakes");
    assert_eq!(store.task(id).unwrap().unwrap(), snoozed, "what it returns is what is stored");

    let list = |at: DateTime<Utc>| tasks::list(&store, &tasks::ListQuery::default(), at, tz).unwrap();
    assert!(list(now()).tasks.is_empty(), "asleep until its day");
    let woken = list("2026-12-05T08:00:00Z".parse().unwrap());
    assert_eq!(woken.tasks.len(), 1, "open again from its day on");
    assert!(woken.overdue.contains(&id), "and due from the start of it");

    // A due date after the wake day is kept.
    fire(&store, "A-2", "qbr", vec![], Some(task("A-2", "qbr", Some(now() + Duration::days(30)))));
    let qbr = store.tasks().map(Result::unwrap).find(|t| t.account == "A-2").unwrap();
    let kept = tasks::snooze(&store, &tasks::SnoozeArgs { id: qbr.id, until, now: now(), timezone: tz }).unwrap();
    assert_eq!(kept.due, qbr.due);
}

#[test]
fn a_snooze_must_be_to_a_later_day_and_a_closed_task_cannot_be_changed() {
    let (ws, store) = book_of_business();
    let tz = ws.config().timezone;
    fire(&store, "A-1", "save", vec![], Some(task("A-1", "save", None)));
    let id = store.tasks().next().unwrap().unwrap().id;
    let today: NaiveDate = "2026-12-01".parse().unwrap();
    let err = tasks::snooze(&store, &tasks::SnoozeArgs { id, until: today, now: now(), timezone: tz }).unwrap_err();
    assert!(matches!(err, ServiceError::NotAfterToday { until, today: t } if until == today && t == today), "{err:?}");
    assert_eq!(store.task(id).unwrap().unwrap().status, TaskStatus::Open, "a refused snooze changes nothing");

    let cancelled = tasks::cancel(&store, id, now()).unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let later = today.succ_opt().unwrap();
    let snooze = tasks::snooze(&store, &tasks::SnoozeArgs { id, until: later, now: now(), timezone: tz });
    assert!(matches!(snooze, Err(ServiceError::TaskClosed { status: TaskStatus::Cancelled, .. })), "{snooze:?}");
    let again = tasks::done(&store, id, now()).unwrap_err();
    assert_eq!(again.to_string(), format!("task {id} is cancelled already"));
    assert!(matches!(tasks::cancel(&store, id, now()), Err(ServiceError::TaskClosed { .. })), "cancel is not repeated");
    assert_eq!(store.task(id).unwrap().unwrap().status, TaskStatus::Cancelled);
    assert!(matches!(tasks::done(&store, 999, now()), Err(ServiceError::NotFound { what: "task", .. })));
}

#[test]
fn outbox_retry_puts_back_dead_entries_only() {
    let (_ws, store) = book_of_business();
    let dead = || Status::Dead { at: now() - Duration::hours(1), error: "HTTP 500".into() };
    let delivered = Status::Delivered { at: now() - Duration::hours(1) };
    fire(
        &store,
        "A-1",
        "renewal",
        vec![
            email("A-1", "renewal", "episode:1", "a@x.example", dead()),
            email("A-1", "renewal", "episode:1", "b@x.example", Status::Pending),
            email("A-1", "renewal", "episode:1", "c@x.example", delivered.clone()),
        ],
        None,
    );
    fire(&store, "A-2", "renewal", vec![email("A-2", "renewal", "episode:1", "d@x.example", dead())], None);
    let before: Vec<OutboxEntry> = store.outbox().map(Result::unwrap).collect();
    let list = |which, account: Option<&str>| {
        let q = outbox::ListQuery { which, account: account.map(Into::into), limit: None };
        outbox::list(&store, &q).unwrap().iter().map(|e| e.target()).collect::<Vec<_>>()
    };
    assert_eq!(list(outbox::Which::Dead, None), ["a@x.example", "d@x.example"]);
    assert_eq!(list(outbox::Which::Pending, None), ["b@x.example"]);
    assert_eq!(list(outbox::Which::All, Some("A-1")).len(), 3);
    assert_eq!(list(outbox::Which::Dead, Some("A-2")), ["d@x.example"]);

    let pending = before.iter().find(|e| e.status == Status::Pending).unwrap();
    let refused = outbox::retry(&store, outbox::RetryTarget::One(pending.id), now()).unwrap_err();
    assert!(matches!(refused, ServiceError::NotDead { status: "pending", .. }), "{refused:?}");
    assert!(matches!(outbox::retry(&store, outbox::RetryTarget::One(999), now()), Err(ServiceError::NotFound { .. })));

    let back = outbox::retry(&store, outbox::RetryTarget::AllDead, now()).unwrap();
    assert_eq!(back.iter().map(|e| e.target()).collect::<Vec<_>>(), ["a@x.example", "d@x.example"]);
    for e in store.outbox().map(Result::unwrap) {
        let was = before.iter().find(|b| b.id == e.id).unwrap();
        if matches!(was.status, Status::Dead { .. }) {
            assert_eq!((&e.status, e.attempts, e.next_at), (&Status::Pending, 0, now()), "{e:?}");
            assert_eq!(e.history.last().unwrap().text, outbox::RETRY_NOTE);
        } else {
            assert_eq!(&e, was, "an entry that was not dead is untouched");
        }
    }
    assert!(list(outbox::Which::Dead, None).is_empty());
}

#[test]
fn unsubscribing_puts_the_address_on_the_suppression_list_once() {
    let (ws, store) = book_of_business();
    let config = ws.config();
    let by = |s: &str| contacts::UnsubscribeBy::Address(s.into());
    let first = contacts::unsubscribe(&store, &config, &by("  Kim@Customer.example "), now()).unwrap();
    assert_eq!(first, contacts::Unsubscribed { email: "kim@customer.example".into(), added: true });
    let again = contacts::unsubscribe(&store, &config, &by("kim@customer.example"), now()).unwrap();
    assert!(!again.added, "already there");
    let list = contacts::suppressed(&store).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].email.as_str(), list[0].reason.as_str()), ("kim@customer.example", "unsubscribed"));
    assert_eq!(list[0].source, "keel contacts unsubscribe");
    assert!(store.suppression("kim@customer.example").unwrap().is_some(), "the mailer sees it");

    let not_an_address = contacts::unsubscribe(&store, &config, &by("kim"), now()).unwrap_err();
    assert!(matches!(not_an_address, ServiceError::InvalidArgument(_)), "{not_an_address:?}");

    // A link's token names the address; a forged one is refused before anything is written.
    let link = keel::decide::unsubscribe::Unsubscribe::for_store(&config, &store).unwrap();
    let token = contacts::UnsubscribeBy::Token(link.token("lee@customer.example"));
    let by_link = contacts::unsubscribe(&store, &config, &token, now()).unwrap();
    assert_eq!(by_link.email, "lee@customer.example");
    let forged = contacts::UnsubscribeBy::Token("bGVl.AAAAAAAAAAAAAAAAAAAAAA".into());
    assert!(matches!(contacts::unsubscribe(&store, &config, &forged, now()), Err(ServiceError::Token(_))));
    let sources: Vec<_> = contacts::suppressed(&store).unwrap().into_iter().map(|s| s.source).collect();
    assert_eq!(sources, ["keel contacts unsubscribe", "unsubscribe link"]);
}

#[test]
fn check_reports_what_loaded_or_every_error() {
    let ws = Workspace::new(CRM_CONFIG);
    let ok = check::check(&ws.config());
    assert!(ok.is_ok() && ok.loaded.is_some(), "{ok:?}");
    ws.write("playbooks/broken.yaml", "id: [\n");
    let bad = check::check(&ws.config());
    assert!(!bad.is_ok() && bad.loaded.is_none());
    let json = serde_json::to_value(&bad).unwrap();
    assert!(json["errors"][0]["file"].as_str().unwrap().ends_with("broken.yaml"), "{json}");
}

#[test]
fn preview_renders_customer_mail_with_its_unsubscribe_link_and_internal_mail_without() {
    let (ws, store) = book_of_business();
    ws.write(
        "playbooks/outreach.yaml",
        "id: outreach\nname: Outreach\ntrigger:\n  condition: true\nactions:\n  - email: { to: contacts, template: hello }\n",
    );
    ws.write("playbooks/templates/hello.txt", "Subject: Hi {{ recipient.email }}\nAbout {{ account.name }}.\n");
    ws.write(
        "playbooks/brief.yaml",
        "id: brief\nname: Brief\ntrigger:\n  condition: true\nactions:\n  - email: { to: \"{{ account.manager }}\", template: note }\n",
    );
    ws.write("playbooks/templates/note.txt", "Subject: {{ account.name }}\nARR {{ account.arr | money }}.\n");
    let contact = keel::model::ContactPatch {
        id: "C-1".into(),
        account_id: Some("A-1".into()),
        email: Some("kim@customer.example".into()),
        name: Some("Kim".into()),
        ..Default::default()
    };
    store.upsert_contacts(vec![contact], now()).unwrap();
    let config = ws.config();
    let loaded = keel::lang::Loaded::load(&config.rules_dir, &config.playbooks_dir).unwrap_or_else(|e| panic!("{e:?}"));
    let args = |template: &str, account: &str, contact: Option<&str>| keel::services::preview::PreviewArgs {
        template: template.into(),
        account: account.into(),
        contact: contact.map(Into::into),
        playbook: None,
        now: now(),
    };
    let render = |a| keel::services::preview::preview(&loaded.set, &store, &config, &a);

    let customer = render(args("hello", "A-1", Some("Kim@customer.example"))).unwrap();
    assert_eq!(customer.subject, "Hi kim@customer.example");
    let url = customer.unsubscribe_url.clone().expect("customer mail carries its link");
    assert!(customer.text.starts_with("About Acme Analytics."), "{}", customer.text);
    assert!(customer.text.contains(&format!("Unsubscribe: {url}")), "added where the template has none");
    assert!(customer.eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{}", customer.eml);

    let needs = render(args("hello", "A-1", None)).unwrap_err();
    assert!(
        matches!(&needs, ServiceError::NeedsContact { contacts, .. } if contacts == &["kim@customer.example"]),
        "customer mail needs a contact: {needs:?}"
    );

    let internal = render(args("note", "A-1", None)).unwrap();
    assert_eq!(
        (internal.to.as_str(), internal.unsubscribe_url.as_deref(), internal.playbook.as_str()),
        ("mo@keel.example", None, "brief"),
        "the manager, as the playbook's `to` says"
    );
    assert!(internal.text.starts_with("ARR $480,000."), "{}", internal.text);
    assert!(!internal.eml.contains("List-Unsubscribe"));

    let unknown = render(args("helo", "A-1", None)).unwrap_err();
    assert!(
        matches!(&unknown, ServiceError::UnknownTemplate { known, .. } if known == &["hello", "note"]),
        "{unknown:?}"
    );
    let stranger = render(args("hello", "A-2", Some("kim@customer.example"))).unwrap_err();
    assert!(matches!(stranger, ServiceError::NoSuchContact { .. }), "{stranger:?}");
    assert!(matches!(render(args("hello", "A-9", None)), Err(ServiceError::NotFound { what: "account", .. })));
}

#[test]
fn health_scores_today_by_default_and_reports_bands_changes_and_unscored_accounts() {
    let ws = Workspace::new("timezone: Pacific/Honolulu\n");
    ws.write(
        "rules/health.yaml",
        "bands: { green: 80, yellow: 60 }\ndamping: { margin: 0 }\ncategories:\n  all: { weight: 1, score: account.metrics.score }\n",
    );
    let store = ws.store();
    let account = |id: &str, score: Option<f64>| keel::model::AccountPatch {
        id: id.into(),
        arr: Some(1000.0),
        metrics: score.map(|s| ("score".to_string(), s)).into_iter().collect(),
        ..Default::default()
    };
    store.upsert_accounts(vec![account("A", Some(90.0)), account("B", Some(40.0)), account("C", None)], now()).unwrap();
    let config = ws.config();
    let mut engine = keel::lang::script::ScriptEngine::new(&keel::lang::script::Limits::default());
    let model = keel::lang::health::HealthModel::load(&mut engine, &config.rules_dir).unwrap();
    let day = |at| keel::services::health::ScoreArgs { at, now: now(), timezone: config.timezone };

    let first = keel::services::health::score(&store, &model, &engine, day(None)).unwrap();
    // 09:00 UTC is 23:00 the evening before in Honolulu: today is still the 30th there.
    assert_eq!(first.date, "2026-11-30".parse::<NaiveDate>().unwrap());
    assert_eq!((first.scored, first.unscored), (2, 1));
    let green = first.band(keel::model::Band::Green);
    assert_eq!((green.accounts, green.arr), (1, 1000.0));
    assert_eq!(first.band(keel::model::Band::Red).accounts, 1);
    assert!(first.changes.is_empty() && first.errors.is_empty());

    store.upsert_accounts(vec![account("A", Some(65.0))], now()).unwrap();
    let later = "2026-12-20".parse().unwrap();
    let second = keel::services::health::score(&store, &model, &engine, day(Some(later))).unwrap();
    assert_eq!(second.date, later);
    let changes: Vec<_> = second.changes.iter().map(|c| (c.from, c.to, c.accounts)).collect();
    assert_eq!(changes, [(keel::model::Band::Green, keel::model::Band::Yellow, 1)]);
}

/// The API closes tasks while the daemon runs: a change read before another writer's is
/// refused by the store, and an escalation listed before the task was closed queues
/// nothing.
#[test]
fn a_task_closed_while_its_escalation_was_due_is_not_escalated_nor_reopened() {
    let (_ws, store) = book_of_business();
    let mut request = task("A-1", "p1", Some(now() - Duration::hours(3)));
    request.escalation = Some(keel::model::Escalation { after_minutes: 60, to: "mo@keel.example".into(), sent: None });
    fire(&store, "A-1", "p1", vec![], Some(request));
    let listed = store.due_escalations(now()).unwrap();
    assert_eq!(listed.len(), 1);
    let stale = listed[0].clone();

    let done = tasks::done(&store, stale.id, now()).unwrap();
    let mail = email("A-1", "p1", "task:1/escalation", "mo@keel.example", Status::Pending);
    assert!(!store.escalate(stale.id, now(), mail).unwrap(), "closed meanwhile: no escalation");
    assert!(outbox::list(&store, &outbox::ListQuery { which: outbox::Which::All, ..Default::default() })
        .unwrap()
        .is_empty());
    let mut reopened = stale.clone();
    reopened.title = "written from a stale read".into();
    assert!(!store.replace_task(&stale, &reopened).unwrap(), "a stale read writes nothing");
    assert_eq!(store.task(stale.id).unwrap().unwrap(), done, "still done, as the API left it");
}
