//! Segment-compatible ingest in a running `keel run`: Segment's own Python SDK
//! (segment-analytics-python, installed by scripts/test) sends identify, group and track
//! to Keel; the records land as a sync's would, an event-triggered playbook fires once,
//! and the SDK re-sending the same messages changes nothing. Then the HTTP contract a
//! sender relies on: write-key auth, 400 naming each refused message, gzip, and limits.

use std::io::Write;
use std::process::Command;

use serde_json::Value;

use crate::api::Api;
use crate::run::{terminate, wait_for};
use crate::util::Workspace;

const WRITE_KEY: &str = "wk-segment-test";

const CONFIG: &str = r#"timezone: UTC
data_dir: .keel
evaluation:
  schedule: "*/2 * * * * *"
api:
  write_keys: ["${KEEL_SEGMENT_TEST_KEY:-wk-segment-test}"]
sync:
  segment:
    group:
      traits:
        employees: metrics.employees
    identify:
      traits:
        title: role
"#;

const PLAYBOOK: &str = "id: report-created\nname: Report created\ntrigger:\n  event: Report Created\nactions:\n  - task: { title: Follow up on the report, owner: csm@keel.example }\n";

fn workspace() -> Workspace {
    let ws = Workspace::new(CONFIG);
    ws.write("playbooks/report-created.yaml", PLAYBOOK);
    ws
}

/// The SDK script, run to completion; a missing python3 or SDK fails the test, loudly.
fn send_with_python_sdk(api: &Api) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/segment/send.py");
    let out = Command::new("python3")
        .args([script, &api.base, WRITE_KEY, "2026-12-01T08:59:00+00:00"])
        .output()
        .expect("python3 runs (scripts/test installs segment-analytics-python; this test never skips)");
    assert!(
        out.status.success(),
        "the Segment SDK script failed (is segment-analytics-python installed? scripts/test installs it):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `n` passes to complete after now.
fn passes(api: &mut Api, n: usize) {
    for i in 0..n {
        wait_for(&api.rx, &mut api.log, &format!("pass {} of {n}", i + 1), |l| l.contains("pass done"));
    }
}

#[test]
fn the_python_sdk_sends_identify_group_and_track_and_a_retry_changes_nothing() {
    let ws = workspace();
    let mut api = Api::start(&ws);
    send_with_python_sdk(&api);
    wait_for(&api.rx, &mut api.log, "the event playbook to fire", |l| {
        l.contains("tick evaluated") && l.contains("playbook=report-created") && l.contains("fired=1")
    });
    // The SDK sends the same messages again (same messageIds): nothing is new, so the
    // passes after it fire nothing.
    send_with_python_sdk(&api);
    passes(&mut api, 2);
    let (status, _) = terminate(&mut api.child);
    assert_eq!(status.code(), Some(0));
    let fired: Vec<&String> =
        api.log.iter().filter(|l| l.contains("tick evaluated") && l.contains("playbook=report-created")).collect();
    assert_eq!(fired.len(), 1, "the playbook fired once, in one pass:\n{}", api.log.join("\n"));

    let store = ws.store();
    let account = store.account("ACC-SEG-1").unwrap().expect("the group made the account");
    assert_eq!(account.name, "Segment Co");
    assert_eq!(account.arr, Some(48_000.0));
    assert_eq!(account.metrics.get("employees"), Some(&120.0), "a trait mapped by sync.segment.group.traits");
    assert_eq!(account.fields.get("plan"), Some(&Value::from("pro")));
    let contact = store.contact("u-ada").unwrap().expect("the identify made the contact");
    assert_eq!(contact.account_id, "ACC-SEG-1", "context.groupId names the contact's account");
    assert_eq!(contact.email.as_deref(), Some("ada@segment-co.example"));
    assert_eq!(contact.name, "Ada Lovelace");
    assert_eq!(contact.role.as_deref(), Some("VP Ops"));
    assert_eq!(
        (store.account_count(), store.contact_count(), store.event_count()),
        (1, 1, 1),
        "the retry added nothing"
    );
    drop(store);

    let tasks = ws.keel(&["tasks", "list", "--format", "json"]).ok();
    assert_eq!(tasks.matches("Follow up on the report").count(), 1, "one task, from one firing: {tasks}");
    let shown = ws.keel(&["accounts", "show", "ACC-SEG-1"]).ok();
    assert!(shown.contains("Report Created"), "the account's events list the track: {shown}");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn the_http_contract_auth_refusals_gzip_and_limits() {
    let ws = workspace();
    let api = Api::start(&ws);
    let client = reqwest::blocking::Client::new();
    let post = |path: &str| client.post(api.url(path)).header("content-type", "application/json");
    let json = |r: reqwest::blocking::Response| -> (u16, Value) {
        let status = r.status().as_u16();
        (status, r.json().unwrap())
    };

    // Auth: Basic with the key as username, or the body's writeKey; nothing else.
    let batch = r#"{"batch": [{"type": "group", "userId": "u1", "groupId": "ACC-H1", "traits": {"name": "H One"}, "messageId": "h-1"}]}"#;
    let (status, body) = json(post("/v1/batch").body(batch).send().unwrap());
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{body}");
    let (status, _) = json(post("/v1/batch").basic_auth("wrong", Some("")).body(batch).send().unwrap());
    assert_eq!(status, 401);
    let (status, body) = json(post("/v1/batch").basic_auth(WRITE_KEY, Some("")).body(batch).send().unwrap());
    assert_eq!((status, &body["success"]), (200, &Value::Bool(true)), "{body}");
    assert_eq!(body["accounts"]["inserted"], 1, "{body}");
    let keyed = batch.replace("{\"batch\"", &format!("{{\"writeKey\": \"{WRITE_KEY}\", \"batch\""));
    let (status, body) = json(post("/v1/batch").body(keyed).send().unwrap());
    assert_eq!((status, body["duplicates"].as_u64()), (200, Some(1)), "a body writeKey authenticates: {body}");

    // A retried group is dropped by its messageId, even after a later call changed the
    // account: its old traits are not applied again.
    let renamed = batch.replace("H One", "H Two").replace("h-1", "h-7");
    let (status, body) = json(post("/v1/batch").basic_auth(WRITE_KEY, Some("")).body(renamed.clone()).send().unwrap());
    assert_eq!((status, body["accounts"]["updated"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = json(post("/v1/batch").basic_auth(WRITE_KEY, Some("")).body(batch).send().unwrap());
    assert_eq!(
        (status, body["duplicates"].as_u64(), body["accounts"]["updated"].as_u64()),
        (200, Some(1), Some(0)),
        "{body}"
    );
    let same_as_now = renamed.replace("h-7", "h-8");
    let (status, body) = json(post("/v1/batch").basic_auth(WRITE_KEY, Some("")).body(same_as_now).send().unwrap());
    assert_eq!(
        (status, body["accounts"]["unchanged"].as_u64()),
        (200, Some(1)),
        "the account still has the newer name: {body}"
    );

    // A batch with malformed messages: 400 naming each by index and field; the good
    // ones are stored, and an event of an unknown account is kept and listed.
    let mixed = r#"{"batch": [
        {"type": "track", "userId": "u1", "event": "Login", "context": {"groupId": "ACC-H1"}, "messageId": "h-2"},
        {"type": "track", "userId": "u1", "context": {"groupId": "ACC-H1"}, "messageId": "h-3"},
        {"type": "identify", "traits": {"email": "x@y.example"}, "messageId": "h-4"},
        {"type": "track", "userId": "u1", "event": "Login", "context": {"groupId": "ACC-NOPE"}, "messageId": "h-5"}
    ]}"#;
    let (status, body) = json(post("/v1/batch").basic_auth(WRITE_KEY, Some("")).body(mixed).send().unwrap());
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_request");
    assert_eq!(
        body["message"],
        "message 1 event: a track needs an event name (and 1 more refused); the other 2 message(s) were accepted"
    );
    let refused: Vec<(u64, &str)> = body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(refused, vec![(1, "event"), (2, "userId")]);
    assert_eq!(body["events"]["inserted"], 2, "{body}");
    assert_eq!(body["unknown_accounts"][0]["account"], "ACC-NOPE", "{body}");

    // One message at a time, gzip'd, as /v1/track.
    let track = br#"{"userId": "u1", "event": "Export", "context": {"groupId": "ACC-H1"}, "messageId": "h-6"}"#;
    let request = post("/v1/track").basic_auth(WRITE_KEY, Some("")).header("content-encoding", "gzip");
    let (status, body) = json(request.body(gzip(track)).send().unwrap());
    assert_eq!((status, body["events"]["inserted"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) =
        json(post("/v1/track").basic_auth(WRITE_KEY, Some("")).body(r#"{"event": "x"}"#).send().unwrap());
    assert_eq!((status, body["refused"][0]["field"].as_str()), (400, Some("userId")), "{body}");

    // Limits: 500 KB of JSON, also once inflated (a gzip bomb inflates no further).
    let padding = "x".repeat(600 * 1024);
    let big = format!(r#"{{"batch": [], "pad": "{padding}"}}"#);
    let (status, body) = json(post("/v1/batch").basic_auth(WRITE_KEY, Some("")).body(big.clone()).send().unwrap());
    assert_eq!((status, body["code"].as_str()), (413, Some("too_large")), "{body}");
    let bomb = gzip(format!(r#"{{"batch": [], "pad": "{}"}}"#, "0".repeat(50 << 20)).as_bytes());
    assert!(bomb.len() < 100 * 1024, "50 MB of zeros gzip to {} bytes", bomb.len());
    let request = post("/v1/batch").basic_auth(WRITE_KEY, Some("")).header("content-encoding", "gzip");
    let (status, body) = json(request.body(bomb).send().unwrap());
    assert_eq!((status, body["code"].as_str()), (413, Some("too_large")), "{body}");
    let request = post("/v1/batch").basic_auth(WRITE_KEY, Some("")).header("content-encoding", "br");
    assert_eq!(request.body(batch).send().unwrap().status(), 415);
    let (status, body) = json(post("/v1/batch").basic_auth(WRITE_KEY, Some("")).body("{\"batch\": [").send().unwrap());
    assert_eq!(status, 400, "{body}");
}
