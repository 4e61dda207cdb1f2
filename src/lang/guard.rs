//! The blast-radius guard as CS Ops write it: `guard:` in `keel.yaml` (the default for
//! every guarded playbook) and in a playbook file (its own limits, or `guard: off`).
//!
//! A guard bounds how many accounts one pass may fire a playbook for — a number
//! (`max_firings`) and a share of the playbook's audience (`max_share: 10%`) — so an edit
//! that turns a condition true for the whole book, or a sync that zeroes the metric a
//! condition reads, is held for a person to look at instead of reaching every customer.
//! A playbook may also cap the customer-facing emails it sends per day
//! (`daily_email_cap`).
//!
//! Invariants: a share is a percentage between 0% and 100% (written with `%`, so `10`
//! cannot be misread as a fraction or a count); limits are at least 1. What a pass does
//! with the limits is decided in `decide::guard`.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer};
use serde::Deserialize;

pub use crate::model::thousands;

/// Below this many firings in a pass the share limit does not hold a playbook: on a
/// small book (or a pass over a handful of changed accounts) a few firings are a large
/// share without being a blast.
pub const SHARE_FLOOR: u64 = 20;

/// The default limits of the global guard.
pub const DEFAULT_MAX_FIRINGS: u64 = 500;
pub const DEFAULT_MAX_SHARE: Share = Share(0.10);

/// A share of an audience, from `"10%"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(pub f64);

impl Share {
    /// `"12.5%"` → 0.125; a number without `%`, or outside 0–100%, is refused.
    pub fn parse(text: &str) -> Result<Share, String> {
        let t = text.trim();
        let Some(number) = t.strip_suffix('%') else {
            return Err(format!("invalid share {text:?}: write it as a percentage of the audience, like \"10%\""));
        };
        let number = number.trim();
        // Digits with an optional decimal part, as the schema says: no `+5%`, `.5%`, `1e1%`.
        let plain = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let well_formed = match number.split_once('.') {
            Some((whole, frac)) => plain(whole) && plain(frac),
            None => plain(number),
        };
        if !well_formed {
            return Err(format!("invalid share {text:?}: expected a percentage like \"10%\" or \"2.5%\""));
        }
        match number.parse::<f64>() {
            Ok(p) if p.is_finite() && p > 0.0 && p <= 100.0 => Ok(Share(p / 100.0)),
            _ => Err(format!("invalid share {text:?}: expected a percentage above 0% and at most 100%, like \"10%\"")),
        }
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.0 * 100.0;
        if (p - p.round()).abs() < 1e-9 {
            write!(f, "{}%", p.round() as u64)
        } else {
            write!(f, "{p:.1}%")
        }
    }
}

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Share;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a percentage like \"10%\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Share, E> {
                Share::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Share, E> {
                Err(E::custom(format!("invalid share {v}: write it as a percentage of the audience, like \"{v}%\"")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Share, E> {
                Err(E::custom(format!("invalid share {v}: write it as a percentage of the audience, like \"10%\"")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Share, E> {
                Err(E::custom(format!("invalid share {v}: write it as a percentage of the audience, like \"10%\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A count of at least 1.
pub type Limit = std::num::NonZeroU64;

/// The limits of a guard as written: each optional (a playbook's own inherit the global
/// ones it does not set).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// At most this many accounts fired in one pass.
    pub max_firings: Option<Limit>,
    /// At most this share of the playbook's audience fired in one pass (`"10%"`).
    pub max_share: Option<Share>,
    /// At most this many customer-facing emails sent per day by the playbook (in the
    /// config's zone); the rest wait for the next day.
    pub daily_email_cap: Option<std::num::NonZeroU32>,
}

/// A playbook's `guard:`: `off`/`false` (never held), or its own limits.
#[derive(Debug, Clone, PartialEq)]
pub enum RawPlaybookGuard {
    Off,
    Limits(RawLimits),
}

impl<'de> Deserialize<'de> for RawPlaybookGuard {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawPlaybookGuard;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`off`, or limits like { max_firings: 200, max_share: \"10%\" }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::custom("`guard: true` says nothing: write `off`, or limits like { max_firings: 200 }"))
                } else {
                    Ok(RawPlaybookGuard::Off)
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v.trim() {
                    "off" => Ok(RawPlaybookGuard::Off),
                    other => Err(E::custom(format!(
                        "invalid guard {other:?}: expected `off`, or limits like {{ max_firings: 200 }}"
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawLimits::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawPlaybookGuard::Limits)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Share {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Share".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        crate::model::schema::pattern_string(
            "A percentage above 0% and at most 100%, with the % sign.",
            r"^\s*(?!0+(?:\.0+)?\s*%)(?:100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)\s*%\s*$",
            &["10%", "2.5%"],
        )
    }
}

/// `off` (or `false`), or `object`: the schema of a `guard:` that can be turned off.
pub fn off_or(object: Schema, what: &str) -> Schema {
    json_schema!({
        "description": what,
        "oneOf": [
            { "const": "off", "description": "No guard." },
            { "const": false, "description": "No guard." },
            object,
        ]
    })
}

impl JsonSchema for RawPlaybookGuard {
    fn schema_name() -> Cow<'static, str> {
        "PlaybookGuard".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let limits = generator.subschema_for::<RawLimits>();
        off_or(limits, "The blast-radius guard for this playbook: `off`, or its own limits over the config's `guard:`.")
    }
}

/// A playbook's guard setting, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum PlaybookGuard {
    /// The config's guard decides (it guards playbooks with customer-facing email by
    /// default).
    #[default]
    Inherit,
    /// Never held.
    Off,
    /// Guarded, with these limits over the config's.
    Limits(RawLimits),
}

impl From<Option<RawPlaybookGuard>> for PlaybookGuard {
    fn from(raw: Option<RawPlaybookGuard>) -> Self {
        match raw {
            None => PlaybookGuard::Inherit,
            Some(RawPlaybookGuard::Off) => PlaybookGuard::Off,
            Some(RawPlaybookGuard::Limits(l)) => PlaybookGuard::Limits(l),
        }
    }
}

/// The limits one pass of a playbook is held by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_firings: Option<u64>,
    pub max_share: Option<Share>,
}

impl Limits {
    /// Whether `fired` accounts of an `audience` exceed a limit.
    pub fn exceeded(&self, fired: u64, audience: u64) -> bool {
        let over_count = self.max_firings.is_some_and(|m| fired > m);
        let over_share = self.max_share.is_some_and(|s| fired > SHARE_FLOOR && fired as f64 > s.0 * audience as f64);
        over_count || over_share
    }

    /// The largest number of firings no limit holds, for an audience.
    pub fn allowed(&self, audience: u64) -> u64 {
        let share = self.max_share.map(|s| ((s.0 * audience as f64).floor() as u64).max(SHARE_FLOOR));
        match (self.max_firings, share) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(u64::MAX),
        }
    }

    /// The limits in words: `500 firings or 10% of the audience`.
    pub fn describe(&self) -> String {
        match (self.max_firings, self.max_share) {
            (Some(n), Some(s)) => format!("{} firings or {s} of the audience", thousands(n)),
            (Some(n), None) => format!("{} firings", thousands(n)),
            (None, Some(s)) => format!("{s} of the audience"),
            (None, None) => "none".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_percentages_and_nothing_else() {
        assert_eq!(Share::parse("10%").unwrap(), Share(0.10));
        assert_eq!(Share::parse(" 12.5 % ").unwrap().to_string(), "12.5%");
        assert_eq!(Share::parse("100%").unwrap().to_string(), "100%");
        for bad in ["10", "0%", "0.0%", "101%", "-5%", "+5%", ".5%", "1e1%", "abc%", "NaN%", "inf%", ""] {
            assert!(Share::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_pass_is_held_past_either_limit_and_the_share_only_past_the_floor() {
        let l = Limits { max_firings: Some(500), max_share: Some(Share(0.10)) };
        assert!(!l.exceeded(500, 100_000));
        assert!(l.exceeded(501, 100_000));
        // 92% of the audience, but under the floor: a small book's first pass.
        assert!(!l.exceeded(SHARE_FLOOR, 21));
        assert!(l.exceeded(SHARE_FLOOR + 1, 40));
        assert!(!l.exceeded(SHARE_FLOOR + 1, 1000));
        assert_eq!(l.allowed(1000), 100);
        assert_eq!(l.allowed(100), SHARE_FLOOR);
        assert_eq!(l.allowed(1_000_000), 500);
        assert_eq!(l.describe(), "500 firings or 10% of the audience");
        assert_eq!(thousands(38211), "38,211");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    proptest::proptest! {
        /// Whatever is written as a share or a guard, parsing answers (never panics),
        /// and a share it accepts is a fraction in (0, 1].
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,40}", yaml in "\\PC{0,80}") {
            if let Ok(Share(f)) = Share::parse(&text) {
                proptest::prop_assert!(f > 0.0 && f <= 1.0);
            }
            let _ = serde_yaml::from_str::<RawPlaybookGuard>(&yaml);
            let _ = serde_yaml::from_str::<RawPlaybookGuard>(&format!("{{ max_share: {text} }}"));
        }
    }

    #[test]
    fn a_playbook_guard_is_off_or_limits() {
        let g: RawPlaybookGuard = serde_yaml::from_str("off").unwrap();
        assert_eq!(g, RawPlaybookGuard::Off);
        let g: RawPlaybookGuard = serde_yaml::from_str("false").unwrap();
        assert_eq!(g, RawPlaybookGuard::Off);
        let g: RawPlaybookGuard = serde_yaml::from_str("{ max_firings: 50, max_share: 5% }").unwrap();
        assert_eq!(
            g,
            RawPlaybookGuard::Limits(RawLimits {
                max_firings: Limit::new(50),
                max_share: Some(Share(0.05)),
                daily_email_cap: None
            })
        );
        let e = serde_yaml::from_str::<RawPlaybookGuard>("{ max_firing: 50 }").unwrap_err().to_string();
        assert!(e.contains("unknown field `max_firing`"), "{e}");
        let e = serde_yaml::from_str::<RawPlaybookGuard>("{ max_share: 10 }").unwrap_err().to_string();
        assert!(e.contains("like \"10%\""), "{e}");
        assert!(serde_yaml::from_str::<RawPlaybookGuard>("true").is_err());
        assert!(serde_yaml::from_str::<RawPlaybookGuard>("{ max_firings: 0 }").is_err());
    }
}
