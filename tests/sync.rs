//! Sync from files: every field round-trips, re-imports are no-ops, partial rows update
//! only what they carry, and bad rows are reported by line while good rows land.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use keel::model::{Account, Segment};
use keel::sync::{AccountField, ContactField, EventField};
use serde_json::json;

use crate::util::{now, Workspace, CRM_CONFIG};

const ACCOUNTS_CSV: &str = "\
Account ID,Account Name,Segment,ARR,CSM,Manager,Renewal Date,Start,Stage,TZ,Logins (30d),NPS,Industry,Legacy Column
ACC-1,\"Northwind, Inc.\",Enterprise,\"$1,250,000.50\",ana@keel.example,mo@keel.example,2027-03-31,2024-04-01,adoption,America/Chicago,1234,9,Logistics,junk
ACC-2,Bluepeak,Mid-Market,60000,ben@keel.example,mo@keel.example,2027-01-15,2025-01-15,renewal,Europe/Paris,88,6,Healthcare,junk
";

fn expected_acc1() -> Account {
    Account {
        id: "ACC-1".into(),
        name: "Northwind, Inc.".into(),
        segment: Some(Segment::Enterprise),
        arr: Some(1_250_000.5),
        owner: Some("ana@keel.example".into()),
        manager: Some("mo@keel.example".into()),
        renewal_date: NaiveDate::from_ymd_opt(2027, 3, 31),
        start_date: NaiveDate::from_ymd_opt(2024, 4, 1),
        lifecycle_stage: Some("adoption".into()),
        timezone: Some(chrono_tz::America::Chicago),
        fields: BTreeMap::from([("Industry".to_string(), json!("Logistics"))]),
        metrics: BTreeMap::from([("logins_30d".to_string(), 1234.0), ("nps".to_string(), 9.0)]),
        updated_at: now(),
    }
}

#[test]
fn a_csv_import_round_trips_every_account_field() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", ACCOUNTS_CSV);
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.updated, report.unchanged, report.rejected), (2, 0, 0, 0), "{report}");

    assert_eq!(store.account("ACC-1").unwrap().unwrap(), expected_acc1());
    let acc2 = store.account("ACC-2").unwrap().unwrap();
    assert_eq!(acc2.segment, Some(Segment::MidMarket));
    assert!(!acc2.fields.contains_key("Legacy Column"), "ignored columns are dropped");
}

#[test]
fn a_json_import_round_trips_every_account_field() {
    let ws = Workspace::new(CRM_CONFIG);
    // Mapped CRM keys, canonical field names, and nested metrics/fields objects all work.
    ws.write(
        "accounts.json",
        r#"[
  {"Account ID": "ACC-1", "Account Name": "Northwind, Inc.", "segment": "ENT", "arr": 1250000.5,
   "owner": "ana@keel.example", "manager": "mo@keel.example",
   "renewal_date": "2027-03-31", "start_date": "2024-04-01", "lifecycle_stage": "adoption",
   "timezone": "America/Chicago",
   "metrics": {"logins_30d": 1234, "nps": 9}, "fields": {"Industry": "Logistics"}}
]"#,
    );
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.json", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (1, 0), "{report:?}");
    assert_eq!(store.account("ACC-1").unwrap().unwrap(), expected_acc1());
}

#[test]
fn ndjson_keeps_open_fields_as_json_values() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write(
        "accounts.ndjson",
        "{\"id\": \"A\", \"name\": \"Acme\", \"Tags\": [\"beta\", \"vip\"], \"Seats\": 12}\n\n{\"id\": \"B\", \"name\": \"Beta\"}\n",
    );
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.ndjson", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (2, 0), "{report:?}");
    let a = store.account("A").unwrap().unwrap();
    assert_eq!(a.fields["Tags"], json!(["beta", "vip"]));
    assert_eq!(a.fields["Seats"], json!(12));
}

#[test]
fn re_importing_the_same_file_changes_nothing_and_says_so() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", ACCOUNTS_CSV);
    let store = ws.store();
    ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    let before: Vec<Account> = store.accounts().map(Result::unwrap).collect();

    let again = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((again.inserted, again.updated, again.unchanged, again.rejected), (0, 0, 2, 0), "{again}");
    let after: Vec<Account> = store.accounts().map(Result::unwrap).collect();
    assert_eq!(before, after, "a no-op import leaves every record, timestamps included, as it was");
}

#[test]
fn a_partial_record_updates_only_the_fields_it_carries() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", ACCOUNTS_CSV);
    // A usage export: only id and one metric; and a second row with an empty ARR cell.
    ws.write("usage.csv", "Account ID,Logins (30d)\nACC-1,1500\n");
    ws.write("blank.csv", "Account ID,ARR,NPS\nACC-1,,10\n");
    let store = ws.store();
    ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);

    let usage = ws.sync::<AccountField>(&store, "usage.csv", |c| &c.sync.accounts);
    assert_eq!((usage.updated, usage.inserted), (1, 0));
    let blank = ws.sync::<AccountField>(&store, "blank.csv", |c| &c.sync.accounts);
    assert_eq!(blank.updated, 1);

    let mut want = expected_acc1();
    want.metrics.insert("logins_30d".into(), 1500.0);
    want.metrics.insert("nps".into(), 10.0);
    assert_eq!(store.account("ACC-1").unwrap().unwrap(), want, "an empty cell never blanks a field");
}

/// Rows with a bad id or too few cells, and rows whose optional cells cannot be read.
const BAD_ROWS_CSV: &str = "\
Account ID,Account Name,Segment,ARR,Renewal Date,CSM,TZ
GOOD-1,One,SMB,1000,2027-01-01,a@x.example,UTC
,No Id,SMB,1000,2027-01-01,a@x.example,UTC
BAD-DATE,Two,SMB,1000,2027-13-01,a@x.example,UTC
BAD-NUM,Three,SMB,\"1234,56\",2027-01-01,a@x.example,UTC
BAD-SEG,Four,Tier 1!,1000,2027-01-01,a@x.example,UTC
BAD-TWO,Five,SMB,lots,2027-01-01,not-an-email,UTC
SHORT,Six
GOOD-2,\"Multi
line name\",SMB,2000,2027-02-01,b@x.example,Asia/Tokyo
BAD-TZ,Seven,SMB,1000,2027-01-01,a@x.example,Mars/Base
";

#[test]
fn bad_rows_come_back_with_line_and_column_while_good_rows_land() {
    let ws = Workspace::new(&CRM_CONFIG.replace("  accounts:\n", "  accounts:\n    on_bad_value: reject_row\n"));
    ws.write("accounts.csv", BAD_ROWS_CSV);
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected), (2, 7), "{report}");
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(errors.join("\n"), @r#"
    3: missing id
    4:5: column "Renewal Date": invalid date "2027-13-01": expected YYYY-MM-DD (or set date_format for this source or column)
    5:4: column "ARR": expected a number, found "1234,56" (use '.' for decimals; ',' only between groups of three digits)
    6:3: column "Segment": segment "Tier 1!" is neither a standard segment (enterprise, mid_market, smb) nor a plain name (letters, digits, spaces, '-' or '_')
    7:4: column "ARR": expected a number, found "lots"
    7:6: column "CSM": invalid email address "not-an-email"
    8: row has 2 cells; the header has 7
    11:7: column "TZ": unknown time zone "Mars/Base": expected an IANA name like America/New_York
    "#);
    assert_eq!(store.account("GOOD-2").unwrap().unwrap().name, "Multi\nline name");
    assert!(store.account("BAD-DATE").unwrap().is_none(), "a rejected row stores nothing");
    assert_eq!(store.account_count(), 2);
}

#[test]
fn by_default_an_unreadable_optional_cell_is_left_out_and_its_row_stored() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", BAD_ROWS_CSV);
    let run = ws.keel(&["sync", "accounts", "accounts.csv"]);
    assert_eq!(run.code(), 65, "a missing id still rejects its row");
    assert!(
        run.stdout().contains("7 inserted, 0 updated, 0 unchanged, 2 rejected, 6 unreadable values left out"),
        "{}",
        run.stdout()
    );
    insta::assert_snapshot!(run.stderr(), @r#"
      accounts.csv:3: missing id
      accounts.csv:4:5: column "Renewal Date": invalid date "2027-13-01": expected YYYY-MM-DD (or set date_format for this source or column) (warning: the row was stored without this value)
      accounts.csv:5:4: column "ARR": expected a number, found "1234,56" (use '.' for decimals; ',' only between groups of three digits) (warning: the row was stored without this value)
      accounts.csv:6:3: column "Segment": segment "Tier 1!" is neither a standard segment (enterprise, mid_market, smb) nor a plain name (letters, digits, spaces, '-' or '_') (warning: the row was stored without this value)
      accounts.csv:7:4: column "ARR": expected a number, found "lots" (warning: the row was stored without this value)
      accounts.csv:7:6: column "CSM": invalid email address "not-an-email" (warning: the row was stored without this value)
      accounts.csv:8: row has 2 cells; the header has 7
      accounts.csv:11:7: column "TZ": unknown time zone "Mars/Base": expected an IANA name like America/New_York (warning: the row was stored without this value)
      warning: mapped column(s) not in the header, so this file set nothing for them: "Manager", "Start", "Stage", "Logins (30d)", "NPS" (sync.accounts.columns)
    error: 2 row(s) rejected; the other 7 row(s) were stored
    "#);
    let store = ws.store();
    let two = store.account("BAD-DATE").unwrap().expect("the customer is kept");
    assert_eq!((two.name.as_str(), two.renewal_date, two.arr), ("Two", None, Some(1000.0)));
    let five = store.account("BAD-TWO").unwrap().unwrap();
    assert_eq!((five.arr, five.owner), (None, None), "both bad cells left out, the rest stored");
    assert_eq!(five.segment, Some(Segment::Smb));
}

#[test]
fn bad_json_lines_are_rejected_by_line() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write(
        "accounts.ndjson",
        "{\"id\": \"A\"}\n{\"id\": \"B\", \"arr\": \"x\"}\nnot json\n[1]\n{\"id\": \"C\", \"metrics\": {\"Bad Name\": 1}}\n{\"id\": \"D\"}\n",
    );
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.ndjson", |c| &c.sync.accounts);
    // B's bad ARR is left out (on_bad_value: skip_value) and B stored without it.
    assert_eq!((report.inserted, report.rejected, report.skipped_values), (3, 3, 1), "{report:?}");
    let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    assert!(report.errors[0].to_string().starts_with("2: key \"arr\": expected a number"), "{}", report.errors[0]);
    assert!(report.errors[0].skipped && !report.errors[1].skipped);
}

#[test]
fn a_json_array_reports_each_bad_element_at_its_line() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.json", "[\n  {\"id\": \"A\"},\n  {\"id\": \"B\",\n   \"renewal_date\": \"soon\"},\n  7\n]\n");
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.json", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected, report.skipped_values), (2, 1, 1));
    assert_eq!(report.errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 5]);
}

#[test]
fn a_file_that_cannot_work_fails_whole_before_storing_anything() {
    let ws = Workspace::new(CRM_CONFIG);
    let store = ws.store();
    let config = ws.config();
    let spec = &config.sync.accounts.spec;
    let run = |name: &str, body: &str| {
        ws.write(name, body);
        keel::sync::sync_file(&store, &ws.path(name), spec, now(), &()).unwrap_err().to_string()
    };
    assert!(run("noid.csv", "Name,ARR\nAcme,1\n").contains("no column maps to id"));
    assert!(run("dup.csv", "Account ID,ARR,ARR\nA,1,2\n").contains("columns 2 and 3 are both named \"ARR\""));
    assert!(run("twice.csv", "Account ID,id\nA,B\n").contains("both map to id"));
    assert!(run("broken.json", "[{\"id\": \"A\"},\n {\"id\": ]").contains("invalid JSON at line 2"));
    assert_eq!(store.account_count(), 0);
}

#[test]
fn contacts_round_trip_and_default_their_id_to_the_email() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write(
        "contacts.csv",
        "\
Contact ID,Account,email,name,role,timezone,Opt Out,Phone
C-1,ACC-1,ana@acme.example,Ana Silva,VP Operations,Europe/Lisbon,yes,+351 555
,ACC-1,Ben@Acme.example,Ben,,,no,
C-3,,cy@acme.example,Cy,,,no,
",
    );
    let store = ws.store();
    let report = ws.sync::<ContactField>(&store, "contacts.csv", |c| &c.sync.contacts);
    assert_eq!((report.inserted, report.rejected), (2, 1), "{report:?}");
    assert_eq!(report.errors[0].line, 4);
    assert!(report.errors[0].message.contains("needs an account_id"));

    let contacts = store.contacts_of("ACC-1").unwrap();
    assert_eq!(contacts.len(), 2);
    let ana = store.contact("C-1").unwrap().unwrap();
    assert_eq!(
        (
            ana.account_id.as_str(),
            ana.email.as_deref(),
            ana.name.as_str(),
            ana.role.as_deref(),
            ana.timezone,
            ana.unsubscribed
        ),
        ("ACC-1", Some("ana@acme.example"), "Ana Silva", Some("VP Operations"), Some(chrono_tz::Europe::Lisbon), true)
    );
    assert_eq!(ana.fields["Phone"], json!("+351 555"));
    assert!(store.contact("ben@acme.example").unwrap().is_some(), "id defaults to the lower-cased email");
}

#[test]
fn a_contact_that_moves_account_moves_in_the_index() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("c1.csv", "id,account_id,email\nC-1,ACC-1,a@x.example\n");
    ws.write("c2.csv", "id,account_id\nC-1,ACC-2\n");
    let store = ws.store();
    ws.sync::<ContactField>(&store, "c1.csv", |c| &c.sync.contacts);
    ws.sync::<ContactField>(&store, "c2.csv", |c| &c.sync.contacts);
    assert!(store.contacts_of("ACC-1").unwrap().is_empty());
    let moved = store.contacts_of("ACC-2").unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].email.as_deref(), Some("a@x.example"), "the move kept the other fields");
}

#[test]
fn events_round_trip_and_the_same_event_twice_is_one_event() {
    let ws = Workspace::new(CRM_CONFIG);
    let lines = "\
{\"messageId\":\"m1\",\"accountId\":\"ACC-1\",\"userId\":\"C-1\",\"event\":\"Logged In\",\"timestamp\":\"2026-11-20T14:03:11Z\",\"properties\":{\"plan\":\"pro\"}}
{\"messageId\":\"m2\",\"accountId\":\"ACC-1\",\"event\":\"Report Created\",\"timestamp\":\"2026-11-25T08:00:00+01:00\"}
{\"messageId\":\"m1\",\"accountId\":\"ACC-1\",\"userId\":\"C-1\",\"event\":\"Logged In\",\"timestamp\":\"2026-11-20T14:03:11Z\",\"properties\":{\"plan\":\"pro\"}}
{\"accountId\":\"ACC-1\",\"event\":\"Exported Data\",\"timestamp\":\"2026-10-01T00:00:00Z\"}
{\"messageId\":\"m9\",\"accountId\":\"ACC-1\",\"event\":\"No Time\"}
";
    ws.write("events.ndjson", lines);
    let store = ws.store();
    let first = ws.sync::<EventField>(&store, "events.ndjson", |c| &c.sync.events);
    assert_eq!((first.inserted, first.unchanged, first.rejected), (3, 1, 1), "{first:?}");
    assert_eq!(first.errors[0].to_string(), "5: missing timestamp");

    let again = ws.sync::<EventField>(&store, "events.ndjson", |c| &c.sync.events);
    assert_eq!((again.inserted, again.unchanged), (0, 4), "id-less events get a stable id, so this is a no-op too");
    assert_eq!(store.event_count(), 3);

    let all: Vec<_> =
        store.events_of("ACC-1", "2026-01-01T00:00:00Z".parse().unwrap(), now()).map(Result::unwrap).collect();
    let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Exported Data", "Logged In", "Report Created"], "oldest first");
    let login = &all[1];
    assert_eq!((login.id.as_str(), login.contact_id.as_deref()), ("m1", Some("C-1")));
    assert_eq!(login.properties["plan"], json!("pro"));
    assert_eq!(all[2].timestamp.to_rfc3339(), "2026-11-25T07:00:00+00:00");
}

#[test]
fn date_formats_are_per_column_and_per_source_tried_in_order_with_iso_always() {
    let config = r#"
sync:
  accounts:
    date_format: ["%d.%m.%Y"]
    columns:
      "Account ID": id
      "Renewal": { field: renewal_date, date_format: ["%m/%d/%Y", "%b %d, %Y"] }
      "Start": start_date
"#;
    let ws = Workspace::new(config);
    // ISO start dates with US renewal dates; a German start date; one cell no format reads.
    ws.write(
        "accounts.csv",
        "Account ID,Renewal,Start\nA,03/31/2027,2024-04-01\nB,Jan 15, 2027,15.01.2025\nC,2027-02-01,2025-02-01\nD,31.03.2027,2024-04-01\n",
    );
    ws.write(
        "accounts.csv",
        &std::fs::read_to_string(ws.path("accounts.csv")).unwrap().replace("Jan 15, 2027", "\"Jan 15, 2027\""),
    );
    let store = ws.store();
    let report = ws.sync::<AccountField>(&store, "accounts.csv", |c| &c.sync.accounts);
    assert_eq!((report.inserted, report.rejected, report.skipped_values), (4, 0, 1), "{report}");
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
    let get = |id: &str| store.account(id).unwrap().unwrap();
    assert_eq!((get("A").renewal_date, get("A").start_date), (date(2027, 3, 31), date(2024, 4, 1)));
    assert_eq!((get("B").renewal_date, get("B").start_date), (date(2027, 1, 15), date(2025, 1, 15)));
    assert_eq!(get("C").renewal_date, date(2027, 2, 1), "ISO is read whatever the formats");
    assert_eq!((get("D").renewal_date, get("D").start_date), (None, date(2024, 4, 1)));
    assert_eq!(
        report.errors[0].to_string(),
        "5:2: column \"Renewal\": invalid date \"31.03.2027\": expected one of the formats \"%m/%d/%Y\", \
         \"%b %d, %Y\" or YYYY-MM-DD (warning: the row was stored without this value)"
    );
}

#[test]
fn every_row_rejected_is_said_so_not_that_the_others_were_stored() {
    let config = "sync:\n  accounts:\n    on_bad_value: reject_row\n    date_format: \"%m/%d/%Y\"\n";
    let ws = Workspace::new(config);
    ws.write("accounts.csv", "id,renewal_date\nA,31.03.2027\nB,soon\n");
    let run = ws.keel(&["sync", "accounts", "accounts.csv"]);
    assert_eq!(run.code(), 65);
    assert!(run.stderr().ends_with("error: 2 row(s) rejected; no row was stored\n"), "{}", run.stderr());
}

#[test]
fn contacts_and_events_for_an_account_not_in_the_store_are_kept_and_listed() {
    let ws = Workspace::new(CRM_CONFIG);
    ws.write("accounts.csv", "Account ID,Account Name\nACC-1,One\n");
    ws.write(
        "contacts.csv",
        "email,Account\nana@x.example,ACC-1\nbo@x.example,GONE-1\ncy@x.example,GONE-2\ndi@x.example,GONE-1\n",
    );
    ws.write(
        "events.ndjson",
        "{\"accountId\":\"ACC-1\",\"event\":\"Login\",\"timestamp\":\"2026-11-20T14:03:11Z\"}\n\
         {\"accountId\":\"GONE-3\",\"event\":\"Login\",\"timestamp\":\"2026-11-20T14:03:11Z\"}\n",
    );
    ws.keel(&["sync", "accounts", "accounts.csv"]).ok();
    let run = ws.keel(&["sync", "contacts", "contacts.csv"]);
    assert!(run.ok().contains("4 inserted, 0 updated, 0 unchanged, 0 rejected, 3 for an account not in the store"));
    insta::assert_snapshot!(run.stderr(), @r#"
        warning: mapped column(s) not in the header, so this file set nothing for them: "Contact ID", "Opt Out" (sync.contacts.columns)
        warning: 3 contacts stored for an account not in the store: contacts.csv:3 (GONE-1), contacts.csv:4 (GONE-2), contacts.csv:5 (GONE-1)
    "#);
    let run = ws.keel(&["sync", "events", "events.ndjson"]);
    assert!(run.ok().contains("1 for an account not in the store"), "{}", run.stdout());
    assert!(run.stderr().contains("events.ndjson:2 (GONE-3)"), "{}", run.stderr());
    let store = ws.store();
    assert!(store.contact("bo@x.example").unwrap().is_some(), "kept: an accounts file synced later adopts it");
}
