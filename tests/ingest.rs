//! Ingest over the JSON API of a running `keel run`, over real sockets with real tokens:
//! records pushed as a JSON array land as `keel sync` of a `.json` file lands them (a bad
//! record named by index and field, the good ones stored, a re-send unchanged), who may
//! push, a gzip bomb refused without the daemon's memory following it — and `keel sync`
//! while the daemon holds the store, printing what it prints against a stopped one.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

use crate::api::Api;
use crate::run::{terminate, wait_for};
use crate::util::{Run, Workspace, NOW};

const INGEST: &str = "t-ingest";
const READ: &str = "t-read-ingest";
const OPS: &str = "t-admin-ingest";

const CONFIG: &str = r#"timezone: UTC
data_dir: .keel
api:
  tokens:
    - { token: "${KEEL_T_INGEST}", scopes: [ingest] }
    - { token: "${KEEL_T_READ}", scopes: [read] }
    - { token: "${KEEL_T_ADMIN}", scopes: [admin] }
"#;

fn start() -> (Workspace, Api) {
    let ws = Workspace::new(CONFIG);
    let api = Api::start_with_env(&ws, &[("KEEL_T_INGEST", INGEST), ("KEEL_T_READ", READ), ("KEEL_T_ADMIN", OPS)]);
    (ws, api)
}

/// The status and the body as JSON.
fn answer(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn push(api: &Api, token: &str, kind: &str, body: &Value) -> (u16, Value) {
    answer(Client::new().post(api.url(&format!("/api/v1/{kind}"))).bearer_auth(token).json(body).send().unwrap())
}

fn account(api: &Api, id: &str) -> (u16, Value) {
    answer(Client::new().get(api.url(&format!("/api/v1/accounts/{id}"))).bearer_auth(READ).send().unwrap())
}

#[test]
fn pushed_accounts_land_a_bad_record_is_named_by_index_and_field_and_a_resend_changes_nothing() {
    let (_ws, api) = start();
    let records = json!([
        { "id": "A-1", "name": "Acme", "segment": "enterprise", "arr": 480000, "owner": "ana@keel.example" },
        { "id": "A-2", "name": "Bluepeak", "arr": "lots" },
        { "name": "No id at all" },
        { "id": "A-3", "name": "Cobalt", "metrics": { "nps": 9 } },
    ]);
    let (status, report) = push(&api, INGEST, "accounts", &records);
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["received"], &report["inserted"], &report["updated"], &report["unchanged"], &report["rejected"]),
        (&json!(4), &json!(3), &json!(0), &json!(0), &json!(1)),
        "{report}"
    );
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report}");
    assert_eq!((&errors[0]["index"], &errors[0]["field"]), (&json!(1), &json!("arr")), "{report}");
    assert_eq!(errors[0]["outcome"], "value_left_out", "an unreadable ARR leaves the account without it: {report}");
    assert_eq!((&errors[1]["index"], &errors[1]["outcome"]), (&json!(2), &json!("rejected")), "{report}");
    assert!(errors[1]["message"].as_str().unwrap().contains("missing id"), "{report}");

    let (status, a1) = account(&api, "A-1");
    assert_eq!(status, 200, "{a1}");
    assert_eq!((&a1["account"]["name"], &a1["account"]["arr"]), (&json!("Acme"), &json!(480000.0)), "{a1}");
    let (status, a2) = account(&api, "A-2");
    assert_eq!((status, &a2["account"]["name"]), (200, &json!("Bluepeak")), "the good part of A-2 is stored: {a2}");
    assert_eq!(account(&api, "A-3").0, 200);

    let (status, again) = push(&api, INGEST, "accounts", &records);
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["inserted"], &again["unchanged"], &again["rejected"]),
        (&json!(0), &json!(3), &json!(1)),
        "{again}"
    );

    // A record that carries some fields updates only those.
    let (_, partial) = push(&api, INGEST, "accounts", &json!([{ "id": "A-1", "arr": 500000 }]));
    assert_eq!(partial["updated"], 1, "{partial}");
    let (_, a1) = account(&api, "A-1");
    assert_eq!((&a1["account"]["name"], &a1["account"]["arr"]), (&json!("Acme"), &json!(500000.0)), "{a1}");
}

#[test]
fn contacts_and_events_pushed_for_an_account_are_listed_with_it() {
    let (_ws, api) = start();
    assert_eq!(push(&api, INGEST, "accounts", &json!([{ "id": "A-1", "name": "Acme" }])).0, 200);
    let (status, contacts) = push(
        &api,
        INGEST,
        "contacts",
        &json!([{ "id": "C-1", "account_id": "A-1", "email": "cara@acme.example", "name": "Cara" }]),
    );
    assert_eq!(
        (status, &contacts["inserted"], &contacts["unknown_account"]),
        (200, &json!(1), &json!(0)),
        "{contacts}"
    );
    let (status, events) = push(
        &api,
        INGEST,
        "events",
        &json!([
            { "id": "E-1", "account_id": "A-1", "name": "login", "timestamp": "2026-11-20T10:00:00Z", "seats": 3 },
            { "account_id": "A-1", "name": "login" },
        ]),
    );
    assert_eq!(status, 200, "{events}");
    assert_eq!((&events["inserted"], &events["rejected"]), (&json!(1), &json!(1)), "{events}");
    assert_eq!(events["errors"][0]["index"], 1, "the event without a timestamp: {events}");
    let (_, a1) =
        answer(Client::new().get(api.url("/api/v1/accounts/A-1?events_days=365")).bearer_auth(READ).send().unwrap());
    assert_eq!(a1["contacts"][0]["email"], "cara@acme.example", "{a1}");
    assert_eq!(a1["events"][0]["name"], "login", "{a1}");
}

#[test]
fn a_body_that_is_not_a_json_array_is_a_400_and_pushing_needs_the_ingest_scope() {
    let (_ws, api) = start();
    let client = Client::new();
    let raw = |token: Option<&str>, body: &str| {
        let mut request = client.post(api.url("/api/v1/accounts")).body(body.to_string());
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        answer(request.send().unwrap())
    };
    let (status, body) = raw(Some(INGEST), "[{\"id\": \"A-9\",\n}]");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 2 column 1"), "{body}");
    let (status, body) = raw(Some(INGEST), r#"{"id": "A-9"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("expected a JSON array"), "{body}");
    assert_eq!(raw(None, "[]").0, 401);
    assert_eq!(raw(Some(READ), r#"[{"id": "A-9"}]"#).0, 403, "a read token pushes nothing");
    assert_eq!(account(&api, "A-9").0, 404, "nothing refused was stored");
    // The read route on the same path keeps its own scope.
    assert_eq!(client.get(api.url("/api/v1/accounts")).bearer_auth(READ).send().unwrap().status(), 200);
}

#[test]
fn the_sync_route_reads_a_file_of_the_daemons_machine_for_an_admin_only() {
    let (ws, api) = start();
    let file = ws.write("crm/accounts.csv", "id,name\nA-1,Acme\n");
    let sync = |token: &str, body: Value| {
        answer(Client::new().post(api.url("/api/v1/sync")).bearer_auth(token).json(&body).send().unwrap())
    };
    let one = json!({ "kind": "accounts", "file": file });
    assert_eq!(sync(INGEST, one.clone()).0, 403, "an ingest token cannot have the daemon open files");
    let (status, body) = sync(OPS, json!({ "kind": "accounts", "file": "crm/accounts.csv" }));
    assert_eq!((status, &body["field"]), (400, &json!("file")), "{body}");
    let (status, body) = sync(OPS, json!({}));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nothing to sync"), "{body}");
    let (status, body) = sync(OPS, json!({ "kind": "accounts", "file": ws.path("nope.csv") }));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("sync of accounts stopped: could not read"), "{body}");
    let (status, body) = sync(OPS, one);
    assert_eq!(status, 200, "{body}");
    let outcome: keel::services::sync::SyncOutcome = serde_json::from_value(body.clone()).unwrap();
    assert_eq!((outcome.reports.len(), outcome.reports[0].inserted), (1, 1), "{body}");
    assert_eq!(account(&api, "A-1").1["account"]["name"], "Acme");
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_gzip_bomb_is_a_413_and_the_daemon_does_not_inflate_it() {
    let (_ws, api) = start();
    // 400 MB of zeros, gzipped by the system's gzip (fast) to about 400 KB.
    let mut gzip = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    let mut stdin = gzip.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..400 {
            stdin.write_all(&zeros).unwrap();
        }
    });
    let out = gzip.wait_with_output().unwrap();
    writer.join().unwrap();
    let bomb = out.stdout;
    assert!(bomb.len() < 1_000_000, "the bomb fits the 1 MB body limit: {} bytes", bomb.len());

    let response = Client::new()
        .post(api.url("/api/v1/accounts"))
        .bearer_auth(INGEST)
        .header("content-encoding", "gzip")
        .header("content-type", "application/json")
        .body(bomb)
        .send()
        .unwrap();
    let (status, body) = answer(response);
    assert_eq!(status, 413, "{body}");
    let rss = peak_rss(api.child.id());
    assert!(rss < 300 << 20, "the daemon's peak RSS is {} MB", rss >> 20);

    // A small gzip body is inflated and imported.
    let mut small = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    small.write_all(br#"[{"id": "A-1", "name": "Acme"}]"#).unwrap();
    let response = Client::new()
        .post(api.url("/api/v1/accounts"))
        .bearer_auth(INGEST)
        .header("content-encoding", "gzip")
        .body(small.finish().unwrap())
        .send()
        .unwrap();
    let (status, body) = answer(response);
    assert_eq!((status, &body["inserted"]), (200, &json!(1)), "{body}");
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const ADMIN: &str = "t-admin-sync";

/// `keel ARGS` in `ws` with the API token in its environment, as a user with one runs it,
/// on the config's clock (as the daemon is: a command pinned with KEEL_NOW is refused).
fn keel_with_token(ws: &Workspace, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--config", "keel.yaml"])
        .args(args)
        .current_dir(ws.dir.path())
        .env_remove("KEEL_NOW")
        .env("KEEL_API_TOKEN", ADMIN)
        .env_remove("RUST_LOG")
        .env_remove("KEEL_CONFIG")
        .output()
        .unwrap();
    Run(output)
}

/// `keel run` on the config's own `api.listen` (so the CLI finds it there).
fn daemon(ws: &Workspace) -> (Child, std::sync::mpsc::Receiver<String>) {
    let (child, rx) = crate::run::spawn_with_args(ws, None, Some("info"), &[("KEEL_API_TOKEN", ADMIN)], &[]);
    wait_for(&rx, &mut Vec::new(), "the API to listen", |l| l.contains("the API is listening"));
    (child, rx)
}

/// The sync summary with its timing taken out, and the workspace's own path.
fn normalised(text: &str, dir: &Path) -> String {
    let text = text.replace(&dir.display().to_string(), "WS");
    text.lines()
        .map(|l| match (l.find(" in "), l.find("/s): ")) {
            (Some(a), Some(b)) if a < b => format!("{} in ELAPSED{}", &l[..a], &l[b + 2..]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn keel_sync_through_a_running_daemon_prints_what_it_prints_against_a_stopped_one() {
    let accounts = "id,name,segment,arr,renewal_date\nA-1,Acme,enterprise,480000,2027-02-01\nA-2,Bluepeak,smb,lots,\n,No id,smb,5,\nA-3,Cobalt,smb,5400,2027-09-30\n";
    let config = |port: u16| {
        format!(
            "timezone: UTC\ndata_dir: .keel\nclock:\n  start: \"{NOW}\"\napi:\n  listen: 127.0.0.1:{port}\n  token: \"${{KEEL_API_TOKEN}}\"\n"
        )
    };
    let running = Workspace::new(&config(free_port()));
    let stopped = Workspace::new(&config(free_port()));
    for ws in [&running, &stopped] {
        ws.write("accounts.csv", accounts);
    }
    let (mut child, log) = daemon(&running);
    let through = keel_with_token(&running, &["sync", "accounts", "accounts.csv"]);
    let synced = |l: &str| l.contains("synced file") && l.contains("accounts.csv");
    wait_for(&log, &mut Vec::new(), "the daemon to sync the file", synced);
    let (status, _) = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
    let local = keel_with_token(&stopped, &["sync", "accounts", "accounts.csv"]);

    assert_eq!(through.code(), local.code(), "{}\n{}", through.stderr(), local.stderr());
    assert_eq!(local.code(), 65, "a rejected row: {}", local.stderr());
    assert!(local.stdout().contains("accounts.csv: 4 accounts in"), "{}", local.stdout());
    assert_eq!(normalised(&through.stdout(), running.dir.path()), normalised(&local.stdout(), stopped.dir.path()));
    assert_eq!(through.stderr(), local.stderr());
    let listed = keel_with_token(&running, &["accounts", "list"]).ok();
    for id in ["A-1", "A-2", "A-3"] {
        assert!(listed.contains(id), "the accounts landed in the daemon's store: {listed}");
    }
}
