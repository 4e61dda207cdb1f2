//! JSON Schemas of the config's checked values ([`super::raw`]'s newtypes), for `keel
//! schema`. Each says in a pattern or bounds what its `Deserialize` accepts in shape, with
//! an example, so an editor flags `backoff: 30 seconds` as the loader would.
//!
//! Invariant: every value read through [`Expanded`] also accepts any text with a `${`
//! (see [`crate::model::schema::expandable`]); a [`Secret`] accepts only such text.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::raw::{
    Cron, CurrencyCode, Day, DelayText, EmailDateFormat, Expanded, Instant, Listen, PropertyName, Secret, SpanText,
    TimeOfDay, TzName, Within,
};
use crate::model::schema::{any_case, expandable, pattern_string, TimeZone, ENV_REF};

/// Implements `JsonSchema` for a newtype as an inlined string schema.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $description:expr, $pattern:expr, [$($example:literal),*]) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                pattern_string($description, $pattern, &[$($example),*])
            }
        }
    };
}

string_schema!(
    Instant,
    "Instant",
    "An RFC 3339 instant with a zone offset.",
    expandable(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"),
    ["2026-11-23T08:30:00-05:00"]
);

string_schema!(
    DelayText,
    "Delay",
    "A positive delay: a whole number and ms, s, m, h or d.",
    expandable(r"[0-9]*[1-9][0-9]*(?:ms|s|m|h|d)"),
    ["500ms", "30s", "5m", "1h"]
);

string_schema!(
    SpanText,
    "Duration",
    "A positive duration: a whole number and m (minutes), h, d or w (weeks), at most ten years.",
    expandable(r"\+?[0-9]*[1-9][0-9]*[mhdw]"),
    ["90s", "5m", "2h", "7d"]
);

string_schema!(
    TimeOfDay,
    "TimeOfDay",
    "A time of day, HH:MM (quote it: \"20:00\").",
    expandable(r"(?:[01]?[0-9]|2[0-3]):[0-5][0-9]"),
    ["20:00", "08:00"]
);

string_schema!(
    Cron,
    "Cron",
    "A crontab expression: minute hour day-of-month month day-of-week, with an optional leading seconds field.",
    expandable(r"\S+(?:\s+\S+){4,5}"),
    ["0 * * * *", "0 9 * * mon-fri"]
);

string_schema!(PropertyName, "PropertyName", "A non-empty property name.", r"\S", ["accountId"]);

string_schema!(
    CurrencyCode,
    "CurrencyCode",
    "An ISO 4217 currency code (three letters).",
    expandable("[A-Za-z]{3}"),
    ["USD", "EUR"]
);

string_schema!(
    EmailDateFormat,
    "EmailDateFormat",
    "A strftime format that prints a date, for templates' `date` filter.",
    format!("%|{ENV_REF}"),
    ["%B %-d, %Y", "%Y-%m-%d"]
);

string_schema!(
    Listen,
    "Listen",
    "An IP address and port to listen on.",
    expandable(r"(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}"),
    ["127.0.0.1:7400", "0.0.0.0:7400"]
);

string_schema!(
    Secret,
    "Secret",
    "A credential, only from the environment: `${VAR}` (a value typed into the file is refused).",
    ENV_REF,
    ["${KEEL_API_TOKEN}", "${KEEL_SMTP_PASSWORD:-}"]
);

impl JsonSchema for Expanded {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Expanded".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

impl JsonSchema for Day {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Day".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let days = [
            ("mon", "day"),
            ("tue", "sday"),
            ("wed", "nesday"),
            ("thu", "rsday"),
            ("fri", "day"),
            ("sat", "urday"),
            ("sun", "day"),
        ];
        let alternatives: Vec<String> =
            days.iter().map(|(short, rest)| format!("{}(?:{})?", any_case(short), any_case(rest))).collect();
        pattern_string(
            "A weekday: mon, tue, wed, thu, fri, sat or sun.",
            expandable(&alternatives.join("|")),
            &["mon", "fri"],
        )
    }
}

impl JsonSchema for TzName {
    fn schema_name() -> Cow<'static, str> {
        "TimeZoneSetting".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                generator.subschema_for::<TimeZone>(),
                { "type": "string", "pattern": ENV_REF },
            ],
        })
    }
}

impl<const MIN: usize, const MAX: usize> JsonSchema for Within<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Within_{MIN}_{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
    }
}

/// The schema of `keel.yaml`.
pub fn file_schema() -> Schema {
    crate::model::schema::root::<super::raw::RawConfig>(
        "Keel config (keel.yaml)",
        "Where the store, playbooks and rules are, the default time zone, how source columns map to fields, \
         and the email, delivery and API settings. `${VAR}` and `${VAR:-default}` read the environment.",
    )
}
