//! Durations as CS Ops write them: `90d`, `3d`, `12h`, `30m`, `2w`, with a sign for date
//! offsets (`-90d` is ninety days before).

use std::fmt;

use chrono::Duration;

/// Why a duration like `90d` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// Not `[+-]N(w|d|h|m)`; the field is the text as written.
    #[error("invalid duration {0:?}: expected a number and a unit, like 90d, 12h, 30m or 2w")]
    Invalid(String),
    #[error("duration {0:?} is longer than ten years")]
    TooLong(String),
}

/// Why a delay like `30s` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelayError {
    /// Not `N(ms|s|m|h|d)`, or too long to count in milliseconds.
    #[error("invalid delay {0:?}: expected a number and a unit, like 500ms, 30s, 5m or 1h")]
    Invalid(String),
    #[error("{0:?} must be a positive delay")]
    Zero(String),
}

/// A signed span of whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(i64);

impl Span {
    pub fn minutes(self) -> i64 {
        self.0
    }

    pub fn to_chrono(self) -> Duration {
        Duration::minutes(self.0)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Parses `[+-]N(w|d|h|m)`.
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        let s = text.trim();
        let (sign, body) = match s.as_bytes().first() {
            Some(b'-') => (-1, &s[1..]),
            Some(b'+') => (1, &s[1..]),
            _ => (1, s),
        };
        let bad = || SpanError::Invalid(text.to_string());
        let unit = body.chars().last().ok_or_else(bad)?;
        let per = match unit {
            'w' => 7 * 24 * 60,
            'd' => 24 * 60,
            'h' => 60,
            'm' => 1,
            _ => return Err(bad()),
        };
        let n: i64 = body[..body.len() - 1].parse().map_err(|_| bad())?;
        if n > 3660 * 24 * 60 / per {
            return Err(SpanError::TooLong(text.to_string()));
        }
        Ok(Span(sign * n * per))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, m) = if self.0 < 0 { ("-", -self.0) } else { ("", self.0) };
        match m {
            m if m % (24 * 60) == 0 => write!(f, "{sign}{}d", m / (24 * 60)),
            m if m % 60 == 0 => write!(f, "{sign}{}h", m / 60),
            m => write!(f, "{sign}{m}m"),
        }
    }
}

/// A delay for delivery settings (retries, timeouts): `500ms`, `30s`, `5m`, `2h`, `1d`.
pub fn parse_delay(text: &str) -> Result<std::time::Duration, DelayError> {
    let s = text.trim();
    let bad = || DelayError::Invalid(text.to_string());
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(DelayError::Zero(text.to_string()));
    }
    n.checked_mul(ms).map(std::time::Duration::from_millis).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_read_as_written() {
        assert_eq!(parse_delay("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_delay("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_delay("2h").unwrap().as_secs(), 7200);
        for bad in ["", "s", "30", "0s", "1.5s", "3y", "-1s"] {
            assert!(parse_delay(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(parse_delay("0s"), Err(DelayError::Zero("0s".into())));
        assert_eq!(parse_delay("0s").unwrap_err().to_string(), "\"0s\" must be a positive delay");
        assert_eq!(
            parse_delay("3y").unwrap_err().to_string(),
            "invalid delay \"3y\": expected a number and a unit, like 500ms, 30s, 5m or 1h"
        );
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(Span::parse("90d").unwrap().minutes(), 90 * 24 * 60);
        assert_eq!(Span::parse("-90d").unwrap().to_string(), "-90d");
        assert_eq!(Span::parse("12h").unwrap().to_string(), "12h");
        assert_eq!(Span::parse("2w").unwrap().to_string(), "14d");
        assert_eq!(Span::parse(" 30m ").unwrap().minutes(), 30);
        for bad in ["", "d", "90", "90 days", "1.5d", "3y", "-", "99999d"] {
            assert!(Span::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(Span::parse("99999d"), Err(SpanError::TooLong("99999d".into())));
        assert_eq!(Span::parse("99999d").unwrap_err().to_string(), "duration \"99999d\" is longer than ten years");
        assert_eq!(
            Span::parse("90 days").unwrap_err().to_string(),
            "invalid duration \"90 days\": expected a number and a unit, like 90d, 12h, 30m or 2w"
        );
    }
}
