//! The `keel` command line as a user meets it: sync summaries and exit codes, listing and
//! showing accounts in text and JSON.

use crate::util::{Workspace, CRM_CONFIG};

fn book() -> Workspace {
    let ws = Workspace::new(
        &format!("{CRM_CONFIG}\n    file: ev.ndjson\n")
            .replace("  accounts:\n    columns:", "  accounts:\n    file: accounts.csv\n    columns:"),
    );
    ws.write(
        "accounts.csv",
        "\
Account ID,Account Name,Segment,ARR,CSM,Manager,Renewal Date,Stage,Industry
A-1,Acme Analytics,Enterprise,480000,ana@keel.example,mo@keel.example,2027-02-01,adoption,Software
A-2,Bluepeak Health,Mid-Market,62000,ben@keel.example,mo@keel.example,2026-12-20,renewal,Healthcare
A-3,Cobalt Retail,SMB,5400,digital@keel.example,mo@keel.example,2027-09-30,onboarding,Retail
A-4,Delta Freight,SMB,7100,digital@keel.example,mo@keel.example,,onboarding,Logistics
",
    );
    ws.write(
        "ev.ndjson",
        "{\"messageId\":\"m1\",\"accountId\":\"A-1\",\"event\":\"Logged In\",\"timestamp\":\"2026-11-30T10:00:00Z\"}\n",
    );
    ws
}

#[test]
fn sync_with_no_file_imports_the_configured_sources_and_shows_the_book() {
    let ws = book();
    let out = ws.keel(&["sync"]).ok();
    let out = out
        .lines()
        .map(|l| if l.contains(" s (") { l.split(" in ").next().unwrap() } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(out, @r"
    ./accounts.csv: 4 accounts
    ./ev.ndjson: 1 events

    Book of business in ./.keel/store (0 contacts, 1 events), as of 2026-12-01:
    SEGMENT     ACCOUNTS       ARR  RENEWING IN 90 DAYS
    enterprise         1  $480,000                    1
    mid_market         1   $62,000                    1
    smb                2   $12,500                    0
    total              4  $554,500                    2

    Next: keel --config keel.yaml accounts list --sort renewal
    ");
}

#[test]
fn the_summary_line_gives_counts_and_a_rate() {
    let ws = book();
    let first = ws.keel(&["sync", "accounts", "accounts.csv"]).ok();
    assert!(first.contains("4 inserted, 0 updated, 0 unchanged, 0 rejected"), "{first}");
    assert!(first.contains(" accounts/s)"), "{first}");
    let again = ws.keel(&["sync", "accounts", "accounts.csv"]).ok();
    assert!(again.contains("0 inserted, 0 updated, 4 unchanged, 0 rejected"), "{again}");
}

#[test]
fn rejected_rows_give_a_distinct_exit_code_and_their_lines() {
    let ws = book();
    // A row without an id is rejected; a row with an unreadable ARR is stored without it
    // (a warning, which alone would not change the exit code).
    ws.write("bad.csv", "Account ID,ARR\nOK,100\n,5\nODD,lots\n");
    let run = ws.keel(&["sync", "accounts", "bad.csv"]);
    assert_eq!(run.code(), 65, "{}", run.stderr());
    assert!(
        run.stdout().contains("2 inserted, 0 updated, 0 unchanged, 1 rejected, 1 unreadable value left out"),
        "{}",
        run.stdout()
    );
    insta::assert_snapshot!(run.stderr(), @r#"
      bad.csv:3: missing id
      bad.csv:4:2: column "ARR": expected a number, found "lots" (warning: the row was stored without this value)
      warning: mapped column(s) not in the header, so this file set nothing for them: "Account Name", "Segment", "CSM", "Manager", "Renewal Date", "Start", "Stage", "TZ", "Logins (30d)", "NPS" (sync.accounts.columns)
    error: 1 row(s) rejected; the other 2 row(s) were stored
    "#);
    ws.write("odd.csv", "Account ID,ARR\nODD,lots\n");
    assert_eq!(ws.keel(&["sync", "accounts", "odd.csv"]).code(), 0, "a value left out is a warning");
    assert!(ws.keel(&["accounts", "show", "OK"]).ok().contains("$100"));
}

#[test]
fn accounts_list_filters_and_sorts() {
    let ws = book();
    ws.keel(&["sync"]).ok();
    insta::assert_snapshot!(ws.keel(&["accounts", "list"]).ok(), @r"
    ID   NAME             SEGMENT          ARR  HEALTH  BAND  OWNER                 RENEWAL     STAGE
    A-1  Acme Analytics   enterprise  $480,000       -  -     ana@keel.example      2027-02-01  adoption
    A-2  Bluepeak Health  mid_market   $62,000       -  -     ben@keel.example      2026-12-20  renewal
    A-4  Delta Freight    smb           $7,100       -  -     digital@keel.example  -           onboarding
    A-3  Cobalt Retail    smb           $5,400       -  -     digital@keel.example  2027-09-30  onboarding
    4 accounts, $554,500 ARR
    ");
    let by_renewal = ws.keel(&["accounts", "list", "--sort", "renewal", "--format", "json"]).ok();
    let ids: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&by_renewal)
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["A-2", "A-1", "A-3", "A-4"], "soonest first, no date last");
    let smb =
        ws.keel(&["accounts", "list", "--segment", "SMB", "--owner", "DIGITAL@keel.example", "--sort", "name"]).ok();
    assert!(smb.contains("A-3  Cobalt") && smb.contains("A-4  Delta") && !smb.contains("A-1"), "{smb}");
    assert!(ws
        .keel(&["accounts", "list", "--segment", "enterprise", "--limit", "0"])
        .ok()
        .contains("No accounts match"));
}

#[test]
fn accounts_list_shows_health_filters_by_band_and_sorts_by_it() {
    use keel::model::{Band, HealthPoint};
    let ws = book();
    ws.keel(&["sync"]).ok();
    {
        let store = ws.store();
        let point = |score, band| HealthPoint {
            date: "2026-11-30".parse().unwrap(),
            score,
            band,
            components: Default::default(),
        };
        let (red, green, yellow) = (point(38.3, Band::Red), point(91.0, Band::Green), point(64.0, Band::Yellow));
        store.record_health(&[("A-1", &green), ("A-2", &red), ("A-3", &yellow)]).unwrap();
    }
    insta::assert_snapshot!(ws.keel(&["accounts", "list", "--sort", "health"]).ok(), @r"
    ID   NAME             SEGMENT          ARR  HEALTH  BAND    OWNER                 RENEWAL     STAGE
    A-2  Bluepeak Health  mid_market   $62,000    38.3  red     ben@keel.example      2026-12-20  renewal
    A-3  Cobalt Retail    smb           $5,400    64.0  yellow  digital@keel.example  2027-09-30  onboarding
    A-1  Acme Analytics   enterprise  $480,000    91.0  green   ana@keel.example      2027-02-01  adoption
    A-4  Delta Freight    smb           $7,100       -  -       digital@keel.example  -           onboarding
    4 accounts, $554,500 ARR
    ");
    let red: Vec<serde_json::Value> =
        serde_json::from_str(&ws.keel(&["accounts", "list", "--band", "red", "--format", "json"]).ok()).unwrap();
    assert_eq!(red.len(), 1, "{red:?}");
    assert_eq!((red[0]["id"].as_str(), red[0]["health"]["score"].as_f64()), (Some("A-2"), Some(38.3)));
    let bad = ws.keel(&["accounts", "list", "--band", "purple"]);
    assert_eq!(bad.code(), 2, "a usage error: {}", bad.stderr());
    assert!(bad.stderr().contains("red, yellow, green"), "{}", bad.stderr());
    let tasks = ws.keel(&["tasks", "list", "--limit", "1"]).ok();
    assert!(tasks.contains("No open tasks"), "{tasks}");
    let outbox = ws.keel(&["outbox", "list", "--limit", "1"]).ok();
    assert!(outbox.contains("No pending outbox entries"), "{outbox}");
}

#[test]
fn accounts_show_gives_every_field_metrics_contacts_and_events() {
    let ws = book();
    ws.write(
        "contacts.csv",
        "Contact ID,Account,email,name,role,Opt Out\nC-1,A-1,ana@acme.example,Ana Silva,Champion,no\n",
    );
    ws.keel(&["sync"]).ok();
    ws.keel(&["sync", "contacts", "contacts.csv"]).ok();
    ws.write("usage.csv", "Account ID,Logins (30d),NPS\nA-1,1234,9.5\n");
    ws.keel(&["sync", "accounts", "usage.csv"]).ok();
    insta::assert_snapshot!(ws.keel(&["accounts", "show", "A-1"]).ok(), @r"
    A-1  Acme Analytics
      segment          enterprise
      arr              $480,000
      owner            ana@keel.example
      manager          mo@keel.example
      renewal_date     2027-02-01 (in 62 days)
      start_date       -
      lifecycle_stage  adoption
      timezone         - (default Europe/Berlin)
      updated_at       2026-12-01T09:00:00Z

    Health: not scored yet (`keel health` scores every account)

    Metrics
      logins_30d  1234
      nps          9.5

    Fields
      Industry  Software

    Contacts (1)
      ID   NAME       EMAIL             ROLE      EMAIL OPT-OUT
      C-1  Ana Silva  ana@acme.example  Champion  no

    Events in the last 30 days (1)
      TIME (UTC)        EVENT      CONTACT
      2026-11-30 10:00  Logged In  -

    Timeline: playbook decisions (0)
      none yet (`keel run` evaluates the playbooks and records what fires)

    Tasks (0)
      none
    ");
    let json: serde_json::Value =
        serde_json::from_str(&ws.keel(&["accounts", "show", "A-1", "--format", "json"]).ok()).unwrap();
    assert_eq!(json["account"]["metrics"]["nps"], 9.5);
    assert_eq!(json["contacts"][0]["email"], "ana@acme.example");
    assert_eq!(json["events"][0]["name"], "Logged In");

    let missing = ws.keel(&["accounts", "show", "NOPE"]);
    assert_eq!(missing.code(), 1);
    assert!(missing.stderr().starts_with("error: no account with id \"NOPE\""), "{}", missing.stderr());
}

#[test]
fn sync_of_one_kind_without_a_file_reads_the_configured_one_or_says_how_to_name_it() {
    let ws = book();
    let out = ws.keel(&["sync", "accounts"]).ok();
    assert!(out.contains("accounts.csv: 4 accounts"), "{out}");
    let contacts = ws.keel(&["sync", "contacts"]);
    assert_eq!(contacts.code(), 1);
    assert!(
        contacts
            .stderr()
            .contains("no contacts file: name one (`keel sync contacts FILE`) or set sync.contacts.file in"),
        "{}",
        contacts.stderr()
    );
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let ws = book();
    // Enough accounts that the JSON outgrows the pipe's buffer.
    let mut csv = String::from("Account ID,Account Name\n");
    for i in 0..3000 {
        csv.push_str(&format!("A-{i},Account number {i} with a long enough name\n"));
    }
    ws.write("accounts.csv", &csv);
    ws.keel(&["sync", "accounts"]).ok();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--config", "keel.yaml", "accounts", "list", "--format", "json"])
        .current_dir(ws.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take()); // `| head -c 100`
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe") && !stderr.contains("error"), "{stderr}");
}
