//! Where "now" comes from. The daemon never reads the system clock directly: tests drive
//! it with a clock they set, and `--now` pins the start of a demo run.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

/// How often the daemon checks files for changes and the outbox for due work: the
/// longest either loop sleeps.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(1);

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Starts at a pinned instant and runs forward in real time: `keel run --now …` behaves
/// like a daemon started at that moment.
#[derive(Debug)]
pub struct OffsetClock {
    start: DateTime<Utc>,
    started: Instant,
}

impl OffsetClock {
    pub fn new(start: DateTime<Utc>) -> OffsetClock {
        OffsetClock { start, started: Instant::now() }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }
}

/// A clock that only moves when told to: tests pin "today" and step through days.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
