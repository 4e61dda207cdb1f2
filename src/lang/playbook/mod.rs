//! Playbooks: who they apply to, what triggers them, what they do.
//!
//! [`PlaybookSet::load`] reads every `*.yaml` in the playbooks folder and returns either a
//! fully validated set or *every* problem found, each a [`Diagnostic`](crate::diagnostic::Diagnostic) with
//! file:line:column: unknown keys, wrong types (`to: 5`), a trigger with no kind or two,
//! bad or negative durations, cron expressions that are invalid or never fire, Rhai syntax
//! errors mapped back to the YAML line, template syntax errors and unknown template
//! variables or fields ([`vars`]), texts over [`ONE_LINE_LIMIT`] / [`TEXT_LIMIT`], missing
//! email templates, duplicate ids. Webhook values reading an unset `${VAR}` are kept in
//! [`PlaybookSet::env_refs`]: the caller decides whether that is a warning or an error. Expressions and
//! templates are compiled here, once; evaluating an account compiles nothing.
//!
//! Limit: within one file, serde stops at the first *parse* error (a wrong type, an
//! unknown key); validation errors after a clean parse are all reported.
//!
//! By job: [`types`] holds the validated runtime types, `load` the file I/O (a folder,
//! email templates), `validate` the raw serde types (`raw`) into runtime types.

mod load;
mod raw;
mod schema;
pub mod types;
mod validate;
pub mod vars;

pub use schema::file_schema;
pub use types::*;
