//! `keel run`: the daemon, or with `--once` one evaluation pass for what is due and one
//! delivery round for what it (or an earlier run) queued.
//!
//! `--once` exits 1 when an evaluation failed, else [`super::EXIT_DEAD`] when outbox
//! entries went dead in this run (a template that failed for an account, a receiver that
//! refused) or tasks opened with a failed template, so a cron job notices; dead entries
//! of earlier runs are only mentioned.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::table::{Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::daemon::{self, Daemon, Tick};
use crate::deliver::{Deliverer, DeliveryReport};

/// On shutdown, how long API requests in flight may take to finish.
const API_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Evaluate what is due now once, then exit (for demos, or to run Keel from system cron).
    #[arg(long)]
    pub once: bool,
    /// Serve the API here instead of at `api.listen` (port 0: any free port, logged).
    /// Unsubscribe links still point at `email.unsubscribe_url` or `api.listen`.
    #[arg(long, value_name = "IP:PORT", conflicts_with = "once")]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, args: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_for_delivery(session, "keel did not start")?;
    let store = session.open_store()?;
    let clock = session.clock(args.once);
    let mut daemon = Daemon::new(session.config.clone(), store.clone(), loaded, clock.clone());
    // The files the config names are imported first (and, by the daemon, again when
    // they change), so the pass sees the book as the CRM export has it now.
    let mut synced = Vec::new();
    for result in daemon.sync_sources() {
        match result {
            Ok(report) => {
                report.log("synced file");
                synced.push(report.to_string());
            }
            // A damaged or full store: nothing may be decided from it.
            Err(crate::sync::SyncError::Store(e)) if e.is_damage() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "a configured source file could not be imported; evaluating the store as it is");
                synced.push(format!("warning: {e}"));
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // lettre's SMTP pool starts its housekeeping task when built: inside the runtime.
    let _entered = runtime.enter();
    let deliverer = Arc::new(Deliverer::new(&session.config, store, daemon.loaded_arc(), clock.clone())?);
    if args.once {
        let tick = daemon.tick(&AtomicBool::new(false))?;
        // Before anything is sent: a first pass that fired for much of the book is what
        // is already true, and a person should see it before the mail goes out.
        for f in tick.report.iter().flat_map(|r| r.floods()) {
            eprintln!(
                "note: {}'s first pass fired for {} of {} accounts: what is already true of the book, not news (`keel simulate --playbook {}` lists them); delivering now",
                f.playbook,
                n(f.fired),
                n(f.evaluated),
                f.playbook
            );
        }
        let delivery = runtime.block_on(deliverer.deliver_due(&CancellationToken::new()))?;
        daemon.store().flush()?;
        // What this run put in `dead`: what its pass decided dead (a template that failed
        // for an account) and what its delivery gave up on.
        let stats = tick.report.as_ref().map(|r| r.playbooks.values());
        let (decided_dead, failed_tasks) =
            stats.into_iter().flatten().fold((0, 0), |(d, t), s| (d + s.dead, t + s.failed_tasks));
        let dead = Dead {
            new: decided_dead + delivery.dead,
            total: crate::services::outbox::dead_count(daemon.store())?,
            failed_tasks,
        };
        if args.format.format == OutputFormat::Text {
            for line in &synced {
                println!("{line}");
            }
        }
        return report(&daemon, &deliverer, &tick, &delivery, dead, args.format.format);
    }

    let enabled = daemon.loaded().set.playbooks.iter().filter(|p| p.enabled).count();
    tracing::info!(
        playbooks = enabled,
        store = %daemon.store().path().display(),
        timezone = %daemon.config().timezone,
        mail = %deliverer.mail_destination(),
        "keel is running; Ctrl-C or SIGTERM stops it"
    );
    let daemon = runtime.block_on(async {
        // The API is up before the first pass: unsubscribe links and health checks work
        // from the start.
        let addr = args.listen.unwrap_or(daemon.config().api.listen);
        let listener = crate::api::bind(daemon.config(), addr).await.context("keel did not start")?;
        let state = crate::api::ApiState::new(
            daemon.config().clone(),
            daemon.store().clone(),
            clock.clone(),
            daemon.watch_loaded(),
            daemon.counters.clone(),
            deliverer.counters.clone(),
        )
        .follow_config(daemon.watch_config());
        let shutdown = CancellationToken::new();
        let limits = daemon.config().api.limits;
        // Where commands of this store find this daemon (removed when it stops).
        let bound = listener.local_addr().context("the API's address")?;
        let _announced =
            crate::api::announce::announce(daemon.config(), bound, &state.instance).with_context(|| {
                format!("keel did not start: cannot write {}", crate::api::announce::path(daemon.config()).display())
            })?;
        let router = crate::api::router(Arc::new(state));
        let api = tokio::spawn(crate::api::serve(listener, router, limits, shutdown.clone(), API_GRACE));
        let token = shutdown.clone();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("stopping: finishing the work in progress (a second signal exits at once)");
            token.cancel();
            signal().await;
            eprintln!("error: second signal: exiting at once; the store keeps what was committed");
            std::process::exit(130);
        });
        let daemon = daemon::run::serve(daemon, deliverer, shutdown.clone()).await;
        // The daemon stopped (a signal, or an error): the API stops with it.
        shutdown.cancel();
        if let Err(e) = api.await {
            tracing::error!(error = %e, "the API task failed");
        }
        daemon
    })?;
    tracing::info!(ledger = daemon.store().ledger_count(), "stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Dead outbox entries after a `run --once`.
#[derive(Debug, Clone, Copy)]
struct Dead {
    /// Put there by this run: planned dead (a template failed, no address) or refused
    /// for good, or out of retries, in its delivery round.
    new: u64,
    /// In the store, this run's and earlier ones'.
    total: u64,
    /// Tasks this run opened whose templates failed for their account.
    failed_tasks: u64,
}

/// A count as every other number Keel prints: `7,746`.
fn n(count: u64) -> String {
    crate::sync::group_thousands(count as f64)
}

fn report(
    daemon: &Daemon,
    deliverer: &Deliverer,
    tick: &Tick,
    delivery: &DeliveryReport,
    dead: Dead,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    let tz = daemon.config().timezone;
    let store = daemon.store();
    let pending = store.pending_count();
    let next = store.next_outbox_due()?;
    if format == OutputFormat::Json {
        let doc = serde_json::json!({
            "at": tick.at,
            "pass": tick.report,
            "notes": tick.notes,
            "held": tick.held,
            "guard_notes": tick.guard_notes,
            "delivery": delivery,
            "pending": pending,
            "next_delivery": next,
            "dead": { "new": dead.new, "total": dead.total },
            "failed_tasks": dead.failed_tasks,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        match &tick.report {
            None if !tick.held.is_empty() => {}
            None => writeln!(out, "Nothing is due at {}.", tick.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"))?,
            Some(report) => {
                writeln!(
                    out,
                    "Evaluated {} playbook(s) over {} accounts at {} in {:.2} s",
                    report.playbooks.len(),
                    n(report.accounts),
                    tick.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
                    report.elapsed.as_secs_f64()
                )?;
                let mut table = Table::new(&[
                    ("PLAYBOOK", Align::Left),
                    ("ACCOUNTS", Align::Right),
                    ("FIRED", Align::Right),
                    ("SKIPPED", Align::Right),
                    ("ERRORS", Align::Right),
                ]);
                for (id, s) in &report.playbooks {
                    let row = [s.evaluated, s.fired, s.skipped, s.errors].map(n);
                    table.row([vec![id.clone()], row.to_vec()].concat());
                }
                write!(out, "{}", table.render())?;
            }
        }
        for h in &tick.held {
            writeln!(
                out,
                "HELD {}: {}; nothing was decided for it (`keel approve {}` lets this pass through)",
                h.playbook,
                h.hold.describe(),
                h.playbook
            )?;
        }
        for note in tick.notes.iter().chain(&tick.guard_notes) {
            writeln!(out, "note: {note}")?;
        }
        if let Some(report) = &tick.report {
            writeln!(
                out,
                "{} firing(s) recorded in the ledger; `keel accounts show ID` lists an account's.",
                n(report.fired())
            )?;
        }
        let d = delivery;
        // `dead` counts what the pass wrote dead too (a template that failed for an
        // account), not only what the delivery round gave up on.
        writeln!(
            out,
            "Delivery ({}): {} delivered{}, {} deferred, {} suppressed, {} dropped, {} retrying, {} dead{}.",
            deliverer.mail_destination(),
            n(d.delivered),
            // Digests: say how many emails the delivered entries made.
            if d.messages != d.delivered { format!(" in {} message(s)", n(d.messages)) } else { String::new() },
            n(d.deferred),
            n(d.suppressed),
            n(d.dropped),
            n(d.retrying),
            n(dead.new),
            if d.escalated > 0 { format!("; {} overdue task(s) escalated", n(d.escalated)) } else { String::new() }
        )?;
        if let Some(next) = next.filter(|_| pending > 0) {
            writeln!(
                out,
                "{} outbox entr{} pending, the next due {} (`keel outbox list` shows them; `keel run` delivers them when due).",
                n(pending as u64),
                if pending == 1 { "y" } else { "ies" },
                next.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
            )?;
        }
        let earlier = dead.total - dead.new;
        if dead.new == 0 && earlier > 0 {
            writeln!(
                out,
                "{} dead outbox entr{} from earlier runs: `keel outbox list --dead` shows why; `keel outbox retry` puts {} back.",
                n(earlier),
                if earlier == 1 { "y" } else { "ies" },
                if earlier == 1 { "it" } else { "them" },
            )?;
        }
        let open = crate::services::tasks::open_count(store)?;
        if open > 0 {
            writeln!(out, "{} open task(s): `keel tasks list`.", n(open))?;
        }
    }
    let mut err = io::stderr().lock();
    if dead.new > 0 {
        writeln!(
            err,
            "error: {} dead: `keel outbox list --dead` shows why; `keel outbox retry` puts them back ({} dead in all)",
            n(dead.new),
            n(dead.total)
        )?;
    }
    if dead.failed_tasks > 0 {
        writeln!(
            err,
            "error: {} task(s) opened with a template that failed for their account: `keel tasks list --format json` shows why, in each one's description",
            n(dead.failed_tasks)
        )?;
    }
    let Some(report) = tick.report.as_ref().filter(|r| r.errors() > 0) else {
        let lost = dead.new > 0 || dead.failed_tasks > 0;
        return Ok(if lost { ExitCode::from(super::EXIT_DEAD) } else { ExitCode::SUCCESS });
    };
    for f in &report.failures {
        writeln!(err, "  {} for account {}: {}", f.playbook, f.account, f.error)?;
    }
    writeln!(err, "error: {} evaluation(s) failed; everything else was evaluated", report.errors())?;
    Ok(ExitCode::FAILURE)
}
