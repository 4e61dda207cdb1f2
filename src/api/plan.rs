//! `POST /api/v1/plan`: `keel plan` while `keel run` holds the store. The body is the
//! working set's texts (with the moment and the sample size, [`plan::Request`]); the
//! daemon plans them against the running set it recorded, on its store and clock, and
//! answers the [`plan::Report`] the command prints.
//!
//! Why the client sends the files rather than the daemon reading its own folder: the
//! daemon reloads its own playbooks folder within a second of a save, so planning that
//! folder would show nothing but a reload it rejected. A plan is about a set that is not
//! live yet — a checkout, a branch, a folder of a config that shares the daemon's
//! `data_dir` — and that set is wherever the command runs. It also keeps the daemon from
//! reading a path a caller chooses (unlike `POST /api/v1/sync`).
//!
//! Invariants:
//! - Scope `admin`: the body is code the daemon compiles and runs (sandboxed, as every
//!   rule is), over every account, twice — authoring power, and a pass's worth of CPU.
//! - Nothing is written (two dry runs); the body is bounded by `api.limits.max_body`
//!   after gzip (`Content-Encoding: gzip`, which the CLI sends) is inflated, and the
//!   request by `api.limits.request_timeout`.
//! - Keys of the files are checked before anything is written to the daemon's temporary
//!   folder (`lang::sources::check_key`): a key never names a path outside it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::post;
use axum::Router;
use tower_http::decompression::RequestDecompressionLayer;

use super::auth::scoped;
use super::ingest::body_of;
use super::v1::{blocking, json_body, Answer, Params};
use super::Shared;
use crate::config::Scope;
use crate::services::plan::{self, Report, Request};

pub fn routes(state: &Shared) -> Router<Shared> {
    let admin = Router::new()
        .route("/api/v1/plan", post(run_plan))
        .route_layer(RequestDecompressionLayer::new().gzip(true).no_br().no_deflate().no_zstd());
    scoped(admin, state, Scope::Admin)
}

async fn run_plan(State(state): State<Shared>, uri: Uri, body: Result<Bytes, BytesRejection>) -> Answer<Report> {
    Params::parse(&uri, &[])?;
    let request: Request = json_body(&body_of(body)?)?;
    blocking(&state, move |s| plan::plan(&s.store, &s.config(), &request, s.clock.now())).await
}
