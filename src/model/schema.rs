//! JSON Schema pieces shared by the raw types of the files people write (`keel.yaml`,
//! playbooks, playbook tests), for `keel schema` and so for editors.
//!
//! Invariants:
//! - A schema says what the loader accepts *in shape*: a value it would refuse for shape
//!   (a time zone that is no IANA name) fails here too; what only the loader can judge
//!   (a Rhai expression, a cron day that never comes) is left to `keel check`. Text is
//!   text: a number where text is meant is flagged (the services layer's `schema` says why).
//! - Values of `keel.yaml` read through `${VAR}` expansion: any text holding a `${` is
//!   accepted as is, since only the environment can say what it becomes.
//! - Patterns are plain ECMA-262 and Python `re` alike: no lookaround, no flags.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// A pattern matching any text that holds an environment reference (`${VAR}`).
pub const ENV_REF: &str = r"\$\{";

/// A string schema: `pattern` anchored by the caller, a description and examples.
pub fn pattern_string(description: &str, pattern: impl AsRef<str>, examples: &[&str]) -> Schema {
    json_schema!({
        "type": "string",
        "description": description,
        "pattern": pattern.as_ref(),
        "examples": examples,
    })
}

/// `pattern` (a whole value, unanchored as written) or any text with a `${VAR}` in it.
pub fn expandable(pattern: &str) -> String {
    format!(r"^\s*(?:{pattern})\s*$|{ENV_REF}")
}

/// A pattern matching `word` in any mix of cases (`mon`, `Mon`, `MON`).
pub fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| match (c.to_ascii_lowercase(), c.to_ascii_uppercase()) {
            (l, u) if l != u => format!("[{l}{u}]"),
            _ => c.to_string(),
        })
        .collect()
}

/// An IANA time zone name, as `chrono-tz` knows them (`America/New_York`, `UTC`): the
/// full list, so an editor can complete one.
pub struct TimeZone;

impl JsonSchema for TimeZone {
    fn schema_name() -> Cow<'static, str> {
        "TimeZone".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        json_schema!({
            "type": "string",
            "description": "An IANA time zone name, like America/New_York or UTC.",
            "enum": names,
        })
    }
}

/// The root schema of one kind of file: JSON Schema draft 7 (what editors' YAML support
/// reads best), `T`'s definitions, and a title and description for the file.
pub fn root<T: JsonSchema>(title: &str, description: &str) -> Schema {
    let mut generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.root_schema_for::<T>();
    schema.insert("title".into(), title.into());
    schema.insert("description".into(), description.into());
    schema
}
