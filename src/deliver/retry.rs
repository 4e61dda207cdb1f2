//! What a failed attempt means, and when the next one comes.
//!
//! The contract: retry timeouts, connection errors, 5xx and 429 (honouring `Retry-After`);
//! never other 4xx. SMTP: 4xx replies are transient, 5xx permanent — classified here
//! explicitly, because lettre's `is_transient`/`is_permanent` are not complements (a
//! connection error is neither).

use std::time::Duration;

/// An attempt that did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt; `after` when the receiver said when (`Retry-After`).
    Transient { error: String, after: Option<Duration> },
    /// The receiver refused for good; `bounce` when it says the address does not exist
    /// (the address is then suppressed for customer mail).
    Permanent { error: String, bounce: bool },
}

impl Failure {
    pub fn transient(error: impl Into<String>) -> Failure {
        Failure::Transient { error: error.into(), after: None }
    }

    pub fn permanent(error: impl Into<String>) -> Failure {
        Failure::Permanent { error: error.into(), bounce: false }
    }

    pub fn error(&self) -> &str {
        match self {
            Failure::Transient { error, .. } | Failure::Permanent { error, .. } => error,
        }
    }
}

/// The delay before attempt `attempts + 1`, after `attempts` failed ones: `base` doubled
/// per attempt up to `max`, with "equal jitter" (half fixed, half spread) so entries that
/// failed together do not all come back in the same second. The spread is derived from
/// the entry's key and attempt, not a random source: reproducible in tests, and still
/// different for every entry.
pub fn backoff(base: Duration, max: Duration, attempts: u32, key: &str) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX)).min(max);
    let half = exp / 2;
    let spread = half.as_millis() as u64;
    if spread == 0 {
        return exp;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for b in key.bytes().chain(attempts.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    half + Duration::from_millis(h % (spread + 1))
}

/// `Retry-After` as seconds or an HTTP date, as a delay from `now`.
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_maximum() {
        let (base, max) = (Duration::from_secs(30), Duration::from_secs(3600));
        for attempts in 1..=12u32 {
            let full = (base * 2u32.pow(attempts.min(20) - 1)).min(max);
            let d = backoff(base, max, attempts, "k");
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?} not within [{:?}, {full:?}]", full / 2);
        }
        assert_eq!(backoff(base, max, 3, "k"), backoff(base, max, 3, "k"));
        let spread: std::collections::BTreeSet<_> = (0..50).map(|i| backoff(base, max, 4, &format!("k{i}"))).collect();
        assert!(spread.len() > 40, "entries failing together must come back at different times");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().to_utc();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Mon, 23 Nov 2026 10:01:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(retry_after("soon", now), None);
    }
}
