//! `keel run`: the daemon, or with `--once` one evaluation pass for what is due and one
//! delivery round for what it (or an earlier run) queued.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::table::{Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::daemon::{self, Clock, Daemon, OffsetClock, SystemClock, Tick};
use crate::deliver::{Deliverer, DeliveryReport};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Evaluate what is due now once, then exit (for demos, or to run Keel from system cron).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, args: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_for_delivery(session, "keel did not start")?;
    let store = session.open_store()?;
    let clock: Arc<dyn Clock> =
        if session.pinned { Arc::new(OffsetClock::new(session.now)) } else { Arc::new(SystemClock) };
    let mut daemon = Daemon::new(session.config.clone(), store.clone(), loaded, clock.clone());
    // The files the config names are imported first (and, by the daemon, again when
    // they change), so the pass sees the book as the CRM export has it now.
    let mut synced = Vec::new();
    for result in daemon.sync_sources() {
        match result {
            Ok(report) => {
                tracing::info!(file = %report.file.display(), inserted = report.inserted, updated = report.updated, rejected = report.rejected, "synced file");
                synced.push(report.to_string());
            }
            Err(e) => {
                tracing::warn!(error = %e, "a configured source file could not be imported; evaluating the store as it is");
                synced.push(format!("warning: {e}"));
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // lettre's SMTP pool starts its housekeeping task when built: inside the runtime.
    let _entered = runtime.enter();
    let deliverer = Arc::new(Deliverer::new(&session.config, store, daemon.loaded_arc(), clock)?);
    if args.once {
        let tick = daemon.tick(&AtomicBool::new(false))?;
        let delivery = runtime.block_on(deliverer.deliver_due(&CancellationToken::new()))?;
        daemon.store().flush()?;
        if args.format.format == OutputFormat::Text {
            for line in &synced {
                println!("{line}");
            }
        }
        return report(&daemon, &deliverer, &tick, &delivery, args.format.format);
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
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("stopping: finishing the work in progress (a second signal exits at once)");
            token.cancel();
            signal().await;
            eprintln!("error: second signal: exiting at once; the store keeps what was committed");
            std::process::exit(130);
        });
        daemon::run::serve(daemon, deliverer, shutdown).await
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

fn report(
    daemon: &Daemon,
    deliverer: &Deliverer,
    tick: &Tick,
    delivery: &DeliveryReport,
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
            "delivery": delivery,
            "pending": pending,
            "next_delivery": next,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        match &tick.report {
            None => writeln!(out, "Nothing is due at {}.", tick.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"))?,
            Some(report) => {
                writeln!(
                    out,
                    "Evaluated {} playbook(s) over {} accounts at {} in {:.2} s",
                    report.playbooks.len(),
                    report.accounts,
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
                    let row = [s.evaluated, s.fired, s.skipped, s.errors].map(|n| n.to_string());
                    table.row([vec![id.clone()], row.to_vec()].concat());
                }
                write!(out, "{}", table.render())?;
            }
        }
        for note in &tick.notes {
            writeln!(out, "note: {note}")?;
        }
        if let Some(report) = &tick.report {
            writeln!(
                out,
                "{} firing(s) recorded in the ledger; `keel accounts show ID` lists an account's.",
                report.fired()
            )?;
        }
        let d = delivery;
        writeln!(
            out,
            "Delivery ({}): {} delivered, {} deferred, {} suppressed, {} dropped, {} retrying, {} dead{}.",
            deliverer.mail_destination(),
            d.delivered,
            d.deferred,
            d.suppressed,
            d.dropped,
            d.retrying,
            d.dead,
            if d.escalated > 0 { format!("; {} overdue task(s) escalated", d.escalated) } else { String::new() }
        )?;
        if let Some(next) = next.filter(|_| pending > 0) {
            writeln!(
                out,
                "{pending} outbox entr{} pending, the next due {} (`keel outbox list` shows them; `keel run` delivers them when due).",
                if pending == 1 { "y" } else { "ies" },
                next.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
            )?;
        }
        if d.dead > 0 {
            writeln!(
                out,
                "`keel outbox list --dead` shows what could not be delivered; `keel outbox retry` puts it back."
            )?;
        }
        let open = store.tasks().filter(|t| t.as_ref().is_ok_and(|t| t.is_open())).count();
        if open > 0 {
            writeln!(out, "{open} open task(s): `keel tasks list`.")?;
        }
    }
    let Some(report) = tick.report.as_ref().filter(|r| r.errors() > 0) else { return Ok(ExitCode::SUCCESS) };
    let mut err = io::stderr().lock();
    for f in &report.failures {
        writeln!(err, "  {} for account {}: {}", f.playbook, f.account, f.error)?;
    }
    writeln!(err, "error: {} evaluation(s) failed; everything else was evaluated", report.errors())?;
    Ok(ExitCode::FAILURE)
}
