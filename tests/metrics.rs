//! `/metrics` and `/readyz` of a running `keel run`, over real sockets: the exposition is
//! read by the Prometheus client library's own text parser (`prometheus_client`, Python,
//! pinned in scripts/test), as a scraper reads it, and its numbers are checked against
//! what the daemon did — the pass, the book's size, the ledger's firings, the webhooks
//! delivered and refused, the rows a file and a Segment batch brought, the requests the
//! test made — and who may scrape (401 without a token, 403 without `read`).

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::blocking::Client;
use serde_json::Value;

use crate::api::Api;
use crate::run::wait_for;
use crate::util::Workspace;

const READ: &str = "t-read-metrics";
const INGEST: &str = "t-ingest-metrics";
const WRITE_KEY: &str = "wk-metrics";

// Hourly: the daemon's first pass runs at start (nothing ran yet), the next one an hour
// later on its clock, so the test sees exactly one pass.
const CONFIG: &str = r#"timezone: UTC
data_dir: .keel
evaluation:
  schedule: "0 * * * *"
api:
  tokens:
    - { token: "${KEEL_T_READ}", scopes: [read] }
    - { token: "${KEEL_T_INGEST}", scopes: [ingest] }
  write_keys: ["${KEEL_T_WK}"]
sync:
  accounts: { file: accounts.csv }
  segment: {}
"#;

const ACCOUNTS: &str = "\
id,name,segment,arr,owner,renewal_date
A-1,Acme,enterprise,480000,ana@keel.example,2027-02-01
A-2,Bluepeak,smb,9000,ben@keel.example,2026-12-20
A-3,Cobalt,smb,5400,ben@keel.example,2027-09-30
A-4,Delta,smb,7100,ana@keel.example,
A-5,Echo,mid_market,62000,ana@keel.example,
";
const BOOK: u64 = 5;

/// Fires for the enterprise and mid-market accounts: two of five.
const BIG: &str = "id: big-accounts\nname: Big accounts\ntrigger:\n  condition: account.segment != \"smb\"\nactions:\n  - task: { title: \"Check in with {{ account.name }}\", owner: \"{{ account.owner }}\", due_in: 3d }\n";

/// Two webhooks for A-1: one the receiver takes (delivered), one it refuses for good (dead).
fn hooks(port: u16) -> String {
    format!(
        "id: hooks\nname: Hooks\ntrigger:\n  condition: account.id == \"A-1\"\nactions:\n  - webhook: {{ url: \"http://127.0.0.1:{port}/ok\" }}\n  - webhook: {{ url: \"http://127.0.0.1:{port}/refuse\" }}\n"
    )
}

fn start() -> (Workspace, Api) {
    let ws = Workspace::new(CONFIG);
    ws.write("accounts.csv", ACCOUNTS);
    ws.write("playbooks/big-accounts.yaml", BIG);
    ws.write("playbooks/hooks.yaml", &hooks(crate::v1::receiver()));
    let mut api =
        Api::start_with_env(&ws, &[("KEEL_T_READ", READ), ("KEEL_T_INGEST", INGEST), ("KEEL_T_WK", WRITE_KEY)]);
    wait_for(&api.rx, &mut api.log, "the first pass", |l| l.contains("pass done"));
    (ws, api)
}

/// A parsed sample: name, labels, value.
struct Sample {
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

/// The exposition read by `prometheus_client.parser.text_string_to_metric_families`.
fn parse(text: &str) -> (Vec<Value>, Vec<Sample>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metrics/parse.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs prometheus_client; this test never skips)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition (is it installed? scripts/test installs it):\n{}\n--- exposition:\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let samples = families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap().iter())
        .map(|s| Sample {
            name: s["name"].as_str().unwrap().to_string(),
            labels: s["labels"].as_object().unwrap().clone(),
            value: s["value"].as_f64().unwrap(),
        })
        .collect();
    (families, samples)
}

/// The value of the one sample named `name` with exactly these labels.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "one sample {name}{labels:?}; the samples named so: {:?}", names(samples, name));
    found[0].value
}

fn names(samples: &[Sample], name: &str) -> Vec<String> {
    samples.iter().filter(|s| s.name == name).map(|s| format!("{:?}={}", s.labels, s.value)).collect()
}

/// Firings of `playbook` in the ledger, read over the JSON API account by account.
fn ledger_fired(client: &Client, api: &Api, playbook: &str) -> u64 {
    let list: Value =
        client.get(api.url("/api/v1/accounts?limit=1000")).bearer_auth(READ).send().unwrap().json().unwrap();
    let mut fired = 0;
    for account in list["accounts"].as_array().unwrap() {
        let id = account["id"].as_str().unwrap();
        let detail: Value =
            client.get(api.url(&format!("/api/v1/accounts/{id}"))).bearer_auth(READ).send().unwrap().json().unwrap();
        fired += detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["playbook"] == playbook && e["decision"] == "fired")
            .count() as u64;
    }
    fired
}

#[test]
fn metrics_parse_with_prometheus_client_and_count_what_the_daemon_did() {
    let (_ws, mut api) = start();
    let client = Client::new();
    // The round may come before the pass is logged done: its entries are committed first.
    if !api.log.iter().any(|l| l.contains("delivery round")) {
        wait_for(&api.rx, &mut api.log, "the webhooks' delivery round", |l| l.contains("delivery round"));
    }

    assert_eq!(client.get(api.url("/healthz")).send().unwrap().status(), 200);
    assert_eq!(client.get(api.url("/no/such/route")).send().unwrap().status(), 404);
    let anonymous = client.get(api.url("/metrics")).send().unwrap();
    assert_eq!(anonymous.status(), 401, "no token: who are you?");
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let ingest_only = client.get(api.url("/metrics")).bearer_auth(INGEST).send().unwrap();
    assert_eq!(ingest_only.status(), 403, "a token without `read`: {}", ingest_only.text().unwrap());
    let fired_in_ledger = ledger_fired(&client, &api, "big-accounts");
    assert_eq!(fired_in_ledger, 2, "the enterprise and mid-market accounts");
    // Segment: a group stores an account; a track without its event name is refused.
    let batch = r#"{"batch": [
        {"type": "group", "userId": "u1", "groupId": "A-9", "traits": {"name": "Zulu"}, "messageId": "m-1"},
        {"type": "track", "userId": "u1", "context": {"groupId": "A-9"}, "messageId": "m-2"}
    ]}"#;
    let segment = client.post(api.url("/v1/batch")).basic_auth(WRITE_KEY, Some("")).body(batch).send().unwrap();
    assert_eq!(segment.status(), 400, "one message refused: {}", segment.text().unwrap());

    let scrape = client.get(api.url("/metrics")).bearer_auth(READ).send().unwrap();
    assert_eq!(scrape.status(), 200);
    assert_eq!(scrape.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = scrape.text().unwrap();
    let (families, samples) = parse(&text);

    let passes = value(&samples, "keel_passes_total", &[]);
    assert!(passes >= 1.0, "{text}");
    assert_eq!(
        value(&samples, "keel_accounts_evaluated_total", &[]),
        BOOK as f64,
        "the first pass took the whole book"
    );
    let fired = value(&samples, "keel_playbook_fired_total", &[("playbook", "big-accounts")]);
    assert_eq!(fired, fired_in_ledger as f64, "the firings counted are the ledger's");
    assert_eq!(value(&samples, "keel_playbook_accounts_evaluated_total", &[("playbook", "big-accounts")]), BOOK as f64);
    assert_eq!(value(&samples, "keel_playbook_errors_total", &[("playbook", "big-accounts")]), 0.0);

    let histogram = families.iter().find(|f| f["name"] == "keel_pass_duration_seconds").expect("the histogram");
    assert_eq!(histogram["type"], "histogram");
    assert_eq!(value(&samples, "keel_pass_duration_seconds_count", &[]), passes, "one observation per pass");
    assert_eq!(value(&samples, "keel_pass_duration_seconds_bucket", &[("le", "+Inf")]), passes);
    assert_eq!(value(&samples, "keel_pass_duration_seconds_bucket", &[("le", "600")]), passes);

    assert_eq!(value(&samples, "keel_tasks_open", &[]), 2.0, "each firing opened a task");
    assert_eq!(value(&samples, "keel_outbox_pending", &[]), 0.0);
    assert_eq!(value(&samples, "keel_sync_rows_total", &[("kind", "accounts"), ("source", "file")]), BOOK as f64);
    assert_eq!(value(&samples, "keel_sync_rejected_total", &[("kind", "accounts"), ("source", "file")]), 0.0);
    assert_eq!(value(&samples, "keel_sync_rows_total", &[("kind", "accounts"), ("source", "segment")]), 1.0);
    assert_eq!(value(&samples, "keel_sync_rows_total", &[("kind", "events"), ("source", "segment")]), 0.0);
    assert_eq!(value(&samples, "keel_segment_messages_refused_total", &[]), 1.0);
    for outcome in ["delivered", "retrying", "deferred", "suppressed", "dropped", "dead"] {
        assert_eq!(value(&samples, "keel_deliveries_total", &[("channel", "email"), ("outcome", outcome)]), 0.0);
        let webhooks = value(&samples, "keel_deliveries_total", &[("channel", "webhook"), ("outcome", outcome)]);
        let want = if matches!(outcome, "delivered" | "dead") { 1.0 } else { 0.0 };
        assert_eq!(webhooks, want, "webhook {outcome}: the receiver took one and refused the other for good");
    }
    assert_eq!(value(&samples, "keel_messages_sent_total", &[]), 1.0);
    assert_eq!(value(&samples, "keel_outbox_dead", &[]), 1.0, "the refused webhook");
    assert_eq!(value(&samples, "keel_playbook_fired_total", &[("playbook", "hooks")]), 1.0);
    assert_eq!(value(&samples, "keel_reloads_total", &[]), 0.0);

    let requests = |route: &str, status: &str| {
        value(&samples, "keel_http_requests_total", &[("route", route), ("status", status)])
    };
    assert_eq!(requests("/healthz", "200"), 1.0);
    assert_eq!(requests("/metrics", "401"), 1.0);
    assert_eq!(requests("/metrics", "403"), 1.0);
    assert_eq!(requests("/v1/batch", "400"), 1.0);
    assert_eq!(requests("unmatched", "404"), 1.0, "the raw path of an unknown route is never a label");
    assert_eq!(requests("/api/v1/accounts/{id}", "200"), BOOK as f64, "the route's template, not each path");
    assert!(!text.contains("/no/such/route") && !text.contains("/api/v1/accounts/A-1"), "{text}");
}

#[test]
fn readyz_answers_ready_without_a_token_once_a_pass_finished() {
    let (_ws, api) = start();
    let ready = Client::new().get(api.url("/readyz")).send().unwrap();
    let status = ready.status();
    assert_eq!((status.as_u16(), ready.text().unwrap().as_str()), (200, "ready\n"));
}

#[test]
fn a_daemon_restarted_between_ticks_is_ready_at_once() {
    // Hourly: `run --once` at 09:00 completes the 09:00 tick; a daemon started at the same
    // instant has nothing due until 10:00, and no pass of its own to show.
    let ws = Workspace::new("timezone: UTC\ndata_dir: .keel\nevaluation:\n  schedule: \"0 * * * *\"\n");
    ws.write("accounts.csv", ACCOUNTS);
    ws.write("playbooks/big.yaml", BIG);
    ws.keel(&["sync", "accounts", "accounts.csv"]).ok();
    ws.keel(&["run", "--once"]).ok();
    let api = Api::start(&ws);
    let ready = Client::new().get(api.url("/readyz")).send().unwrap();
    let status = ready.status().as_u16();
    assert_eq!((status, ready.text().unwrap().as_str()), (200, "ready\n"), "{}", api.log.join("\n"));
    assert!(!api.log.iter().any(|l| l.contains("pass done")), "the daemon ran no pass of its own: {:?}", api.log);
}
