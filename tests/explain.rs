//! `keel explain PLAYBOOK ACCOUNT`: why a playbook did or did not fire for an account —
//! the condition with each sub-expression's value, the trigger state, the dry-run
//! decision, the ledger and where each delivery stands; the same answer through a
//! running daemon's API.

use std::process::Command;

use crate::run::{spawn_with_args, terminate, wait_for};
use crate::util::{Workspace, NOW};

const TOKEN: &str = "t-explain";

const PLAYBOOK: &str = r#"id: usage-dip
name: Usage dip → nudge
audience: account.segment != "smb"
trigger:
  condition: account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"
actions:
  - task: { title: "Check in with {{ account.name }}", owner: "{{ account.owner }}", due_in: 3d }
  - email: { to: contacts, template: nudge }
"#;

const ACCOUNTS: &str = "id,name,segment,owner,metrics.score,metrics.logins_30d
A-FIRES,Acme,enterprise,csm@keel.example,40,2
B-QUIET,Birch,enterprise,csm@keel.example,72.4,1
C-UNSUB,Cedar,mid_market,csm@keel.example,41,3
D-NIGHT,Delta,enterprise,csm@keel.example,38,0
";

const CONTACTS: &str = "id,account_id,email,name,timezone,unsubscribed
a1,A-FIRES,ann@acme.example,Ann,,false
c1,C-UNSUB,cal@cedar.example,Cal,,true
d1,D-NIGHT,dee@delta.example,Dee,America/Los_Angeles,false
";

/// A book of four accounts and one playbook that emails contacts; the clock is pinned
/// at [`NOW`] (a Tuesday, 09:00 UTC).
fn book() -> Workspace {
    let ws = Workspace::new("timezone: UTC\ndata_dir: .keel\napi:\n  token: ${KEEL_API_TOKEN:-}\n");
    ws.write("playbooks/usage-dip.yaml", PLAYBOOK);
    ws.write("playbooks/templates/nudge.txt", "Subject: Need a hand, {{ account.name }}?\n\nWe are here to help.\n");
    ws.write("accounts.csv", ACCOUNTS);
    ws.write("contacts.csv", CONTACTS);
    ws.keel(&["sync", "accounts", "accounts.csv"]).ok();
    ws.keel(&["sync", "contacts", "contacts.csv"]).ok();
    ws
}

#[test]
fn explain_says_why_it_fires_why_not_and_what_delivery_did() {
    let ws = book();
    // Before any pass: due now, and the dry run fires, with what delivery would do.
    let fired = ws.keel(&["explain", "usage-dip", "A-FIRES"]).ok();
    insta::assert_snapshot!(fired, @r#"
    usage-dip · A-FIRES Acme
      playbook: Usage dip → nudge
      trigger:  on_enter: fires when `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` turns true, once per episode
      audience: `account.segment != "smb"`
      schedule: `0 * * * *` (UTC), the config's evaluation.schedule
      at 2026-12-01 09:00 UTC: due: it never ran, so its first pass runs now

    Audience
      account.segment != "smb" → "enterprise" != "smb" → true

    Condition
      account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes" → true
        account.metrics.score < 60 && account.metrics.logins_30d <= 5 → true
          account.metrics.score < 60 → 40.0 < 60 → true
          account.metrics.logins_30d <= 5 → 2.0 <= 5 → true
        account.fields.escalated == "yes" → not evaluated (`||` stops at the first true)

    State
      on_enter: outside (0 episode(s) so far): fires when it turns true

    Decision at 2026-12-01 09:00 UTC (a dry run of the pass: nothing is recorded or sent)
      fires: episode:1
        why:  `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` became true (before: false or never evaluated)
        read: fields.escalated = null, metrics.logins_30d = 2.0, metrics.score = 40.0, segment = "enterprise"
        does: task "Check in with Acme" for csm@keel.example (normal, due in 3d)
        does: email nudge to 1 subscribed contact(s)
        delivery: email to ann@acme.example: would send at 2026-12-01 09:00 UTC

    Ledger: nothing recorded for this playbook and account
    "#);

    // The daemon's pass runs at NOW; explaining at NOW shows its next tick's dry run.
    let run = ws.keel(&["run", "--once"]);
    assert!(run.code() == 0, "{}", run.stderr());

    let quiet = ws.keel(&["explain", "usage-dip", "B-QUIET"]).ok();
    insta::assert_snapshot!(quiet, @r#"
    usage-dip · B-QUIET Birch
      playbook: Usage dip → nudge
      trigger:  on_enter: fires when `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` turns true, once per episode
      audience: `account.segment != "smb"`
      schedule: `0 * * * *` (UTC), the config's evaluation.schedule
      at 2026-12-01 09:00 UTC: not due: its last pass was 2026-12-01 09:00 UTC and its next tick is 2026-12-01 10:00 UTC; shown: the pass of that tick

    Audience
      account.segment != "smb" → "enterprise" != "smb" → true

    Condition
      account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes" → false
        account.metrics.score < 60 && account.metrics.logins_30d <= 5 → false
          account.metrics.score < 60 → 72.4 < 60 → false
          account.metrics.logins_30d <= 5 → not evaluated (`&&` stops at the first false)
        account.fields.escalated == "yes" → () == "yes" → false
          account.fields.escalated → unknown (missing value)

    State
      on_enter: outside (0 episode(s) so far): fires when it turns true

    Decision at 2026-12-01 10:00 UTC (a dry run of the pass: nothing is recorded or sent)
      does not fire: `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` is false (read: fields.escalated = null, metrics.logins_30d = 1.0, metrics.score = 72.4, segment = "enterprise")

    Ledger: nothing recorded for this playbook and account
    "#);

    let suppressed = ws.keel(&["explain", "usage-dip", "C-UNSUB"]).ok();
    insta::assert_snapshot!(suppressed, @r#"
    usage-dip · C-UNSUB Cedar
      playbook: Usage dip → nudge
      trigger:  on_enter: fires when `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` turns true, once per episode
      audience: `account.segment != "smb"`
      schedule: `0 * * * *` (UTC), the config's evaluation.schedule
      at 2026-12-01 09:00 UTC: not due: its last pass was 2026-12-01 09:00 UTC and its next tick is 2026-12-01 10:00 UTC; shown: the pass of that tick

    Audience
      account.segment != "smb" → "mid_market" != "smb" → true

    Condition
      account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes" → true
        account.metrics.score < 60 && account.metrics.logins_30d <= 5 → true
          account.metrics.score < 60 → 41.0 < 60 → true
          account.metrics.logins_30d <= 5 → 3.0 <= 5 → true
        account.fields.escalated == "yes" → not evaluated (`||` stops at the first true)

    State
      on_enter: inside episode 1 (it held at the last evaluation: fires again only after it has been false)

    Decision at 2026-12-01 10:00 UTC (a dry run of the pass: nothing is recorded or sent)
      does not fire: `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` is still true since episode 1: it fires again only after it has been false

    Ledger (1 entry)
      2026-12-01 09:00 UTC  fired (episode:1)
        why: `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` became true (before: false or never evaluated)
        read: fields.escalated = null, metrics.logins_30d = 3.0, metrics.score = 41.0, segment = "mid_market"
        → task "Check in with Cedar" for csm@keel.example (normal, due in 3d)
        → email nudge to 0 subscribed contact(s)
        delivery: email to cal@cedar.example: suppressed: unsubscribed (the contact record says so)
        task #2 open: Check in with Cedar for csm@keel.example, due 2026-12-04 09:00 UTC
    "#);

    let deferred = ws.keel(&["explain", "usage-dip", "D-NIGHT", "--at", "2026-12-01T12:00:00Z"]).ok();
    insta::assert_snapshot!(deferred, @r#"
    usage-dip · D-NIGHT Delta
      playbook: Usage dip → nudge
      trigger:  on_enter: fires when `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` turns true, once per episode
      audience: `account.segment != "smb"`
      schedule: `0 * * * *` (UTC), the config's evaluation.schedule
      at 2026-12-01 12:00 UTC: due: a tick since its last pass (2026-12-01 09:00 UTC)

    Audience
      account.segment != "smb" → "enterprise" != "smb" → true

    Condition
      account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes" → true
        account.metrics.score < 60 && account.metrics.logins_30d <= 5 → true
          account.metrics.score < 60 → 38.0 < 60 → true
          account.metrics.logins_30d <= 5 → 0.0 <= 5 → true
        account.fields.escalated == "yes" → not evaluated (`||` stops at the first true)

    State
      on_enter: inside episode 1 (it held at the last evaluation: fires again only after it has been false)

    Decision at 2026-12-01 12:00 UTC (a dry run of the pass: nothing is recorded or sent)
      does not fire: `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` is still true since episode 1: it fires again only after it has been false

    Ledger (1 entry)
      2026-12-01 09:00 UTC  fired (episode:1)
        why: `account.metrics.score < 60 && account.metrics.logins_30d <= 5 || account.fields.escalated == "yes"` became true (before: false or never evaluated)
        read: fields.escalated = null, metrics.logins_30d = 0.0, metrics.score = 38.0, segment = "enterprise"
        → task "Check in with Delta" for csm@keel.example (normal, due in 3d)
        → email nudge to 1 subscribed contact(s)
        delivery: email to dee@delta.example: deferred until 2026-12-01 16:00 UTC: 01:00 in America/Los_Angeles is in quiet hours (20:00–08:00); next window Tue 2026-12-01 08:00 PST
        task #3 open: Check in with Delta for csm@keel.example, due 2026-12-04 09:00 UTC
    "#);
}

#[test]
fn explain_as_json_holds_each_sub_expressions_value() {
    let ws = book();
    let out = ws.keel(&["explain", "usage-dip", "B-QUIET", "--at", "2026-12-01", "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["day"], "2026-12-01");
    assert_eq!(v["decision"]["verdict"], "quiet");
    let condition = &v["condition"];
    assert_eq!(condition["outcome"]["state"], "value");
    assert_eq!(condition["outcome"]["value"], false);
    // `a && b || c`: the `&&` is false at its first operand, so its second is not
    // evaluated; `c` reads a field the account lacks.
    let and = &condition["parts"][0];
    let first = &and["parts"][0];
    assert_eq!(first["source"], "account.metrics.score < 60");
    assert_eq!(first["with_values"], "72.4 < 60");
    assert_eq!(first["outcome"]["value"], false);
    assert_eq!(first["parts"][0]["outcome"]["value"], 72.4);
    assert_eq!(and["parts"][1]["source"], "account.metrics.logins_30d <= 5");
    assert_eq!(and["parts"][1]["outcome"]["state"], "not_evaluated");
    let escalated = &condition["parts"][1];
    assert_eq!(escalated["source"], r#"account.fields.escalated == "yes""#);
    assert_eq!(escalated["parts"][0]["outcome"]["state"], "unknown");
    assert_eq!(v["audience"]["with_values"], r#""enterprise" != "smb""#);
}

#[test]
fn unknown_playbooks_and_accounts_are_named_with_what_there_is() {
    let ws = book();
    let run = ws.keel(&["explain", "usage-dpi", "A-FIRES"]);
    assert_eq!(run.code(), 1);
    assert_eq!(
        run.stderr().trim(),
        r#"error: no playbook "usage-dpi" (did you mean "usage-dip"?); the playbooks are: usage-dip"#
    );
    let run = ws.keel(&["explain", "usage-dip", "NOPE"]);
    assert_eq!((run.code(), run.stderr().trim()), (1, r#"error: no account "NOPE""#));
    let run = ws.keel(&["explain", "usage-dip", "A-FIRES", "--at", "tuesday"]);
    assert_eq!(run.code(), 2, "a usage error: {}", run.stderr());
}

/// `keel explain` on the machine's clock (an explicit `--at`), with the API token.
fn explain_through(ws: &Workspace, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--config", "keel.yaml", "explain"])
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

#[test]
fn explain_through_a_running_daemon_gives_the_same_answer() {
    let ws = book();
    let run = ws.keel(&["run", "--once"]);
    assert!(run.code() == 0, "{}", run.stderr());
    let asks: &[&[&str]] = &[
        &["usage-dip", "B-QUIET", "--at", "2026-12-01"],
        &["usage-dip", "C-UNSUB", "--at", "2026-12-01T12:00:00Z", "--format", "json"],
        &["usage-dip", "D-NIGHT", "--at", "2026-12-02"],
        &["usage-dpi", "B-QUIET", "--at", "2026-12-01"],
        &["usage-dip", "NOPE", "--at", "2026-12-01"],
    ];
    let local: Vec<_> = asks.iter().map(|a| explain_through(&ws, a)).collect();
    assert!(local[0].1.contains("72.4 < 60"), "{}", local[0].1);

    // The daemon starts at NOW, where the pass above left off: nothing is due, so
    // nothing it does changes the answers.
    let (mut child, rx) =
        spawn_with_args(&ws, Some(NOW), Some("info"), &[("KEEL_API_TOKEN", TOKEN)], &["--listen", "127.0.0.1:0"]);
    let mut log = Vec::new();
    wait_for(&rx, &mut log, "the API to listen", |l| l.contains("the API is listening"));
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let (code, _, err) = {
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["--config", "keel.yaml", "contacts", "suppressed"])
            .current_dir(ws.dir.path())
            .env_remove("KEEL_NOW")
            .output()
            .unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    assert_eq!(code, 1, "the daemon holds the store: {err}");
    for (args, before) in asks.iter().zip(&local) {
        let through = explain_through(&ws, args);
        assert_eq!(&through, before, "`keel explain {}` through the daemon", args.join(" "));
    }
    // The route itself: scope `read`, `at` checked, unknown names are 404s.
    let announced: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path(".keel/api.json")).unwrap()).unwrap();
    let base = format!("http://{}/api/v1/accounts", announced["addr"].as_str().unwrap());
    let http = reqwest::blocking::Client::builder().no_proxy().build().unwrap();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let answer = request.send().unwrap();
        (answer.status().as_u16(), answer.json::<serde_json::Value>().unwrap_or_default())
    };
    let (status, body) = get("/B-QUIET/explain/usage-dip?at=2026-12-01", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["condition"]["parts"][0]["parts"][0]["with_values"], "72.4 < 60");
    assert_eq!(get("/B-QUIET/explain/usage-dip", None).0, 401);
    let (status, body) = get("/B-QUIET/explain/usage-dip?at=tuesday", Some(TOKEN));
    assert_eq!((status, body["field"].as_str()), (400, Some("at")), "{body}");
    let (status, body) = get("/B-QUIET/explain/usage-dip?when=now", Some(TOKEN));
    assert_eq!((status, body["field"].as_str()), (400, Some("when")), "{body}");
    let (status, body) = get("/B-QUIET/explain/usage-dpi", Some(TOKEN));
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains(r#"did you mean "usage-dip"?"#), "{body}");
    let (status, _) = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_state_says_a_date_triggers_window_and_a_sequences_next_step() {
    let ws = Workspace::new("timezone: UTC\ndata_dir: .keel\n");
    ws.write(
        "playbooks/onboard.yaml",
        r#"id: onboard
name: Onboarding check-ins
trigger:
  date: start_date
  offset: 0d
  catch_up: 7d
steps:
  - after: 0d
    actions:
      - task: { title: "Kick-off with {{ account.name }}", owner: "{{ account.owner }}" }
  - after: 3d
    actions:
      - task: { title: "Day-3 check-in with {{ account.name }}", owner: "{{ account.owner }}" }
"#,
    );
    ws.write("a.csv", "id,name,owner,start_date\nNEW,Newco,csm@keel.example,2026-11-30\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    ws.keel(&["run", "--once"]).ok();
    let out = ws.keel(&["explain", "onboard", "NEW", "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let date = &v["state"]["date"];
    assert_eq!((date["due_day"].as_str(), date["last_day"].as_str()), (Some("2026-11-30"), Some("2026-12-06")), "{v}");
    let seq = &v["state"]["sequences"][0];
    assert_eq!(seq["occurrence"], "start_date=2026-11-30");
    assert_eq!(
        (seq["next_step"].as_u64(), seq["due"].as_str()),
        (Some(2), Some("2026-12-04T00:00:00Z")),
        "whole days count on the calendar: {v}"
    );
    assert_eq!(v["ledger_total"], 1);
    assert_eq!(v["ledger"][0]["tasks"][0]["status"], "open");
    let text = ws.keel(&["explain", "onboard", "NEW"]).ok();
    assert!(text.contains("  sequence start_date=2026-11-30: step 2 (after 3d) due 2026-12-04 00:00 UTC"), "{text}");
    assert!(
        text.contains(
            "  date: start_date 2026-11-30 0d = 2026-11-30: fires from 2026-11-30 through 2026-12-06 (catch-up 7d)"
        ),
        "{text}"
    );
}
