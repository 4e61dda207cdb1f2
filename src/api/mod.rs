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

pub mod announce;
pub mod auth;
pub mod client;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod plan;
pub mod segment;
pub mod unsubscribe;
pub mod v1;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::clock::Clock;
use crate::config::{ApiLimits, Config};
use crate::daemon::Counters;
use crate::deliver::DeliveryCounters;
use crate::lang::Loaded;
use crate::store::Store;

pub use auth::Credentials;
pub use error::ApiError;

/// What every handler may use. Cheap to clone (behind an `Arc`).
pub struct ApiState {
    /// The config `keel run` started with: only its `api.*` settings (listen address,
    /// tokens, limits) are read from it, as they take effect at a restart.
    pub start_config: Config,
    /// The config in force, following the daemon's reloads (mappings, schedules, the
    /// unsubscribe secret, the time zone): [`ApiState::config`].
    pub config_rx: watch::Receiver<Arc<Config>>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// The playbooks, rules and health model in force: follows the daemon's reloads.
    pub loaded: watch::Receiver<Arc<Loaded>>,
    /// The daemon's counters, for `/metrics` and `/readyz`.
    pub counters: Arc<Counters>,
    /// The deliverer's counters, for `/metrics`.
    pub delivery: Arc<DeliveryCounters>,
    pub credentials: Credentials,
    /// This daemon's run, in the announcement file.
    pub instance: String,
    /// The store it serves, on every answer ([`announce::STORE_HEADER`]).
    pub store_id: String,
    /// Requests answered, by route and status ([`metrics::track`]).
    pub http: metrics::HttpCounters,
    /// The store-derived gauges of `/metrics`, reused for a few seconds.
    pub waiting: metrics::WaitingCache,
}

pub type Shared = Arc<ApiState>;

impl ApiState {
    pub fn new(
        config: Config,
        store: Store,
        clock: Arc<dyn Clock>,
        loaded: watch::Receiver<Arc<Loaded>>,
        counters: Arc<Counters>,
        delivery: Arc<DeliveryCounters>,
    ) -> ApiState {
        let credentials = Credentials::new(&config.api);
        let store_id = announce::store_id(&config);
        let (_, config_rx) = watch::channel(Arc::new(config.clone()));
        ApiState {
            start_config: config,
            config_rx,
            store,
            clock,
            loaded,
            counters,
            delivery,
            credentials,
            instance: announce::instance_id(),
            store_id,
            http: metrics::HttpCounters::default(),
            waiting: metrics::WaitingCache::default(),
        }
    }

    /// Follows the daemon's reloads of the config (else: the one it started with).
    pub fn follow_config(mut self, config: watch::Receiver<Arc<Config>>) -> ApiState {
        self.config_rx = config;
        self
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config_rx.borrow().clone()
    }

    /// The playbooks, rules and health model in force now.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.borrow().clone()
    }
}

/// Every route of the API, each request counted by its route template
/// ([`metrics::track`]; the layer covers the fallback too: `route="unmatched"`).
pub fn router(state: Shared) -> Router {
    let served = HeaderValue::from_str(&state.store_id).expect("a hex digest is a header value");
    Router::new()
        .route("/healthz", get(healthz))
        .merge(metrics::routes(&state))
        .merge(segment::routes())
        .merge(unsubscribe::routes())
        .merge(v1::routes(&state))
        .merge(ingest::routes(&state))
        .merge(plan::routes(&state))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
        .layer(axum::middleware::map_response(move |mut r: axum::response::Response| {
            let served = served.clone();
            async move {
                r.headers_mut().insert(announce::STORE_HEADER, served);
                r
            }
        }))
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

/// Serves `router` on `listener` until `shutdown`; then stops accepting and lets requests
/// in flight finish, for at most `grace`.
///
/// Connections are served here rather than by `axum::serve` for the limits a daemon
/// facing the network needs and axum does not set: a client must send its headers within
/// `limits.header_timeout` (a slow-loris client is cut off), and at most
/// `limits.max_connections` are served at once (more wait in the kernel's backlog).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ApiLimits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let addr = listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string());
    tracing::info!(%addr, "the API is listening");
    // Extractors read at most the same (axum's own default is 2 MB); routes with their
    // own, smaller limits (Segment's) set them closer in, which wins.
    let router = router.layer(DefaultBodyLimit::max(limits.max_body)).layer(limit_layers(limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: not fatal; wait a moment rather than spin.
                    tracing::warn!(error = %e, "the API could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finish the request in progress, take no new one on this connection.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // A client gone, too slow with its headers, or speaking something else.
                tracing::debug!(%peer, error = %e, "an API connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("API requests still in flight after {grace:?}: closed");
    }
}

/// The limits every route gets: the body read (a `Content-Length` over the limit is 413
/// before a byte is read; a longer chunked body is cut at the limit) and the whole
/// request's time (408).
fn limit_layers(
    limits: ApiLimits,
) -> tower::layer::util::Stack<
    TimeoutLayer,
    tower::layer::util::Stack<RequestBodyLimitLayer, tower::layer::util::Identity>,
> {
    tower::ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(limits.max_body))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .into_inner()
}
