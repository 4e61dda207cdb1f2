//! `GET /readyz` and `GET /metrics`, and the middleware that counts every HTTP request.
//!
//! `/readyz` needs no token (as `/healthz`): 200 `ready` or 503 with the reason, decided
//! by [`crate::services::status::readiness`]. `/metrics` (scope `read`) prints the
//! daemon's, the deliverer's and the API's counters in the Prometheus text exposition
//! format 0.0.4; docs/api.md lists every metric.
//!
//! The exposition is written by [`Exposition`], a few lines here, rather than with a
//! metrics crate: the counters already live in the daemon and the deliverer as plain
//! atomics (the hot paths must not go through a registry's locks), so a crate would only
//! re-register and copy them each scrape; the format itself is HELP/TYPE lines and samples
//! with escaped label values.
//!
//! Invariants:
//! - Requests are counted by the route's template (`MatchedPath`: `/api/v1/tasks/{id}/done`),
//!   never the raw path, so the label set stays as small as the router; anything no
//!   route matched is `route="unmatched"`.
//! - Nothing here decides: readiness is the service's; the counts are read as they stand.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::scoped;
use super::{ApiError, Shared};
use crate::config::Scope;
use crate::daemon::counters::{SyncCounters, KINDS};
use crate::deliver::{CHANNELS, OUTCOMES};
use crate::services::status::{self, Readiness, Waiting};

/// How long the store-derived gauges (outbox pending and dead, tasks open and overdue)
/// are reused: counting dead entries and tasks reads every outbox entry and task, which a
/// scrape every few seconds on a large book should not repeat each time.
pub const WAITING_TTL: Duration = Duration::from_secs(10);

/// The Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/readyz` (open) and `/metrics` (scope `read`); [`super::router`] merges them.
pub fn routes(state: &Shared) -> Router<Shared> {
    let metrics = Router::new().route("/metrics", get(metrics));
    Router::new().route("/readyz", get(readyz)).merge(scoped(metrics, state, Scope::Read))
}

async fn readyz(State(state): State<Shared>) -> Response {
    let s = state.clone();
    let decided = tokio::task::spawn_blocking(move || {
        let loaded = s.loaded();
        status::check(&s.store, &s.config(), &loaded, s.counters.last_pass(), s.clock.now())
    })
    .await;
    match decided {
        Ok(Readiness::Ready) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Readiness::NotReady(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("the readiness check failed: {e}\n")).into_response(),
    }
}

/// The HTTP requests answered, by route template and status. Looked up under a read
/// lock; the write lock is taken only the first time a (route, status) pair is seen.
#[derive(Debug, Default)]
pub struct HttpCounters {
    counts: RwLock<HashMap<String, HashMap<u16, AtomicU64>>>,
}

impl HttpCounters {
    pub fn count(&self, route: &str, status: u16) {
        {
            let map = self.counts.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = map.get(route).and_then(|m| m.get(&status)) {
                c.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.counts.write().unwrap_or_else(|e| e.into_inner());
        map.entry(route.to_string()).or_default().entry(status).or_default().fetch_add(1, Ordering::Relaxed);
    }

    /// (route, status, count), sorted.
    pub fn snapshot(&self) -> Vec<(String, u16, u64)> {
        let map = self.counts.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .flat_map(|(r, m)| m.iter().map(move |(s, c)| (r.clone(), *s, c.load(Ordering::Relaxed))))
            .collect();
        out.sort();
        out
    }
}

/// The middleware over the whole router: counts each answer by its route template.
pub async fn track(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    state.http.count(route.as_ref().map_or("unmatched", MatchedPath::as_str), response.status().as_u16());
    response
}

/// The store-derived gauges, computed at most once per [`WAITING_TTL`].
#[derive(Debug, Default)]
pub struct WaitingCache {
    last: Mutex<Option<(Instant, Waiting)>>,
}

async fn waiting(state: &Shared) -> Result<Waiting, ApiError> {
    if let Some((at, w)) = *state.waiting.last.lock().unwrap_or_else(|e| e.into_inner()) {
        if at.elapsed() < WAITING_TTL {
            return Ok(w);
        }
    }
    let s = state.clone();
    let w = tokio::task::spawn_blocking(move || {
        let now = s.clock.now();
        status::waiting(&s.store, now, now.with_timezone(&s.config().timezone).date_naive())
    })
    .await
    .map_err(ApiError::internal)??;
    *state.waiting.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), w));
    Ok(w)
}

async fn metrics(State(state): State<Shared>) -> Result<Response, ApiError> {
    let waiting = waiting(&state).await?;
    let text = exposition(&state, &waiting);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Every metric, in the order docs/api.md lists them.
fn exposition(state: &Shared, waiting: &Waiting) -> String {
    let c = &state.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut e = Exposition::default();

    // Passes are the histogram's count, read once: a scrape during a pass's counting
    // never sees the two differ.
    let h = c.pass_seconds.snapshot();
    e.family("keel_passes_total", "counter", "Evaluation passes finished since start.");
    e.sample("keel_passes_total", &[], h.count);
    e.family("keel_accounts_evaluated_total", "counter", "Accounts evaluated, summed over passes.");
    e.sample("keel_accounts_evaluated_total", &[], load(&c.accounts_evaluated));
    e.family("keel_slow_passes_total", "counter", "Passes slower than evaluation.tick_limit.");
    e.sample("keel_slow_passes_total", &[], load(&c.slow_passes));
    if let Some(at) = c.last_pass() {
        e.family("keel_last_pass_timestamp_seconds", "gauge", "When the last pass finished (the daemon's clock).");
        e.sample_f64("keel_last_pass_timestamp_seconds", &[], at.timestamp_millis() as f64 / 1000.0);
    }

    let playbooks = c.playbooks();
    for (name, help, pick) in [
        ("keel_playbook_accounts_evaluated_total", "Accounts a playbook was evaluated for.", 0),
        ("keel_playbook_fired_total", "Firings of a playbook (each one is in the ledger).", 1),
        ("keel_playbook_skipped_total", "Firings a playbook recorded as skipped.", 2),
        ("keel_playbook_errors_total", "Evaluations of a playbook that failed.", 3),
    ] {
        e.family(name, "counter", help);
        for (id, p) in &playbooks {
            let v = [&p.evaluated, &p.fired, &p.skipped, &p.errors][pick];
            e.sample(name, &[("playbook", id)], load(v));
        }
    }

    e.family("keel_playbook_held_passes_total", "counter", "Passes the blast-radius guard held a playbook for.");
    for (id, p) in &playbooks {
        e.sample("keel_playbook_held_passes_total", &[("playbook", id)], load(&p.held));
    }
    e.family(
        "keel_playbook_held",
        "gauge",
        "Playbooks held by the guard at the last tick: the firings the held pass would make (`keel approve`).",
    );
    for (id, would_fire) in c.held() {
        e.sample("keel_playbook_held", &[("playbook", &id)], would_fire);
    }

    e.family("keel_pass_duration_seconds", "histogram", "How long evaluation passes took.");
    for (bound, n) in &h.cumulative {
        let le = if bound.is_infinite() { "+Inf".to_string() } else { bound.to_string() };
        e.sample("keel_pass_duration_seconds_bucket", &[("le", &le)], *n);
    }
    e.sample_f64("keel_pass_duration_seconds_sum", &[], h.sum_seconds);
    e.sample("keel_pass_duration_seconds_count", &[], h.count);

    let d = &state.delivery;
    e.family("keel_deliveries_total", "counter", "Outbox entries by channel and the outcome of their turn.");
    for channel in CHANNELS {
        let values = d.channel(channel).map(|o| o.values()).unwrap_or_default();
        for (outcome, v) in OUTCOMES.iter().zip(values) {
            e.sample("keel_deliveries_total", &[("channel", channel), ("outcome", outcome)], v);
        }
    }
    e.family("keel_messages_sent_total", "counter", "Emails and webhook calls sent (a digest is one).");
    e.sample("keel_messages_sent_total", &[], load(&d.messages));
    e.family("keel_escalations_total", "counter", "Overdue tasks whose escalation email was queued.");
    e.sample("keel_escalations_total", &[], load(&d.escalated));

    let cached = "(counted at most every 10 s)";
    for (name, help, v) in [
        ("keel_outbox_pending", "Outbox entries waiting to be delivered.", waiting.outbox_pending),
        ("keel_outbox_dead", "Outbox entries given up on (`keel outbox list --dead`).", waiting.outbox_dead),
        ("keel_tasks_open", "Open tasks (snoozed ones included).", waiting.tasks_open),
        ("keel_tasks_overdue", "Open tasks past their due time.", waiting.tasks_overdue),
    ] {
        e.family(name, "gauge", &format!("{help} {cached}"));
        e.sample(name, &[], v);
    }

    e.family("keel_sync_rows_total", "counter", "Rows stored (inserted, updated or unchanged) by kind and source.");
    let sources = [("file", &c.file_rows), ("segment", &c.segment_rows), ("api", &c.api_rows)];
    sync_samples(&mut e, "keel_sync_rows_total", &sources, |s, i| load(&s.stored[i]));
    e.family("keel_sync_rejected_total", "counter", "Rows rejected by kind and source.");
    sync_samples(&mut e, "keel_sync_rejected_total", &sources, |s, i| load(&s.rejected[i]));
    e.family("keel_segment_messages_refused_total", "counter", "Segment messages refused as malformed.");
    e.sample("keel_segment_messages_refused_total", &[], load(&c.segment_refused));

    e.family("keel_reloads_total", "counter", "Reloads of config, rules and playbooks put in force.");
    e.sample("keel_reloads_total", &[], load(&c.reloads));
    e.family("keel_reloads_rejected_total", "counter", "Reloads refused because the change fails `keel check`.");
    e.sample("keel_reloads_rejected_total", &[], load(&c.rejected_reloads));

    e.family("keel_http_requests_total", "counter", "HTTP requests answered, by route template and status.");
    for (route, code, n) in state.http.snapshot() {
        e.sample("keel_http_requests_total", &[("route", &route), ("status", &code.to_string())], n);
    }
    e.out
}

fn sync_samples(
    e: &mut Exposition,
    name: &str,
    sources: &[(&str, &SyncCounters)],
    value: impl Fn(&SyncCounters, usize) -> u64,
) {
    for &(source, counters) in sources {
        for (i, kind) in KINDS.iter().enumerate() {
            e.sample(name, &[("kind", kind), ("source", source)], value(counters, i));
        }
    }
}

/// A writer of the text exposition format 0.0.4: `# HELP` and `# TYPE` lines, then
/// samples `name{label="value",…} value`.
#[derive(Debug, Default)]
pub struct Exposition {
    pub out: String,
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    pub fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.out.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{k}=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut e = Exposition::default();
        e.family("keel_x_total", "counter", "A help\nwith a \\ in it.");
        e.sample("keel_x_total", &[("playbook", "a\\b\"c\nd"), ("k", "v")], 3);
        e.sample("keel_x_total", &[], 4);
        assert_eq!(
            e.out,
            "# HELP keel_x_total A help\\nwith a \\\\ in it.\n# TYPE keel_x_total counter\n\
             keel_x_total{playbook=\"a\\\\b\\\"c\\nd\",k=\"v\"} 3\nkeel_x_total 4\n"
        );
    }

    #[test]
    fn requests_are_counted_per_route_and_status() {
        let h = HttpCounters::default();
        h.count("/healthz", 200);
        h.count("/healthz", 200);
        h.count("unmatched", 404);
        assert_eq!(h.snapshot(), vec![("/healthz".into(), 200, 2), ("unmatched".into(), 404, 1)]);
    }
}
