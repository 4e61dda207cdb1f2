//! Check: the config's rules, health model, playbooks and templates validated, with every
//! problem found (not just the first), each where it is.
//!
//! Invariants: errors and warnings are kept apart — a webhook value whose `${VAR}` is
//! unset in this environment is a warning here (the environment `keel run` starts in may
//! be another one), never an error; the report is whole whether or not loading failed.

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::lang::Loaded;
use crate::sync::mapping::{ColumnMap, FieldSet};

/// A problem in a user's file. Serialised as its parts (file, line, column, key,
/// message, help); the [`Diagnostic`] itself renders with its source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub Diagnostic);

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Parts<'a> {
            file: &'a std::path::Path,
            line: Option<usize>,
            column: Option<usize>,
            key: Option<&'a str>,
            message: &'a str,
            help: Option<&'a str>,
        }
        let d = &self.0;
        Parts {
            file: &d.file,
            line: d.position.map(|p| p.0),
            column: d.position.map(|p| p.1),
            key: d.key.as_deref(),
            message: &d.message,
            help: d.help.as_deref(),
        }
        .serialize(s)
    }
}

/// What loaded, when everything did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loadout {
    pub health_model: PathBuf,
    pub playbooks: usize,
    pub enabled: usize,
    pub email_templates: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub config: PathBuf,
    /// `None` when there are errors.
    pub loaded: Option<Loadout>,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors, to render with their source lines.
    pub fn error_diagnostics(&self) -> Vec<Diagnostic> {
        self.errors.iter().map(|p| p.0.clone()).collect()
    }
}

/// Validates what `config` names (the config itself was validated loading it).
pub fn check(config: &Config) -> CheckReport {
    let mut report = check_playbooks(config);
    let (errors, warnings) = check_sources(config);
    if !errors.is_empty() {
        report.loaded = None;
    }
    report.errors.extend(errors.into_iter().map(Problem));
    report.warnings.extend(warnings.into_iter().map(Problem));
    report
}

/// The configured source files' headers against their column mappings: a mapping typo
/// (see [`ColumnMap::typos_in`]) is an error at the mapping's key in the config, as a
/// sync of that file would stop on it. A file that cannot be read is a warning: the
/// export may not have been dropped yet.
fn check_sources(config: &Config) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let text = crate::diagnostic::read_source(&config.file).unwrap_or_default();
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let s = &config.sync;
    source_typos(
        "accounts",
        s.accounts.file.as_deref(),
        &s.accounts.spec.columns,
        config,
        &text,
        &mut errors,
        &mut warnings,
    );
    source_typos(
        "contacts",
        s.contacts.file.as_deref(),
        &s.contacts.spec.columns,
        config,
        &text,
        &mut errors,
        &mut warnings,
    );
    source_typos("events", s.events.file.as_deref(), &s.events.spec.columns, config, &text, &mut errors, &mut warnings);
    (errors, warnings)
}

fn source_typos<F: FieldSet>(
    kind: &str,
    file: Option<&Path>,
    columns: &ColumnMap<F>,
    config: &Config,
    text: &str,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    let Some(file) = file else { return };
    let key = format!("sync.{kind}.columns");
    let headers = match crate::sync::csv_header(file) {
        Ok(Some(headers)) => headers,
        Ok(None) => return,
        Err(e) => {
            warnings.push(
                Diagnostic {
                    file: config.file.clone(),
                    position: crate::diagnostic::yaml_key_position(text, &["sync", kind, "file"])
                        .map(|(l, c, _)| (l, c)),
                    key: Some(format!("sync.{kind}.file")),
                    message: format!("{e}; its header was not checked against the mapping"),
                    snippet: None,
                    help: None,
                }
                .with_source(text),
            );
            return;
        }
    };
    for column in columns.absent_in(&headers) {
        let position =
            crate::diagnostic::yaml_key_position(text, &["sync", kind, "columns", column]).map(|(l, c, _)| (l, c));
        warnings.push(
            Diagnostic {
                file: config.file.clone(),
                position,
                key: Some(key.clone()),
                message: format!("mapped column {column:?} is not in the header row of {}", file.display()),
                snippet: None,
                help: Some("a sync of this file sets nothing for it (fine for a partial export)".into()),
            }
            .with_source(text),
        );
    }
    for (column, near) in columns.typos_in(&headers) {
        let position =
            crate::diagnostic::yaml_key_position(text, &["sync", kind, "columns", column]).map(|(l, c, _)| (l, c));
        errors.push(
            Diagnostic {
                file: config.file.clone(),
                position,
                key: Some(key.clone()),
                message: format!("mapped column {column:?} is not in the header row of {}", file.display()),
                snippet: None,
                help: Some(format!("did you mean {near:?}? (the file has a column of that name that nothing maps)")),
            }
            .with_source(text),
        );
    }
}

fn check_playbooks(config: &Config) -> CheckReport {
    let problems = |ds: Vec<Diagnostic>| ds.into_iter().map(Problem).collect();
    match config.load_playbooks() {
        Ok(Loaded { model, set, .. }) => CheckReport {
            config: config.file.clone(),
            loaded: Some(Loadout {
                health_model: model.file.clone(),
                playbooks: set.playbooks.len(),
                enabled: set.playbooks.iter().filter(|p| p.enabled).count(),
                email_templates: set.emails.len(),
            }),
            errors: Vec::new(),
            warnings: problems(set.unset_environment()),
        },
        Err(errors) => {
            CheckReport { config: config.file.clone(), loaded: None, errors: problems(errors), warnings: Vec::new() }
        }
    }
}
