//! The HTTP API `keel run` serves on `api.listen`: unsubscribe links, health and metrics,
//! Segment-compatible ingest, and the JSON API the CLI and other tools use.
//!
//! Invariants:
//! - Handlers only parse, call a library service (the one the CLI calls) and print: no
//!   decision or store rule lives here.
//! - Every route but `/healthz`, `/readyz` and `/unsubscribe` needs a credential: a bearer
//!   token with the route's scope ([`auth`]), or a Segment write key on `/v1/*`.
//! - A listener reachable from other machines is refused at start unless a token is set.
//! - Shutdown stops accepting, lets requests in flight finish (bounded), then returns.

pub mod auth;
pub mod error;
pub mod segment;
pub mod v1;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::daemon::Counters;
use crate::lang::Loaded;
use crate::store::Store;

pub use auth::Credentials;
pub use error::ApiError;

/// What every handler may use. Cheap to clone (behind an `Arc`).
pub struct ApiState {
    /// The config `keel run` started with (API settings take effect at a restart).
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// The playbooks, rules and health model in force: follows the daemon's reloads.
    pub loaded: watch::Receiver<Arc<Loaded>>,
    /// The daemon's counters, for `/metrics` and `/readyz`.
    pub counters: Arc<Counters>,
    pub credentials: Credentials,
}

pub type Shared = Arc<ApiState>;

impl ApiState {
    pub fn new(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
        loaded: watch::Receiver<Arc<Loaded>>,
        counters: Arc<Counters>,
    ) -> ApiState {
        let credentials = Credentials::new(&config.api);
        ApiState { config, store, clock, loaded, counters, credentials }
    }

    /// The playbooks, rules and health model in force now.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.borrow().clone()
    }
}

/// Every route of the API.
pub fn router(state: Shared) -> Router {
    Router::new().route("/healthz", get(healthz)).merge(segment::routes()).merge(v1::routes(&state)).with_state(state)
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Why the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the API would listen on {0}, reachable from other machines, but no API token is set: set api.token or api.tokens \
         (from environment variables), or listen on 127.0.0.1"
    )]
    OpenWithoutToken(SocketAddr),
    #[error("cannot listen on {addr} (api.listen, or keel run --listen): {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Checks the API settings and binds `addr` (`api.listen`, or `keel run --listen`). Logs
/// every token that can never authenticate (its variable unset or empty).
pub async fn bind(config: &Config, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let api = &config.api;
    for t in api.tokens.iter().filter(|t| t.secret.is_none()) {
        tracing::warn!(token = %t.name, "an API token's environment variable is unset or empty: it never authenticates");
    }
    if api.empty_write_keys > 0 {
        tracing::warn!(
            count = api.empty_write_keys,
            "Segment write keys whose environment variable is unset or empty: they never authenticate"
        );
    }
    if !addr.ip().is_loopback() && api.usable_tokens().next().is_none() {
        return Err(StartError::OpenWithoutToken(addr));
    }
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}

/// Serves `router` on `listener` until `shutdown`; then lets requests in flight finish,
/// for at most `grace`.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken, grace: Duration) {
    let addr = listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string());
    tracing::info!(%addr, "the API is listening");
    let stop = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => {
            if let Err(e) = result {
                tracing::error!(error = %e, "the API stopped");
            }
            return;
        }
        () = shutdown.cancelled() => {}
    }
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!("API requests still in flight after {grace:?}: closed");
    }
}
