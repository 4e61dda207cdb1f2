//! Segment-compatible ingest: `POST /v1/batch`, `/v1/identify`, `/v1/group` and
//! `/v1/track` as Segment's HTTP Tracking API defines them, so product analytics sends to
//! Keel with the SDKs a team already uses. The mapping and the store writes are
//! [`crate::sync::segment`]'s; this module is the HTTP around it.
//!
//! Invariants:
//! - Auth is a write key of `api.write_keys`: HTTP Basic with the key as the username, or,
//!   without an `Authorization` header, the body's `writeKey` (what older SDKs send).
//! - Memory is bounded whatever arrives: the body is read up to 500 KB, and a gzip body is
//!   inflated up to 500 KB, past which the request is refused with 413 (a gzip bomb
//!   inflates no further than that).
//! - 200 `{"success": true, …}` when every message was accepted; 400 with `code` and
//!   `message` (what Segment's SDKs print) and every refused message by index when any
//!   was refused, the others of the batch stored all the same.
//! - What a 200 answers is durable: the store is flushed (shared between concurrent
//!   requests) before the answer.

use std::io::Read;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use super::Shared;
use crate::sync::segment::{ingest, Call, IngestError, IngestReport, Request, MAX_BATCH_BYTES};

/// The Segment routes; [`super::router`] merges them.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/batch", post(|s: State<Shared>, h: HeaderMap, b: Body| handle(s, h, b, None)))
        .route("/v1/identify", post(|s: State<Shared>, h: HeaderMap, b: Body| handle(s, h, b, Some(Call::Identify))))
        .route("/v1/group", post(|s: State<Shared>, h: HeaderMap, b: Body| handle(s, h, b, Some(Call::Group))))
        .route("/v1/track", post(|s: State<Shared>, h: HeaderMap, b: Body| handle(s, h, b, Some(Call::Track))))
        // The body is bounded here, before and after gzip, with Segment's answers.
        .layer(DefaultBodyLimit::disable())
}

/// A refusal of the whole request, shaped as Segment answers (`code`, `message`) with
/// Keel's `error` beside it.
#[derive(Serialize)]
struct Failure {
    success: bool,
    code: &'static str,
    message: String,
    error: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    report: Option<IngestReport>,
}

fn fail(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let message = message.into();
    let mut response =
        (status, Json(Failure { success: false, code, error: message.clone(), message, report: None })).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"keel\""));
    }
    response
}

#[derive(Serialize)]
struct Success {
    success: bool,
    #[serde(flatten)]
    report: IngestReport,
}

#[allow(clippy::result_large_err)] // a Response is the error: built once, returned at once
async fn handle(State(state): State<Shared>, headers: HeaderMap, body: Body, call: Option<Call>) -> Response {
    // A Basic header is checked before the body is read; without one, the body's writeKey.
    let header_auth = headers.contains_key(header::AUTHORIZATION);
    if header_auth {
        if let Err(e) = state.credentials.require_write_key(&headers) {
            return fail(StatusCode::UNAUTHORIZED, "unauthorized", e.error);
        }
    }
    let bytes = match read_body(&headers, body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let shared = state.clone();
    let ingested = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the body is not UTF-8 text (byte {})", e.valid_up_to()),
            )
        })?;
        let request = match call {
            None => Request::batch(text),
            Some(call) => Request::single(text, call),
        }
        .map_err(|e| fail(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
        if !header_auth {
            let known = request.write_key.as_deref().is_some_and(|k| shared.credentials.is_write_key(k));
            if !known {
                let why = match request.write_key {
                    None => "a Segment write key is needed: HTTP Basic with the key as the username",
                    Some(_) => "the write key is not one `api.write_keys` configures",
                };
                return Err(fail(StatusCode::UNAUTHORIZED, "unauthorized", why));
            }
        }
        let store = &shared.store;
        let report =
            ingest(store, &shared.config().sync.segment, request, shared.clock.now()).map_err(|e| match e {
                IngestError::Body(e) => fail(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
                IngestError::Store(e) => {
                    tracing::error!(error = %e, "Segment ingest could not write the store");
                    fail(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error: the daemon's log has the details",
                    )
                }
            })?;
        Ok(report)
    })
    .await;
    let report = match ingested {
        Ok(Ok(report)) => report,
        Ok(Err(response)) => return response,
        Err(e) => {
            tracing::error!(error = %e, "the Segment ingest task failed");
            return fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error: the daemon's log has the details",
            );
        }
    };
    if let Err(e) = state.store.durable().await {
        tracing::error!(error = %e, "Segment ingest could not flush the store");
        return fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error: the daemon's log has the details");
    }
    log(&report);
    count(&state, &report);
    if report.refused.is_empty() {
        return (StatusCode::OK, Json(Success { success: true, report })).into_response();
    }
    let message = report.summary();
    let failure =
        Failure { success: false, code: "invalid_request", error: message.clone(), message, report: Some(report) };
    (StatusCode::BAD_REQUEST, Json(failure)).into_response()
}

/// Reads the body up to [`MAX_BATCH_BYTES`], inflating gzip up to as much again.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Response> {
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return Err(fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding {other:?} is not accepted: send gzip or no encoding"),
            ))
        }
    };
    let too_large = || {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a request is limited to {MAX_BATCH_BYTES} bytes (500 KB) of JSON"),
        )
    };
    let raw = match Limited::new(body, MAX_BATCH_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            return Err(fail(StatusCode::BAD_REQUEST, "invalid_request", format!("the body could not be read: {e}")))
        }
    };
    if !gzip {
        return Ok(raw.to_vec());
    }
    let mut inflated = Vec::with_capacity(raw.len() * 4);
    flate2::read::GzDecoder::new(&raw[..]).take(MAX_BATCH_BYTES as u64 + 1).read_to_end(&mut inflated).map_err(
        |e| fail(StatusCode::BAD_REQUEST, "invalid_request", format!("the gzip body could not be inflated: {e}")),
    )?;
    if inflated.len() > MAX_BATCH_BYTES {
        return Err(too_large());
    }
    Ok(inflated)
}

/// Adds what was stored to `/metrics`' rows synced by kind (source `segment`).
fn count(state: &Shared, report: &IngestReport) {
    let rows = &state.counters.segment_rows;
    for (kind, c) in [("accounts", &report.accounts), ("contacts", &report.contacts), ("events", &report.events)] {
        rows.add(kind, c.inserted + c.updated + c.unchanged, 0);
    }
    state.counters.segment_refused.fetch_add(report.refused.len() as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Bad or unattached messages are the sender's to fix: said at warn, with the first one.
fn log(report: &IngestReport) {
    let (refused, skipped, unknown) = (report.refused.len(), report.skipped.len(), report.unknown_accounts.len());
    if refused + skipped + unknown + report.warnings.len() == 0 {
        tracing::debug!(messages = report.received, "Segment batch ingested");
        return;
    }
    let first = report
        .refused
        .first()
        .or(report.skipped.first())
        .or(report.warnings.first())
        .map(|r| format!("message {}: {}", r.index, r.reason))
        .or_else(|| {
            report
                .unknown_accounts
                .first()
                .map(|u| format!("message {}: account {:?} is not in the store", u.index, u.account))
        })
        .unwrap_or_default();
    tracing::warn!(
        messages = report.received,
        refused,
        skipped,
        unknown_account = unknown,
        values_left_out = report.warnings.len(),
        %first,
        "Segment messages need attention (the HTTP answer lists each)"
    );
}
