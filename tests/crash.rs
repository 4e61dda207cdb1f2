//! Crash safety of delivery with the real `keel run` process and a real SMTP server
//! (mailcrab, in this test process, over TCP): SIGKILL between deciding and delivering,
//! and SIGKILL in the middle of sending; after a restart every decided email is delivered,
//! nothing is decided twice, and a repeat — if any — carries the same Message-ID.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel::model::{Decision, Payload, Status};

use crate::run::{example_workspace, spawn, terminate, wait_for};
use crate::util::Workspace;

/// A Tuesday, 10:00 in New York: customer mail in American zones may go out.
pub(crate) const NOW: &str = "2026-11-24T15:00:00Z";

/// mailcrab on `port`, its messages' Message-IDs collected as they arrive (its channel
/// holds only 128, so a task drains it).
pub(crate) struct Server {
    runtime: tokio::runtime::Runtime,
    token: tokio_util::sync::CancellationToken,
    ids: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub(crate) fn start(port: u16, ids: Arc<Mutex<Vec<String>>>) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let sink = ids.clone();
        let token = runtime.block_on(async move {
            let mut h = mailcrab::development_mail_server([127, 0, 0, 1], port).await;
            tokio::spawn(async move {
                while let Ok(m) = h.rx.recv().await {
                    let raw = String::from_utf8(m.raw_bytes().unwrap()).unwrap();
                    let id = raw
                        .lines()
                        .find_map(|l| l.strip_prefix("Message-ID: "))
                        .expect("every message has a Message-ID")
                        .to_string();
                    sink.lock().unwrap().push(id);
                }
            });
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            h.token
        });
        Server { runtime, token, ids }
    }

    pub(crate) fn count(&self) -> usize {
        self.ids.lock().unwrap().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.token.cancel();
        let _ = &self.runtime;
    }
}

pub(crate) fn workspace_with_smtp(port: u16) -> Workspace {
    let ws = example_workspace();
    let config = std::fs::read_to_string(ws.path("keel.yaml")).unwrap();
    let start = config.find("  smtp:").expect("the example config has an smtp section");
    let end = start + config[start..].find("\n\n").unwrap_or(config.len() - start);
    let config =
        format!("{}  smtp: {{ host: 127.0.0.1, port: {port}, tls: none }}{}", &config[..start], &config[end..]);
    // Retries within the test's patience.
    assert!(
        config.contains("backoff: 30s") && config.contains("max_backoff: 1h"),
        "the example config sets the backoff"
    );
    let config = config.replace("max_backoff: 1h", "max_backoff: 2s").replace("backoff: 30s", "backoff: 1s");
    ws.write("keel.yaml", &config);
    one_email_per_account(&ws);
    ws
}

/// The shipped playbooks digest their internal mail (a pass sends each manager and CSM a
/// few emails); these tests kill and fail sends in the middle of hundreds of messages, so
/// they send one email per account.
fn one_email_per_account(ws: &Workspace) {
    let mut changed = 0;
    for entry in std::fs::read_dir(ws.path("playbooks")).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if name.ends_with(".yaml") && name != "weekly-at-risk-digest.yaml" {
            let text = std::fs::read_to_string(&path).unwrap();
            let kept: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("digest: true")).collect();
            if kept.len() != text.lines().count() {
                changed += 1;
                std::fs::write(&path, kept.join("\n") + "\n").unwrap();
            }
        }
    }
    assert!(changed >= 5, "the escalation and renewal playbooks digest their mail ({changed} changed)");
}

pub(crate) fn kill9(child: &mut Child) {
    assert!(Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap().success());
    child.wait().unwrap();
}

/// Waits until the server has received `n` messages.
fn wait_until_received(server: &Server, n: usize, log: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.count() < n {
        assert!(Instant::now() < deadline, "received {} of {n} within 60 s\n{log}", server.count());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the server has received nothing new for 1.5 s (every due email sent).
pub(crate) fn wait_until_quiet(server: &Server) {
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let n = server.count();
        if n == last {
            return;
        }
        last = n;
    }
}

/// What the store says after the run: emails delivered (by stable key), decisions.
fn settled(ws: &Workspace) -> (BTreeMap<String, u32>, usize, usize) {
    let store = ws.store();
    let mut delivered = BTreeMap::new();
    let mut due_now = 0;
    for e in store.outbox().map(Result::unwrap) {
        if let Payload::Email(_) = e.payload {
            match e.status {
                Status::Delivered { .. } => {
                    delivered.insert(e.key.clone(), e.attempts);
                }
                Status::Pending if e.next_at <= NOW.parse::<chrono::DateTime<chrono::Utc>>().unwrap() => due_now += 1,
                _ => {}
            }
        }
    }
    let fired = store.ledger().map(Result::unwrap).filter(|e| e.decision == Decision::Fired).count();
    (delivered, due_now, fired)
}

pub(crate) fn key_of(message_id: &str) -> String {
    message_id.trim_matches(['<', '>']).split('@').next().unwrap().to_string()
}

#[test]
fn sigkill_between_deciding_and_delivering_loses_nothing_and_sends_nothing_twice() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ws = workspace_with_smtp(port);
    // The SMTP server is down: the pass decides, delivery fails and waits for a retry.
    let (mut child, rx) = spawn(&ws, NOW);
    let mut log = Vec::new();
    wait_for(&rx, &mut log, "the first pass", |l| l.contains("tick evaluated") && l.contains("playbook=red-save-plan"));
    wait_for(&rx, &mut log, "a failed delivery", |l| l.contains("delivery failed"));
    kill9(&mut child);
    let (_, _, fired_before) = settled(&ws);
    assert!(fired_before > 300, "{fired_before}");

    // The server comes up; keel restarts and delivers what was decided, once.
    let ids = Arc::new(Mutex::new(Vec::new()));
    let server = Server::start(port, ids.clone());
    let (mut child, rx) = spawn(&ws, NOW);
    let mut log = Vec::new();
    wait_for(&rx, &mut log, "a delivery round", |l| l.contains("delivery round") && !l.contains("delivered=0 "));
    // Let it finish: everything due is sent within a few rounds.
    wait_until_quiet(&server);
    let (status, _) = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
    let (delivered, due_now, fired_after) = settled(&ws);
    assert_eq!(fired_after, fired_before, "the restart decided nothing again");
    assert_eq!(due_now, 0, "nothing due was left undelivered");
    let received = ids.lock().unwrap().clone();
    let unique: std::collections::BTreeSet<String> = received.iter().map(|id| key_of(id)).collect();
    assert_eq!(received.len(), unique.len(), "no message twice");
    assert_eq!(unique, delivered.keys().cloned().collect(), "every delivered entry arrived, and only those");
    assert!(delivered.len() > 100, "{}", delivered.len());
    drop(server);
}

#[test]
fn sigkill_in_the_middle_of_sending_repeats_at_most_the_messages_in_flight_with_the_same_message_id() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let server = Server::start(port, ids.clone());
    let ws = workspace_with_smtp(port);
    let mut kills = 0;
    // Kill while the first messages arrive, twice, then let it finish.
    for threshold in [1, 60] {
        let (mut child, rx) = spawn(&ws, NOW);
        wait_until_received(&server, threshold, "");
        kill9(&mut child);
        kills += 1;
        drop(rx);
    }
    let (mut child, rx) = spawn(&ws, NOW);
    wait_until_quiet(&server);
    let (status, _) = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
    drop(rx);
    let (delivered, due_now, _) = settled(&ws);
    assert_eq!(due_now, 0, "nothing due was left undelivered");
    let received = ids.lock().unwrap().clone();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for id in &received {
        *per_key.entry(key_of(id)).or_default() += 1;
    }
    assert_eq!(per_key.keys().cloned().collect::<Vec<_>>(), delivered.keys().cloned().collect::<Vec<_>>());
    let repeats: usize = per_key.values().map(|n| n - 1).sum();
    // A repeat is a message sent but not yet recorded when the process died: at most the
    // ones in flight (`email_concurrency`, 4 by default), per kill.
    eprintln!(
        "crash mid-send: {} messages, {} unique, {repeats} repeat(s) after {kills} SIGKILLs",
        received.len(),
        per_key.len()
    );
    assert!(repeats <= 4 * kills, "{repeats} repeats after {kills} kills");
    drop(server);
}
