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
