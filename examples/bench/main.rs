//! Keel's benchmark: one command, a fresh data dir, the deterministic generator, and one
//! table (also written to `docs/benchmarks.md` with the machine, date and command).
//!
//! ```sh
//! cargo run --release --example bench -- --accounts 1000000
//! ```
//!
//! Each book size runs in its own child process (so its peak RSS is its own): generate
//! the book, sync it (accounts/s, contacts/s, events/s), a full evaluation pass of the
//! shipped playbooks and health model from an empty ledger, a quiet pass an hour later
//! (nothing changed, no day boundary), and the native baseline (the same health model and
//! conditions in plain Rust). Then delivery: emails to a loopback SMTP server and webhooks
//! to a loopback HTTP server, through the outbox.
//!
//! Not run by `.ci/run`; the test suite makes no timing assertions.

mod api;
#[allow(dead_code)]
#[path = "../gen_accounts/book.rs"]
mod book;
mod delivery;
mod guard;
mod native;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Parser;
use keel::config::Config;
use keel::daemon::{Daemon, ManualClock};
use keel::lang::Loaded;
use keel::store::Store;
use keel::sync::sync_file;
use serde::{Deserialize, Serialize};

/// The allocator the `keel` binary uses (src/main.rs), so the benchmark measures what runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// The largest book, in accounts.
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u64,
    /// Smaller books measured first (comma-separated), for linearity.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000])]
    sizes: Vec<u64>,
    /// Books above this size are synced without events (the shipped playbooks have no
    /// event trigger, so the pass does not read them; the ingest rate is measured below it).
    #[arg(long, default_value_t = 100_000)]
    events_up_to: u64,
    /// Emails and webhooks sent in the delivery measurement.
    #[arg(long, default_value_t = 5_000)]
    deliveries: u64,
    /// `delivery.email_concurrency` (SMTP connections) for the email measurement.
    #[arg(long, default_value_t = 4)]
    email_concurrency: usize,
    /// Where to work (a fresh folder is made inside); default: the system's temp dir.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where to write the table.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Only the API measurement: `/v1/batch` events/s, and a batch's latency during a
    /// full pass over a book of this many accounts.
    #[arg(long)]
    api: Option<u64>,
    /// Events sent in the API throughput measurement.
    #[arg(long, default_value_t = 200_000)]
    api_events: u64,
    /// Batches in flight at once in the throughput measurement.
    #[arg(long, default_value_t = 4)]
    api_in_flight: usize,
    /// Only the guard measurement: a pass with the blast-radius guard off, on by default
    /// and on for every playbook, over a book of this many accounts.
    #[arg(long)]
    guard: Option<u64>,
    /// Internal: measure one book size and print its row as JSON.
    #[arg(long, hide = true)]
    one: Option<u64>,
}

/// The pass clock: a Tuesday, 10:00 in New York (the sample config's zone).
const NOW: &str = "2026-11-24T15:00:00Z";
const TODAY: (i32, u32, u32) = (2026, 11, 24);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    accounts: u64,
    contacts: u64,
    events: u64,
    sync_accounts_per_s: f64,
    sync_contacts_per_s: f64,
    sync_events_per_s: Option<f64>,
    playbooks: usize,
    full_pass_s: f64,
    evaluations: u64,
    fired: u64,
    quiet_pass_s: f64,
    /// Every account evaluated again with nothing new to decide (incremental off): what
    /// the native baseline does, so the ratio of the two is the interpreter's overhead.
    recheck_pass_s: f64,
    native_pass_s: f64,
    peak_rss_mb: f64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    let work = base.join(format!("keel-bench-{}", std::process::id()));
    // A size's book and store take gigabytes at 1M (8.6 GB): each process removes its own
    // work directory when it ends, failed or not.
    let _cleanup = RemoveOnDrop(work.clone());
    if let Some(n) = args.api {
        let dir = work.join("api");
        std::fs::create_dir_all(&dir)?;
        let started = Instant::now();
        let row = api::run(&dir, n, args.api_events, args.api_in_flight, api_config(&dir)?, NOW.parse()?, today())?;
        let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        let doc = render_api(&row, &command, started.elapsed().as_secs_f64());
        print!("{doc}");
        write_between(&args.out, "<!-- bench-api:start -->", "<!-- bench-api:end -->", &doc)?;
        eprintln!("bench: written to {}", args.out.display());
        return Ok(());
    }
    if let Some(n) = args.guard {
        let dir = work.join("guard");
        std::fs::create_dir_all(&dir)?;
        let started = Instant::now();
        let text = std::fs::read_to_string(repo().join("examples/keel.yaml"))?
            .replace("playbooks: ../playbooks", &format!("playbooks: {}", repo().join("playbooks").display()))
            .replace("rules: ../rules", &format!("rules: {}", repo().join("rules").display()));
        let rows = guard::run(&dir, n, &text, NOW.parse()?, today())?;
        let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        let doc = render_guard(n, &rows, &command, started.elapsed().as_secs_f64());
        print!("{doc}");
        write_between(&args.out, "<!-- bench-guard:start -->", "<!-- bench-guard:end -->", &doc)?;
        eprintln!("bench: written to {}", args.out.display());
        return Ok(());
    }
    if let Some(n) = args.one {
        let row = one(n, &work.join(n.to_string()), n <= args.events_up_to)?;
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }
    let mut sizes = args.sizes.clone();
    sizes.push(args.accounts);
    sizes.sort_unstable();
    sizes.dedup();
    let started = Instant::now();
    let mut rows = Vec::new();
    for &n in &sizes {
        eprintln!("bench: {n} accounts …");
        let out = Command::new(std::env::current_exe()?)
            .args(["--one", &n.to_string(), "--events-up-to", &args.events_up_to.to_string()])
            .args(args.dir.as_ref().map(|d| ["--dir".to_string(), d.display().to_string()]).into_iter().flatten())
            .output()?;
        anyhow::ensure!(out.status.success(), "the {n}-account run failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let row: Row = serde_json::from_slice(&out.stdout).context("the child's row")?;
        eprintln!(
            "bench: {n} accounts: full pass {:.2} s, quiet {:.4} s, re-check {:.2} s",
            row.full_pass_s, row.quiet_pass_s, row.recheck_pass_s
        );
        rows.push(row);
    }
    eprintln!("bench: delivery …");
    let (emails, webhooks) = deliveries(&work.join("delivery"), args.deliveries, args.email_concurrency)?;
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let doc = render(
        &rows,
        emails,
        webhooks,
        args.deliveries,
        args.email_concurrency,
        &command,
        started.elapsed().as_secs_f64(),
    );
    print!("{doc}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_between(&args.out, "<!-- bench:start -->", "<!-- bench:end -->", &doc)?;
    eprintln!("bench: written to {}", args.out.display());
    Ok(())
}

/// Puts `doc` between the markers in `out`; the analysis around them is kept.
fn write_between(out: &Path, start: &str, end: &str, doc: &str) -> anyhow::Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let old = std::fs::read_to_string(out).unwrap_or_default();
    let merged = match (old.find(start), old.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{start}\n{doc}{}", &old[..a], &old[b..]),
        _ => format!("{old}\n{start}\n{doc}{end}\n"),
    };
    std::fs::write(out, merged)?;
    Ok(())
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).unwrap()
}

/// The example config with a Segment write key (from the environment, as secrets are).
fn api_config(dir: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(repo().join("examples/keel.yaml"))?
        .replace("playbooks: ../playbooks", &format!("playbooks: {}", repo().join("playbooks").display()))
        .replace("rules: ../rules", &format!("rules: {}", repo().join("rules").display()))
        .replace("\napi:\n", "\napi:\n  write_keys: [\"${KEEL_BENCH_WRITE_KEY}\"]\n");
    anyhow::ensure!(text.contains("KEEL_BENCH_WRITE_KEY"), "examples/keel.yaml has no `api:` section to extend");
    // Before any thread starts: the config reads it while loading.
    std::env::set_var("KEEL_BENCH_WRITE_KEY", api::WRITE_KEY);
    let path = dir.join("keel.yaml");
    std::fs::write(&path, text)?;
    Ok(Config::load(&path)?)
}

fn render_api(r: &api::ApiRow, command: &str, took: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Written by `cargo run --release --example bench -- {command}` on {}.\nMachine: {}. Run: {took:.0} s.\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine()
    );
    let _ = writeln!(
        s,
        "`/v1/batch` on loopback, the server `keel run` serves (its limits on), {} events in gzip batches of {} ({} in flight), \
         track events for accounts of a {}-account generated book:\n",
        g(r.events as f64),
        r.batch,
        r.in_flight,
        g(r.accounts as f64)
    );
    let _ = writeln!(s, "| events/s ingested | batch p50 during the full pass | p99 during | max during | batches sent during | full pass | p99 idle |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.1} s | {:.1} ms |",
        g(r.events_per_s),
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.during_pass_batches,
        r.pass_s,
        r.idle_p99_ms
    );
    s
}

fn render_guard(n: u64, rows: &[guard::GuardRow], command: &str, took: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Written by `cargo run --release --example bench -- {command}` on {}.\nMachine: {}. Run: {took:.0} s.\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine()
    );
    let _ = writeln!(
        s,
        "The shipped playbooks over a {}-account generated book, each whole tick timed (the guard's count is a pass of its own):\n",
        g(n as f64)
    );
    let _ = writeln!(s, "| guard | first pass | fired | held (would fire) | re-check (every account, nothing new) |");
    let _ = writeln!(s, "|---|---:|---:|---|---:|");
    for r in rows {
        let held = if r.held.is_empty() { "–".to_string() } else { r.held.join(", ") };
        let _ = writeln!(
            s,
            "| {} | {:.2} s | {} | {held} | {:.2} s |",
            r.setting,
            r.first_s,
            g(r.first_fired as f64),
            r.recheck_s
        );
    }
    s
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example config, pointed at this book and the shipped playbooks and rules.
fn config(dir: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(repo().join("examples/keel.yaml"))?
        .replace("playbooks: ../playbooks", &format!("playbooks: {}", repo().join("playbooks").display()))
        .replace("rules: ../rules", &format!("rules: {}", repo().join("rules").display()));
    let path = dir.join("keel.yaml");
    std::fs::write(&path, text)?;
    Ok(Config::load(&path)?)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One book size, measured in this process.
fn one(n: u64, dir: &Path, with_events: bool) -> anyhow::Result<Row> {
    let today = NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).unwrap();
    let spec = book::BookSpec { accounts: n, seed: 7, today, events_per_account: 6.0 };
    let data = dir.join("data");
    let counts = book::write_book(&spec, &data)?;
    let config = config(dir)?;
    let store = Store::open(&config.store_dir())?;
    let now: DateTime<Utc> = NOW.parse()?;
    let sync = &config.sync;
    let rate = |r: keel::sync::SyncReport| r.rows() as f64 / r.elapsed.as_secs_f64();
    let accounts = rate(sync_file(&store, &data.join("accounts.csv"), &sync.accounts.spec, now, &())?);
    let contacts = rate(sync_file(&store, &data.join("contacts.csv"), &sync.contacts.spec, now, &())?);
    let events = if with_events {
        Some(rate(sync_file(&store, &data.join("events.ndjson"), &sync.events.spec, now, &())?))
    } else {
        None
    };
    store.flush()?;
    let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let clock = Arc::new(ManualClock::new(now));
    let daemon = Daemon::new(config.clone(), store.clone(), loaded, clock.clone());
    let full = daemon.tick(&AtomicBool::new(false))?.report.context("the first pass runs everything")?;
    clock.set(now + Duration::hours(1));
    let quiet = daemon.tick(&AtomicBool::new(false))?.report.context("the hourly pass")?;
    let mut every = config.clone();
    every.evaluation.incremental = false;
    let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    clock.set(now + Duration::hours(2));
    let recheck = Daemon::new(every, store.clone(), loaded, clock.clone())
        .tick(&AtomicBool::new(false))?
        .report
        .context("the pass over every account")?;
    anyhow::ensure!(recheck.fired() == 0, "a pass with nothing new fired {}", recheck.fired());
    let started = Instant::now();
    let (_, holds) = native::pass(&store, today, config.evaluation.workers);
    let native_s = started.elapsed().as_secs_f64();
    std::hint::black_box(holds);
    Ok(Row {
        accounts: counts.accounts,
        contacts: counts.contacts,
        events: if with_events { counts.events } else { 0 },
        sync_accounts_per_s: accounts,
        sync_contacts_per_s: contacts,
        sync_events_per_s: events,
        playbooks: full.playbooks.len(),
        full_pass_s: full.elapsed.as_secs_f64(),
        evaluations: full.playbooks.values().map(|s| s.evaluated).sum(),
        fired: full.fired(),
        quiet_pass_s: quiet.elapsed.as_secs_f64(),
        recheck_pass_s: recheck.elapsed.as_secs_f64(),
        native_pass_s: native_s,
        peak_rss_mb: peak_rss_mb(),
    })
}

fn deliveries(dir: &Path, n: u64, email_concurrency: usize) -> anyhow::Result<(f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let text = std::fs::read_to_string(repo().join("examples/keel.yaml"))?
        .replace("playbooks: ../playbooks", &format!("playbooks: {}", repo().join("playbooks").display()))
        .replace("rules: ../rules", &format!("rules: {}", repo().join("rules").display()))
        .replace("host: ${KEEL_SMTP_HOST:-}", "host: 127.0.0.1")
        .replace("port: 587", &format!("port: {port}"))
        .replace("tls: starttls ", "tls: none ")
        .replace("# email_concurrency: 4 ", &format!("email_concurrency: {email_concurrency} "));
    std::fs::write(dir.join("keel.yaml"), text)?;
    let config = Config::load(&dir.join("keel.yaml"))?;
    let loaded =
        Arc::new(Loaded::load(&config.rules_dir, &config.playbooks_dir).map_err(|e| anyhow::anyhow!("{e:?}"))?);
    let now: DateTime<Utc> = NOW.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (emails, webhooks) = runtime.block_on(async {
        let store = Store::open(&config.store_dir()).unwrap();
        let emails = delivery::emails(&config, store.clone(), loaded.clone(), port, n, now).await;
        let hooks_dir = dir.join("hooks");
        std::fs::create_dir_all(&hooks_dir).unwrap();
        let store2 = Store::open(&hooks_dir).unwrap();
        let webhooks = delivery::webhooks(&config, store2, loaded, n, now).await;
        (emails, webhooks)
    });
    Ok((emails, webhooks))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu}), {mem} memory")
}

fn g(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn render(
    rows: &[Row],
    emails: f64,
    webhooks: f64,
    n: u64,
    email_concurrency: usize,
    command: &str,
    total_s: f64,
) -> String {
    let mut d = String::new();
    let _ = writeln!(
        d,
        "Written by `cargo run --release --example bench -- {command}` on {} UTC.",
        Utc::now().format("%Y-%m-%d %H:%M")
    );
    let _ = writeln!(d, "Machine: {}. Whole run: {:.0} s.\n", machine(), total_s);
    let _ =
        writeln!(d, "Each size runs in its own process on a fresh store: the generator's book (seed 7), the shipped");
    let _ =
        writeln!(d, "playbooks and health model, the pass clock at {NOW}. Evaluations = accounts × due playbooks.\n");
    let _ = writeln!(d, "A quiet pass comes an hour after the full one (nothing synced, same day: incremental). The");
    let _ =
        writeln!(d, "re-check pass evaluates every account again with nothing new to decide (`incremental: false`),");
    let _ = writeln!(d, "which is what native does, in plain Rust: re-check/native is the interpreter's overhead.\n");
    let _ = writeln!(d, "| accounts | sync accounts/s | contacts/s | events/s | full pass | evaluations/s | µs/account | quiet pass | quiet/full | re-check | native | re-check/native | peak RSS |");
    let _ = writeln!(d, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            d,
            "| {} | {} | {} | {} | {:.2} s | {} | {:.1} | {:.4} s | {:.3}% | {:.2} s | {:.2} s | {:.1}× | {:.0} MB |",
            g(r.accounts as f64),
            g(r.sync_accounts_per_s),
            g(r.sync_contacts_per_s),
            r.sync_events_per_s.map_or("–".into(), g),
            r.full_pass_s,
            g(r.evaluations as f64 / r.full_pass_s),
            r.full_pass_s * 1e6 / r.accounts as f64,
            r.quiet_pass_s,
            100.0 * r.quiet_pass_s / r.full_pass_s,
            r.recheck_pass_s,
            r.native_pass_s,
            r.recheck_pass_s / r.native_pass_s,
            r.peak_rss_mb,
        );
    }
    let _ = writeln!(d, "\nDelivery through the outbox ({n} each, store updates and flushes included): **{} emails/s** to a loopback SMTP server (mailcrab, {email_concurrency} pooled connections), **{} webhooks/s** to a loopback HTTP server (axum).", g(emails), g(webhooks));
    if let (Some(small), Some(big)) = (rows.first(), rows.last()) {
        let per = |r: &Row| r.full_pass_s / r.accounts as f64;
        let _ = writeln!(
            d,
            "\nLinearity: time per account at {} is {:.2}× that at {}.",
            g(big.accounts as f64),
            per(big) / per(small),
            g(small.accounts as f64)
        );
    }
    d
}
