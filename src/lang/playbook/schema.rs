//! The JSON Schema of a playbook file (`keel schema`), derived from [`super::raw`], with
//! the schemas of the fields whose `Deserialize` is hand-written there: an expression
//! takes a boolean too (`condition: true`), a value to store a number or a boolean.
//!
//! Invariant: a file this schema refuses for shape is one the loader refuses too; what
//! only `keel check` can judge (Rhai, templates, durations in context) it leaves open.

use schemars::{json_schema, Schema, SchemaGenerator};

use super::raw::RawPlaybook;

/// The schema of one playbook file.
pub fn file_schema() -> Schema {
    crate::model::schema::root::<RawPlaybook>(
        "Keel playbook",
        "A playbook: who it applies to, what triggers it, and what it does (docs/playbooks.md).",
    )
}

/// A Rhai expression that is true or false, written as text (or `true` / `false`).
pub(super) fn opt_expression(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "boolean", "null"] })
}

/// A value to store: text, or a number or boolean taken as its text.
pub(super) fn scalar(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "number", "boolean"] })
}

/// `[+-]N` and a unit, as [`crate::lang::duration::Span::parse`] reads it.
const SPAN: &str = r"^\s*[+-]?[0-9]+[wdhm]\s*$";

/// An optional text matching `pattern`; `null` is absent.
fn opt_pattern(description: &str, pattern: &str, examples: &[&str]) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "description": description,
        "pattern": pattern,
        "examples": examples,
    })
}

/// A duration: a whole number and m (minutes), h, d or w (weeks).
pub(super) fn span(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "description": "A duration: a whole number and m (minutes), h, d or w (weeks).",
        "pattern": SPAN,
        "examples": ["0d", "3d", "2w"],
    })
}

pub(super) fn opt_span(_: &mut SchemaGenerator) -> Schema {
    opt_pattern("A duration: a whole number and m (minutes), h, d or w (weeks).", SPAN, &["3d", "12h", "2w"])
}

/// A date trigger's offset: negative is before the date.
pub(super) fn opt_offset(_: &mut SchemaGenerator) -> Schema {
    opt_pattern("A duration from the date: negative is before it (`-90d`).", SPAN, &["-90d", "0d"])
}

/// How late a date trigger may still fire: a duration, or `until_date`.
pub(super) fn opt_catch_up(_: &mut SchemaGenerator) -> Schema {
    opt_pattern(
        "How late it may still fire: a duration (default 7d), or `until_date`.",
        r"^\s*[+-]?[0-9]+[wdhm]\s*$|^until_date$",
        &["7d", "until_date"],
    )
}

/// A webhook's timeout: a delay as [`crate::lang::duration::parse_delay`] reads it.
pub(super) fn opt_delay(_: &mut SchemaGenerator) -> Schema {
    opt_pattern(
        "A positive delay: a whole number and ms, s, m, h or d.",
        r"^\s*[0-9]*[1-9][0-9]*(?:ms|s|m|h|d)\s*$",
        &["500ms", "10s", "1m"],
    )
}

/// A crontab expression: five fields, or six with seconds first.
pub(super) fn opt_cron(_: &mut SchemaGenerator) -> Schema {
    opt_pattern(
        "A crontab expression: minute hour day-of-month month day-of-week, with an optional leading seconds field.",
        r"^\s*\S+(?:\s+\S+){4,5}\s*$",
        &["0 8 * * 1", "0 * * * *"],
    )
}

/// A date trigger's field: `renewal_date`, `start_date` or `fields.<name>`.
pub(super) fn opt_date_field(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The account date the trigger counts from: renewal_date, start_date or fields.<name>.",
        "anyOf": [
            { "type": "string", "enum": ["renewal_date", "start_date"] },
            { "type": "string", "pattern": r"^fields\..+$", "examples": ["fields.trial_end"] },
            { "type": "null" },
        ],
    })
}

/// A schedule trigger's IANA zone.
pub(super) fn opt_timezone(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [generator.subschema_for::<crate::model::schema::TimeZone>(), { "type": "null" }],
    })
}
