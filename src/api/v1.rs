//! The JSON API's read and action endpoints under `/api/v1/`: accounts (and why a playbook
//! did or did not fire for one), tasks, the outbox and unsubscribing a contact — what `keel accounts|tasks|outbox|contacts` do, over HTTP.
//!
//! Invariants:
//! - Each handler parses, calls the service the CLI calls (in `spawn_blocking`: store
//!   work blocks) and answers the service's result type serialised as it is, so a client can
//!   read the body back into the same Rust type ([`crate::services`]' types derive
//!   `Deserialize`).
//! - Input is strict: an unknown query parameter or body field, a value given twice, a
//!   bad number, date or choice is a 400 naming the field (and the choices); nothing
//!   unknown is silently ignored.
//! - "Now" is the injected clock's ([`super::ApiState::clock`]), "today" the config's zone
//!   (an account's own zone where the service says so), as for the CLI.
//! - Scopes: reads need `read`; closing, snoozing and cancelling tasks and unsubscribing
//!   need `tasks`; retrying the outbox and approving a held playbook need `admin` (which
//!   holds every scope).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::auth::scoped;
use super::{ApiError, ApiState, Shared};
use crate::config::Scope;
use crate::model::Band;
use crate::model::{GuardRecord, OutboxEntry, Task};
use crate::services::accounts::{self, AccountDetail, AccountList, Cursor, ShowQuery, SortKey};
use crate::services::contacts::{self, UnsubscribeBy, Unsubscribed};
use crate::services::explain::{self, At, Explanation};
use crate::services::guard::{self, GuardList};
use crate::services::outbox::{self, RetryTarget, Which};
use crate::services::tasks::{self, SnoozeArgs, StatusFilter, TaskList};
use crate::services::ServiceError;

/// A page of the accounts list holds this many unless `limit` says otherwise…
pub const DEFAULT_PAGE: usize = 100;
/// …and never more than this (larger lists are paged with `cursor`).
pub const MAX_PAGE: usize = 1000;

/// The `/api/v1/` read and action routes, each behind its scope; [`super::router`] merges them.
pub fn routes(state: &Shared) -> Router<Shared> {
    let read = Router::new()
        .route("/api/v1/accounts", get(list_accounts))
        .route("/api/v1/accounts/{id}", get(show_account))
        .route("/api/v1/accounts/{id}/explain/{playbook}", get(explain_playbook))
        .route("/api/v1/tasks", get(list_tasks))
        .route("/api/v1/outbox", get(list_outbox))
        .route("/api/v1/guard", get(list_guard));
    let act = Router::new()
        .route("/api/v1/tasks/{id}/done", post(done))
        .route("/api/v1/tasks/{id}/cancel", post(cancel))
        .route("/api/v1/tasks/{id}/snooze", post(snooze))
        .route("/api/v1/contacts/unsubscribe", post(unsubscribe));
    let admin = Router::new()
        .route("/api/v1/outbox/{id}/retry", post(retry))
        .route("/api/v1/outbox/retry-dead", post(retry_dead))
        .route("/api/v1/playbooks/{id}/approve", post(approve));
    scoped(read, state, Scope::Read).merge(scoped(act, state, Scope::Tasks)).merge(scoped(admin, state, Scope::Admin))
}

pub(super) type Answer<T> = Result<Json<T>, ApiError>;

/// Runs a service on the blocking pool (store reads and writes block) and answers its result.
pub(super) async fn blocking<T: Send + 'static>(
    state: &Shared,
    work: impl FnOnce(&ApiState) -> Result<T, ServiceError> + Send + 'static,
) -> Answer<T> {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || work(&state)).await {
        Ok(Ok(value)) => Ok(Json(value)),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn list_accounts(State(state): State<Shared>, uri: Uri) -> Answer<AccountList> {
    let mut p = Params::parse(&uri, &["segment", "owner", "band", "sort", "reverse", "limit", "cursor"])?;
    let query = accounts::ListQuery {
        segment: p.text("segment"),
        owner: p.text("owner"),
        band: p.choice("band", &[("red", Band::Red), ("yellow", Band::Yellow), ("green", Band::Green)])?,
        sort: p
            .choice(
                "sort",
                &[
                    ("arr", SortKey::Arr),
                    ("renewal", SortKey::Renewal),
                    ("name", SortKey::Name),
                    ("id", SortKey::Id),
                    ("health", SortKey::Health),
                ],
            )?
            .unwrap_or_default(),
        reverse: p.flag("reverse")?,
        limit: Some(p.number("limit", 1, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE)),
        after: p.text("cursor").map(|c| Cursor::decode(&c)).transpose()?,
    };
    blocking(&state, move |s| accounts::list(&s.store, &query, s.clock.now(), s.config().timezone)).await
}

async fn show_account(State(state): State<Shared>, Path(id): Path<String>, uri: Uri) -> Answer<AccountDetail> {
    let mut p = Params::parse(&uri, &["events_days"])?;
    let events_days = p.number("events_days", 0, 36_600)?.unwrap_or(30) as u32;
    blocking(&state, move |s| {
        let query = ShowQuery { id, events_days, now: s.clock.now(), timezone: s.config().timezone };
        accounts::show(&s.store, &query, Some(&s.loaded().model))
    })
    .await
}

/// `keel explain`: why a playbook did or did not fire for the account, at `at` (a day or
/// an RFC 3339 instant; default now), by the playbooks in force.
async fn explain_playbook(
    State(state): State<Shared>,
    Path((id, playbook)): Path<(String, String)>,
    uri: Uri,
) -> Answer<Explanation> {
    let mut p = Params::parse(&uri, &["at"])?;
    let at = p.text("at").map(|t| At::parse(&t).map_err(|e| ApiError::field("at", e))).transpose()?;
    blocking(&state, move |s| {
        let (loaded, config) = (s.loaded(), s.config());
        let ctx = crate::decide::tick::Context { store: &s.store, loaded: &loaded, config: &config };
        explain::explain(ctx, &explain::Request { playbook, account: id, at }, s.clock.now())
    })
    .await
}

async fn list_tasks(State(state): State<Shared>, uri: Uri) -> Answer<TaskList> {
    let mut p = Params::parse(&uri, &["owner", "status", "overdue", "limit"])?;
    let status = p.choice(
        "status",
        &[
            ("open", StatusFilter::Open),
            ("snoozed", StatusFilter::Snoozed),
            ("done", StatusFilter::Done),
            ("cancelled", StatusFilter::Cancelled),
            ("all", StatusFilter::All),
        ],
    )?;
    let query = tasks::ListQuery {
        owner: p.text("owner"),
        overdue: p.flag("overdue")?,
        status: status.unwrap_or_default(),
        limit: p.number("limit", 0, usize::MAX)?,
    };
    blocking(&state, move |s| tasks::list(&s.store, &query, s.clock.now(), s.config().timezone)).await
}

/// A task id from the path: a number, else a 400 naming `id`.
fn task_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| ApiError::field("id", format!("task ids are numbers, not {id:?}")))
}

async fn done(State(state): State<Shared>, Path(id): Path<String>, uri: Uri) -> Answer<Task> {
    Params::parse(&uri, &[])?;
    let id = task_id(&id)?;
    blocking(&state, move |s| tasks::done(&s.store, id, s.clock.now())).await
}

async fn cancel(State(state): State<Shared>, Path(id): Path<String>, uri: Uri) -> Answer<Task> {
    Params::parse(&uri, &[])?;
    let id = task_id(&id)?;
    blocking(&state, move |s| tasks::cancel(&s.store, id, s.clock.now())).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnoozeBody {
    /// YYYY-MM-DD, read here so that a bad date names the field in words a user follows.
    until: String,
}

async fn snooze(State(state): State<Shared>, Path(id): Path<String>, uri: Uri, body: Bytes) -> Answer<Task> {
    Params::parse(&uri, &[])?;
    let id = task_id(&id)?;
    let SnoozeBody { until } = json_body(&body)?;
    let until = NaiveDate::parse_from_str(until.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::field("until", format!("{until:?} is not a date: give YYYY-MM-DD")))?;
    blocking(&state, move |s| {
        let args = SnoozeArgs { id, until, now: s.clock.now(), timezone: s.config().timezone };
        tasks::snooze(&s.store, &args)
    })
    .await
}

async fn list_outbox(State(state): State<Shared>, uri: Uri) -> Answer<Vec<OutboxEntry>> {
    let mut p = Params::parse(&uri, &["state", "account", "limit"])?;
    let query = outbox::ListQuery {
        which: p
            .choice("state", &[("pending", Which::Pending), ("dead", Which::Dead), ("all", Which::All)])?
            .unwrap_or_default(),
        account: p.text("account"),
        limit: p.number("limit", 0, usize::MAX)?,
    };
    blocking(&state, move |s| outbox::list(&s.store, &query)).await
}

async fn retry(State(state): State<Shared>, Path(id): Path<String>, uri: Uri) -> Answer<Vec<OutboxEntry>> {
    Params::parse(&uri, &[])?;
    let id: u64 = id.parse().map_err(|_| ApiError::field("id", format!("outbox ids are numbers, not {id:?}")))?;
    blocking(&state, move |s| outbox::retry(&s.store, RetryTarget::One(id), s.clock.now())).await
}

/// Every dead entry back in the queue (`keel outbox retry --all-dead`).
async fn retry_dead(State(state): State<Shared>, uri: Uri) -> Answer<Vec<OutboxEntry>> {
    Params::parse(&uri, &[])?;
    blocking(&state, move |s| outbox::retry(&s.store, RetryTarget::AllDead, s.clock.now())).await
}

/// The blast-radius guard's records (`keel approve` with no playbook).
async fn list_guard(State(state): State<Shared>, uri: Uri) -> Answer<GuardList> {
    Params::parse(&uri, &[])?;
    blocking(&state, move |s| guard::list(&s.store)).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// Who approves, for the guard's record (default: "api").
    by: Option<String>,
    /// Approve only if it is held at this size (what the person saw).
    size: Option<u64>,
}

/// Lets one pass of a held playbook through (`keel approve PLAYBOOK`).
async fn approve(State(state): State<Shared>, Path(id): Path<String>, uri: Uri, body: Bytes) -> Answer<GuardRecord> {
    Params::parse(&uri, &[])?;
    let ApproveBody { by, size } = if body.is_empty() { ApproveBody::default() } else { json_body(&body)? };
    let by = by.map(|b| crate::lang::render::one_line(&b)).filter(|b| !b.trim().is_empty());
    if by.as_ref().is_some_and(|b| b.len() > 200) {
        return Err(ApiError::field("by", "at most 200 bytes".to_string()));
    }
    let by = by.unwrap_or_else(|| "api".into());
    blocking(&state, move |s| guard::approve(&s.store, &id, &by, size, s.clock.now())).await
}

/// An address typed by hand, or the token of an unsubscribe link: exactly one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeBody {
    email: Option<String>,
    token: Option<String>,
}

async fn unsubscribe(State(state): State<Shared>, uri: Uri, body: Bytes) -> Answer<Unsubscribed> {
    Params::parse(&uri, &[])?;
    let (by, field) = match json_body(&body)? {
        UnsubscribeBody { email: Some(e), token: None } => (UnsubscribeBy::Address(e), "email"),
        UnsubscribeBody { email: None, token: Some(t) } => (UnsubscribeBy::Token(t), "token"),
        _ => {
            return Err(ApiError::field(
                "email",
                "give `email` (an address) or `token` (an unsubscribe link's), one of them",
            ))
        }
    };
    blocking(&state, move |s| contacts::unsubscribe(&s.store, &s.config(), &by, s.clock.now())).await.map_err(|e| {
        if e.field.is_none() && e.status.is_client_error() {
            e.in_field(field)
        } else {
            e
        }
    })
}

/// A query string read strictly: only the names a route knows, each at most once.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn parse(uri: &Uri, known: &[&str]) -> Result<Params, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::bad_request(format!("the query string cannot be read: {e}")))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                let known = if known.is_empty() { "this route takes none".to_string() } else { known.join(", ") };
                return Err(ApiError::field(name, format!("unknown query parameter {name:?} (known: {known})")));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::field(name, format!("query parameter {name:?} is given twice")));
            }
        }
        Ok(Params(pairs))
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.swap_remove(i).1)
    }

    /// A text value; empty counts as not given (`?owner=` is no filter).
    fn text(&mut self, name: &str) -> Option<String> {
        self.take(name).filter(|v| !v.trim().is_empty())
    }

    /// `true`/`false` (also `1`/`0`); a bare `?reverse` is true.
    fn flag(&mut self, name: &str) -> Result<bool, ApiError> {
        match self.take(name).as_deref() {
            None => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::field(name, format!("{name} is true or false, not {other:?}"))),
        }
    }

    fn number(&mut self, name: &str, min: usize, max: usize) -> Result<Option<usize>, ApiError> {
        let Some(text) = self.take(name) else { return Ok(None) };
        let bounds = || {
            if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("from {min} to {max}")
            }
        };
        match text.trim().parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::field(name, format!("{name} is a whole number {}, not {text:?}", bounds()))),
        }
    }

    fn choice<T: Copy>(&mut self, name: &str, choices: &[(&str, T)]) -> Result<Option<T>, ApiError> {
        let Some(text) = self.take(name) else { return Ok(None) };
        let wanted = text.trim().to_ascii_lowercase();
        match choices.iter().find(|(n, _)| *n == wanted) {
            Some((_, value)) => Ok(Some(*value)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                Err(ApiError::field(name, format!("{name} is one of {}, not {text:?}", names.join(", "))))
            }
        }
    }
}

/// A JSON body into `T` (which denies unknown fields): a syntax error says its line and
/// column, a wrong, unknown or missing field is named by its path.
pub(super) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON object body is needed"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(format!("the body is not valid JSON: {inner}"));
        }
        let message = inner.to_string();
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()));
        let field = match (named, path.as_str()) {
            (Some(name), "." | "") => name.to_string(),
            (Some(name), parent) if !parent.ends_with(name) => format!("{parent}.{name}"),
            (_, ".") => String::new(),
            (_, parent) => parent.to_string(),
        };
        if field.is_empty() {
            ApiError::bad_request(format!("the body is not the expected JSON object: {message}"))
        } else {
            ApiError::field(field, message)
        }
    })?;
    de.end().map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_names_the_unknown_missing_or_wrong_field_and_a_syntax_error_its_position() {
        let e = json_body::<SnoozeBody>(br#"{"until": "2027-01-01", "untl": 1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("untl"), "{e:?}");
        assert!(e.error.contains("unknown field `untl`"), "{e:?}");
        let e = json_body::<SnoozeBody>(b"{}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("until"), "{e:?}");
        let e = json_body::<SnoozeBody>(br#"{"until": 5}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("until"), "{e:?}");
        let e = json_body::<SnoozeBody>(b"{\n  \"until\": \"2027-01-01\",\n}").unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.error.contains("line 3 column 1"), "{e:?}");
        let e = json_body::<SnoozeBody>(br#"{"until": "2027-01-01"} {}"#).unwrap_err();
        assert!(e.error.contains("trailing characters"), "{e:?}");
        assert!(json_body::<SnoozeBody>(b"").unwrap_err().error.contains("body is needed"));
        assert_eq!(json_body::<SnoozeBody>(br#"{"until": "2027-01-01"}"#).unwrap().until, "2027-01-01");
    }

    /// `POST /api/v1/accounts` (ingest) lives in another module behind another scope: the
    /// two routers must merge on the same path.
    #[tokio::test]
    async fn a_post_route_behind_another_scope_merges_on_the_same_path() {
        use axum::middleware::{from_fn, Next};
        use tower::ServiceExt;
        let guard = |name: &'static str| {
            from_fn(move |req: axum::extract::Request, next: Next| async move {
                let mut r = next.run(req).await;
                r.headers_mut().insert("x-scope", axum::http::HeaderValue::from_static(name));
                r
            })
        };
        let reads: Router =
            Router::new().route("/api/v1/accounts", get(|| async { "list" })).route_layer(guard("read"));
        let writes: Router =
            Router::new().route("/api/v1/accounts", post(|| async { "ingest" })).route_layer(guard("ingest"));
        let app = reads.merge(writes);
        for (method, scope) in [("GET", "read"), ("POST", "ingest")] {
            let req =
                axum::http::Request::builder().method(method).uri("/api/v1/accounts").body(axum::body::Body::empty());
            let response = app.clone().oneshot(req.unwrap()).await.unwrap();
            assert_eq!(response.headers()["x-scope"], scope, "{method}");
        }
    }

    #[test]
    fn a_query_string_refuses_unknown_and_repeated_names_and_bad_values() {
        let uri = |q: &str| format!("/x?{q}").parse::<Uri>().unwrap();
        let e = Params::parse(&uri("limit=2&colour=red"), &["limit"]).err().unwrap();
        assert_eq!(e.field.as_deref(), Some("colour"));
        assert!(e.error.contains("known: limit"), "{e:?}");
        let e = Params::parse(&uri("limit=2&limit=3"), &["limit"]).err().unwrap();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let mut p = Params::parse(
            &uri("limit=0&band=Purple&reverse&owner=a%40b.example"),
            &["limit", "band", "reverse", "owner"],
        )
        .unwrap();
        assert_eq!(p.number("limit", 1, 1000).unwrap_err().field.as_deref(), Some("limit"));
        let e = p.choice("band", &[("red", Band::Red), ("green", Band::Green)]).unwrap_err();
        assert_eq!((e.field.as_deref(), e.error.as_str()), (Some("band"), "band is one of red, green, not \"Purple\""));
        assert!(p.flag("reverse").unwrap());
        assert_eq!(p.text("owner").as_deref(), Some("a@b.example"), "percent-decoded");
    }
}
