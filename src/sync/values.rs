//! Turning one source cell into a typed value, with an error a CS Ops person can act on
//! ("invalid date \"2026-13-01\": expected YYYY-MM-DD").
//!
//! An empty cell (or JSON `null`) means "this row does not carry the field": the caller
//! skips it, so a partial export never blanks out what another source set.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Number, Value};

/// Why a cell does not hold the value its field takes. The message quotes the cell as
/// the source wrote it and says what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// A JSON value that is not text, a number or a boolean; the field is its kind.
    #[error("expected text, found {0}")]
    NotText(&'static str),
    #[error("number {0} is out of range")]
    OutOfRange(Number),
    /// A JSON value that is not a number; the field is its kind.
    #[error("expected a number, found {0}")]
    NotANumber(&'static str),
    #[error("expected a number, found {0:?}")]
    NotNumberText(String),
    /// Commas that do not group thousands: most likely a decimal comma.
    #[error("expected a number, found {0:?} (use '.' for decimals; ',' only between groups of three digits)")]
    BadSeparators(String),
    #[error("expected a finite number, found {0}")]
    NotFinite(f64),
    /// Text that matches none of the column's `date_format`s, nor ISO. `formats` is the
    /// list as the config wrote it, quoted.
    #[error("invalid date {text:?}: expected {formats} or YYYY-MM-DD")]
    DateFormat { text: String, formats: String },
    #[error("invalid date {0:?}: expected YYYY-MM-DD (or set date_format for this source or column)")]
    Date(String),
    #[error("invalid timestamp {0:?}: expected RFC 3339, like 2026-11-20T14:03:11Z")]
    Timestamp(String),
    #[error("expected true/false (or yes/no, 1/0), found {0:?}")]
    Boolean(String),
    #[error("unknown time zone {0:?}: expected an IANA name like America/New_York")]
    TimeZone(String),
    #[error("invalid email address {0:?}")]
    Email(String),
}

/// One cell of a row, from CSV (text) or JSON (any JSON value).
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl Cell<'_> {
    /// True when the cell carries nothing (blank text, JSON null).
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Text(s) => s.trim().is_empty(),
            Cell::Json(Value::Null) => true,
            Cell::Json(Value::String(s)) => s.trim().is_empty(),
            Cell::Json(_) => false,
        }
    }

    /// The cell as trimmed text; JSON numbers and booleans are taken as written.
    pub fn text(&self) -> Result<String, ValueError> {
        match self {
            Cell::Text(s) => Ok(s.trim().to_string()),
            Cell::Json(Value::String(s)) => Ok(s.trim().to_string()),
            Cell::Json(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
            Cell::Json(v) => Err(ValueError::NotText(json_kind(v))),
        }
    }

    /// The cell as JSON, for open `fields`/`properties`: CSV text stays text.
    pub fn to_json(self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.trim().to_string()),
            Cell::Json(v) => v.clone(),
        }
    }

    /// A finite number. Text may carry a currency sign and thousands separators as CRM
    /// exports write them (`$120,000.50`); separators must group by three, so a decimal
    /// comma (`1234,56`) is an error rather than a number a thousand times too large.
    pub fn number(&self) -> Result<f64, ValueError> {
        let parsed = match self {
            Cell::Json(Value::Number(n)) => n.as_f64().ok_or_else(|| ValueError::OutOfRange(n.clone()))?,
            Cell::Json(Value::String(s)) => parse_number_text(s)?,
            Cell::Text(s) => parse_number_text(s)?,
            Cell::Json(v) => return Err(ValueError::NotANumber(json_kind(v))),
        };
        if parsed.is_finite() {
            Ok(parsed)
        } else {
            Err(ValueError::NotFinite(parsed))
        }
    }

    /// A calendar date: the column's (or source's) `date_format`s tried in the order
    /// written, then `YYYY-MM-DD` (or an RFC 3339 timestamp, whose date is taken), which is
    /// always accepted: an export often mixes ISO columns with one US-formatted column.
    pub fn date(&self, formats: &[String]) -> Result<NaiveDate, ValueError> {
        let s = self.text()?;
        if let Some(d) = formats.iter().find_map(|f| NaiveDate::parse_from_str(&s, f).ok()) {
            return Ok(d);
        }
        if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            return Ok(d);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
            return Ok(t.date_naive());
        }
        if formats.is_empty() {
            return Err(ValueError::Date(s));
        }
        let quoted: Vec<String> = formats.iter().map(|f| format!("{f:?}")).collect();
        let formats = match quoted.len() {
            1 => format!("the format {}", quoted[0]),
            _ => format!("one of the formats {}", quoted.join(", ")),
        };
        Err(ValueError::DateFormat { text: s, formats })
    }

    /// An instant: RFC 3339 (`2026-11-20T14:03:11Z`, any offset), `YYYY-MM-DD HH:MM:SS`
    /// taken as UTC, or a bare date at 00:00 UTC.
    pub fn timestamp(&self) -> Result<DateTime<Utc>, ValueError> {
        let s = self.text()?;
        if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
            return Ok(t.with_timezone(&Utc));
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(&s, format) {
                return Ok(t.and_utc());
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
        }
        Err(ValueError::Timestamp(s))
    }

    /// A yes/no flag as CRMs export them: true/false, yes/no, y/n, 1/0.
    pub fn boolean(&self) -> Result<bool, ValueError> {
        if let Cell::Json(Value::Bool(b)) = self {
            return Ok(*b);
        }
        let s = self.text()?;
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "t" => Ok(true),
            "false" | "no" | "n" | "0" | "f" => Ok(false),
            _ => Err(ValueError::Boolean(s)),
        }
    }

    /// An IANA time zone name (`Europe/Berlin`).
    pub fn timezone(&self) -> Result<Tz, ValueError> {
        let s = self.text()?;
        s.parse::<Tz>().map_err(|_| ValueError::TimeZone(s))
    }

    /// An email address: one `@` with text on both sides, no spaces or control characters
    /// (addresses end up in mail headers, so anything that could break a header is refused).
    pub fn email(&self) -> Result<String, ValueError> {
        let s = self.text()?;
        let ok = match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !s
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
            }
            None => false,
        };
        if ok {
            Ok(s)
        } else {
            Err(ValueError::Email(s))
        }
    }
}

/// Why a `date_format` cannot read dates: an unknown `%` specifier, or a format that does
/// not carry a whole date (`"%m/%Y"`, `"%H:%M"`), which would reject every cell. Checked
/// by formatting a sample date and reading it back.
pub fn check_date_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(format!(
            "invalid date format {format:?}: use strftime specifiers like \"%m/%d/%Y\" or \"%d.%m.%Y\""
        ));
    }
    let sample = NaiveDate::from_ymd_opt(2026, 11, 23).expect("a real date");
    let mut text = String::new();
    // A specifier a date cannot fill (`%z`, `%H`) fails to format instead of panicking.
    let formatted = std::fmt::Write::write_fmt(&mut text, format_args!("{}", sample.format(format)));
    match formatted.ok().and_then(|()| NaiveDate::parse_from_str(&text, format).ok()) {
        Some(d) if d == sample => Ok(()),
        _ => Err(format!(
            "date format {format:?} does not give a whole date (it needs a year, a month and a day, like \"%m/%d/%Y\")"
        )),
    }
}

fn parse_number_text(raw: &str) -> Result<f64, ValueError> {
    let s = raw.trim();
    let unsigned = s.strip_prefix('-');
    let (negative, body) = match unsigned {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = body.trim_start_matches(['$', '€', '£']).trim();
    let bad = || ValueError::NotNumberText(raw.to_string());
    let digits: std::borrow::Cow<str> = if body.contains(',') {
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        let mut groups = int.split(',');
        let first = groups.next().unwrap_or("");
        if first.is_empty() || first.len() > 3 || !groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ValueError::BadSeparators(raw.to_string()));
        }
        let mut s = int.replace(',', "");
        if let Some(f) = frac {
            s.push('.');
            s.push_str(f);
        }
        s.into()
    } else {
        body.into()
    };
    // Refuse what Rust's parser would accept but no spreadsheet means: inf, nan, 1e400.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return Err(bad());
    }
    let value: f64 = digits.parse().map_err(|_| bad())?;
    Ok(if negative { -value } else { value })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_crms_export_them() {
        for (raw, want) in
            [("120000", 120000.0), ("$120,000.50", 120000.5), ("-1,234", -1234.0), (" 0.25 ", 0.25), ("€9", 9.0)]
        {
            assert_eq!(Cell::Text(raw).number(), Ok(want), "{raw:?}");
        }
        assert_eq!(Cell::Text("1234,56").number(), Err(ValueError::BadSeparators("1234,56".into())));
        assert_eq!(
            Cell::Text("1234,56").number().unwrap_err().to_string(),
            "expected a number, found \"1234,56\" (use '.' for decimals; ',' only between groups of three digits)"
        );
        assert_eq!(Cell::Text("1e400").number(), Err(ValueError::NotFinite(f64::INFINITY)));
        for raw in ["1234,56", "12,34", "abc", "inf", "NaN", "1e400", "$", "1.2.3"] {
            assert!(Cell::Text(raw).number().is_err(), "{raw:?} should be rejected");
        }
        assert_eq!(Cell::Json(&Value::from(42)).number(), Ok(42.0));
        assert!(Cell::Json(&Value::Bool(true)).number().is_err());
    }

    #[test]
    fn dates_try_each_format_in_order_and_always_accept_iso() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
        let us = ["%m/%d/%Y".to_string()];
        let both = ["%m/%d/%Y".to_string(), "%d.%m.%Y".to_string()];
        assert_eq!(Cell::Text("2026-03-04").date(&[]), Ok(d));
        assert_eq!(Cell::Text("2026-03-04T10:00:00+02:00").date(&[]), Ok(d));
        assert_eq!(Cell::Text("03/04/2026").date(&us), Ok(d));
        assert_eq!(Cell::Text("2026-03-04").date(&us), Ok(d), "ISO is accepted whatever the formats");
        assert_eq!(Cell::Text("04.03.2026").date(&both), Ok(d));
        let err = Cell::Text("2026-13-01").date(&[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid date \"2026-13-01\": expected YYYY-MM-DD (or set date_format for this source or column)"
        );
        assert_eq!(
            Cell::Text("04.03.2026").date(&us).unwrap_err().to_string(),
            "invalid date \"04.03.2026\": expected the format \"%m/%d/%Y\" or YYYY-MM-DD"
        );
        assert_eq!(
            Cell::Text("March 4").date(&both).unwrap_err().to_string(),
            "invalid date \"March 4\": expected one of the formats \"%m/%d/%Y\", \"%d.%m.%Y\" or YYYY-MM-DD"
        );
    }

    #[test]
    fn emails_that_could_break_a_header_are_refused() {
        assert_eq!(Cell::Text(" ana@acme.example ").email(), Ok("ana@acme.example".into()));
        for raw in [
            "ana",
            "ana@",
            "@acme.example",
            "ana@acme",
            "a b@acme.example",
            "ana@acme.example\r\nBcc: x@y.z",
            "ana@acme.example, evil@x.example",
        ] {
            assert!(Cell::Text(raw).email().is_err(), "{raw:?} should be rejected");
        }
    }

    #[test]
    fn booleans_and_timestamps() {
        assert_eq!(Cell::Text("Yes").boolean(), Ok(true));
        assert_eq!(Cell::Text("0").boolean(), Ok(false));
        assert!(Cell::Text("maybe").boolean().is_err());
        let t = Cell::Text("2026-11-20T14:03:11+01:00").timestamp().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-20T13:03:11+00:00");
        assert!(Cell::Text("yesterday").timestamp().is_err());
    }
}
