//! The daemon's async loop: sleep until the next tick, evaluate off the runtime, reload
//! changed files, stop cleanly when the cancellation token fires.
//!
//! Passes and reloads run on blocking threads (`spawn_blocking`): Rhai evaluation and
//! compiling are CPU-bound, and the runtime must keep serving (the outbox workers and the
//! HTTP API join it). Shutdown during a pass sets the pass's cancel flag: it stops after
//! the chunk in progress, whose decisions land in one transaction, so nothing is
//! half-recorded. The outbox workers ([`Deliverer::serve`]) run beside the loop; a pass
//! wakes them when it queued work. On shutdown they take no new entries and finish the
//! ones being sent (bounded by `delivery.shutdown_grace`); the store is flushed before
//! `serve` returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Daemon, Reload};
use crate::deliver::Deliverer;
use crate::lang::render_diagnostics;

use crate::clock::POLL;

/// Runs the daemon and its outbox workers until `shutdown` is cancelled; returns it with
/// the store flushed.
pub async fn serve(
    mut daemon: Daemon,
    deliverer: Arc<Deliverer>,
    shutdown: CancellationToken,
) -> anyhow::Result<Daemon> {
    let cancel = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    let mut delivery = tokio::spawn(deliverer.clone().serve(shutdown.clone(), wake.clone()));
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
            wake.notify_one();
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
        let (back, outcome, synced) = tokio::task::spawn_blocking(move || {
            let outcome = daemon.reload_if_changed();
            let synced = daemon.sync_sources();
            (daemon, outcome, synced)
        })
        .await?;
        daemon = back;
        for result in synced {
            match result {
                Ok(r) => r.log("source file changed: imported"),
                Err(e) => tracing::warn!(error = %e, "a changed source file could not be imported"),
            }
        }
        match outcome {
            Reload::Unchanged => {}
            Reload::Applied => {
                deliverer.set_loaded(daemon.loaded_arc());
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
    let grace = daemon.config().delivery.shutdown_grace;
    if tokio::time::timeout(grace, &mut delivery).await.is_err() {
        tracing::warn!("deliveries still in flight after {grace:?}; they are retried at the next start");
        delivery.abort();
    }
    daemon.store().flush()?;
    Ok(daemon)
}
