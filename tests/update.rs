//! `update` actions change the account: applied with the firing, in the timeline as
//! "set field: before → after", seen by the next (incremental) pass as a change, never a
//! loop, and kept against a sync that only repeats the source — until the source changes
//! the field. A metric update that renders to text fails the firing and applies nothing.
//! Real store, real sync of a CSV file, the daemon on a manual clock (hourly passes).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use keel::clock::Clock;
use keel::daemon::{Daemon, ManualClock};
use keel::decide::pass::PassReport;
use keel::lang::Loaded;
use keel::model::{Account, Decision};
use keel::store::Store;
use keel::sync::AccountField;

use crate::util::{now, Workspace};

const CONFIG: &str = "timezone: UTC\nevaluation:\n  schedule: \"0 * * * *\"\nsync:\n  accounts:\n    columns:\n      \"Account ID\": id\n      \"Stage\": lifecycle_stage\n      \"Logins\": metrics.logins\n      \"Seats\": metrics.seats\n";

/// Moves an onboarding account with enough logins to adoption.
const PROMOTE: &str = "id: promote\nname: Promote\ntrigger:\n  condition: account.lifecycle_stage == \"onboarding\" && account.metrics.logins >= 10\nactions:\n  - update: { field: lifecycle_stage, value: adoption }\n";

/// Reads the field `promote` sets.
const ADOPTED: &str = "id: adopted\nname: Adopted\ntrigger:\n  condition: account.lifecycle_stage == \"adoption\"\nactions:\n  - task: { title: \"Adoption plan for {{ account.id }}\", owner: o@keel.example }\n";

struct Keel {
    ws: Workspace,
    clock: Arc<ManualClock>,
    start: DateTime<Utc>,
    daemon: Option<Daemon>,
}

impl Keel {
    fn new(playbooks: &[(&str, &str)]) -> Keel {
        let ws = Workspace::new(CONFIG);
        for (name, text) in playbooks {
            ws.write(&format!("playbooks/{name}.yaml"), text);
        }
        let start = now();
        Keel { ws, clock: Arc::new(ManualClock::new(start)), start, daemon: None }
    }

    fn daemon(&mut self) -> &Daemon {
        let (ws, clock) = (&self.ws, &self.clock);
        self.daemon.get_or_insert_with(|| {
            let config = ws.config();
            let store = Store::open(&config.store_dir()).unwrap();
            let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).unwrap_or_else(|e| panic!("{e:?}"));
            Daemon::new(config, store, loaded, clock.clone())
        })
    }

    fn store(&mut self) -> Store {
        self.daemon().store().clone()
    }

    /// Imports `csv` as the accounts file, as `keel sync` does.
    fn sync(&mut self, csv: &str) {
        self.ws.write("accounts.csv", csv);
        let store = self.store();
        let report = self.ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
        assert_eq!(report.rejected, 0, "{:?}", report.errors);
    }

    /// The pass at `hour` hours after the start.
    fn pass_at(&mut self, hour: i64) -> PassReport {
        self.clock.set(self.start + Duration::hours(hour));
        self.daemon().tick(&AtomicBool::new(false)).unwrap().report.expect("a pass was due")
    }

    fn account(&mut self, id: &str) -> Account {
        self.store().account(id).unwrap().expect("the account exists")
    }

    /// The account's firings of `playbook`, with their action words.
    fn fired(&mut self, id: &str, playbook: &str) -> Vec<Vec<String>> {
        let ledger = self.store().ledger_of(id).unwrap();
        ledger
            .into_iter()
            .filter(|e| e.playbook == playbook && e.decision == Decision::Fired)
            .map(|e| e.actions)
            .collect()
    }
}

#[test]
fn an_update_changes_the_account_reads_before_and_after_in_the_timeline_and_the_next_pass_sees_it() {
    let mut keel = Keel::new(&[("promote", PROMOTE), ("adopted", ADOPTED)]);
    keel.sync("Account ID,Stage,Logins\nA1,onboarding,12\nA2,onboarding,2\n");
    let first = keel.pass_at(0);
    assert_eq!(first.errors(), 0, "{:?}", first.failures);
    assert_eq!(keel.account("A1").lifecycle_stage.as_deref(), Some("adoption"));
    assert_eq!(keel.account("A2").lifecycle_stage.as_deref(), Some("onboarding"), "A2 did not qualify");
    assert_eq!(keel.fired("A1", "promote"), vec![vec!["set lifecycle_stage: onboarding → adoption".to_string()]]);
    assert!(keel.fired("A1", "adopted").is_empty(), "the pass that updates decides on what it read");

    // The next pass is incremental, takes A1 as changed (nothing else changed), and the
    // playbook reading the field fires.
    let second = keel.pass_at(1);
    assert!(second.selection.starts_with("incremental: 1 changed"), "{}", second.selection);
    assert_eq!(second.accounts, 1, "only the updated account is evaluated");
    assert_eq!(keel.fired("A1", "adopted").len(), 1);
    assert!(keel.fired("A2", "adopted").is_empty());

    // The timeline, as `keel accounts show` prints it.
    keel.daemon = None;
    let show = keel.ws.keel(&["accounts", "show", "A1"]).ok();
    assert!(show.contains("set lifecycle_stage: onboarding → adoption"), "{show}");
}

#[test]
fn an_update_that_keeps_its_condition_true_fires_by_its_trigger_not_at_every_pass() {
    // Each firing lowers the very number its condition reads, so every firing changes
    // the account and the condition stays true: a loop, if an update could re-trigger.
    let edge = "id: edge\nname: Edge\ntrigger:\n  condition: account.metrics.logins < 5\nactions:\n  - update: { field: metrics.logins, value: \"{{ account.metrics.logins - 1 }}\" }\n";
    let level = "id: level\nname: Level\ntrigger:\n  condition: account.metrics.seats > 0\n  fire: while_true\n  every: 3h\nactions:\n  - update: { field: metrics.seats, value: \"{{ account.metrics.seats - 1 }}\" }\n";
    let mut keel = Keel::new(&[("edge", edge), ("level", level)]);
    keel.sync("Account ID,Logins,Seats\nA1,2,100\n");
    for hour in 0..=7 {
        let report = keel.pass_at(hour);
        assert_eq!(report.errors(), 0, "{:?}", report.failures);
        if hour > 0 {
            // The update is a change the next pass evaluates — and decides nothing from.
            let changed = if hour == 1 || hour == 4 || hour == 7 { 1 } else { 0 };
            assert!(report.selection.starts_with(&format!("incremental: {changed} changed")), "{}", report.selection);
        }
        // No pass is due before the next hour: the update woke nothing.
        let at = keel.clock.now();
        assert_eq!(keel.daemon().next_wakeup(at).unwrap(), Some(at + Duration::hours(1)));
        assert!(keel.daemon().tick(&AtomicBool::new(false)).unwrap().report.is_none(), "no pass at hour {hour} again");
    }
    // on_enter: once per episode; while_true every 3h: hours 0, 3 and 6.
    assert_eq!(keel.fired("A1", "edge"), vec![vec!["set metrics.logins: 2 → 1".to_string()]]);
    assert_eq!(keel.fired("A1", "level").len(), 3);
    let account = keel.account("A1");
    assert_eq!(account.metrics["logins"], 1.0);
    assert_eq!(account.metrics["seats"], 97.0);
}

#[test]
fn a_sync_that_repeats_the_source_keeps_the_update_and_one_that_changes_the_field_wins() {
    let mut keel = Keel::new(&[("promote", PROMOTE)]);
    keel.sync("Account ID,Stage,Logins\nA1,onboarding,12\n");
    keel.pass_at(0);
    assert_eq!(keel.account("A1").lifecycle_stage.as_deref(), Some("adoption"));

    // Tomorrow's export still says onboarding (the CRM was not touched): the update
    // stays, and the other columns still apply.
    keel.sync("Account ID,Stage,Logins\nA1,onboarding,15\n");
    let a1 = keel.account("A1");
    assert_eq!(a1.lifecycle_stage.as_deref(), Some("adoption"), "a repeated source value does not undo the update");
    assert_eq!(a1.metrics["logins"], 15.0);

    // Someone moved the account in the CRM: the source wins.
    keel.sync("Account ID,Stage,Logins\nA1,renewal,15\n");
    assert_eq!(keel.account("A1").lifecycle_stage.as_deref(), Some("renewal"));
    assert!(keel.store().overrides_of("A1").unwrap().is_empty(), "the update is forgotten");
    // From then on the source is followed as usual, back to its old value too.
    keel.sync("Account ID,Stage,Logins\nA1,onboarding,15\n");
    assert_eq!(keel.account("A1").lifecycle_stage.as_deref(), Some("onboarding"));
}

#[test]
fn a_metric_update_that_renders_to_text_fails_the_account_and_applies_nothing() {
    let bad = "id: bad\nname: Bad\ntrigger:\n  condition: account.metrics.logins >= 0\nactions:\n  - task: { title: Look, owner: o@keel.example }\n  - update: { field: lifecycle_stage, value: adoption }\n  - update: { field: metrics.score, value: \"{{ account.lifecycle_stage }}\" }\n";
    let mut keel = Keel::new(&[("bad", bad)]);
    keel.sync("Account ID,Stage,Logins\nA1,onboarding,3\n");
    let report = keel.pass_at(0);
    assert_eq!(report.errors(), 1);
    assert_eq!(report.fired(), 0);
    let failure = &report.failures[0];
    assert_eq!((failure.playbook.as_str(), failure.account.as_str()), ("bad", "A1"));
    assert!(failure.error.contains("metrics.score") && failure.error.contains("\"onboarding\""), "{}", failure.error);
    let a1 = keel.account("A1");
    assert_eq!(a1.lifecycle_stage.as_deref(), Some("onboarding"), "no part of the firing is applied");
    assert!(!a1.metrics.contains_key("score"));
    let store = keel.store();
    assert!(store.ledger_of("A1").unwrap().is_empty());
    assert!(store.tasks_of("A1").unwrap().is_empty());
    let state = store.account_state("A1").unwrap();
    assert!(state.playbooks["bad"].error.is_some(), "the failure is kept for the timeline");
}
