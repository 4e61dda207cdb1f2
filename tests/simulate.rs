//! `keel simulate`: a dry run of the daemon's own pass — what would fire at a moment and
//! why, with the real trigger semantics, and no side effects (the store's bytes are the
//! same afterwards); a runaway script fails only its own evaluation. Over 30 days of a
//! changing sample book, `simulate --at T` lists exactly what `run --once` at T records.

use std::path::Path;

use crate::util::Workspace;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A workspace with the shipped playbooks copied in (so tests can add their own).
fn shipped(extra_config: &str) -> Workspace {
    let ws = Workspace::new(&format!("timezone: UTC\nrules: {}\n{extra_config}", repo().join("rules").display()));
    for entry in std::fs::read_dir(repo().join("playbooks"))
        .unwrap()
        .chain(std::fs::read_dir(repo().join("playbooks/templates")).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_file() {
            let rel = path.strip_prefix(repo().join("playbooks")).unwrap();
            ws.write(&format!("playbooks/{}", rel.display()), &std::fs::read_to_string(&path).unwrap());
        }
    }
    ws
}

#[test]
fn a_renewal_milestone_fires_from_its_day_until_the_renewal_and_not_before() {
    let ws = shipped("");
    // Simulating 2026-11-22: renewal-90 (catch_up: until_date) is due for renewals on
    // 2027-02-20 (today), 2027-02-17 and 2027-02-12 (late, but the renewals are ahead and
    // no later milestone is due yet), not for 2027-02-21 (tomorrow).
    ws.write(
        "a.csv",
        "id,name,owner,arr,renewal_date\nTODAY,Today Co,a@x.example,1000,2027-02-20\nLATE,Late Co,a@x.example,1000,2027-02-17\nOLD,Old Co,a@x.example,1000,2027-02-12\nSOON,Soon Co,a@x.example,1000,2027-02-21\n",
    );
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let out = ws.keel(&["simulate", "--at", "2026-11-22", "--playbook", "renewal-90"]).ok();
    insta::assert_snapshot!(out, @r#"
    Simulating 1 playbook(s) over 4 account(s) for 2026-11-22 (UTC). Nothing is recorded or sent.

    renewal-90 · LATE Late Co
      why:  renewal_date 2027-02-17 -90d = 2026-11-19, due 3 days ago, caught up until 2027-02-17
      read: renewal_date = "2027-02-17"
      does: task "Renewal in 90 days: initial renewal conversation with Late Co" for a@x.example (normal, due in 14d)
      does: email renewal_90 to a@x.example (in a digest)
      sent: email to a@x.example: joins the digest, sent when the pass has completed
    renewal-90 · OLD Old Co
      why:  renewal_date 2027-02-12 -90d = 2026-11-14, due 8 days ago, caught up until 2027-02-12
      read: renewal_date = "2027-02-12"
      does: task "Renewal in 90 days: initial renewal conversation with Old Co" for a@x.example (normal, due in 14d)
      does: email renewal_90 to a@x.example (in a digest)
      sent: email to a@x.example: joins the digest, sent when the pass has completed
    renewal-90 · TODAY Today Co
      why:  renewal_date 2027-02-20 -90d = 2026-11-22, due today
      read: renewal_date = "2027-02-20"
      does: task "Renewal in 90 days: initial renewal conversation with Today Co" for a@x.example (normal, due in 14d)
      does: email renewal_90 to a@x.example (in a digest)
      sent: email to a@x.example: joins the digest, sent when the pass has completed

    Would fire 3 time(s): renewal-90 3
    "#);
}

#[test]
fn on_enter_fires_on_the_transition_not_while_the_state_lasts() {
    let ws = shipped("");
    // Health from the shipped model; one account turns red overnight, one was red already.
    let healthy = "100,100,35,10,0,95,95,95,10,5,4,9,120,90";
    let sick = "100,10,4,2,14,10,10,50,0,0,0,2,5,5";
    let header = "id,name,segment,manager,metrics.logins_30d,metrics.active_users,metrics.licensed_users,metrics.avg_session_minutes,metrics.open_tickets,metrics.feature_adoption_pct,metrics.workflow_completion_pct,metrics.data_quality_pct,metrics.integrations,metrics.exec_sponsor_meetings_90d,metrics.qbrs_attended_12m,metrics.nps,metrics.roi_achieved_pct,metrics.expansion_potential_pct";
    let write = |turning: &str| {
        let turning_metrics = if turning == "sick" { sick } else { healthy };
        ws.write(
            "a.csv",
            &format!(
                "{header}\nTURNS,Turns Inc,enterprise,mo@x.example,{}\nSTAYS,Stays Inc,enterprise,mo@x.example,{}\n",
                turning_metrics.replacen("100,", &format!("{},", if turning == "sick" { 20 } else { 2000 }), 1),
                sick.replacen("100,", "20,", 1)
            ),
        );
        ws.keel(&["sync", "accounts", "a.csv"]).ok();
    };
    // The daemon ran on the 21st, when TURNS was healthy and STAYS already red.
    write("healthy");
    ws.keel_at("2026-11-21T12:00:00Z", &["run", "--once"]).ok();
    write("sick");
    let out = ws.keel(&["simulate", "--at", "2026-11-22", "--playbook", "red-save-plan"]).ok();
    assert!(out.contains("red-save-plan · TURNS Turns Inc"), "{out}");
    assert!(out.contains("`account.health.band == \"red\"` became true (before: false or never evaluated)"), "{out}");
    assert!(out.contains("read: health.band = \"red\""), "the reason shows what it read: {out}");
    assert!(!out.contains("STAYS"), "an account already red at the last pass does not re-enter: {out}");
}

#[test]
fn simulate_changes_nothing_in_the_store() {
    let ws = shipped("");
    ws.write("a.csv", "id,name,owner,manager,renewal_date,metrics.nps\nA,Acme,a@x.example,m@x.example,2027-02-20,3\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    // A pass has run before (so the store has ledger, state, health, ticks and an
    // unsubscribe key to keep), and the next day has things to decide.
    ws.keel_at("2026-11-10T12:00:00Z", &["run", "--once"]).ok();
    let before = ws.keel(&["accounts", "show", "A", "--format", "json"]).ok();
    let content = ws.store().content_digest().unwrap();
    // sled consolidates a page's fragments the first time it reads the page after writes
    // (the same content, rewritten in one piece); after one simulate, a second leaves even
    // the files' bytes as they were.
    ws.keel(&["simulate", "--at", "2026-11-22"]).ok();
    assert_eq!(ws.store().content_digest().unwrap(), content, "simulate changed what the store holds");
    let bytes = ws.files_under(".keel/store");
    let out = ws.keel(&["simulate", "--at", "2026-11-22", "--format", "json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!report["firings"].as_array().unwrap().is_empty(), "{report}");
    let after = ws.files_under(".keel/store");
    let changed: Vec<_> = after.keys().chain(bytes.keys()).filter(|k| after.get(*k) != bytes.get(*k)).collect();
    assert!(changed.is_empty(), "simulate changed the store's files: {changed:?}");
    assert_eq!(ws.keel(&["accounts", "show", "A", "--format", "json"]).ok(), before);
    let store = ws.store();
    assert!(
        store.health_on_or_before("A", "2030-01-01".parse().unwrap()).unwrap().unwrap().date
            < "2026-11-22".parse().unwrap(),
        "no health point was recorded for the simulated day"
    );
}

#[test]
fn a_runaway_playbook_is_stopped_and_the_others_still_evaluate() {
    let ws = shipped("");
    ws.write(
        "playbooks/spin.yaml",
        "id: spin\nname: Spins forever\ntrigger:\n  condition: |\n    let n = 0;\n    loop { n += 1; }\nactions:\n  - task: { title: t, owner: o }\n",
    );
    ws.write("a.csv", "id,name,owner,renewal_date\nA,Acme,a@x.example,2027-02-20\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let run = ws.keel(&["simulate", "--at", "2026-11-22"]);
    assert_eq!(run.code(), 1, "a failed evaluation is an error exit");
    assert!(run.stdout().contains("renewal-90 · A Acme"), "other playbooks still fire: {}", run.stdout());
    insta::assert_snapshot!(run.stderr(), @r"
      playbook spin, account A: ./playbooks/spin.yaml:6:17: stopped: exceeded the limit of 100000 operations (a loop that never ends?)
    error: 1 evaluation(s) failed; the others were simulated
    ");
}

#[test]
fn the_sample_book_gives_a_believable_day() {
    let ws2 = sample_book();
    ws2.keel(&["sync"]).ok();
    // On a store no pass has run on, a schedule trigger starts counting: it says so.
    let first = ws2.keel(&["simulate", "--at", "2026-11-23"]).ok();
    assert!(first.contains("note: weekly-at-risk-digest: a schedule trigger's first run"), "{first}");
    // The daemon ran on Friday; Monday's pass sends the digest.
    ws2.keel_at("2026-11-20T15:00:00Z", &["run", "--once"]);
    let out = ws2.keel(&["simulate", "--at", "2026-11-23", "--format", "json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let firings = report["firings"].as_array().unwrap();
    let fired: std::collections::BTreeSet<&str> = firings.iter().map(|f| f["playbook"].as_str().unwrap()).collect();
    for playbook in ["renewal-30", "renewal-60", "renewal-90", "weekly-at-risk-digest"] {
        assert!(fired.contains(playbook), "{playbook} fires somewhere in the sample book: {fired:?}");
    }
    assert!(firings.iter().all(|f| !f["why"].as_str().unwrap().is_empty()), "every firing says why");
    assert!(report["failures"].as_array().unwrap().is_empty(), "{}", report["failures"]);
}

#[test]
fn a_health_drop_over_30_days_is_a_trend_rules_can_read() {
    let ws = Workspace::new("timezone: UTC\nrules: rules\n");
    ws.write(
        "rules/health.yaml",
        "bands: {green: 80, yellow: 60}\ncategories:\n  usage:\n    weight: 1\n    score: account.metrics.usage\n",
    );
    ws.write(
        "playbooks/drop.yaml",
        "id: health-drop\nname: Dropped 15 points in 30 days\ntrigger:\n  condition: account.health.change_30d <= -15\nactions:\n  - task: { title: \"{{ account.name }} dropped {{ health.change_30d | round(1) }}\", owner: o@x.example }\n",
    );
    ws.write("a.csv", "id,name,metrics.usage\nFALLS,Falls,90\nDIPS,Dips,90\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    ws.keel(&["health", "--at", "2026-10-20"]).ok();
    ws.write("a.csv", "id,name,metrics.usage\nFALLS,Falls,60\nDIPS,Dips,85\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let out = ws.keel(&["simulate", "--at", "2026-11-22"]).ok();
    assert!(out.contains("health-drop · FALLS Falls"), "{out}");
    assert!(out.contains("does: task \"Falls dropped -30.0\""), "{out}");
    assert!(!out.contains("DIPS"), "a 5-point dip is no trend: {out}");
}

#[test]
fn an_event_trigger_fires_once_per_matching_event() {
    let ws = Workspace::new("timezone: UTC\n");
    ws.write(
        "playbooks/tickets.yaml",
        "id: urgent-ticket\nname: Urgent ticket\ntrigger:\n  event: Support Ticket Opened\n  condition: event.properties.priority == \"high\"\nactions:\n  - task: { title: \"Urgent ticket at {{ account.name }}\", owner: o@x.example }\n",
    );
    ws.write("a.csv", "id,name\nA,Acme\n");
    ws.write(
        "e.ndjson",
        concat!(
            "{\"id\":\"t1\",\"account_id\":\"A\",\"name\":\"Support Ticket Opened\",\"timestamp\":\"2026-11-22T09:00:00Z\",\"properties\":{\"priority\":\"high\"}}\n",
            "{\"id\":\"t2\",\"account_id\":\"A\",\"name\":\"Support Ticket Opened\",\"timestamp\":\"2026-11-22T10:00:00Z\",\"properties\":{\"priority\":\"normal\"}}\n",
            "{\"id\":\"t3\",\"account_id\":\"A\",\"name\":\"Support Ticket Opened\",\"timestamp\":\"2026-11-12T23:59:00Z\",\"properties\":{\"priority\":\"high\"}}\n",
            "{\"id\":\"t4\",\"account_id\":\"A\",\"name\":\"Logged In\",\"timestamp\":\"2026-11-22T11:00:00Z\"}\n",
        ),
    );
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    ws.keel(&["sync", "events", "e.ndjson"]).ok();
    let out = ws.keel(&["simulate", "--at", "2026-11-22"]).ok();
    assert!(out.contains("why:  event \"Support Ticket Opened\" at 2026-11-22 09:00 UTC (id t1)"), "{out}");
    assert!(
        out.contains("Would fire 1 time(s): urgent-ticket 1"),
        "only the high-priority ticket inside the catch-up window: {out}"
    );
    // Once the daemon has decided it, it is not decided again.
    ws.keel_at("2026-11-22T12:00:00Z", &["run", "--once"]).ok();
    let next = ws.keel(&["simulate", "--at", "2026-11-23"]).ok();
    assert!(next.contains("Nothing would fire."), "{next}");
}

/// The sample book in a workspace with the shipped playbooks and the example config.
fn sample_book() -> Workspace {
    let config = std::fs::read_to_string(repo().join("examples/keel.yaml")).unwrap();
    let ws = Workspace::new(
        &config
            .replace("rules: ../rules", &format!("rules: {}", repo().join("rules").display()))
            .replace("playbooks: ../playbooks", &format!("playbooks: {}", repo().join("playbooks").display())),
    );
    std::fs::create_dir_all(ws.path("data")).unwrap();
    for name in ["accounts.csv", "contacts.csv", "events.ndjson"] {
        std::fs::copy(repo().join("examples/data").join(name), ws.path("data").join(name)).unwrap();
    }
    ws
}

/// One decision, as simulate reports it and as the ledger records it.
type Decided = (String, String, String, String, String, Vec<String>);

#[test]
fn over_30_days_simulate_lists_exactly_what_run_once_then_records() {
    let ws = sample_book();
    let original = std::fs::read_to_string(ws.path("data/accounts.csv")).unwrap();
    let header: Vec<&str> = original.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (logins, nps, active) = (col("Logins (30d)"), col("NPS"), col("Active Users"));
    let start: chrono::DateTime<chrono::Utc> = "2026-11-16T15:00:00Z".parse().unwrap();
    let (mut total, mut steps, mut others) = (0, 0, 0);
    for day in 0..30i64 {
        // Usage moves every day, differently per account, so bands change both ways,
        // `on_enter` episodes end and begin again, and sequences meet their `when`/`exit`.
        let mut csv = String::new();
        for (i, line) in original.lines().enumerate() {
            let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
            if i > 0 {
                let wave = ((i as i64 * 7 + day * 3) % 20) as f64 / 20.0;
                let scale = |cell: &str, lo: f64| cell.parse::<f64>().map(|v| (v * (lo + wave)).round().to_string());
                if let Ok(v) = scale(&cells[logins], 0.1) {
                    cells[logins] = v;
                }
                if let Ok(v) = scale(&cells[active], 0.2) {
                    cells[active] = v;
                }
                if !cells[nps].is_empty() && (i as i64 + day) % 11 == 0 {
                    cells[nps] = ((i as i64 + day) % 11).to_string();
                }
            }
            csv.push_str(&cells.join(","));
            csv.push('\n');
        }
        ws.write("data/accounts.csv", &csv);
        let at = (start + chrono::Duration::days(day)).to_rfc3339();
        ws.keel_at(&at, &["sync"]).ok();
        let out = ws.keel_at(&at, &["simulate", "--at", &at, "--format", "json"]).ok();
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut simulated: Vec<Decided> = Vec::new();
        for (list, decision) in [("firings", "fired"), ("skipped", "skipped"), ("exited", "exited")] {
            for f in report[list].as_array().unwrap() {
                let s = |k: &str| f[k].as_str().unwrap().to_string();
                let actions = f
                    .get("actions")
                    .and_then(|a| a.as_array())
                    .map_or(Vec::new(), |a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect());
                simulated.push((s("playbook"), s("account"), s("occurrence"), decision.into(), s("why"), actions));
            }
        }
        let run = ws.keel_at(&at, &["run", "--once"]);
        assert!(matches!(run.code(), 0 | 3), "day {day}: {}\n{}", run.stdout(), run.stderr());
        let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        let store = ws.store();
        let mut recorded: Vec<Decided> = store
            .ledger()
            .map(Result::unwrap)
            .filter(|e| e.at == at)
            .map(|e| (e.playbook, e.account, e.occurrence, e.decision.as_str().to_string(), e.why, e.actions))
            .collect();
        drop(store);
        simulated.sort();
        recorded.sort();
        assert_eq!(simulated, recorded, "day {day} ({at}): simulate and run --once differ");
        total += recorded.len();
        steps += recorded.iter().filter(|d| d.2.contains("/step:")).count();
        others += recorded.iter().filter(|d| d.3 != "fired").count();
    }
    // The days had something to agree on: firings, later sequence steps, skips or exits.
    assert!(total > 200, "{total} decisions in 30 days");
    assert!(steps > 0, "no sequence step came due in 30 days");
    assert!(others > 0, "no skip or exit in 30 days");
}

#[test]
fn a_running_sequence_shows_its_next_step_and_what_delivery_would_do_with_each_email() {
    let ws = shipped("");
    ws.write("a.csv", "id,name,segment,owner,start_date,metrics.logins_30d\nNEW,New Co,smb,d@x.example,2026-11-23,0\nQUIET,Quiet Co,smb,d@x.example,2026-11-23,0\n");
    ws.write("c.csv", "id,account_id,email,name\nC1,NEW,sam@new.example,Sam\nC2,QUIET,quinn@quiet.example,Quinn\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    ws.keel(&["sync", "contacts", "c.csv"]).ok();
    // Day 0 (a Monday, 10:00 UTC): the welcome goes out.
    ws.keel_at("2026-11-23T10:00:00Z", &["run", "--once"]).ok();
    ws.keel(&["contacts", "unsubscribe", "quinn@quiet.example"]).ok();
    // Day 3 at 10:00: the nudge step is due (no logins); at the end of the day it would
    // wait for the sending window.
    let at_ten = ws.keel(&["simulate", "--at", "2026-11-26T10:00:00Z", "--playbook", "smb-onboarding"]).ok();
    assert!(
        at_ten.contains(
            "smb-onboarding · NEW New Co\n  why:  step 2 of the sequence started by start_date=2026-11-23, after 3d"
        ),
        "{at_ten}"
    );
    assert!(at_ten.contains("sent: email to sam@new.example: sends at 2026-11-26 10:00 UTC"), "{at_ten}");
    assert!(at_ten.contains("sent: email to quinn@quiet.example: suppressed: unsubscribed"), "{at_ten}");
    let evening = ws.keel(&["simulate", "--at", "2026-11-26", "--playbook", "smb-onboarding"]).ok();
    assert!(
        evening.contains("sent: email to sam@new.example: deferred: 23:59 in UTC is in quiet hours (20:00–08:00); next window Fri 2026-11-27 08:00 UTC"),
        "{evening}"
    );
    // Activated by day 3: when the next step comes due, the sequence stops instead.
    ws.write("a.csv", "id,name,segment,owner,start_date,metrics.logins_30d,metrics.active_users\nNEW,New Co,smb,d@x.example,2026-11-23,40,5\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let exits =
        ws.keel(&["simulate", "--at", "2026-11-26T10:00:00Z", "--playbook", "smb-onboarding", "--account", "NEW"]).ok();
    assert!(exits.contains("smb-onboarding · NEW New Co (exits)\n  why:  `account.metrics.active_users >= 3` holds: the sequence stops"), "{exits}");
    assert!(exits.contains("Nothing would fire."), "{exits}");
    // (The red save plan's email to a manager the record lacks goes dead: exit 3.)
    let run = ws.keel_at("2026-11-26T10:00:00Z", &["run", "--once"]);
    assert!(matches!(run.code(), 0 | 3), "{}{}", run.stdout(), run.stderr());
    let later =
        ws.keel(&["simulate", "--at", "2026-12-07T10:00:00Z", "--playbook", "smb-onboarding", "--account", "NEW"]).ok();
    assert!(later.contains("Nothing would fire."), "the stopped sequence sends no webinar invite on day 14: {later}");
}

#[test]
fn simulate_over_the_sample_book_changes_nothing_the_store_holds() {
    let ws = sample_book();
    ws.keel(&["sync"]).ok();
    ws.keel_at("2026-11-20T15:00:00Z", &["run", "--once"]);
    let before = ws.store().content_digest().unwrap();
    let out = ws.keel(&["simulate", "--at", "2026-11-23", "--format", "json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["firings"].as_array().unwrap().len() > 10, "a day with things to decide: {report}");
    assert_eq!(ws.store().content_digest().unwrap(), before, "every tree's keys and values are as they were");
}

#[test]
fn an_email_after_an_update_to_do_not_contact_in_the_same_firing_is_shown_suppressed() {
    let ws = shipped("");
    ws.write(
        "playbooks/opt-out.yaml",
        "id: opt-out\nname: Opted out\ntrigger:\n  condition: account.fields.churned == \"yes\"\nactions:\n  - update: { field: fields.do_not_contact, value: \"true\" }\n  - email: { to: contacts, template: smb_welcome }\n",
    );
    ws.write("a.csv", "id,name,segment,fields.churned\nA,Acme,smb,yes\n");
    ws.write("c.csv", "id,account_id,email,name\nC1,A,sam@acme.example,Sam\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    ws.keel(&["sync", "contacts", "c.csv"]).ok();
    let out = ws.keel(&["simulate", "--at", "2026-11-24T15:00:00Z", "--playbook", "opt-out"]).ok();
    assert!(
        out.contains(
            "sent: email to sam@acme.example: suppressed: do-not-contact (the account's fields.do_not_contact)"
        ),
        "{out}"
    );
    // And that is what delivery then does.
    let run = ws.keel_at("2026-11-24T15:00:00Z", &["run", "--once"]);
    assert!(run.stdout().contains("1 suppressed"), "{}", run.stdout());
}

#[test]
fn a_moment_outside_the_years_keel_runs_for_is_refused_in_words() {
    let ws = shipped("");
    let run = ws.keel(&["simulate", "--at", "2400-06-01"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr().contains("2400-06-01 is outside the years Keel runs passes for (1970–2099)"),
        "{}",
        run.stderr()
    );
}
