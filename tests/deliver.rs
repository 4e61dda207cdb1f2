//! Delivery against real servers: a real SMTP server (mailcrab, in-process, over TCP), a
//! real HTTP server (axum) for webhooks, the real sled store in a temp dir, and an
//! injected clock — "later" is a clock set forward, never a sleep.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use keel::daemon::{Clock, Daemon, ManualClock};
use keel::decide::unsubscribe::Unsubscribe;
use keel::deliver::{Deliverer, DeliveryReport};
use keel::lang::Loaded;
use keel::model::{AccountPatch, ContactPatch, OutboxEntry, Payload, Status, TaskStatus};
use keel::store::Store;
use tokio_util::sync::CancellationToken;

use crate::util::Workspace;

/// Health is the `score` metric, bands 80/60, no damping: tests steer bands directly.
const HEALTH: &str = "bands: { green: 80, yellow: 60 }\ndamping: { margin: 0 }\ncategories:\n  all: { weight: 1, score: account.metrics.score }\n";

/// A Tuesday, 09:00 in New York, 15:00 in Berlin, 23:00 in Tokyo.
const TUESDAY: &str = "2026-12-01T14:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A workspace, a daemon and a deliverer on one store and one manual clock.
struct Desk {
    ws: Workspace,
    clock: Arc<ManualClock>,
    daemon: Option<Daemon>,
    deliverer: Option<Arc<Deliverer>>,
}

impl Desk {
    /// `extra` is appended to a config with the daily 08:00 schedule in New York.
    fn new(extra: &str, playbooks: &[(&str, &str)], templates: &[(&str, &str)]) -> Desk {
        let config = format!(
            "timezone: America/New_York\ndata_dir: data\nevaluation:\n  schedule: \"* * * * *\"\n  workers: 2\n{extra}"
        );
        let ws = Workspace::new(&config);
        ws.write("rules/health.yaml", HEALTH);
        for (name, text) in playbooks {
            ws.write(&format!("playbooks/{name}.yaml"), text);
        }
        for (name, text) in templates {
            ws.write(&format!("playbooks/templates/{name}"), text);
        }
        let clock = Arc::new(ManualClock::new(at(TUESDAY)));
        let mut desk = Desk { ws, clock, daemon: None, deliverer: None };
        desk.open();
        desk
    }

    fn open(&mut self) {
        let config = self.ws.config();
        let store = Store::open(&config.store_dir()).unwrap();
        let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).unwrap_or_else(|e| panic!("{e:?}"));
        let daemon = Daemon::new(config.clone(), store.clone(), loaded, self.clock.clone());
        let deliverer = Deliverer::new(&config, store, daemon.loaded_arc(), self.clock.clone()).unwrap();
        self.deliverer = Some(Arc::new(deliverer));
        self.daemon = Some(daemon);
    }

    /// Closes the store (as a stopped daemon does).
    fn close(&mut self) {
        self.deliverer = None;
        self.daemon = None;
    }

    fn store(&self) -> &Store {
        self.daemon.as_ref().unwrap().store()
    }

    fn set(&self, t: DateTime<Utc>) {
        self.clock.set(t);
    }

    fn later(&self, d: Duration) {
        self.clock.set(self.clock.now() + d);
    }

    fn accounts(&self, patches: Vec<AccountPatch>) {
        self.store().upsert_accounts(patches, self.clock.now()).unwrap();
    }

    fn contacts(&self, patches: Vec<ContactPatch>) {
        self.store().upsert_contacts(patches, self.clock.now()).unwrap();
    }

    /// Evaluates what is due now; returns the firings.
    fn evaluate(&self) -> u64 {
        let d = self.daemon.as_ref().unwrap();
        tokio::task::block_in_place(|| d.tick(&AtomicBool::new(false)).unwrap().report.map_or(0, |r| r.fired()))
    }

    async fn deliver(&self) -> DeliveryReport {
        self.deliverer.as_ref().unwrap().deliver_due(&CancellationToken::new()).await.unwrap()
    }

    fn outbox(&self) -> Vec<OutboxEntry> {
        self.store().outbox().map(Result::unwrap).collect()
    }
}

fn account(id: &str, name: &str, score: f64, manager: &str) -> AccountPatch {
    AccountPatch {
        id: id.into(),
        name: Some(name.into()),
        owner: Some("csm@cs.example".into()),
        manager: Some(manager.into()),
        metrics: vec![("score".into(), score)],
        ..AccountPatch::default()
    }
}

fn contact(id: &str, account: &str, email: &str, tz: &str) -> ContactPatch {
    ContactPatch {
        id: id.into(),
        account_id: Some(account.into()),
        email: Some(email.into()),
        name: Some(format!("Contact {id}")),
        timezone: Some(tz.parse().unwrap()),
        ..ContactPatch::default()
    }
}

// ---- a real SMTP server -------------------------------------------------------------

struct Smtp {
    token: CancellationToken,
    rx: tokio::sync::broadcast::Receiver<mailcrab::MailMessage>,
}

impl Smtp {
    async fn start(port: u16) -> Smtp {
        let handle = mailcrab::development_mail_server([127, 0, 0, 1], port).await;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Smtp { token: handle.token, rx: handle.rx }
    }

    /// Every message received since the last call.
    fn received(&mut self) -> Vec<Mail> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            let raw = String::from_utf8(m.raw_bytes().unwrap()).unwrap();
            let json = serde_json::to_value(&m).unwrap();
            out.push(Mail { raw, json });
        }
        out
    }

    fn stop(self) {
        self.token.cancel();
    }
}

struct Mail {
    raw: String,
    json: serde_json::Value,
}

impl Mail {
    /// A header's value, unfolded; `None` when absent.
    fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            match (&mut value, line.starts_with([' ', '\t'])) {
                (Some(v), true) => v.push_str(line.trim_start()),
                (Some(_), false) => break,
                (None, false) => {
                    if let Some((n, v)) = line.split_once(':') {
                        if n.eq_ignore_ascii_case(name) {
                            value = Some(v.trim().to_string());
                        }
                    }
                }
                (None, true) => {}
            }
        }
        value
    }

    fn header_names(&self) -> Vec<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap();
        head.split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.to_lowercase())
            .collect()
    }

    fn subject(&self) -> String {
        self.json["subject"].as_str().unwrap().to_string()
    }
    fn text(&self) -> String {
        self.json["text"].as_str().unwrap_or_default().to_string()
    }
    fn html(&self) -> String {
        self.json["html"].as_str().unwrap_or_default().to_string()
    }
    fn recipients(&self) -> Vec<String> {
        serde_json::from_value(self.json["envelope_recipients"].clone()).unwrap()
    }
}

fn smtp_config(port: u16) -> String {
    format!(
        "email:\n  from: \"Keel CS <keel@cs.example>\"\n  smtp: {{ host: 127.0.0.1, port: {port}, tls: none }}\n  unsubscribe_url: https://cs.example/unsubscribe\ndelivery:\n  backoff: 1m\n  max_backoff: 10m\n  max_attempts: 5\n"
    )
}

const RED_NOTE_TXT: &str =
    "Subject: Red: {{ account.name }}\nHello,\n\n{{ account.name }} turned red ({{ health.score }}).\n";
const RED_NOTE_HTML: &str = "<html><body><p><b>{{ account.name }}</b> turned red.</p></body></html>";
const HELLO_TXT: &str =
    "Subject: A note for {{ recipient.name }}\nHi {{ recipient.name }},\n\nWe noticed you have not logged in lately.\n";

const RED: &str = r#"id: red
name: Red
trigger:
  condition: account.health.band == "red"
actions:
  - email: { to: "{{ account.manager }}", template: red_note }
  - email: { to: contacts, template: hello }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_reach_a_real_smtp_server_with_stable_ids_escaped_data_and_an_unsubscribe_link() {
    let port = free_port();
    let mut smtp = Smtp::start(port).await;
    let desk = Desk::new(
        &smtp_config(port),
        &[("red", RED)],
        &[("red_note.txt", RED_NOTE_TXT), ("red_note.html", RED_NOTE_HTML), ("hello.txt", HELLO_TXT)],
    );
    // Account data trying to inject a header and markup.
    let evil = "Acme <script>alert(1)</script> & Co\r\nBcc: thief@evil.example";
    desk.accounts(vec![account("A1", evil, 40.0, "mgr@cs.example")]);
    desk.contacts(vec![contact("C1", "A1", "ana@acme.example", "Europe/Berlin")]);

    assert_eq!(desk.evaluate(), 1);
    let report = desk.deliver().await;
    assert_eq!((report.delivered, report.retrying, report.dead), (2, 0, 0), "{report:?}");
    let mail = smtp.received();
    assert_eq!(mail.len(), 2);
    let outbox = desk.outbox();
    let entry_for =
        |to: &str| outbox.iter().find(|e| matches!(&e.payload, Payload::Email(m) if m.to == to)).unwrap().clone();

    let internal = mail.iter().find(|m| m.recipients() == ["mgr@cs.example"]).expect("the manager's email");
    // Message-ID derives from the occurrence: the outbox entry's stable key.
    assert_eq!(internal.header("Message-ID").unwrap(), format!("<{}@cs.example>", entry_for("mgr@cs.example").key));
    // The name's line break did not start a header, nor add a recipient.
    assert!(!internal.header_names().contains(&"bcc".to_string()), "{}", internal.raw);
    assert!(internal.subject().starts_with("Red: Acme <script>"), "{}", internal.subject());
    assert!(!internal.subject().contains('\n'));
    // HTML-escaped in the HTML part, as written in the text part.
    assert!(
        internal.html().contains("<b>Acme &lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Co"),
        "{}",
        internal.html()
    );
    assert!(!internal.html().contains("<script>"));
    assert!(internal.text().contains("Acme <script>alert(1)</script> & Co"));
    // Internal mail carries no unsubscribe header.
    assert_eq!(internal.header("List-Unsubscribe"), None);

    let customer = mail.iter().find(|m| m.recipients() == ["ana@acme.example"]).expect("the contact's email");
    assert_eq!(customer.subject(), "A note for Contact C1");
    let list = customer.header("List-Unsubscribe").expect("List-Unsubscribe on customer mail");
    assert_eq!(customer.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let url = list.trim_start_matches('<').trim_end_matches('>');
    assert!(url.starts_with("https://cs.example/unsubscribe?token="), "{url}");
    // The template did not print the link, so Keel added it to the text.
    assert!(customer.text().contains(url), "{}", customer.text());
    // The token names the address and only this store's key verifies it.
    let token = url.split("token=").nth(1).unwrap();
    let signer = Unsubscribe::for_store(&desk.ws.config(), desk.store()).unwrap();
    assert_eq!(signer.verify(token).unwrap(), "ana@acme.example");
    assert!(Unsubscribe::new(b"another key".to_vec(), "x").verify(token).is_err());

    // Nothing is due any more: a second round sends nothing.
    assert!(desk.deliver().await.is_empty());
    assert!(smtp.received().is_empty());
    smtp.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_for_a_while_then_up_every_email_is_delivered_once() {
    let port = free_port();
    let desk =
        Desk::new(&smtp_config(port), &[("red", RED)], &[("red_note.txt", RED_NOTE_TXT), ("hello.txt", HELLO_TXT)]);
    let ids: Vec<String> = (1..=6).map(|i| format!("A{i}")).collect();
    desk.accounts(ids.iter().map(|id| account(id, id, 30.0, &format!("mgr-{id}@cs.example"))).collect());
    assert_eq!(desk.evaluate(), 6);

    // Down: nothing listens on the port. Every entry fails and waits its backoff.
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.retrying), (0, 6), "{r:?}");
    for e in desk.outbox() {
        assert_eq!((e.status.name(), e.attempts), ("pending", 1));
        let wait = e.next_at - at(TUESDAY);
        assert!(wait >= Duration::seconds(30) && wait <= Duration::seconds(60), "backoff 1m with jitter: {wait}");
    }
    // Still down two minutes later: second attempts.
    desk.later(Duration::minutes(2));
    assert_eq!(desk.deliver().await.retrying, 6);

    // Up again.
    let mut smtp = Smtp::start(port).await;
    // Not due yet: the server sees nothing until the backoff has passed.
    assert!(desk.deliver().await.is_empty());
    desk.later(Duration::minutes(5));
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.retrying, r.dead), (6, 0, 0), "{r:?}");
    desk.later(Duration::hours(3));
    assert!(desk.deliver().await.is_empty());

    let mail = smtp.received();
    let mut ids: Vec<String> = mail.iter().map(|m| m.header("Message-ID").unwrap()).collect();
    assert_eq!(ids.len(), 6, "every email arrived");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "none twice");
    for e in desk.outbox() {
        assert_eq!((e.status.name(), e.attempts), ("delivered", 3), "{:?}", e.history);
        assert!(e.history[0].text.starts_with("attempt 1 failed: SMTP 127.0.0.1"), "{:?}", e.history);
    }
    smtp.stop();
}

// ---- a real HTTP server -------------------------------------------------------------

#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// An HTTP receiver answering from a script per path (the last answer repeats).
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    async fn start(script: BTreeMap<&'static str, Vec<(u16, Option<&'static str>)>>) -> Receiver {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, Uri};
        type Shared = (Arc<Mutex<Vec<Request>>>, Arc<BTreeMap<&'static str, Vec<(u16, Option<&'static str>)>>>);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state: Shared = (requests.clone(), Arc::new(script));
        async fn answer(
            State((requests, script)): State<Shared>,
            uri: Uri,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, HeaderMap, String) {
            let path = uri.path().to_string();
            let mut seen = requests.lock().unwrap();
            let n = seen.iter().filter(|r| r.path == path).count();
            let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
            seen.push(Request { path: path.clone(), headers, body });
            let answers = &script[path.as_str()];
            let (status, retry_after) = answers[n.min(answers.len() - 1)];
            let mut out = HeaderMap::new();
            if let Some(r) = retry_after {
                out.insert("retry-after", r.parse().unwrap());
            }
            (StatusCode::from_u16(status).unwrap(), out, format!("answer {}", n + 1))
        }
        let app = axum::Router::new().fallback(answer).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { port, requests }
    }

    fn requests(&self, path: &str) -> Vec<Request> {
        self.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }
}

fn hooks(port: u16) -> String {
    let hook = |path: &str| {
        format!(
            "  - webhook:\n      url: \"http://127.0.0.1:{port}/{path}\"\n      headers: {{ X-Account: \"{{{{ account.id }}}}\" }}\n      body: |\n        {{\"account\": {{{{ account.id }}}}, \"name\": {{{{ account.name }}}}, \"path\": \"{path}\"}}\n      secret_env: KEEL_TEST_HOOK_SECRET\n      timeout: 2s\n"
        )
    };
    format!(
        "id: hooks\nname: Hooks\ntrigger:\n  condition: account.health.band == \"red\"\nactions:\n{}{}{}",
        hook("flaky"),
        hook("busy"),
        hook("bad")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_500_honour_429_retry_after_and_die_on_400() {
    // SAFETY of set_var: this test is the only one reading this variable.
    std::env::set_var("KEEL_TEST_HOOK_SECRET", "s3cret");
    let script = BTreeMap::from([
        ("/flaky", vec![(500, None), (200, None)]),
        ("/busy", vec![(429, Some("120")), (200, None)]),
        ("/bad", vec![(400, None)]),
    ]);
    let receiver = Receiver::start(script).await;
    let mut desk = Desk::new("delivery:\n  backoff: 1m\n  max_attempts: 5\n", &[("hooks", &hooks(receiver.port))], &[]);
    desk.accounts(vec![account("A1", "Quote \" and \\ backslash", 30.0, "m@cs.example")]);
    assert_eq!(desk.evaluate(), 1);

    let t0 = at(TUESDAY);
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.retrying, r.dead), (0, 2, 1), "{r:?}");
    let by_path = |desk: &Desk, path: &str| {
        desk.outbox().into_iter().find(|e| matches!(&e.payload, Payload::Webhook(w) if w.url.ends_with(path))).unwrap()
    };
    // 500: retried after the backoff; 429: exactly when Retry-After says.
    let flaky = by_path(&desk, "/flaky");
    assert!(flaky.next_at > t0 + Duration::seconds(29) && flaky.next_at <= t0 + Duration::seconds(60));
    assert_eq!(by_path(&desk, "/busy").next_at, t0 + Duration::seconds(120));
    // 400: dead at once, kept with the receiver's answer.
    let bad = by_path(&desk, "/bad");
    assert!(
        matches!(&bad.status, Status::Dead { error, .. } if error.starts_with("HTTP 400 Bad Request: answer 1")),
        "{:?}",
        bad.status
    );
    assert_eq!(bad.attempts, 1);

    desk.set(t0 + Duration::seconds(61));
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.retrying, r.dead), (1, 0, 0), "only the 500 is due: {r:?}");
    assert_eq!(receiver.requests("/busy").len(), 1, "Retry-After is honoured: no early retry");
    desk.set(t0 + Duration::seconds(120));
    assert_eq!(desk.deliver().await.delivered, 1);
    desk.later(Duration::hours(2));
    assert!(desk.deliver().await.is_empty());

    let flaky_requests = receiver.requests("/flaky");
    let busy_requests = receiver.requests("/busy");
    assert_eq!((flaky_requests.len(), busy_requests.len(), receiver.requests("/bad").len()), (2, 2, 1));
    assert!(by_path(&desk, "/busy").history[1].text.starts_with("delivered (attempt 2)"));
    assert_eq!(by_path(&desk, "/busy").history[1].at, t0 + Duration::seconds(120));
    for (path, reqs) in [("/flaky", &flaky_requests), ("/busy", &busy_requests)] {
        let entry = by_path(&desk, path);
        for req in reqs.iter() {
            // The same Idempotency-Key on every attempt: the entry's stable key.
            assert_eq!(req.headers["idempotency-key"], entry.key);
            assert_eq!(req.headers["x-account"], "A1");
            assert_eq!(req.headers["content-type"], "application/json");
            // The signature verifies over the raw body with the shared secret.
            assert_eq!(
                req.headers["x-keel-signature"],
                keel::deliver::webhook::signature(b"s3cret", req.body.as_bytes())
            );
            // Account data is JSON-escaped: the body parses and carries the name exactly.
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
            assert_eq!(body["name"], "Quote \" and \\ backslash");
            assert_eq!(body["account"], "A1");
        }
    }
    assert_ne!(by_path(&desk, "/flaky").key, by_path(&desk, "/busy").key);

    // `keel outbox list --dead` and `keel outbox retry ID` with the real binary.
    let dead_id = bad.id.to_string();
    desk.close();
    let listed = desk.ws.keel(&["outbox", "list", "--dead"]).ok();
    assert!(listed.contains(&dead_id) && listed.contains("HTTP 400"), "{listed}");
    assert!(listed.contains("1 dead entry"), "{listed}");
    let retried = desk.ws.keel(&["outbox", "retry", &dead_id]).ok();
    assert!(retried.contains("1 entry is back in the queue"), "{retried}");
    assert!(desk.ws.keel(&["outbox", "list", "--dead"]).ok().contains("No dead outbox entries."));
    let not_dead = desk.ws.keel(&["outbox", "retry", &flaky.id.to_string()]);
    assert_eq!(not_dead.code(), 1);
    assert!(not_dead.stderr().contains("is delivered, not dead"), "{}", not_dead.stderr());
    desk.open();
    let back = by_path(&desk, "/bad");
    assert_eq!((back.status.name(), back.attempts), ("pending", 0));
}

// ---- protecting customers' inboxes (.eml files; the clock decides) ------------------

const OUTREACH: &str = r#"id: outreach
name: Daily outreach
trigger:
  condition: account.metrics.score < 60
  fire: while_true
  every: 1d
actions:
  - email: { to: contacts, template: hello }
  - email: { to: "{{ account.manager }}", template: red_note }
"#;

fn eml_files(desk: &Desk) -> usize {
    mail(desk).len()
}

/// The `.eml` files written so far, as text.
fn mail(desk: &Desk) -> Vec<String> {
    std::fs::read_dir(desk.ws.path("data/mail"))
        .map(|d| d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_addresses_unsubscribed_contacts_and_do_not_contact_accounts_get_nothing_and_it_is_recorded() {
    let desk = Desk::new("", &[("outreach", OUTREACH)], &[("hello.txt", HELLO_TXT), ("red_note.txt", RED_NOTE_TXT)]);
    let mut dnc = account("A2", "Do Not Contact Inc", 30.0, "m@cs.example");
    dnc.fields = vec![("do_not_contact".into(), serde_json::json!("yes"))];
    desk.accounts(vec![account("A1", "Acme", 30.0, "m@cs.example"), dnc]);
    let mut opted_out = contact("C2", "A1", "bo@acme.example", "America/New_York");
    opted_out.unsubscribed = Some(true);
    desk.contacts(vec![
        contact("C1", "A1", "ana@acme.example", "America/New_York"),
        opted_out,
        contact("C3", "A1", "cy@acme.example", "America/New_York"),
        contact("C4", "A2", "di@dnc.example", "America/New_York"),
    ]);
    // `keel contacts unsubscribe` (and the link's token) put an address on the list.
    desk.store().suppress("CY@acme.example", "unsubscribed", "keel contacts unsubscribe", desk.clock.now()).unwrap();

    assert_eq!(desk.evaluate(), 2);
    let r = desk.deliver().await;
    // ana + the manager twice delivered; bo, cy and di suppressed.
    assert_eq!((r.delivered, r.suppressed), (3, 3), "{r:?}");
    assert_eq!(eml_files(&desk), 3);
    let reasons: BTreeMap<String, String> = desk
        .outbox()
        .into_iter()
        .filter_map(|e| match (&e.payload, &e.status) {
            (Payload::Email(m), Status::Suppressed { reason, .. }) => Some((m.to.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert!(reasons["bo@acme.example"].starts_with("unsubscribed (the contact record"), "{reasons:?}");
    assert!(reasons["cy@acme.example"].starts_with("unsubscribed (keel contacts unsubscribe"), "{reasons:?}");
    assert!(reasons["di@dnc.example"].starts_with("do-not-contact"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frequency_cap_defers_or_drops_as_the_playbook_says_and_internal_mail_is_exempt() {
    let drop = OUTREACH
        .replace("id: outreach", "id: outreach-drop")
        .replace("template: hello }", "template: hello, on_cap: drop }");
    let desk = Desk::new(
        "email:\n  frequency_cap: { max: 2, per: 7d }\n  quiet_hours: { start: \"00:00\", end: \"00:00\" }\n  business_days: [mon, tue, wed, thu, fri, sat, sun]\n",
        &[("outreach", OUTREACH), ("outreach-drop", &drop)],
        &[("hello.txt", HELLO_TXT), ("red_note.txt", RED_NOTE_TXT)],
    );
    desk.accounts(vec![account("A1", "Acme", 30.0, "m@cs.example")]);
    desk.contacts(vec![contact("C1", "A1", "ana@acme.example", "America/New_York")]);

    // Day 0: both playbooks fire; ana can take 2 in 7 days: both go out.
    assert_eq!(desk.evaluate(), 2);
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.deferred, r.dropped), (4, 0, 0), "2 to ana, 2 to the manager: {r:?}");
    // Day 1: over the cap. `defer` waits for room, `drop` is dropped and recorded; the
    // manager's copies go out (internal mail is exempt).
    desk.later(Duration::days(1));
    assert_eq!(desk.evaluate(), 2);
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.deferred, r.dropped), (2, 1, 1), "{r:?}");
    let deferred = desk.outbox().into_iter().find(|e| e.status == Status::Pending).unwrap();
    assert_eq!(deferred.playbook, "outreach");
    assert_eq!(deferred.next_at, at(TUESDAY) + Duration::days(7), "room again when the first send leaves the window");
    assert!(deferred.last_note().starts_with("deferred: frequency cap: 2 emails per 7d to ana@acme.example reached"));
    let dropped = desk.outbox().into_iter().find(|e| e.status.name() == "dropped").unwrap();
    assert_eq!(dropped.playbook, "outreach-drop");
    // Rounds in between send nothing to ana.
    desk.later(Duration::days(3));
    let r = desk.deliver().await;
    assert_eq!(r.delivered, 0, "{r:?}");
    // Day 7: the deferred email goes out.
    desk.set(at(TUESDAY) + Duration::days(7));
    let r = desk.deliver().await;
    assert_eq!(r.delivered, 1, "{r:?}");
    let sent_to_ana = desk
        .outbox()
        .into_iter()
        .filter(|e| {
            matches!(&e.payload, Payload::Email(m) if m.to == "ana@acme.example") && e.status.name() == "delivered"
        })
        .count();
    assert_eq!(sent_to_ana, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_and_weekends_in_the_recipients_zone_defer_never_drop() {
    let desk = Desk::new("", &[("outreach", OUTREACH)], &[("hello.txt", HELLO_TXT), ("red_note.txt", RED_NOTE_TXT)]);
    desk.accounts(vec![account("A1", "Acme", 30.0, "m@cs.example")]);
    desk.contacts(vec![
        contact("C1", "A1", "ken@acme.example", "Asia/Tokyo"),
        contact("C2", "A1", "ana@acme.example", "America/New_York"),
    ]);
    // Tuesday 14:00 UTC: 23:00 in Tokyo (quiet), 09:00 in New York (fine).
    assert_eq!(desk.evaluate(), 1);
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.deferred), (2, 1), "ana and the manager now, ken later: {r:?}");
    let ken = desk.outbox().into_iter().find(|e| e.status == Status::Pending).unwrap();
    // Wednesday 08:00 in Tokyo = Tuesday 23:00 UTC.
    assert_eq!(ken.next_at, at("2026-12-01T23:00:00Z"));
    assert!(ken.last_note().contains("Asia/Tokyo"), "{}", ken.last_note());
    desk.set(at("2026-12-01T22:59:00Z"));
    assert_eq!(desk.deliver().await.delivered, 0);
    desk.set(at("2026-12-01T23:00:00Z"));
    assert_eq!(desk.deliver().await.delivered, 1);

    // Friday 21:00 in Tokyo: deferred over the weekend to Monday 08:00 Tokyo.
    desk.set(at("2026-12-04T12:00:00Z"));
    assert_eq!(desk.evaluate(), 1);
    desk.deliver().await;
    let ken = desk.outbox().into_iter().find(|e| e.status == Status::Pending).unwrap();
    assert_eq!(ken.next_at, at("2026-12-06T23:00:00Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_sends_each_manager_one_email_listing_their_accounts() {
    let digest = r#"id: digest
name: Red digest
trigger:
  condition: account.health.band == "red"
actions:
  - email: { to: "{{ account.manager }}", template: digest, digest: true }
"#;
    let template = "Subject: {{ accounts | length }} red accounts\n{% for a in accounts %}- {{ a.account.name }} ({{ a.health.band }})\n{% endfor %}";
    let desk = Desk::new("", &[("digest", digest)], &[("digest.txt", template)]);
    let mut book: Vec<AccountPatch> =
        (1..=8).map(|i| account(&format!("A{i}"), &format!("Account {i}"), 20.0, "pat@cs.example")).collect();
    book.push(account("B1", "Other", 20.0, "lee@cs.example"));
    desk.accounts(book);
    assert_eq!(desk.evaluate(), 9);
    let r = desk.deliver().await;
    assert_eq!(r.delivered, 9, "nine items, in two emails: {r:?}");
    let mut files = mail(&desk);
    files.sort_by_key(|f| f.len());
    assert_eq!(files.len(), 2, "one email per manager");
    let pat = &files[1];
    assert!(pat.contains("To: pat@cs.example") && pat.contains("Subject: 8 red accounts"), "{pat}");
    for i in 1..=8 {
        assert!(pat.contains(&format!("- Account {i} (red)")), "{pat}");
    }
    assert!(files[0].contains("Subject: 1 red accounts") && files[0].contains("- Other (red)"));
    assert!(desk.deliver().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_task_is_updated_not_duplicated_and_escalates_once_when_overdue() {
    let playbook = r#"id: save
name: Save plan
trigger:
  condition: account.health.band == "red"
  fire: while_true
  every: 1d
actions:
  - task:
      title: "Save plan: {{ account.name }} ({{ health.score }})"
      owner: "{{ account.owner }}"
      due_in: 2d
      priority: high
      escalate_after: 1d
"#;
    let desk = Desk::new("", &[("save", playbook)], &[]);
    desk.accounts(vec![account("A1", "Acme", 30.0, "boss@cs.example")]);
    assert_eq!(desk.evaluate(), 1);
    desk.later(Duration::days(1));
    desk.accounts(vec![account("A1", "Acme", 25.0, "boss@cs.example")]);
    assert_eq!(desk.evaluate(), 1, "fires again a day later");
    let tasks: Vec<_> = desk.store().tasks().map(Result::unwrap).collect();
    assert_eq!(tasks.len(), 1, "the open task is updated, not duplicated");
    let t = &tasks[0];
    assert_eq!((t.title.as_str(), t.priority.as_str(), t.occurrences.len()), ("Save plan: Acme (25.0)", "high", 2));
    assert_eq!(t.due, Some(at(TUESDAY) + Duration::days(3)));

    // Due on day 3; escalation at due + 1d = day 4. Day 3: nothing yet.
    desk.set(at(TUESDAY) + Duration::days(3) + Duration::hours(1));
    assert_eq!(desk.deliver().await.escalated, 0);
    desk.set(at(TUESDAY) + Duration::days(4));
    let r = desk.deliver().await;
    assert_eq!((r.escalated, r.delivered), (1, 1), "{r:?}");
    desk.later(Duration::days(2));
    assert_eq!(desk.deliver().await.escalated, 0, "once");
    let sent = mail(&desk);
    assert_eq!(sent.len(), 1);
    let mail = &sent[0];
    assert!(mail.contains("To: boss@cs.example") && mail.contains("Subject: Overdue task: Save plan: Acme"), "{mail}");

    // Done: the next firing opens a new task.
    let mut t = desk.store().task(t.id).unwrap().unwrap();
    t.status = TaskStatus::Done;
    desk.store().update_task(&t).unwrap();
    assert_eq!(desk.evaluate(), 1);
    let tasks: Vec<_> = desk.store().tasks().map(Result::unwrap).collect();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks.iter().filter(|t| t.is_open()).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_slack_and_crm_examples_post_what_their_receivers_expect() {
    let receiver = Receiver::start(BTreeMap::from([("/slack", vec![(200, None)]), ("/crm", vec![(201, None)])])).await;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let slack = std::fs::read_to_string(repo.join("examples/playbooks/slack-red-alert.yaml")).unwrap();
    let crm = std::fs::read_to_string(repo.join("examples/playbooks/crm-expansion-opportunity.yaml"))
        .unwrap()
        .replace("https://crm.example.com/api/opportunities", &format!("http://127.0.0.1:{}/crm", receiver.port));
    // SAFETY of set_var: only this test reads these variables.
    std::env::set_var("KEEL_SLACK_WEBHOOK_URL", format!("http://127.0.0.1:{}/slack", receiver.port));
    std::env::set_var("KEEL_CRM_API_TOKEN", "crm-token");
    std::env::set_var("KEEL_CRM_WEBHOOK_SECRET", "crm-secret");
    let desk = Desk::new("", &[("slack", &slack), ("crm", &crm)], &[]);
    let mut red = account("E1", "Big \"Enterprise\" AG", 30.0, "m@cs.example");
    red.segment = Some(keel::model::Segment::Enterprise);
    red.arr = Some(250000.0);
    let mut green = account("E2", "Happy Co", 95.0, "m@cs.example");
    green.metrics.extend([("active_users".into(), 100.0), ("licensed_users".into(), 100.0), ("nps".into(), 10.0)]);
    desk.accounts(vec![red, green]);
    assert_eq!(desk.evaluate(), 2);
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.dead), (2, 0), "{r:?} {:?}", desk.outbox());

    let post = &receiver.requests("/slack")[0];
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["text"], ":red_circle: Big \"Enterprise\" AG turned red (health 30.0)");
    assert_eq!(body["blocks"][0]["type"], "section");
    assert!(body["blocks"][0]["text"]["text"].as_str().unwrap().contains("ARR $250000"), "{body}");
    // The secret URL was read from the environment when sending, never stored.
    let stored = serde_json::to_string(&desk.outbox()).unwrap();
    assert!(stored.contains("${KEEL_SLACK_WEBHOOK_URL}") && !stored.contains("/slack"), "{stored}");

    let post = &receiver.requests("/crm")[0];
    assert_eq!(post.headers["authorization"], "Bearer crm-token");
    assert_eq!(
        post.headers["x-keel-signature"],
        keel::deliver::webhook::signature(b"crm-secret", post.body.as_bytes())
    );
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!((body["account_id"].as_str(), body["type"].as_str()), (Some("E2"), Some("expansion")));
    assert!(!stored.contains("crm-token"), "the token stays out of the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_entries_stay_for_the_timeline_until_the_retention_limit_and_dead_ones_stay_until_retried() {
    let bad_hook = "id: hook\nname: Hook\ntrigger:\n  condition: account.health.band == \"red\"\nactions:\n  - webhook: { url: \"not a url\" }\n  - email: { to: \"{{ account.manager }}\", template: red_note }\n";
    let desk = Desk::new("delivery:\n  retention: 30d\n", &[("hook", bad_hook)], &[("red_note.txt", RED_NOTE_TXT)]);
    desk.accounts(vec![account("A1", "Acme", 30.0, "m@cs.example")]);
    desk.evaluate();
    let r = desk.deliver().await;
    assert_eq!((r.delivered, r.dead), (1, 1), "{r:?}");
    let store = desk.store();
    assert_eq!(store.outbox_of("A1").unwrap().len(), 2, "both on the account's timeline");
    assert_eq!(store.purge_outbox(at(TUESDAY) - Duration::days(30)).unwrap(), 0, "nothing is 30 days old yet");
    assert_eq!(store.purge_outbox(at(TUESDAY) + Duration::days(1)).unwrap(), 1);
    let left = store.outbox_of("A1").unwrap();
    assert_eq!(left.len(), 1);
    assert!(
        matches!(&left[0].status, Status::Dead { error, .. } if error.starts_with("invalid URL")),
        "{:?}",
        left[0].status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_configured_keel_never_falls_back_to_plaintext() {
    // mailcrab speaks plain SMTP and offers no STARTTLS: a relay stripping it (or a
    // misconfigured one) must not receive the mail in the clear. With `implicit` the TLS
    // handshake comes before any SMTP on the socket Keel opens.
    for (mode, says) in [("starttls", "STARTTLS"), ("implicit", "TLS handshake")] {
        let port = free_port();
        let mut smtp = Smtp::start(port).await;
        let config = smtp_config(port).replace("tls: none", &format!("tls: {mode}"));
        let desk = Desk::new(&config, &[("red", RED)], &[("red_note.txt", RED_NOTE_TXT), ("hello.txt", HELLO_TXT)]);
        desk.accounts(vec![account("A1", "Acme", 30.0, "mgr@cs.example")]);
        desk.evaluate();
        let r = desk.deliver().await;
        assert_eq!((r.delivered, r.retrying), (0, 1), "{mode}: {r:?}");
        assert!(smtp.received().is_empty(), "{mode}: nothing was sent in the clear");
        let outbox = desk.outbox();
        let note = outbox[0].last_note();
        assert!(note.contains("attempt 1 failed: SMTP 127.0.0.1") && note.contains(says), "{mode}: {note}");
        smtp.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_deliveries_at_once_finish_while_a_pass_flushes_the_store() {
    // sled 0.34 deadlocks an explicit flush against a waiting transaction; the store keeps
    // them apart. Before that, a delivery round of a few hundred entries could hang here
    // with both runtime threads inside sled.
    let receiver = Receiver::start(BTreeMap::from([("/hook", vec![(200, None)])])).await;
    let hook = format!(
        "id: hook\nname: Hook\ntrigger:\n  condition: account.health.band == \"red\"\nactions:\n  - webhook: {{ url: \"http://127.0.0.1:{}/hook\", body: \"{{\\\"a\\\": {{{{ account.id }}}}}}\" }}\n",
        receiver.port
    );
    let desk = Desk::new("delivery:\n  webhook_concurrency: 32\n", &[("hook", &hook)], &[]);
    desk.accounts((0..1000).map(|i| account(&format!("A{i:04}"), "Acme", 30.0, "m@cs.example")).collect());
    assert_eq!(desk.evaluate(), 1000);
    let deliverer = desk.deliverer.clone().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    tokio::spawn(async move {
        let _ = done.send(deliverer.deliver_due(&CancellationToken::new()).await.unwrap());
    });
    // A pass's flush (and its next pass) at the same time as the round.
    desk.later(Duration::hours(1));
    desk.evaluate();
    // Waited for on a plain channel: in a deadlock the runtime's timers stop too.
    let report = tokio::task::block_in_place(|| finished.recv_timeout(std::time::Duration::from_secs(60)))
        .expect("the delivery round finished (no deadlock inside sled)");
    assert_eq!(report.delivered, 1000, "{report:?}");
    assert_eq!(receiver.requests("/hook").len(), 1000);
}
