//! The daemon's async loop: sleep until the next tick, evaluate off the runtime, reload
//! changed files, stop cleanly when the cancellation token fires.
//!
//! Passes and reloads run on blocking threads (`spawn_blocking`): Rhai evaluation and
//! compiling are CPU-bound, and the runtime must keep serving (the outbox workers and the
//! HTTP API join it). Shutdown during a pass sets the pass's cancel flag: it stops after
//! the chunk in progress, whose decisions land in one transaction, so nothing is
//! half-recorded; the store is flushed before `serve` returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Daemon, Reload};
use crate::evaluate::render_diagnostics;

/// How often files are checked for changes, and the longest the loop sleeps.
pub const POLL: Duration = Duration::from_secs(1);

/// Runs the daemon until `shutdown` is cancelled; returns it with the store flushed.
pub async fn serve(mut daemon: Daemon, shutdown: CancellationToken) -> anyhow::Result<Daemon> {
    let cancel = Arc::new(AtomicBool::new(false));
    loop {
        let now = daemon.now();
        let next = daemon.next_wakeup(now)?;
        if next.is_some_and(|t| t <= now) {
            let flag = cancel.clone();
            let mut pass = tokio::task::spawn_blocking(move || {
                let result = daemon.tick(&flag);
                (daemon, result)
            });
            let (back, result) = tokio::select! {
                done = &mut pass => done?,
                () = shutdown.cancelled() => {
                    tracing::info!("shutting down: finishing the chunk of accounts in progress");
                    cancel.store(true, Ordering::Relaxed);
                    pass.await?
                }
            };
            daemon = back;
            result?;
            if shutdown.is_cancelled() {
                break;
            }
            continue;
        }
        let wait = next.map_or(POLL, |t| (t - now).to_std().unwrap_or_default().min(POLL));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let (back, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = daemon.reload_if_changed();
            (daemon, outcome)
        })
        .await?;
        daemon = back;
        match outcome {
            Reload::Unchanged => {}
            Reload::Applied => {
                let set = &daemon.loaded().set;
                let enabled = set.playbooks.iter().filter(|p| p.enabled).count();
                tracing::info!(playbooks = set.playbooks.len(), enabled, "reloaded the config, rules and playbooks");
            }
            Reload::Rejected(errors) => {
                tracing::error!(
                    "a change fails `keel check`; the running playbooks stay in force until it is fixed:\n{}",
                    render_diagnostics(&errors)
                );
            }
        }
    }
    daemon.store().flush()?;
    Ok(daemon)
}
