//! `keel plan` on the sample book: after `keel run --once` recorded the running set, an
//! edited working set is shown as diffs with its effect at the next pass, and the next
//! `keel run --once` at that moment then does exactly what the plan said — the same
//! firings, emails (to contacts and to addresses), tasks and webhooks per playbook. Also:
//! no change exits 0, added and removed playbooks, band moves of a health-model change
//! (checked against the bands the next pass records), JSON, a broken working playbook,
//! no running set yet, and the same answer through a running daemon over HTTP.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::run::{spawn_with_args, terminate, wait_for};
use crate::util::{copy_tree, Run, Workspace};

/// The sample book's first pass: Monday 08:30 in New York (the example config's clock).
const T0: &str = "2026-11-23T13:30:00Z";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example config over copies of the shipped playbooks, rules and sample data, so a
/// test can edit them.
fn sample() -> Workspace {
    let config = std::fs::read_to_string(repo().join("examples/keel.yaml")).unwrap();
    let config =
        config.replace("playbooks: ../playbooks", "playbooks: playbooks").replace("rules: ../rules", "rules: rules");
    let ws = Workspace::new(&config);
    copy_tree(&repo().join("playbooks"), &ws.path("playbooks"));
    copy_tree(&repo().join("rules"), &ws.path("rules"));
    copy_tree(&repo().join("examples/data"), &ws.path("data"));
    ws
}

/// `keel run --once` at `now`, which must succeed.
fn run_once(ws: &Workspace, now: &str) -> Value {
    let run = ws.keel_at(now, &["run", "--once", "--format", "json"]);
    assert_eq!(run.code(), 0, "run --once at {now}:\n{}\n{}", run.stdout(), run.stderr());
    serde_json::from_str(&run.stdout()).unwrap()
}

fn edit(ws: &Workspace, file: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(ws.path(file)).unwrap();
    assert!(text.contains(from), "{file} holds {from:?}");
    ws.write(file, &text.replacen(from, to, 1));
}

fn plan_json(ws: &Workspace, now: &str) -> (i32, Value) {
    let run = ws.keel_at(now, &["plan", "--format", "json"]);
    assert!(run.code() == 0 || run.code() == 2, "keel plan:\n{}\n{}", run.stdout(), run.stderr());
    (run.code(), serde_json::from_str(&run.stdout()).unwrap())
}

/// Per playbook: fired, customer emails, internal emails, tasks, webhooks.
type Counts = BTreeMap<String, [u64; 5]>;

/// What the plan says the working set's pass does, for the playbooks due then.
fn planned(plan: &Value) -> Counts {
    let mut out = Counts::new();
    for p in plan["playbooks"].as_array().unwrap() {
        if p["working"]["due"]["state"] != "due" {
            continue;
        }
        let c = &p["working"]["counts"];
        let n = |k: &str| c[k].as_u64().unwrap();
        out.insert(
            p["id"].as_str().unwrap().to_string(),
            [n("fired"), n("customer_emails"), n("internal_emails"), n("tasks"), n("webhooks")],
        );
    }
    out
}

/// What `keel run --once` at `at` then did, read back from its report, the outbox (the
/// entries it added) and the tasks (the occurrences it opened or updated them for).
fn done(ws: &Workspace, at: &str) -> Counts {
    let outbox = |ws: &Workspace| -> Vec<Value> {
        let list: Value =
            serde_json::from_str(&ws.keel_at(at, &["outbox", "list", "--all", "--format", "json"]).ok()).unwrap();
        list.as_array().unwrap().clone()
    };
    let tasks = |ws: &Workspace| -> BTreeMap<u64, (String, usize)> {
        let list: Value =
            serde_json::from_str(&ws.keel_at(at, &["tasks", "list", "--all", "--format", "json"]).ok()).unwrap();
        let task = |t: &Value| {
            let occurrences = t["occurrences"].as_array().unwrap().len();
            (t["id"].as_u64().unwrap(), (t["playbook"].as_str().unwrap().to_string(), occurrences))
        };
        list.as_array().unwrap().iter().map(task).collect()
    };
    let (outbox_before, tasks_before) = (outbox(ws), tasks(ws));
    let known: std::collections::BTreeSet<u64> = outbox_before.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    let report = run_once(ws, at);
    let mut out = Counts::new();
    for (id, s) in report["pass"]["playbooks"].as_object().unwrap() {
        out.insert(id.clone(), [s["fired"].as_u64().unwrap(), 0, 0, 0, 0]);
    }
    for e in outbox(ws).iter().filter(|e| !known.contains(&e["id"].as_u64().unwrap())) {
        let slot = match &e["payload"]["email"] {
            email if email["audience"]["kind"] == "customer" => 1,
            email if !email.is_null() => 2,
            _ => 4,
        };
        out.get_mut(e["playbook"].as_str().unwrap()).expect("a playbook of the pass")[slot] += 1;
    }
    for (id, (playbook, occurrences)) in tasks(ws) {
        let before = tasks_before.get(&id).map_or(0, |t| t.1);
        if let Some(c) = out.get_mut(&playbook) {
            c[3] += (occurrences - before) as u64;
        }
    }
    out
}

#[test]
fn a_threshold_edit_is_planned_and_the_next_run_does_exactly_what_the_plan_said() {
    let ws = sample();
    run_once(&ws, T0);
    // Nothing edited yet: nothing to change.
    let same = ws.keel_at(T0, &["plan"]);
    assert_eq!(same.code(), 0, "{}\n{}", same.stdout(), same.stderr());
    assert!(same.stdout().ends_with("No changes: the working set is the running set.\n"), "{}", same.stdout());

    // Detractors up to 7 instead of 6 are escalated.
    edit(&ws, "playbooks/churn-risk-escalation.yaml", "account.metrics.nps <= 6", "account.metrics.nps <= 7");
    let text = ws.keel_at(T0, &["plan", "--sample", "3"]);
    assert_eq!(text.code(), 2, "{}", text.stderr());
    insta::assert_snapshot!(text.stdout(), @r#"
    Plan at the next pass, 2026-11-23 09:00 EST (--at picks another moment): the working set against the running set recorded 2026-11-23 08:30 EST.
    Playbooks: 0 added, 0 removed, 1 changed, 11 unchanged; 0 template file(s) changed; the rules unchanged.

    PLAYBOOK                 CHANGE     AT THE PASS                           FIRES  CUSTOMER MAIL  INTERNAL MAIL   TASKS  WEBHOOKS
    advocacy-ask             unchanged  due                                       0              0              0       0         0
    churn-risk-escalation    changed    due                                  0 → 48              0         0 → 48  0 → 48         0
    enterprise-onboarding    unchanged  due                                       0              0              0       0         0
    expansion-opportunity    unchanged  due                                       0              0              0       0         0
    low-engagement-recovery  unchanged  due                                       0              0              0       0         0
    red-save-plan            unchanged  due                                       0              0              0       0         0
    renewal-30               unchanged  due                                       0              0              0       0         0
    renewal-60               unchanged  due                                       0              0              0       0         0
    renewal-90               unchanged  due                                       0              0              0       0         0
    smb-onboarding           unchanged  due                                       0              0              0       0         0
    weekly-at-risk-digest    unchanged  not due (next 2026-11-30 08:00 EST)       0              0              0       0         0
    yellow-action-plan       unchanged  due                                       0              0              0       0         0

    ~ churn-risk-escalation (playbooks/churn-risk-escalation.yaml): changed
        --- running/playbooks/churn-risk-escalation.yaml
        +++ working/playbooks/churn-risk-escalation.yaml
        @@ -9,7 +9,7 @@
         trigger:
           condition: |
             (account.health.band == "red" && days_until(account.renewal_date) <= 90)
        -      || account.metrics.nps <= 6
        +      || account.metrics.nps <= 7
           fire: on_enter
         actions:
           - task:
      running set: fires for 0 account(s): 0 customer email(s), 0 internal email(s), 0 task(s), 0 webhook(s)
      working set: fires for 48 account(s): 0 customer email(s), 48 internal email(s), 48 task(s), 0 webhook(s)
      newly fires for 48 account(s), 3 shown:
        ACC-0000002 Lumen Partners (episode:1): health.band = "yellow", metrics.nps = 7.0, renewal_date = "2027-06-09"
        ACC-0000013 Yellowstone Labs, Inc. (episode:1): health.band = "yellow", metrics.nps = 7.0, renewal_date = "2027-06-08"
        ACC-0000020 Riverbend Telecom Inc. (episode:1): health.band = "green", metrics.nps = 7.0, renewal_date = "2027-04-28"

    The working set differs from the running set: exit status 2.
    "#);

    // The same as data, and then the pass itself at the moment the plan names.
    let (code, plan) = plan_json(&ws, T0);
    assert_eq!(code, 2);
    assert_eq!(plan["changed"], true);
    let churn = plan["playbooks"].as_array().unwrap().iter().find(|p| p["id"] == "churn-risk-escalation").unwrap();
    assert_eq!(churn["change"], "changed");
    assert!(churn["diff"].as_str().unwrap().contains("+      || account.metrics.nps <= 7"), "{churn}");
    assert_eq!(churn["newly_firing"], 48);
    assert_eq!(churn["newly_firing_sample"].as_array().unwrap().len(), 10, "ten by default");
    assert_eq!(churn["newly_firing_sample"][0]["values"]["metrics.nps"], 7.0, "{churn}");
    let at = plan["at"].as_str().unwrap().to_string();
    assert_eq!(at, "2026-11-23T14:00:00Z", "the next hourly pass");
    let expected = planned(&plan);
    assert_eq!(expected["churn-risk-escalation"], [48, 0, 48, 48, 0]);
    assert_eq!(done(&ws, &at), expected, "keel run --once at {at} did what keel plan said");
    // And now the working set is the running set.
    let after = ws.keel_at(&at, &["plan"]);
    assert_eq!(after.code(), 0, "{}", after.stdout());
}

#[test]
fn an_added_and_a_removed_playbook_are_planned_with_their_mail_and_webhooks() {
    let ws = sample();
    run_once(&ws, T0);
    std::fs::remove_file(ws.path("playbooks/advocacy-ask.yaml")).unwrap();
    ws.write(
        "playbooks/promoter-thanks.yaml",
        r#"id: promoter-thanks
name: Thank promoters
audience: account.segment == "smb"
trigger:
  condition: account.metrics.nps >= 9
actions:
  - email: { to: contacts, template: smb_welcome }
  - webhook: { url: "http://127.0.0.1:9/promoters", body: '{"account": {{ account.id }}}' }
guard: off
"#,
    );
    let text = ws.keel_at(T0, &["plan"]);
    assert_eq!(text.code(), 2, "{}", text.stderr());
    let out = text.stdout();
    assert!(out.contains("Playbooks: 1 added, 1 removed, 0 changed, 11 unchanged"), "{out}");
    assert!(out.contains("+ promoter-thanks (playbooks/promoter-thanks.yaml): added"), "{out}");
    assert!(out.contains("    +++ working/playbooks/promoter-thanks.yaml"), "{out}");
    assert!(out.contains("- advocacy-ask (playbooks/advocacy-ask.yaml): removed"), "{out}");
    assert!(out.contains("    --- running/playbooks/advocacy-ask.yaml\n    +++ /dev/null"), "{out}");

    let (_, plan) = plan_json(&ws, T0);
    let expected = planned(&plan);
    let added = expected["promoter-thanks"];
    assert!(
        added[0] > 0 && added[1] > added[0] && added[4] == added[0],
        "fires, mails each contact, one webhook each: {added:?}"
    );
    assert!(!expected.contains_key("advocacy-ask"), "a removed playbook is in no pass");
    let at = plan["at"].as_str().unwrap().to_string();
    assert_eq!(done(&ws, &at), expected, "keel run --once at {at} did what keel plan said");
}

#[test]
fn a_health_model_change_counts_the_accounts_that_change_band_as_the_next_pass_scores_them() {
    let ws = sample();
    run_once(&ws, T0);
    let bands = |ws: &Workspace, at: &str| -> BTreeMap<String, String> {
        let list: Value =
            serde_json::from_str(&ws.keel_at(at, &["accounts", "list", "--format", "json"]).ok()).unwrap();
        let accounts = list["accounts"].as_array().or(list.as_array()).unwrap().clone();
        accounts
            .iter()
            .map(|a| (a["id"].as_str().unwrap().into(), a["health"]["band"].as_str().unwrap().into()))
            .collect()
    };
    let before = bands(&ws, T0);
    edit(&ws, "rules/health.yaml", "green: 80", "green: 70");
    let text = ws.keel_at(T0, &["plan"]);
    assert_eq!(text.code(), 2, "{}", text.stderr());
    let out = text.stdout();
    assert!(out.contains("~ the rules (health model and rule files): changed"), "{out}");
    assert!(out.contains("    -  green: 80 ") && out.contains("    +  green: 70 "), "{out}");

    let (_, plan) = plan_json(&ws, T0);
    let moves = plan["rules"]["moves"].as_array().unwrap();
    // The next pass, the same day, scores the day again with the new model: the bands
    // it records move exactly as the plan counted.
    let at = plan["at"].as_str().unwrap().to_string();
    run_once(&ws, &at);
    let after = bands(&ws, &at);
    let mut moved: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (id, band) in &after {
        if before[id] != *band {
            *moved.entry((before[id].clone(), band.clone())).or_default() += 1;
        }
    }
    let planned: BTreeMap<(String, String), u64> = moves
        .iter()
        .map(|m| {
            ((m["from"].as_str().unwrap().into(), m["to"].as_str().unwrap().into()), m["accounts"].as_u64().unwrap())
        })
        .collect();
    assert!(!planned.is_empty(), "a lower green edge turns some yellow accounts green");
    assert_eq!(planned, moved);
    let total: u64 = planned.values().sum();
    assert!(out.contains(&format!("{total} of 400 account(s) change band")), "{out}");
}

#[test]
fn a_broken_working_playbook_is_an_error_at_its_line_and_column() {
    let ws = sample();
    run_once(&ws, T0);
    edit(&ws, "playbooks/renewal-30.yaml", "trigger:", "tigger:");
    let run = ws.keel_at(T0, &["plan"]);
    assert_eq!(run.code(), 1);
    assert_eq!(run.stdout(), "");
    let err = run.stderr();
    assert!(err.contains("playbooks/renewal-30.yaml:7:1") && err.contains("did you mean `trigger`?"), "{err}");
    assert!(err.contains("nothing was planned"), "{err}");
}

#[test]
fn without_a_running_set_everything_is_added() {
    let ws = sample();
    ws.keel_at(T0, &["sync"]).ok();
    let run = ws.keel_at(T0, &["plan"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let out = run.stdout();
    assert!(out.contains("no running set is recorded in this store"), "{out}");
    assert!(
        out.contains("Playbooks: 12 added, 0 removed, 0 changed, 0 unchanged; 9 template file(s) changed"),
        "{out}"
    );
    // The first pass it shows is the one run --once then makes.
    let (_, plan) = plan_json(&ws, T0);
    assert_eq!(plan["running"]["recorded"], Value::Null);
    let at = plan["at"].as_str().unwrap().to_string();
    assert_eq!(at, T0, "playbooks that never ran are due now");
    assert_eq!(done(&ws, &at), planned(&plan));
}

const TOKEN: &str = "t-plan";

/// `keel --config CONFIG ARGS` on the book's clock (as a daemon runs), with the token.
fn on_its_clock(ws: &Workspace, config: &str, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command
        .args(["--config", config])
        .args(args)
        .current_dir(ws.dir.path())
        .env_remove("KEEL_NOW")
        .env_remove("RUST_LOG")
        .env_remove("KEEL_CONFIG")
        .env("KEEL_API_TOKEN", TOKEN);
    Run(command.output().unwrap())
}

#[test]
fn through_a_running_daemon_the_plan_is_the_same() {
    let ws = sample();
    let first = on_its_clock(&ws, "keel.yaml", &["run", "--once"]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    // A candidate set beside the live one: another config over the same store.
    copy_tree(&ws.path("playbooks"), &ws.path("candidate"));
    edit(&ws, "candidate/churn-risk-escalation.yaml", "account.metrics.nps <= 6", "account.metrics.nps <= 7");
    let candidate =
        std::fs::read_to_string(ws.path("keel.yaml")).unwrap().replace("playbooks: playbooks", "playbooks: candidate");
    ws.write("candidate.yaml", &candidate);
    let at = ["--at", "2026-11-23T14:00:00Z"];
    let local = on_its_clock(&ws, "candidate.yaml", &[&["plan"][..], &at].concat());
    assert_eq!(local.code(), 2, "{}", local.stderr());
    let local_json = on_its_clock(&ws, "candidate.yaml", &[&["plan", "--format", "json"][..], &at].concat());

    let (mut child, rx) =
        spawn_with_args(&ws, None, Some("info"), &[("KEEL_API_TOKEN", TOKEN)], &["--listen", "127.0.0.1:0"]);
    let mut log = Vec::new();
    wait_for(&rx, &mut log, "the API to listen", |l| l.contains("the API is listening"));
    // The store is the daemon's: the plan goes through POST /api/v1/plan.
    let direct = on_its_clock(&ws, "candidate.yaml", &["contacts", "suppressed"]);
    assert!(direct.stderr().contains("in use"), "{}", direct.stderr());
    let through = on_its_clock(&ws, "candidate.yaml", &[&["plan"][..], &at].concat());
    assert_eq!((through.code(), through.stdout()), (local.code(), local.stdout()), "{}", through.stderr());
    let through_json = on_its_clock(&ws, "candidate.yaml", &[&["plan", "--format", "json"][..], &at].concat());
    let strip = |r: &Run| {
        let mut v: Value = serde_json::from_str(&r.stdout()).unwrap();
        v["elapsed_ms"] = Value::Null;
        v
    };
    assert_eq!(strip(&through_json), strip(&local_json));
    // The daemon's own folder is what it runs, and stays so when it reloads an edit:
    // the reload records the set it applied.
    let own = on_its_clock(&ws, "keel.yaml", &["plan"]);
    assert_eq!(own.code(), 0, "{}\n{}", own.stdout(), own.stderr());
    edit(&ws, "playbooks/renewal-30.yaml", "id: renewal-30", "# edited while keel run runs\nid: renewal-30");
    wait_for(&rx, &mut log, "the reload", |l| l.contains("reloaded the config, rules and playbooks"));
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let own = on_its_clock(&ws, "keel.yaml", &["plan"]);
    assert_eq!(own.code(), 0, "{}\n{}", own.stdout(), own.stderr());
    // A key that would name a file outside the daemon's temporary folder is refused.
    let announced: Value = serde_json::from_slice(&std::fs::read(ws.path(".keel/api.json")).unwrap()).unwrap();
    let url = format!("http://{}/api/v1/plan", announced["addr"].as_str().unwrap());
    let answer = reqwest::blocking::Client::new()
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "files": { "playbooks/../../escape.yaml": "id: x\n" } }))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().unwrap().contains("is not a file of a set"));
    assert!(!ws.path("escape.yaml").exists());
    // Planning runs code on the daemon: it takes an admin token.
    let mut anonymous = Command::new(env!("CARGO_BIN_EXE_keel"));
    anonymous
        .args(["--config", "candidate.yaml", "plan"])
        .current_dir(ws.dir.path())
        .env_remove("KEEL_NOW")
        .env("KEEL_API_TOKEN", "wrong");
    let refused = Run(anonymous.output().unwrap());
    assert_eq!(refused.code(), 1);
    assert!(refused.stderr().contains("refused"), "{}", refused.stderr());
    terminate(&mut child);
}
