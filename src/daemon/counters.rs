//! The daemon's running totals, for `/metrics` and `/readyz`: passes, accounts, what each
//! playbook decided, how long passes take, rows synced, reloads, and when the last pass
//! finished.
//!
//! Invariants:
//! - Every count is an atomic, added to once per pass, sync or reload — never once per
//!   account — so counting costs the evaluation nothing. The per-playbook map is locked
//!   once per pass (a read lock; a write lock only the first time a playbook is seen).
//! - Counts only grow (Prometheus counters): a playbook a reload removed keeps its totals.
//! - "When" is the daemon's injected clock, never the system time, so a pinned clock
//!   (tests, `KEEL_NOW`) gives a readiness that agrees with the passes it reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::decide::pass::PassReport;

/// Upper bounds of the pass duration histogram, in seconds: 10 ms to 10 min. A quiet
/// incremental pass takes well under 10 ms; a full pass over a million accounts minutes.
pub const PASS_BUCKETS: [f64; 15] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Counters for `/metrics` (kept from the start so the API only has to print them).
#[derive(Debug)]
pub struct Counters {
    pub passes: AtomicU64,
    pub accounts_evaluated: AtomicU64,
    pub fired: AtomicU64,
    pub skipped: AtomicU64,
    pub errors: AtomicU64,
    pub slow_passes: AtomicU64,
    pub reloads: AtomicU64,
    pub rejected_reloads: AtomicU64,
    /// The daemon clock's instant the last pass finished, in ms since the epoch
    /// ([`NEVER`] until one has).
    last_pass_ms: AtomicI64,
    pub pass_seconds: Histogram,
    playbooks: RwLock<BTreeMap<String, Arc<PlaybookCounters>>>,
    /// Rows stored and rejected, by kind, from the `sync.*.file` imports…
    pub file_rows: SyncCounters,
    /// …from Segment ingest (`/v1/*`)…
    pub segment_rows: SyncCounters,
    /// …and pushed to the JSON API (`POST /api/v1/accounts|contacts|events`).
    pub api_rows: SyncCounters,
    /// Segment messages refused whole (malformed: no kind can be told for some).
    pub segment_refused: AtomicU64,
    /// The playbooks the guard held at the last tick, with the firings they were held
    /// at.
    held: RwLock<BTreeMap<String, u64>>,
}

const NEVER: i64 = i64::MIN;

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            passes: AtomicU64::new(0),
            accounts_evaluated: AtomicU64::new(0),
            fired: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            slow_passes: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            rejected_reloads: AtomicU64::new(0),
            last_pass_ms: AtomicI64::new(NEVER),
            pass_seconds: Histogram::default(),
            playbooks: RwLock::default(),
            file_rows: SyncCounters::default(),
            segment_rows: SyncCounters::default(),
            api_rows: SyncCounters::default(),
            segment_refused: AtomicU64::new(0),
            held: RwLock::default(),
        }
    }
}

/// What one playbook decided, summed over passes.
#[derive(Debug, Default)]
pub struct PlaybookCounters {
    pub evaluated: AtomicU64,
    pub fired: AtomicU64,
    pub skipped: AtomicU64,
    pub errors: AtomicU64,
    /// Passes the blast-radius guard held it for.
    pub held: AtomicU64,
}

/// Rows stored (inserted, updated or already so) and rejected, per record kind.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Indexed by [`KINDS`].
    pub stored: [AtomicU64; 3],
    pub rejected: [AtomicU64; 3],
}

/// The record kinds, as the `kind` label says them.
pub const KINDS: [&str; 3] = ["accounts", "contacts", "events"];

impl SyncCounters {
    /// Adds rows of `kind` (one of [`KINDS`]; another kind is not counted).
    pub fn add(&self, kind: &str, stored: u64, rejected: u64) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.stored[i].fetch_add(stored, Ordering::Relaxed);
            self.rejected[i].fetch_add(rejected, Ordering::Relaxed);
        }
    }
}

/// A Prometheus histogram over [`PASS_BUCKETS`]: a count per bucket (not cumulative; the
/// exposition sums them), the sum in microseconds, and the count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; PASS_BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations at or below it), cumulative, `+Inf` last.
    pub cumulative: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = PASS_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let count = self.count.load(Ordering::Relaxed);
        let mut cumulative = Vec::with_capacity(PASS_BUCKETS.len() + 1);
        let mut running = 0;
        for (bound, n) in PASS_BUCKETS.iter().zip(&self.buckets) {
            running += n.load(Ordering::Relaxed);
            cumulative.push((*bound, running));
        }
        // Read apart from the buckets: +Inf is never below the last finite bucket.
        cumulative.push((f64::INFINITY, count.max(running)));
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: count.max(running),
        }
    }
}

impl Counters {
    /// Counts a finished pass's report (once per pass).
    pub fn count_pass(&self, report: &PassReport) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.accounts_evaluated.fetch_add(report.accounts, Ordering::Relaxed);
        self.fired.fetch_add(report.fired(), Ordering::Relaxed);
        self.skipped.fetch_add(report.playbooks.values().map(|s| s.skipped).sum(), Ordering::Relaxed);
        self.errors.fetch_add(report.errors(), Ordering::Relaxed);
        self.pass_seconds.observe(report.elapsed);
        for (id, s) in &report.playbooks {
            let c = self.playbook(id);
            c.evaluated.fetch_add(s.evaluated, Ordering::Relaxed);
            c.fired.fetch_add(s.fired, Ordering::Relaxed);
            c.skipped.fetch_add(s.skipped, Ordering::Relaxed);
            c.errors.fetch_add(s.errors, Ordering::Relaxed);
        }
    }

    /// Counts a tick's holds: the passes held, and which playbooks are held now.
    pub fn count_held(&self, held: &[crate::decide::tick::Held]) {
        let mut now = BTreeMap::new();
        for h in held {
            if h.counted {
                self.playbook(&h.playbook).held.fetch_add(1, Ordering::Relaxed);
            }
            now.insert(h.playbook.clone(), h.hold.would_fire);
        }
        *self.held.write().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// The playbooks held at the last tick, with the firings they were held at.
    pub fn held(&self) -> BTreeMap<String, u64> {
        self.held.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn playbook(&self, id: &str) -> Arc<PlaybookCounters> {
        if let Some(c) = self.playbooks.read().unwrap_or_else(|e| e.into_inner()).get(id) {
            return c.clone();
        }
        self.playbooks.write().unwrap_or_else(|e| e.into_inner()).entry(id.to_string()).or_default().clone()
    }

    /// Every playbook a pass has counted, by id.
    pub fn playbooks(&self) -> Vec<(String, Arc<PlaybookCounters>)> {
        let map = self.playbooks.read().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Records that a pass (or a tick with nothing to evaluate) finished at `at`.
    pub fn pass_finished(&self, at: DateTime<Utc>) {
        self.last_pass_ms.store(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// When the last pass finished, by the daemon's clock.
    pub fn last_pass(&self) -> Option<DateTime<Utc>> {
        match self.last_pass_ms.load(Ordering::Relaxed) {
            NEVER => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_its_count_is_the_observations() {
        let h = Histogram::default();
        for ms in [5, 20, 20, 700_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative[0], (0.01, 1));
        assert_eq!(s.cumulative[1], (0.025, 3));
        assert_eq!(s.cumulative[PASS_BUCKETS.len() - 1], (600.0, 3));
        assert_eq!(s.cumulative.last(), Some(&(f64::INFINITY, 4)));
        assert!((s.sum_seconds - 700.045).abs() < 1e-9);
    }

    #[test]
    fn the_last_pass_is_none_until_one_finished() {
        let c = Counters::default();
        assert_eq!(c.last_pass(), None);
        let at = DateTime::parse_from_rfc3339("2026-11-30T08:00:01.250Z").unwrap().to_utc();
        c.pass_finished(at);
        assert_eq!(c.last_pass(), Some(at));
    }
}
