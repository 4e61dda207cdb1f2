//! The first day with a real book: no date goes by without a visible decision, renewals
//! caught late get their most recent milestone (not all three), and `simulate` says why
//! nothing fires for one account and one playbook.

use std::path::Path;

use crate::util::Workspace;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped rules and playbooks, in UTC.
fn shipped() -> Workspace {
    Workspace::new(&format!(
        "timezone: UTC\nrules: {}\nplaybooks: {}\n",
        repo().join("rules").display(),
        repo().join("playbooks").display()
    ))
}

/// (playbook, decision, why) of an account's ledger.
fn decisions(ws: &Workspace, account: &str) -> Vec<(String, String, String)> {
    let store = ws.store();
    store
        .ledger_of(account)
        .unwrap()
        .into_iter()
        .map(|e| (e.playbook, e.decision.as_str().to_string(), e.why))
        .collect()
}

#[test]
fn a_renewal_23_days_out_on_a_first_pass_gets_its_30_day_task_and_the_earlier_milestones_are_skipped_visibly() {
    let ws = shipped();
    ws.write(
        "a.csv",
        "id,name,owner,arr,renewal_date,start_date\nSOON,Soon Co,csm@x.example,1000,2026-12-15,2024-12-15\nPAST,Past Co,csm@x.example,1000,2026-11-01,2024-11-01\n",
    );
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let run = ws.keel_at("2026-11-22T15:00:00Z", &["run", "--once"]);
    assert!(matches!(run.code(), 0 | 3), "{}{}", run.stdout(), run.stderr());
    let soon = decisions(&ws, "SOON");
    let of =
        |pb: &str| soon.iter().find(|(p, _, _)| p == pb).unwrap_or_else(|| panic!("{pb} decided nothing: {soon:?}"));
    assert_eq!(of("renewal-30").1, "fired", "{soon:?}");
    assert!(of("renewal-30").2.contains("due 7 days ago, caught up until 2026-12-15"), "{soon:?}");
    for earlier in ["renewal-60", "renewal-90"] {
        assert_eq!(of(earlier).1, "skipped", "{soon:?}");
        assert!(of(earlier).2.contains("renewal-30 (2026-11-15) is the most recent step due"), "{soon:?}");
    }
    // A renewal that passed before Keel started: each milestone skipped, saying so.
    let past = decisions(&ws, "PAST");
    for pb in ["renewal-30", "renewal-60", "renewal-90"] {
        assert!(
            past.iter().any(|(p, d, why)| p == pb && d == "skipped" && why.contains("2026-11-01 has passed")),
            "{pb}: {past:?}"
        );
    }
    // The run's table counts them, and the timeline shows them.
    assert!(
        run.stdout().lines().any(|l| l.starts_with("renewal-90") && l.split_whitespace().nth(3) == Some("2")),
        "{}",
        run.stdout()
    );
    let show = ws.keel(&["accounts", "show", "SOON"]).ok();
    assert!(show.contains("renewal-90") && show.contains("skipped"), "{show}");
    // Later milestones fire on their own day, once.
    let next = ws.keel_at("2026-11-23T15:00:00Z", &["run", "--once"]);
    assert!(matches!(next.code(), 0 | 3));
    let after: Vec<_> = decisions(&ws, "SOON").into_iter().filter(|(p, _, _)| p.starts_with("renewal-")).collect();
    assert_eq!(after.len(), 3, "nothing decided twice: {after:?}");
}

#[test]
fn a_start_date_long_past_on_a_first_pass_is_recorded_as_skipped_with_its_dates() {
    let ws = shipped();
    ws.write("a.csv", "id,name,segment,owner,start_date\nOLD,Old Co,enterprise,csm@x.example,2025-11-22\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let run = ws.keel_at("2026-11-22T15:00:00Z", &["run", "--once"]);
    assert!(matches!(run.code(), 0 | 3), "{}{}", run.stdout(), run.stderr());
    let old = decisions(&ws, "OLD");
    assert!(
        old.iter().any(|(p, d, why)| p == "enterprise-onboarding"
            && d == "skipped"
            && why.contains(
                "start_date 2025-11-22 0d = 2025-11-22: fell due 365 days ago, older than the 7d catch-up window"
            )),
        "{old:?}"
    );
}

#[test]
fn simulate_for_one_account_and_one_playbook_says_why_nothing_fires() {
    let ws = shipped();
    ws.write(
        "a.csv",
        "id,name,segment,owner,manager,renewal_date,metrics.nps\nENT,Ent Co,enterprise,csm@x.example,mgr@x.example,2027-09-01,9\n",
    );
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let why = |playbook: &str| {
        let out =
            ws.keel(&["simulate", "--at", "2026-11-22T15:00:00Z", "--playbook", playbook, "--account", "ENT"]).ok();
        assert!(out.contains("Nothing would fire."), "{out}");
        out
    };
    assert!(why("renewal-90").contains("why:  renewal_date 2027-09-01 -90d = 2027-06-03: not due yet (in 193 days)"));
    let smb = why("smb-onboarding");
    assert!(
        smb.contains(
            "why:  outside the audience: `account.segment == \"smb\"` is false (read: segment = \"enterprise\""
        ),
        "{smb}"
    );
    let red = why("red-save-plan");
    assert!(red.contains("why:  `account.health.band == \"red\"` is "), "{red}");
    assert!(red.contains("(read: health.band = "), "{red}");
    // Once decided, the ledger is the reason.
    let run = ws.keel_at("2026-11-22T15:00:00Z", &["run", "--once"]);
    assert!(matches!(run.code(), 0 | 3));
    ws.write("a.csv", "id,name,segment,owner,manager,renewal_date,metrics.nps\nENT,Ent Co,enterprise,csm@x.example,mgr@x.example,2027-02-20,9\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    ws.keel_at("2026-11-22T16:00:00Z", &["run", "--once"]);
    let again =
        ws.keel(&["simulate", "--at", "2026-11-22T17:00:00Z", "--playbook", "renewal-90", "--account", "ENT"]).ok();
    assert!(again.contains("why:  renewal_date=2027-02-20 is already in the ledger"), "{again}");
    // JSON says the same.
    let json = ws
        .keel(&[
            "simulate",
            "--at",
            "2026-11-22T17:00:00Z",
            "--playbook",
            "renewal-90",
            "--account",
            "ENT",
            "--format",
            "json",
        ])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(report["why_nothing"][0].as_str().unwrap().contains("already in the ledger"), "{report}");
}

#[test]
fn a_first_pass_that_fires_for_much_of_the_book_says_so_before_delivering() {
    let ws = Workspace::new(&format!(
        "timezone: UTC\nrules: {}\nplaybooks: {}\n",
        repo().join("rules").display(),
        repo().join("playbooks").display()
    ));
    // 100 accounts, 40 of them red by the shipped health model.
    let header = "id,name,segment,owner,manager,metrics.logins_30d,metrics.active_users,metrics.licensed_users,metrics.avg_session_minutes,metrics.open_tickets,metrics.feature_adoption_pct,metrics.workflow_completion_pct,metrics.data_quality_pct,metrics.integrations,metrics.exec_sponsor_meetings_90d,metrics.qbrs_attended_12m,metrics.nps,metrics.roi_achieved_pct,metrics.expansion_potential_pct";
    let healthy = "2000,100,100,35,0,95,95,95,10,5,4,9,120,90";
    let sick = "20,10,100,2,14,10,10,50,0,0,0,2,5,5";
    let mut csv = format!("{header}\n");
    // Two managers, 20 red accounts each.
    for i in 0..100 {
        let metrics = if i < 40 { sick } else { healthy };
        let manager = if i % 2 == 0 { "mgr-a@x.example" } else { "mgr-b@x.example" };
        csv.push_str(&format!("A{i:03},Acct {i},enterprise,csm@x.example,{manager},{metrics}\n"));
    }
    ws.write("a.csv", &csv);
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let run = ws.keel_at("2026-11-24T15:00:00Z", &["run", "--once"]);
    assert!(matches!(run.code(), 0 | 3), "{}{}", run.stdout(), run.stderr());
    assert!(
        run.stderr().contains(
            "note: red-save-plan's first pass fired for 40 of 100 accounts: what is already true of the book, not news"
        ),
        "{}",
        run.stderr()
    );
    assert!(run.stdout().contains(" delivered in 4 message(s)"), "{}", run.stdout());
    // Each manager gets one save-plan email and one churn-risk email listing their 20
    // accounts (the shipped escalation playbooks digest their mail), and a task for each.
    let mails: Vec<String> = std::fs::read_dir(ws.path(".keel/mail"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 4, "two playbooks × two managers");
    for manager in ["mgr-a@x.example", "mgr-b@x.example"] {
        for (playbook, subject) in [
            ("red-save-plan", "Subject: Save plans needed: 20 accounts entered red"),
            ("churn-risk-escalation", "Subject: Churn risk: 20 accounts need executive involvement"),
        ] {
            let mine: Vec<&String> = mails
                .iter()
                .filter(|m| {
                    m.contains(&format!("\r\nTo: {manager}\r\n")) && m.contains(&format!("X-Keel-Playbook: {playbook}"))
                })
                .collect();
            assert_eq!(mine.len(), 1, "{manager} {playbook}");
            assert!(mine[0].contains(subject), "{}", mine[0]);
            let listed = mine[0].lines().filter(|l| l.starts_with("  - Acct ")).count();
            assert_eq!(listed, 20, "{}", mine[0]);
        }
    }
    let tasks: serde_json::Value = serde_json::from_str(&ws.keel(&["tasks", "list", "--format", "json"]).ok()).unwrap();
    let save_plans = tasks.as_array().unwrap().iter().filter(|t| t["playbook"] == "red-save-plan").count();
    assert_eq!(save_plans, 40, "one save-plan task per red account");
    // Later passes are news again: no note.
    let next = ws.keel_at("2026-11-25T15:00:00Z", &["run", "--once"]);
    assert!(!next.stderr().contains("first pass fired"), "{}", next.stderr());
}

#[test]
fn outbox_list_calls_a_deferred_email_deferred_as_the_run_summary_does() {
    let ws = shipped();
    ws.write("a.csv", "id,name,segment,owner,start_date\nNEW,New Co,smb,d@x.example,2026-11-24\n");
    ws.write("c.csv", "id,account_id,email,name\nC1,NEW,sam@new.example,Sam\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    ws.keel(&["sync", "contacts", "c.csv"]).ok();
    // 23:00 UTC: quiet hours for the customer; the welcome waits for 08:00.
    let run = ws.keel_at("2026-11-24T23:00:00Z", &["run", "--once"]);
    assert!(run.stdout().contains("1 deferred"), "{}", run.stdout());
    let list = ws.keel(&["outbox", "list"]).ok();
    let row = list.lines().find(|l| l.contains("smb-onboarding")).unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("deferred"), "{list}");
}
