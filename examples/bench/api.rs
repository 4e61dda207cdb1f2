//! The API under load: events/s through the Segment-compatible `/v1/batch` on loopback
//! (100-event gzip batches, as Segment's SDKs send them), and the latency of such a batch
//! while a full evaluation pass runs over the same store.
//!
//! The server is the one `keel run` serves (`keel::api::router` and `keel::api::serve`,
//! with its limits), in this process over a real socket; the client is reqwest, a few
//! batches in flight as an SDK's flush threads would have.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use keel::config::Config;
use keel::daemon::{Daemon, ManualClock};
use keel::lang::Loaded;
use keel::store::Store;
use keel::sync::sync_file;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The Segment write key the benchmark's config reads from `KEEL_BENCH_WRITE_KEY`.
pub const WRITE_KEY: &str = "wk-bench";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiRow {
    pub accounts: u64,
    pub events: u64,
    pub batch: usize,
    pub in_flight: usize,
    pub events_per_s: f64,
    /// Batches sent one after another while the full pass ran.
    pub during_pass_batches: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub pass_s: f64,
    /// The same batch on an idle daemon, for comparison.
    pub idle_p99_ms: f64,
}

/// A batch of `n` track events for accounts of the generated book, gzipped.
fn batch(seq: u64, n: usize, accounts: u64, at: DateTime<Utc>) -> Vec<u8> {
    let mut body = String::with_capacity(n * 220);
    body.push_str("{\"batch\":[");
    for i in 0..n {
        let k = seq * n as u64 + i as u64;
        let account = k.wrapping_mul(2_654_435_761) % accounts + 1;
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"type\":\"track\",\"messageId\":\"bench-{k}\",\"userId\":\"u-{account}\",\"event\":\"Feature Used\",\
             \"context\":{{\"groupId\":\"ACC-{account:07}\"}},\"properties\":{{\"feature\":\"reports\",\"n\":{i}}},\
             \"timestamp\":\"{}\"}}",
            at.to_rfc3339()
        ));
    }
    body.push_str("]}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}

async fn send(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let answer = client
        .post(url)
        .basic_auth(WRITE_KEY, Some(""))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await?;
    let status = answer.status();
    let text = answer.text().await?;
    anyhow::ensure!(status.is_success(), "/v1/batch answered {status}: {text}");
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Measures on a fresh book of `accounts` in `dir`.
pub fn run(
    dir: &Path,
    accounts: u64,
    events: u64,
    in_flight: usize,
    config: Config,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> anyhow::Result<ApiRow> {
    const BATCH: usize = 100;
    let spec = super::book::BookSpec { accounts, seed: 7, today, events_per_account: 0.0 };
    let data = dir.join("data");
    super::book::write_book(&spec, &data)?;
    let store = Store::open(&config.store_dir())?;
    sync_file(&store, &data.join("accounts.csv"), &config.sync.accounts.spec, now, &())?;
    sync_file(&store, &data.join("contacts.csv"), &config.sync.contacts.spec, now, &())?;
    store.flush()?;
    let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let clock = Arc::new(ManualClock::new(now));
    let daemon = Daemon::new(config.clone(), store.clone(), loaded, clock.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let state = keel::api::ApiState::new(
        config.clone(),
        store.clone(),
        clock.clone(),
        daemon.watch_loaded(),
        daemon.counters.clone(),
        Default::default(),
    );
    let shutdown = CancellationToken::new();
    let listener = runtime.block_on(keel::api::bind(&config, "127.0.0.1:0".parse()?))?;
    let url = format!("http://{}/v1/batch", listener.local_addr()?);
    runtime.spawn(keel::api::serve(
        listener,
        keel::api::router(Arc::new(state)),
        config.api.limits,
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    let client = reqwest::Client::builder().pool_max_idle_per_host(in_flight).build()?;
    let batches = events.div_ceil(BATCH as u64);
    // Bodies are made before the clock starts: the client's gzip is not the server's cost.
    let bodies: Vec<Vec<u8>> = (0..batches).map(|s| batch(s, BATCH, accounts, now)).collect();

    // Throughput: `in_flight` senders share the batches.
    let next = Arc::new(AtomicU64::new(0));
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    runtime.block_on(async {
        let mut senders = Vec::new();
        for _ in 0..in_flight {
            let (client, url, next, bodies) = (client.clone(), url.clone(), next.clone(), bodies.clone());
            senders.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = bodies.get(i) else { return Ok::<_, anyhow::Error>(()) };
                    send(&client, &url, body.clone()).await?;
                }
            }));
        }
        for s in senders {
            s.await??;
        }
        anyhow::Ok(())
    })?;
    let events_per_s = (batches * BATCH as u64) as f64 / started.elapsed().as_secs_f64();

    // Idle latency, then latency while the full pass runs (on its own thread, as in
    // `keel run`): one batch every 20 ms.
    let sample = |stop: &AtomicBool, min: usize, base: u64| -> anyhow::Result<Vec<Duration>> {
        runtime.block_on(async {
            let mut took = Vec::new();
            let mut seq = base;
            while !stop.load(Ordering::Relaxed) || took.len() < min {
                took.push(send(&client, &url, batch(seq, BATCH, accounts, now)).await?);
                seq += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(took)
        })
    };
    let mut idle = sample(&AtomicBool::new(true), 200, 10_000_000)?;
    idle.sort();
    let done = Arc::new(AtomicBool::new(false));
    let pass = {
        let done = done.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let report = daemon.tick(&AtomicBool::new(false));
            done.store(true, Ordering::Relaxed);
            report.map(|t| (t, started.elapsed()))
        })
    };
    let mut during = sample(&done, 1, 20_000_000)?;
    let (tick, pass_took) = pass.join().expect("the pass thread").context("the full pass")?;
    anyhow::ensure!(tick.report.is_some(), "the first pass ran");
    during.sort();
    shutdown.cancel();
    Ok(ApiRow {
        accounts,
        events: batches * BATCH as u64,
        batch: BATCH,
        in_flight,
        events_per_s,
        during_pass_batches: during.len(),
        p50_ms: percentile(&during, 0.50),
        p99_ms: percentile(&during, 0.99),
        max_ms: during.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        pass_s: pass_took.as_secs_f64(),
        idle_p99_ms: percentile(&idle, 0.99),
    })
}
