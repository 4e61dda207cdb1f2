//! `keel run`: the daemon, or with `--once` a single evaluation pass for what is due.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::table::{Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::daemon::{self, Clock, Daemon, OffsetClock, SystemClock, Tick};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Evaluate what is due now once, then exit (for demos, or to run Keel from system cron).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, args: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_playbooks(session, "keel did not start")?;
    let store = session.open_store()?;
    let clock: Arc<dyn Clock> =
        if session.pinned { Arc::new(OffsetClock::new(session.now)) } else { Arc::new(SystemClock) };
    let daemon = Daemon::new(session.config.clone(), store, loaded, clock);
    if args.once {
        let tick = daemon.tick(&AtomicBool::new(false))?;
        return report(&daemon, &tick, args.format.format);
    }

    let enabled = daemon.loaded().set.playbooks.iter().filter(|p| p.enabled).count();
    tracing::info!(
        playbooks = enabled,
        store = %daemon.store().path().display(),
        timezone = %daemon.config().timezone,
        "keel is running; Ctrl-C or SIGTERM stops it"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
        daemon::run::serve(daemon, shutdown).await
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

fn report(daemon: &Daemon, tick: &Tick, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    let tz = daemon.config().timezone;
    if format == OutputFormat::Json {
        let doc = serde_json::json!({ "at": tick.at, "pass": tick.report, "notes": tick.notes });
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
                "{} firing(s) recorded in the ledger; `keel accounts show ID` lists an account's. \
                 They are recorded as decided: sending emails and webhooks and creating tasks is not built yet.",
                report.fired()
            )?;
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
