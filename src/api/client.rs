//! The API's client for the command line: when `keel run` holds the store, `keel tasks`,
//! `keel accounts`, `keel outbox`, `keel contacts unsubscribe`, `keel sync`, `keel plan`,
//! `keel explain` and `keel approve` reach the book through the daemon with this
//! [`Client`], which implements the same [`Book`] as the store does.
//!
//! Invariants: the address is the one the daemon announced in `data_dir/api.json`
//! ([`super::announce`]) and every answer must name this command's own store, so a
//! command never changes another Keel's book (a change is sent only after a read of
//! the same daemon proved it); the token is `KEEL_API_TOKEN` when set,
//! else the config's own token that has the request's scope — the same config, so the
//! same environment; no proxy is ever used (a token must not leave the machine in clear);
//! the answers are the services' result types, read back from their JSON unchanged.

use std::time::Duration;

use chrono::NaiveDate;
use reqwest::blocking::{Client as Http, RequestBuilder};
use serde::de::DeserializeOwned;

use crate::config::{Config, Scope};
use crate::model::{GuardRecord, OutboxEntry, Task};
use crate::services::access::Book;
use crate::services::accounts::{self, AccountDetail, AccountList};
use crate::services::contacts::{UnsubscribeBy, Unsubscribed};
use crate::services::explain::{self, Explanation};
use crate::services::guard::GuardList;
use crate::services::outbox::{self, RetryTarget, Which};
use crate::services::plan::{Report as PlanReport, Request as PlanRequest};
use crate::services::sync::{ProgressFor, SyncOutcome, SyncRequest};
use crate::services::tasks::{self, TaskList};
use crate::services::ServiceError;

/// The variable a person sets to call the API with a token of their own.
pub const TOKEN_VAR: &str = "KEEL_API_TOKEN";

/// Accounts asked for per page when a command lists them all.
const PAGE: usize = 1000;

pub struct Client {
    http: Http,
    base: String,
    /// This command's store, as the daemon serving it names it in every answer.
    store_id: String,
    /// A read proved the daemon at `base` serves this store.
    proven: std::sync::atomic::AtomicBool,
    /// `KEEL_API_TOKEN`, when set and not empty.
    own_token: Option<String>,
    /// The config's usable tokens and their scopes.
    tokens: Vec<(String, Vec<Scope>)>,
}

impl Client {
    pub fn new(config: &Config) -> Result<Client, ServiceError> {
        let file = super::announce::path(config);
        let Some(announced) = super::announce::read(&file) else {
            return Err(ServiceError::Unreachable(format!(
                "the store at {} is in use by another keel process that serves no API (keel run --once, keel sync, \
                 a backup…): wait for it to finish, then run this again",
                config.store_dir().display()
            )));
        };
        let mut addr = announced.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let http = Http::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ServiceError::Unreachable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: format!("http://{addr}"),
            store_id: super::announce::store_id(config),
            proven: std::sync::atomic::AtomicBool::new(false),
            own_token: std::env::var(TOKEN_VAR).ok().filter(|t| !t.trim().is_empty()),
            tokens: config.api.usable_tokens().map(|(s, scopes)| (s.expose().to_string(), scopes.to_vec())).collect(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self, scope: Scope) -> Option<&str> {
        self.own_token.as_deref().or_else(|| {
            self.tokens.iter().find(|(_, s)| s.contains(&scope) || s.contains(&Scope::Admin)).map(|(t, _)| t.as_str())
        })
    }

    /// Sends `request` with a token for `scope`; reads the answer as `T`, or the API's
    /// error. `missing` names what a 404 is about.
    fn call<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        scope: Scope,
        missing: Option<(&'static str, String)>,
    ) -> Result<T, ServiceError> {
        if !self.proven.load(std::sync::atomic::Ordering::Relaxed) {
            // Before anything is sent that could change a book: is it ours?
            let answer = self.http.get(self.url("/healthz")).send().map_err(|e| self.unanswered(e))?;
            self.check_store(&answer)?;
            self.proven.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let request = match self.token(scope) {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let answer = request.send().map_err(|e| self.unanswered(e))?;
        let status = answer.status();
        self.check_store(&answer)?;
        let body = answer.bytes().map_err(|e| ServiceError::Unreachable(format!("reading keel run's answer: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                ServiceError::Unreachable(format!(
                    "keel run at {} answered in a shape this keel does not read ({e}): are both the same version?",
                    self.base
                ))
            });
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            if let Some((what, id)) = missing {
                return Err(ServiceError::NotFound { what, id });
            }
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        let message = match status.as_u16() {
            401 | 403 => format!(
                "keel run at {} refused: {message} (set {TOKEN_VAR}, or give api.tokens a token with the `{}` scope)",
                self.base,
                scope.name()
            ),
            _ => message,
        };
        Err(ServiceError::Daemon { status: status.as_u16(), message })
    }
}

impl Book for Client {
    fn describe(&self) -> String {
        format!("keel run at {}", self.base)
    }

    fn tasks(&self, query: &tasks::ListQuery) -> Result<TaskList, ServiceError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(o) = &query.owner {
            params.push(("owner", o.clone()));
        }
        if query.overdue {
            params.push(("overdue", "true".into()));
        }
        params.push(("status", enum_name(&query.status)));
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        self.call(self.http.get(self.url("/api/v1/tasks")).query(&params), Scope::Read, None)
    }

    fn task_done(&self, id: u64) -> Result<Task, ServiceError> {
        self.task_action(id, "done", None)
    }

    fn task_cancel(&self, id: u64) -> Result<Task, ServiceError> {
        self.task_action(id, "cancel", None)
    }

    fn task_snooze(&self, id: u64, until: NaiveDate) -> Result<Task, ServiceError> {
        self.task_action(id, "snooze", Some(serde_json::json!({ "until": until })))
    }

    fn accounts(&self, query: &accounts::ListQuery) -> Result<AccountList, ServiceError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &query.segment {
            params.push(("segment", s.clone()));
        }
        if let Some(o) = &query.owner {
            params.push(("owner", o.clone()));
        }
        if let Some(b) = query.band {
            params.push(("band", b.as_str().to_string()));
        }
        params.push(("sort", enum_name(&query.sort)));
        if query.reverse {
            params.push(("reverse", "true".into()));
        }
        // Page through with the cursor: a command without --limit lists them all.
        let mut all: Option<AccountList> = None;
        let mut cursor: Option<String> = None;
        loop {
            let want = match (query.limit, &all) {
                (Some(l), Some(a)) => l.saturating_sub(a.accounts.len()),
                (Some(l), None) => l,
                (None, _) => PAGE,
            };
            if want == 0 {
                break;
            }
            let mut page_params = params.clone();
            page_params.push(("limit", want.min(PAGE).to_string()));
            if let Some(c) = &cursor {
                page_params.push(("cursor", c.clone()));
            }
            let page: AccountList =
                self.call(self.http.get(self.url("/api/v1/accounts")).query(&page_params), Scope::Read, None)?;
            cursor = page.next_cursor.clone();
            match &mut all {
                None => all = Some(page),
                Some(a) => {
                    a.arr += page.arr;
                    a.accounts.extend(page.accounts);
                }
            }
            if cursor.is_none() {
                break;
            }
        }
        let mut all = all.unwrap_or(AccountList { accounts: Vec::new(), arr: 0.0, next_cursor: None });
        // An account whose sort value changed between pages (a pass, a sync) may come
        // twice: listed once, where it was first seen.
        let mut seen = std::collections::HashSet::new();
        let before = all.accounts.len();
        all.accounts.retain(|a| seen.insert(a.id.clone()));
        if all.accounts.len() != before {
            all.arr = all.accounts.iter().map(|a| a.arr.unwrap_or(0.0)).sum();
        }
        all.next_cursor = None;
        Ok(all)
    }

    fn account(&self, id: &str, events_days: u32) -> Result<AccountDetail, ServiceError> {
        let url = self.url(&format!("/api/v1/accounts/{}", encode_segment(id)));
        let request = self.http.get(url).query(&[("events_days", events_days.to_string())]);
        self.call(request, Scope::Read, Some(("account", id.to_string())))
    }

    fn outbox(&self, query: &outbox::ListQuery) -> Result<Vec<OutboxEntry>, ServiceError> {
        let mut params: Vec<(&str, String)> = vec![(
            "state",
            match query.which {
                Which::Pending => "pending",
                Which::Dead => "dead",
                Which::All => "all",
            }
            .to_string(),
        )];
        if let Some(a) = &query.account {
            params.push(("account", a.clone()));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        self.call(self.http.get(self.url("/api/v1/outbox")).query(&params), Scope::Read, None)
    }

    fn outbox_retry(&self, target: RetryTarget) -> Result<Vec<OutboxEntry>, ServiceError> {
        match target {
            RetryTarget::One(id) => self.call(
                self.http.post(self.url(&format!("/api/v1/outbox/{id}/retry"))),
                Scope::Admin,
                Some(("outbox entry", id.to_string())),
            ),
            RetryTarget::AllDead => {
                self.call(self.http.post(self.url("/api/v1/outbox/retry-dead")), Scope::Admin, None)
            }
        }
    }

    fn unsubscribe(&self, by: &UnsubscribeBy) -> Result<Unsubscribed, ServiceError> {
        let body = match by {
            UnsubscribeBy::Address(e) => serde_json::json!({ "email": e }),
            UnsubscribeBy::Token(t) => serde_json::json!({ "token": t }),
        };
        self.call(self.http.post(self.url("/api/v1/contacts/unsubscribe")).json(&body), Scope::Tasks, None)
    }

    fn guard(&self) -> Result<GuardList, ServiceError> {
        self.call(self.http.get(self.url("/api/v1/guard")), Scope::Read, None)
    }

    fn approve(&self, playbook: &str, by: &str, size: Option<u64>) -> Result<GuardRecord, ServiceError> {
        let url = self.url(&format!("/api/v1/playbooks/{}/approve", encode_segment(playbook)));
        let body = serde_json::json!({ "by": by, "size": size });
        self.call(self.http.post(url).json(&body), Scope::Admin, None)
    }

    /// The daemon reads the file: it holds this machine's store, so it is on this
    /// machine. The path goes absolute (the daemon's working directory is not ours) and
    /// the report names the file as it was given, so the output reads as a local sync's.
    fn sync(&self, request: &SyncRequest, _progress: ProgressFor) -> Result<SyncOutcome, ServiceError> {
        let mut absolute = request.clone();
        if let Some(file) = &request.file {
            absolute.file = Some(std::path::absolute(file).map_err(|e| {
                ServiceError::InvalidArgument(format!("{}: cannot make the path absolute: {e}", file.display()))
            })?);
        }
        let request_builder = self.http.post(self.url("/api/v1/sync")).json(&absolute);
        let mut outcome: SyncOutcome = self.call(request_builder, Scope::Admin, None)?;
        if let (Some(given), [report]) = (&request.file, outcome.reports.as_mut_slice()) {
            report.file = given.clone();
        }
        Ok(outcome)
    }

    /// The working set travels gzipped (texts shrink several times), so a set far larger
    /// than the shipped one still fits the daemon's body limit.
    fn plan(&self, request: &PlanRequest) -> Result<PlanReport, ServiceError> {
        use std::io::Write;
        let json = serde_json::to_vec(request).map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let body = gz.write_all(&json).and_then(|()| gz.finish()).map_err(|e| {
            ServiceError::Unreachable(format!("cannot compress the working set for keel run's API: {e}"))
        })?;
        let builder = self
            .http
            .post(self.url("/api/v1/plan"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(body);
        self.call(builder, Scope::Admin, None)
    }

    /// `GET /api/v1/accounts/{id}/explain/{playbook}`: a 404 (no such account or
    /// playbook) comes back in the daemon's words, as the store would say it.
    fn explain(&self, request: &explain::Request) -> Result<Explanation, ServiceError> {
        let url = self.url(&format!(
            "/api/v1/accounts/{}/explain/{}",
            encode_segment(&request.account),
            encode_segment(&request.playbook)
        ));
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(at) = request.at {
            params.push(("at", at.to_param()));
        }
        self.call(self.http.get(url).query(&params), Scope::Read, None)
    }
}

impl Client {
    fn unanswered(&self, e: reqwest::Error) -> ServiceError {
        ServiceError::Unreachable(format!(
            "the store is in use by keel run, and its API at {} did not answer ({e}); is the daemon stopping?",
            self.base
        ))
    }

    /// The answer names this command's store, or nothing of it is used.
    fn check_store(&self, answer: &reqwest::blocking::Response) -> Result<(), ServiceError> {
        let served = answer.headers().get(super::announce::STORE_HEADER).and_then(|v| v.to_str().ok());
        if served == Some(self.store_id.as_str()) {
            return Ok(());
        }
        Err(ServiceError::Unreachable(format!(
            "{} answered, but it is not the keel run holding this store (data_dir/{} is stale: was the daemon killed?); \
             nothing was changed",
            self.base,
            super::announce::FILE
        )))
    }

    fn task_action(&self, id: u64, action: &str, body: Option<serde_json::Value>) -> Result<Task, ServiceError> {
        let mut request = self.http.post(self.url(&format!("/api/v1/tasks/{id}/{action}")));
        if let Some(b) = body {
            request = request.json(&b);
        }
        self.call(request, Scope::Tasks, Some(("task", id.to_string())))
    }
}

/// A serde enum's name (`arr`, `renewal`, …), as the query string spells it.
fn enum_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// An account id as one path segment: ids are the CRM's, any bytes.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
