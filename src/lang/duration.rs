//! Durations as CS Ops write them: `90d`, `3d`, `12h`, `30m`, `2w`, with a sign for date
//! offsets (`-90d` is ninety days before).

use std::fmt;

use chrono::Duration;

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

    /// Parses `[+-]N(w|d|h|m)`; the error says what is expected.
    pub fn parse(text: &str) -> Result<Span, String> {
        let s = text.trim();
        let (sign, body) = match s.as_bytes().first() {
            Some(b'-') => (-1, &s[1..]),
            Some(b'+') => (1, &s[1..]),
            _ => (1, s),
        };
        let bad = || format!("invalid duration {text:?}: expected a number and a unit, like 90d, 12h, 30m or 2w");
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
            return Err(format!("duration {text:?} is longer than ten years"));
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
pub fn parse_delay(text: &str) -> Result<std::time::Duration, String> {
    let s = text.trim();
    let bad = || format!("invalid delay {text:?}: expected a number and a unit, like 500ms, 30s, 5m or 1h");
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
        return Err(format!("{text:?} must be a positive delay"));
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
    }
}
