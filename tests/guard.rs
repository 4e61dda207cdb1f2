//! The blast-radius guard on the real binary: an edit that turns a condition true for
//! every account, and a sync that zeroes the metric a condition reads, are held — nothing
//! decided, nothing sent to customers, the ops address emailed once — until `keel
//! approve` lets exactly that pass's size through. A playbook's daily cap of customer
//! emails defers the rest to the next day.

use std::process::Command;

use crate::run::{spawn_with_args, terminate, wait_for};
use crate::util::{Workspace, NOW};

const TOKEN: &str = "t-guard";

/// 50 accounts; A01–A03 log in rarely (1 login), the rest often (50).
fn accounts(logins: impl Fn(usize) -> u32) -> String {
    let mut csv = String::from("id,name,logins\n");
    for i in 1..=50 {
        csv.push_str(&format!("A{i:02},Account {i},{}\n", logins(i)));
    }
    csv
}

fn contacts() -> String {
    let mut csv = String::from("id,account_id,email\n");
    for i in 1..=50 {
        csv.push_str(&format!("c{i:02},A{i:02},a{i:02}@cust.example\n"));
    }
    csv
}

/// Customer mail to the account's contacts when logins drop below `threshold`.
fn winback(threshold: u32, guard: &str) -> String {
    format!(
        "id: winback\nname: Win back\ntrigger:\n  condition: account.metrics.logins < {threshold}\nactions:\n  - email: {{ to: contacts, template: nudge }}\n{guard}"
    )
}

const TEMPLATE: &str = "Subject: We miss you, {{ account.name }}\n\nCome back.\n";

fn config(schedule: &str, clock: bool) -> String {
    let clock = if clock { format!("clock:\n  start: \"{NOW}\"\n") } else { String::new() };
    format!(
        "timezone: UTC\ndata_dir: .keel\n{clock}evaluation:\n  schedule: \"{schedule}\"\napi:\n  token: ${{KEEL_API_TOKEN:-}}\nemail:\n  from: \"Keel <keel@keel.example>\"\nguard:\n  max_firings: 10\n  notify: ops@keel.example\nsync:\n  accounts:\n    file: accounts.csv\n    columns: {{ id: id, name: name, logins: metrics.logins }}\n  contacts:\n    file: contacts.csv\n"
    )
}

fn workspace(schedule: &str, clock: bool, threshold: u32, guard: &str) -> Workspace {
    let ws = Workspace::new(&config(schedule, clock));
    ws.write("accounts.csv", &accounts(|i| if i <= 3 { 1 } else { 50 }));
    ws.write("contacts.csv", &contacts());
    ws.write("playbooks/winback.yaml", &winback(threshold, guard));
    ws.write("playbooks/templates/nudge.txt", TEMPLATE);
    ws
}

/// `keel ARGS` on the config's clock (as a daemon on the same config reads it), with the
/// API token: what a person types while `keel run` holds the store.
fn keel(ws: &Workspace, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--config", "keel.yaml"])
        .args(args)
        .current_dir(ws.dir.path())
        .env_remove("KEEL_NOW")
        .env_remove("RUST_LOG")
        .env_remove("KEEL_CONFIG")
        .env("KEEL_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// The recipients of the .eml files written so far, one per message.
fn recipients(ws: &Workspace) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(ws.path(".keel/mail")) else { return Vec::new() };
    let mut to: Vec<String> = dir
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|m| m.lines().find_map(|l| l.strip_prefix("To: ")).unwrap_or_default().to_string())
        .collect();
    to.sort();
    to
}

fn customers(ws: &Workspace) -> usize {
    recipients(ws).iter().filter(|t| t.ends_with("@cust.example")).count()
}

fn ops(ws: &Workspace) -> usize {
    recipients(ws).iter().filter(|t| *t == "ops@keel.example").count()
}

#[test]
fn a_typo_that_fires_for_every_account_is_held_on_reload_until_approved() {
    // Every 2 seconds, on the book's clock, so the command line and the daemon agree on
    // "now" and the CLI goes through the daemon's API.
    let ws = workspace("*/2 * * * * *", true, 2, "");
    let (mut child, rx) =
        spawn_with_args(&ws, None, Some("info"), &[("KEEL_API_TOKEN", TOKEN)], &["--listen", "127.0.0.1:0"]);
    let mut log = Vec::new();
    wait_for(&rx, &mut log, "the first pass", |l| l.contains("pass done"));
    // 3 of 50 fire: within the limit of 10.
    wait_for(&rx, &mut log, "the first emails", |l| l.contains("delivered") || l.contains("sent"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while customers(&ws) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(customers(&ws), 3, "the three quiet accounts were emailed");

    // The typo: `< 2` becomes `< 200`, true for every account.
    ws.write("playbooks/winback.yaml", &winback(200, ""));
    wait_for(&rx, &mut log, "the hold", |l| l.contains("held by guard"));
    let held = log.last().unwrap().clone();
    assert!(held.contains("would fire 47 (94% of audience 50), limit 10 firings or 10% of the audience"), "{held}");
    assert!(held.contains("keel approve winback"), "the log says how to approve: {held}");
    // Held across later passes: nothing decided, one ops email, no customer mail.
    // Its ticks come and go (every 2 s); it stays held, quietly.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(customers(&ws), 3, "no customer mail while held");
    assert_eq!(ops(&ws), 1, "the ops address is emailed once per hold:\n{:?}", recipients(&ws));

    // The page of the guard: the held playbook, through the running daemon's API.
    let (code, out, err) = keel(&ws, &["approve"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("winback") && out.contains("47") && out.contains("10 firings or 10% of the audience"),
        "{out}"
    );
    let announced: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path(".keel/api.json")).unwrap()).unwrap();
    let addr = announced["addr"].as_str().unwrap().to_string();
    let metrics = reqwest::blocking::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("keel_playbook_held{playbook=\"winback\"} 47"), "{metrics}");
    assert!(!metrics.contains("keel_playbook_held_passes_total{playbook=\"winback\"} 0"), "{metrics}");

    let (code, _, err) = keel(&ws, &["approve", "winback", "--size", "3"]);
    assert_eq!(code, 1, "a size that is not the held one is refused through the API too");
    assert!(err.contains("winback is held at 47 firings now, not 3"), "{err}");
    let (code, out, err) = keel(&ws, &["approve", "winback", "--size", "47"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("at most 47 accounts"), "{out}");
    wait_for(&rx, &mut log, "the approved pass", |l| l.contains("approved pass of 47 firings runs"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while customers(&ws) < 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(customers(&ws), 50, "exactly the approved pass went out, once each");
    assert_eq!(ops(&ws), 1);
    let (_, out, _) = keel(&ws, &["approve"]);
    assert!(out.contains("No playbook is held"), "{out}");
    assert!(out.contains("released: ran after approval: fired 47 (approved up to 47)"), "{out}");
    terminate(&mut child);
}

#[test]
fn a_sync_that_zeroes_the_metric_is_held_and_an_approval_lets_exactly_that_pass_through() {
    let ws = workspace("0 * * * *", false, 5, "");
    let at = |h: u32| format!("2026-12-01T{h:02}:00:00Z");
    let first = ws.keel_at(&at(10), &["run", "--once"]);
    assert!(first.stdout().contains("winback"), "{}", first.stdout());
    assert_eq!(customers(&ws), 3);

    // A bad export: the logins column zeroed for the whole book.
    ws.write("accounts.csv", &accounts(|_| 0));
    let held = ws.keel_at(&at(11), &["run", "--once"]);
    let out = held.stdout();
    assert!(
        out.contains(
            "HELD winback: held by guard: would fire 47 (94% of audience 50), limit 10 firings or 10% of the audience"
        ),
        "the run's table shows the hold:\n{out}"
    );
    assert!(held.stderr().contains("held by guard"), "and its log:\n{}", held.stderr());
    assert_eq!(customers(&ws), 3, "nothing went to customers");
    assert_eq!(ops(&ws), 1, "ops heard of it");
    // Still held at the next tick (counted again, same size): no second ops email.
    let again = ws.keel_at(&at(12), &["run", "--once"]);
    assert!(again.stdout().contains("HELD winback"), "{}", again.stdout());
    assert_eq!((customers(&ws), ops(&ws)), (3, 1));
    let store = ws.store();
    assert!(store.ledger_of("A10").unwrap().is_empty(), "a held pass decides nothing");
    drop(store);

    // Approved, then the book grows: a bigger pass than the one approved is held again.
    let ok = ws.keel_at(&at(12), &["approve", "winback"]);
    assert!(ok.stdout().contains("at most 47"), "{}", ok.stdout());
    let mut bigger = accounts(|_| 0);
    for i in 51..=60 {
        bigger.push_str(&format!("A{i:02},Account {i},0\n"));
    }
    ws.write("accounts.csv", &bigger);
    let grew = ws.keel_at(&at(13), &["run", "--once"]);
    assert!(grew.stdout().contains("HELD winback: held by guard: would fire 57"), "{}", grew.stdout());
    assert_eq!(customers(&ws), 3);

    // Approve the size it is held at now: exactly that pass goes through.
    // What the person looked at was 47: a recount to 57 is not approved unseen.
    let stale = ws.keel_at(&at(13), &["approve", "winback", "--size", "47"]);
    assert_eq!(stale.code(), 1);
    assert!(stale.stderr().contains("winback is held at 57 firings now, not 47"), "{}", stale.stderr());
    let ok = ws.keel_at(&at(13), &["approve", "winback", "--size", "57"]);
    assert!(ok.stdout().contains("at most 57"), "{}", ok.stdout());
    let ran = ws.keel_at(&at(14), &["run", "--once"]);
    let out = ran.stdout();
    assert!(out.contains("approved pass of 57 firings runs"), "{out}");
    assert!(!out.contains("HELD"), "{out}");
    let store = ws.store();
    let fired: usize = (1..=60).map(|i| store.ledger_of(&format!("A{i:02}")).unwrap().len()).sum();
    assert_eq!(fired, 60, "3 before, 57 approved, nothing twice");
    drop(store);
    // The approval is used up: the next pass fires nothing new and holds nothing.
    let after = ws.keel_at(&at(15), &["run", "--once"]);
    assert!(!after.stdout().contains("HELD"), "{}", after.stdout());
    let list = ws.keel_at(&at(15), &["approve"]).stdout();
    assert!(list.contains("No playbook is held"), "{list}");
}

#[test]
fn a_daily_cap_defers_customer_emails_past_it_to_the_next_day() {
    // Its own guard lets 60 (and the whole audience) through; its daily cap sends 20 a day.
    let ws = workspace("0 * * * *", false, 100, "guard: { max_firings: 60, max_share: 100%, daily_email_cap: 20 }\n");
    let run = ws.keel_at("2026-12-01T15:00:00Z", &["run", "--once"]);
    assert!(!run.stdout().contains("HELD"), "{}", run.stdout());
    assert_eq!(customers(&ws), 20, "{}", run.stdout());
    let outbox = ws.keel_at("2026-12-01T15:00:00Z", &["outbox", "list", "--format", "json"]).stdout();
    assert!(outbox.contains("daily cap: 20 customer emails a day from winback reached"), "{outbox}");
    ws.keel_at("2026-12-01T20:00:00Z", &["run", "--once"]);
    assert_eq!(customers(&ws), 20, "still the same day");
    ws.keel_at("2026-12-02T09:00:00Z", &["run", "--once"]);
    assert_eq!(customers(&ws), 40, "the next day's 20");
    ws.keel_at("2026-12-03T09:00:00Z", &["run", "--once"]);
    assert_eq!(customers(&ws), 50, "and the rest");

    // A daily cap on a playbook that emails no customer is an error, where it is written.
    ws.write(
        "playbooks/tasks.yaml",
        "id: tasks\nname: Tasks\ntrigger:\n  condition: true\nactions:\n  - task: { title: T, owner: o@keel.example }\nguard: { daily_email_cap: 5 }\n",
    );
    let check = ws.keel(&["check"]);
    assert_ne!(check.code(), 0);
    assert!(check.stderr().contains("tasks.yaml:7:"), "{}", check.stderr());
    assert!(check.stderr().contains("sends none"), "{}", check.stderr());
}

#[test]
fn a_held_playbook_runs_again_once_its_pass_shrinks_within_the_limits() {
    let ws = workspace("0 * * * *", false, 5, "");
    let at = |h: u32| format!("2026-12-01T{h:02}:00:00Z");
    ws.keel_at(&at(10), &["run", "--once"]).ok();
    ws.write("accounts.csv", &accounts(|_| 0));
    let held = ws.keel_at(&at(11), &["run", "--once"]);
    assert!(held.stdout().contains("HELD winback"), "{}", held.stdout());
    // Why nothing reached A10: explain says the guard holds the pass.
    let why = ws.keel_at(&at(11), &["explain", "winback", "A10"]);
    assert!(
        why.stdout().contains("does not fire: held by guard: would fire 47 (94% of audience 50)")
            && why.stdout().contains("`keel approve winback`"),
        "{}{}",
        why.stdout(),
        why.stderr()
    );
    // The export is fixed; five more accounts really did go quiet: within the limit of 10.
    ws.write("accounts.csv", &accounts(|i| if i <= 8 { 1 } else { 50 }));
    let ran = ws.keel_at(&at(12), &["run", "--once"]);
    let out = ran.stdout();
    assert!(out.contains("winback: no longer held: this pass fires 5, within its guard's limits"), "{out}");
    assert!(!out.contains("HELD"), "{out}");
    assert_eq!(customers(&ws), 8, "the three before and the five now, nobody twice");
    let list = ws.keel_at(&at(12), &["approve"]).stdout();
    assert!(
        list.contains("No playbook is held") && list.contains("cleared: within the limits again: fired 5"),
        "{list}"
    );
}

#[test]
fn plan_says_an_edit_would_be_held_before_it_goes_live() {
    let ws = workspace("0 * * * *", false, 5, "");
    ws.keel_at("2026-12-01T10:00:00Z", &["run", "--once"]).ok();
    ws.write("playbooks/winback.yaml", &winback(500, ""));
    let plan = ws.keel_at("2026-12-01T10:30:00Z", &["plan"]);
    assert_eq!(plan.code(), 2, "{}{}", plan.stdout(), plan.stderr());
    let out = plan.stdout();
    assert!(
        out.contains("-  account.metrics.logins < 5") || out.contains("-  condition: account.metrics.logins < 5"),
        "{out}"
    );
    assert!(
        out.contains(
            "HELD: held by guard: would fire 47 (94% of audience 50), limit 10 firings or 10% of the audience"
        ),
        "{out}"
    );
    // And the pass does what plan said: held, nothing sent.
    let run = ws.keel_at("2026-12-01T11:00:00Z", &["run", "--once"]);
    assert!(run.stdout().contains("HELD winback"), "{}", run.stdout());
    assert_eq!(customers(&ws), 3);
}

#[test]
fn turning_the_guard_off_on_a_held_playbook_releases_it_at_once() {
    let ws = workspace("0 * * * *", false, 5, "");
    let at = |h: u32| format!("2026-12-01T{h:02}:00:00Z");
    ws.keel_at(&at(10), &["run", "--once"]).ok();
    ws.write("accounts.csv", &accounts(|_| 0));
    assert!(ws.keel_at(&at(11), &["run", "--once"]).stdout().contains("HELD winback"));
    // Who the held pass would reach, before anyone approves it.
    let sim = ws.keel_at(&at(11), &["simulate", "--playbook", "winback"]).stdout();
    assert!(sim.contains("HELD winback") && sim.contains("A10"), "{sim}");
    assert!(sim.contains("the firings above are the held pass's, shown without the guard"), "{sim}");
    // The person decides the blast is meant: `guard: off`, at the same moment.
    ws.write("playbooks/winback.yaml", &winback(5, "guard: off\n"));
    let ran = ws.keel_at(&at(11), &["run", "--once"]);
    let out = ran.stdout();
    assert!(out.contains("winback: no longer held: it is not guarded any more"), "{out}");
    assert!(!out.contains("HELD"), "{out}");
    assert_eq!(customers(&ws), 50);
    let list = ws.keel_at(&at(11), &["approve"]).stdout();
    assert!(list.contains("No playbook is held") && list.contains("released: no longer guarded"), "{list}");
    // Nothing left due until the next tick: the daemon sleeps, it does not spin.
    let next = ws.keel_at("2026-12-01T11:30:00Z", &["run", "--once"]).stdout();
    assert!(next.contains("Nothing is due"), "{next}");
}

/// The pass cannot fire past what the guard's count allowed, even when the data changed
/// between the count and the pass (a push through the API): the firings past the budget
/// are not applied, their accounts keep their state and are woken, and the next pass —
/// counting again — decides them.
#[test]
fn a_pass_never_fires_past_the_budget_its_count_allowed() {
    use keel::decide::pass::{Budgets, Due, Evaluator, Selection};
    use keel::decide::unsubscribe::Unsubscribe;
    use keel::lang::Loaded;
    use keel::sync::{AccountField, ContactField};

    let ws = workspace("0 * * * *", false, 500, "");
    let config = ws.config();
    let store = ws.store();
    ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    ws.sync::<ContactField>(&store, "contacts.csv", |c| &c.sync.contacts);
    let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).unwrap();
    let pb = loaded.set.get("winback").unwrap();
    let unsubscribe = Unsubscribe::for_store(&config, &store).unwrap();
    let mut budgets = Budgets::default();
    budgets.set("winback", 20);
    let now: chrono::DateTime<chrono::Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let evaluator = Evaluator {
        store: &store,
        engine: &loaded.engine,
        model: &loaded.model,
        set: &loaded.set,
        timezone: config.timezone,
        workers: 2,
        cancel: &cancel,
        unsubscribe: &unsubscribe,
        selection: &Selection::All,
        given_health: None,
        explain: false,
        budgets: &budgets,
    };
    let due = [Due { playbook: pb, tick: now, previous: None }];
    let report = evaluator.run(&due, now).unwrap();
    let stats = &report.playbooks["winback"];
    assert_eq!((stats.fired, stats.over_budget), (20, 30), "{stats:?}");
    let fired: Vec<String> =
        (1..=50).map(|i| format!("A{i:02}")).filter(|id| !store.ledger_of(id).unwrap().is_empty()).collect();
    assert_eq!(fired.len(), 20, "only the budget is in the ledger");
    assert_eq!(store.outbox().count(), 20, "and only its emails are queued");
    // The rest kept their state: a later pass decides them (with a budget of its own).
    let later = now + chrono::Duration::hours(1);
    let mut again = Budgets::default();
    again.set("winback", 100);
    let evaluator = Evaluator { budgets: &again, ..evaluator };
    let report = evaluator.run(&[Due { playbook: pb, tick: later, previous: Some(now) }], later).unwrap();
    assert_eq!(report.playbooks["winback"].fired, 30, "nothing lost, nothing twice");
    assert_eq!(store.outbox().count(), 50);
}
