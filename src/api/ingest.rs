//! Ingest over the JSON API: `POST /api/v1/accounts`, `/api/v1/contacts` and
//! `/api/v1/events` take a JSON array of records and import them as `keel sync` imports a
//! `.json` file ([`crate::services::ingest`]); `POST /api/v1/sync` has the daemon run
//! `keel sync` on files of its own machine ([`crate::services::sync`]), which is how
//! `keel sync` works while `keel run` holds the store.
//!
//! Invariants:
//! - Scopes: pushing records needs `ingest`; `/api/v1/sync` needs `admin`, because it makes
//!   the daemon read any file its user can read, by a path the caller chooses.
//! - Memory is bounded: a body is read up to `api.limits.max_body` (1 MB by default); a
//!   gzip body (`Content-Encoding: gzip`) is inflated up to the same bound, past which
//!   the request is a 413 (a gzip bomb inflates no further).
//! - 200 answers the report, rejected records included (a bad record never loses the
//!   good ones); a body that is not JSON (line and column said) or not an array is a 400
//!   and stores nothing. What a 200 answers is on disk: the sync flushes the store.
//! - Store work runs on the blocking pool (the store blocks).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::post;
use axum::Router;
use tower_http::decompression::RequestDecompressionLayer;

use super::auth::scoped;
use super::v1::{blocking, json_body, Answer, Params};
use super::{ApiError, Shared};
use crate::config::Scope;
use crate::services::ingest::{self, IngestReport};
use crate::services::sync::{self, RecordKind, SyncOutcome, SyncRequest};

/// The ingest routes behind `ingest`, the sync route behind `admin`; [`super::router`]
/// merges them beside the read routes (`GET /api/v1/accounts` is `read`'s).
pub fn routes(state: &Shared) -> Router<Shared> {
    let push = Router::new()
        .route("/api/v1/accounts", post(|s: State<Shared>, u: Uri, b| push(s, u, b, RecordKind::Accounts)))
        .route("/api/v1/contacts", post(|s: State<Shared>, u: Uri, b| push(s, u, b, RecordKind::Contacts)))
        .route("/api/v1/events", post(|s: State<Shared>, u: Uri, b| push(s, u, b, RecordKind::Events)))
        // Inflates lazily as the body is read, so the body limit bounds the inflated
        // bytes; an encoding other than gzip (or none) is a 415.
        .route_layer(RequestDecompressionLayer::new().gzip(true).no_br().no_deflate().no_zstd());
    let admin = Router::new().route("/api/v1/sync", post(run_sync));
    scoped(push, state, Scope::Ingest).merge(scoped(admin, state, Scope::Admin))
}

/// The body, or the reason it could not be read: over the limit (inflated or not) is a
/// 413, a broken gzip stream a 400.
pub(super) fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        // A body without a length cut at the limit under the gzip decoder comes back as
        // a read error wrapping the limit's: that is still "too large".
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut too_large = false;
        while let Some(c) = cause {
            // The gzip decoder hands the limit's error on as text inside its own error
            // (the type is lost on the way), hence its words are matched too.
            too_large |= c.is::<http_body_util::LengthLimitError>() || c.to_string().contains("length limit exceeded");
            cause = c.source();
        }
        let status = if too_large { axum::http::StatusCode::PAYLOAD_TOO_LARGE } else { e.status() };
        ApiError::new(status, format!("the body could not be read: {}", e.body_text()))
    })
}

async fn push(
    State(state): State<Shared>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
    kind: RecordKind,
) -> Answer<IngestReport> {
    Params::parse(&uri, &[])?;
    let body = body_of(body)?;
    let report =
        blocking(&state, move |s| ingest::ingest(&s.store, &s.config(), kind, body.to_vec(), s.clock.now())).await?;
    state.counters.api_rows.add(kind.name(), report.inserted + report.updated + report.unchanged, report.rejected);
    Ok(report)
}

async fn run_sync(State(state): State<Shared>, uri: Uri, body: Result<Bytes, BytesRejection>) -> Answer<SyncOutcome> {
    Params::parse(&uri, &[])?;
    let request: SyncRequest = json_body(&body_of(body)?)?;
    if let Some(file) = &request.file {
        // Relative to what? The daemon's working directory is no business of the caller's.
        if !file.is_absolute() {
            return Err(ApiError::field("file", format!("{} is not an absolute path", file.display())));
        }
    }
    let outcome =
        blocking(&state, move |s| sync::sync(&s.store, &s.config(), &request, s.clock.now(), &sync::no_progress))
            .await?;
    for r in &outcome.reports {
        state.counters.file_rows.add(&r.kind, r.stored(), r.rejected);
    }
    Ok(outcome)
}
