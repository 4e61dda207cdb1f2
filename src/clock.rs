//! Where "now" comes from. The daemon never reads the system clock directly: tests drive
//! it with a clock they set, `--now` pins the start of a demo run, and a config's
//! `clock.start` ([`BookClock`]) pins a demo book's clock across commands.
//!
//! Invariant: a [`BookClock`] never runs backwards between commands over the same data
//! folder: each reads `start` plus the real time since the first one, so what the store
//! recorded is never in its future.

use std::path::{Path, PathBuf};
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

/// The clock of a book whose data is fixed files (the sample book, made for one day): it
/// reads `start` the first time a command opens the store over its data folder, which
/// writes down the real instant in `file`; every later command reads `start` plus the
/// real time since. So a fresh copy's first run is at `start` on any date, and a run a
/// day later is a day later for the book too (deferred mail goes out, the ledger keeps
/// anything from being decided twice). A new store starts it over ([`Self::forget`]).
#[derive(Debug, Clone)]
pub struct BookClock {
    pub start: DateTime<Utc>,
    pub file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BookClockError {
    #[error("cannot read the clock's start record {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the clock's start record {} is not an RFC 3339 instant ({text:?}); remove it to start the clock again at clock.start", path.display())]
    Damaged { path: PathBuf, text: String },
    #[error("cannot write the clock's start record {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl BookClock {
    /// "Now" on this clock when the machine's clock reads `real`: `start` before the
    /// clock was started over the folder, else `start` plus the real time since (never
    /// less than `start`, should the machine's clock be set back).
    pub fn now(&self, real: DateTime<Utc>) -> Result<DateTime<Utc>, BookClockError> {
        Ok(match self.started()? {
            None => self.start,
            Some(started) => self.start + (real - started).max(Duration::zero()),
        })
    }

    /// Records `real` as the instant the clock read `start`, unless it was started
    /// already: called when a command opens the store, the moment the book's time begins.
    pub fn start_at(&self, real: DateTime<Utc>) -> Result<(), BookClockError> {
        if self.started()?.is_some() {
            return Ok(());
        }
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, format!("{}\n", real.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        };
        write(&self.file).map_err(|source| BookClockError::Write { path: self.file.clone(), source })
    }

    /// Forgets when the clock was started: for a store that does not exist yet, whose
    /// book's time has not begun (a record left by a removed store must not age it).
    pub fn forget(&self) -> Result<(), BookClockError> {
        match std::fs::remove_file(&self.file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(BookClockError::Write { path: self.file.clone(), source: e })
            }
            _ => Ok(()),
        }
    }

    fn started(&self) -> Result<Option<DateTime<Utc>>, BookClockError> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(BookClockError::Read { path: self.file.clone(), source }),
        };
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Some(t.to_utc()))
            .map_err(|_| BookClockError::Damaged { path: self.file.clone(), text: text.trim().to_string() })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_book_clock_starts_at_start_then_runs_on_in_real_time_and_never_back() {
        let dir = tempfile::tempdir().unwrap();
        let clock = BookClock { start: at("2026-11-23T13:30:00Z"), file: dir.path().join("data/clock-started") };
        // Not started: any real date reads `start`, and nothing is written.
        assert_eq!(clock.now(at("2030-01-01T00:00:00Z")).unwrap(), clock.start);
        assert!(!clock.file.exists());
        clock.start_at(at("2026-12-02T07:00:00Z")).unwrap();
        // Started again later: the first start stands.
        clock.start_at(at("2026-12-05T07:00:00Z")).unwrap();
        assert_eq!(clock.now(at("2026-12-03T07:00:01Z")).unwrap(), at("2026-11-24T13:30:01Z"));
        // The machine's clock set back: the book's clock does not go before `start`.
        assert_eq!(clock.now(at("2026-12-01T00:00:00Z")).unwrap(), clock.start);
        clock.forget().unwrap();
        assert_eq!(clock.now(at("2026-12-03T07:00:01Z")).unwrap(), clock.start);
        clock.forget().unwrap();
        std::fs::write(&clock.file, "yesterday\n").unwrap();
        let err = clock.now(at("2026-12-03T07:00:00Z")).unwrap_err().to_string();
        assert!(err.contains("is not an RFC 3339 instant (\"yesterday\"); remove it"), "{err}");
    }
}
