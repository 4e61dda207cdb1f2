//! Delivery throughput: emails to a real SMTP server (mailcrab, in this process, over TCP,
//! through Keel's pooled transport) and webhooks to a real HTTP server (axum), each
//! through the outbox exactly as `keel run` delivers them (store updates and flushes
//! included).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use keel::config::Config;
use keel::daemon::ManualClock;
use keel::deliver::Deliverer;
use keel::lang::Loaded;
use keel::model::{
    delivery_key, Audience, CapPolicy, Decision, Email, LedgerEntry, OutboxEntry, Payload, Status, Webhook,
};
use keel::store::{Commit, Store};
use tokio_util::sync::CancellationToken;

fn entry(i: u64, now: DateTime<Utc>, payload: Payload) -> (LedgerEntry, OutboxEntry) {
    let account = format!("B{i:07}");
    let occurrence = format!("bench:{i}");
    let ledger = LedgerEntry {
        playbook: "bench".into(),
        account: account.clone(),
        occurrence: occurrence.clone(),
        at: now,
        decision: Decision::Fired,
        why: "benchmark".into(),
        values: Default::default(),
        actions: Vec::new(),
    };
    let out = OutboxEntry {
        id: 0,
        account,
        playbook: "bench".into(),
        key: delivery_key(&["bench", &occurrence]),
        occurrence,
        created: now,
        payload,
        status: Status::Pending,
        next_at: now,
        attempts: 0,
        history: Vec::new(),
    };
    (ledger, out)
}

fn queue(store: &Store, n: u64, now: DateTime<Utc>, payload: impl Fn(u64) -> Payload) {
    for start in (0..n).step_by(1000) {
        let mut commit = Commit::default();
        for i in start..(start + 1000).min(n) {
            let (l, o) = entry(i, now, payload(i));
            commit.outbox.push((commit.entries.len(), o));
            commit.entries.push(l);
        }
        store.commit(&commit).unwrap();
    }
    store.flush().unwrap();
}

fn deliverer(config: &Config, store: Store, loaded: Arc<Loaded>, now: DateTime<Utc>) -> Arc<Deliverer> {
    Arc::new(Deliverer::new(config, store, loaded, Arc::new(ManualClock::new(now))).unwrap())
}

/// Emails per second through the outbox to a loopback SMTP server.
pub async fn emails(config: &Config, store: Store, loaded: Arc<Loaded>, port: u16, n: u64, now: DateTime<Utc>) -> f64 {
    let handle = mailcrab::development_mail_server([127, 0, 0, 1], port).await;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let mut rx = handle.rx;
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(_) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    counter.fetch_add(k, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    queue(&store, n, now, |i| {
        Payload::Email(Email {
            to: format!("person{i}@bench.example"),
            audience: Audience::Internal,
            template: "bench".into(),
            subject: format!("Benchmark message {i}"),
            text: "Hello,\n\nthis is a benchmark message of a typical length for a CSM notification.\n".repeat(4),
            html: None,
            unsubscribe_url: None,
            digest: None,
            on_cap: CapPolicy::Defer,
        })
    });
    let d = deliverer(config, store, loaded, now);
    let started = Instant::now();
    let report = d.deliver_due(&CancellationToken::new()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.delivered, n, "every email delivered: {report:?}");
    handle.token.cancel();
    n as f64 / secs
}

/// Webhooks per second through the outbox to a loopback HTTP server.
pub async fn webhooks(config: &Config, store: Store, loaded: Arc<Loaded>, n: u64, now: DateTime<Utc>) -> f64 {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move |_body: String| {
        let c = counter.clone();
        async move {
            c.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    queue(&store, n, now, |i| {
        Payload::Webhook(Webhook {
            method: "POST".into(),
            url: format!("http://127.0.0.1:{port}/hook"),
            headers: Default::default(),
            body: Some(format!("{{\"account\": \"B{i:07}\", \"event\": \"benchmark\"}}")),
            secret_env: None,
            timeout_ms: 10_000,
        })
    });
    let d = deliverer(config, store, loaded, now);
    let started = Instant::now();
    let report = d.deliver_due(&CancellationToken::new()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.delivered, n, "every webhook delivered: {report:?}");
    assert_eq!(hits.load(Ordering::Relaxed), n);
    n as f64 / secs
}
