//! The store on disk: survives close and reopen, answers "events of the last 30 days"
//! from a range, and refuses a second opener instead of sharing the files.

use chrono::Duration;
use keel::model::{AccountPatch, Event};
use keel::store::{Outcome, Store, StoreError};
use keel::sync::AccountField;

use crate::util::{now, Workspace, CRM_CONFIG};

#[test]
fn data_survives_closing_and_reopening_the_store() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", "Account ID,Account Name,ARR,NPS\nA,Acme,1000,9\nB,Beta,2000,3\n");
    let before = {
        let store = ws.store();
        ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
        store.accounts().map(Result::unwrap).collect::<Vec<_>>()
    }; // dropped: closed
    let store = ws.store();
    let after: Vec<_> = store.accounts().map(Result::unwrap).collect();
    assert_eq!(after.len(), 2);
    assert_eq!(before, after);
}

#[test]
fn a_second_opener_is_told_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("in use by another keel process"), "{err}");
}

#[test]
fn events_of_a_window_come_from_a_range_not_other_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let event = |id: &str, account: &str, days_ago: i64| Event {
        id: id.into(),
        account_id: account.into(),
        contact_id: None,
        name: "Logged In".into(),
        timestamp: now() - Duration::days(days_ago),
        properties: Default::default(),
    };
    // "A" and "AB" share a prefix: the separator keeps their events apart.
    let events = vec![
        event("e1", "A", 40),
        event("e2", "A", 10),
        event("e3", "A", 1),
        event("e4", "AB", 5),
        event("e5", "B", 2),
    ];
    assert!(store.upsert_events(events).unwrap().iter().all(|o| *o == Outcome::Inserted));
    let recent: Vec<String> = store.events_of("A", now() - Duration::days(30), now()).map(|e| e.unwrap().id).collect();
    assert_eq!(recent, ["e2", "e3"]);
}

#[test]
fn the_same_account_twice_in_one_batch_keeps_both_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let patch = |name: Option<&str>, arr: Option<f64>| AccountPatch {
        id: "A".into(),
        name: name.map(Into::into),
        arr,
        ..Default::default()
    };
    let outcomes = store
        .upsert_accounts(vec![patch(Some("Acme"), None), patch(None, Some(5.0)), patch(Some("Acme"), None)], now())
        .unwrap();
    assert_eq!(outcomes, [Outcome::Inserted, Outcome::Updated, Outcome::Unchanged]);
    let a = store.account("A").unwrap().unwrap();
    assert_eq!((a.name.as_str(), a.arr), ("Acme", Some(5.0)));
}
