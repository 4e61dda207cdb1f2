//! Check: the config's rules, health model, playbooks and templates validated, with every
//! problem found (not just the first), each where it is.
//!
//! Invariants: errors and warnings are kept apart — a webhook value whose `${VAR}` is
//! unset in this environment is a warning here (the environment `keel run` starts in may
//! be another one), never an error; the report is whole whether or not loading failed.
//!
//! A health input no source feeds is a warning at the model's line that reads it: the
//! category then scores `()` for every account and its weight goes to the others, which
//! nothing else would say. Judged only where it can be: with an accounts source
//! configured, and not for a JSON one (its rows may carry any `metrics`/`fields`).

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::lang::health::{HealthModel, BUILTIN_RULES};
use crate::lang::playbook::{Action, PlaybookSet};
use crate::lang::Loaded;
use crate::sync::mapping::{ColumnMap, FieldSet, Target};
use crate::sync::AccountField;

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
    /// How many of the warnings `keel run` refuses to start on (unset `${VAR}`s); the
    /// others (an unfed health input, an unreadable source file) it runs with.
    pub blocking: usize,
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
    let (mut report, loaded) = check_playbooks(config);
    if let Some(loaded) = &loaded {
        report.warnings.extend(unfed_inputs(config, &loaded.model, &loaded.set).into_iter().map(Problem));
    }
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
    // One diagnostic per mapped column the header lacks, at its key in keel.yaml.
    let missing = |column: &str, help: String| {
        let position =
            crate::diagnostic::yaml_key_position(text, &["sync", kind, "columns", column]).map(|(l, c, _)| (l, c));
        Diagnostic {
            file: config.file.clone(),
            position,
            key: Some(key.clone()),
            message: format!("mapped column {column:?} is not in the header row of {}", file.display()),
            snippet: None,
            help: Some(help),
        }
        .with_source(text)
    };
    for column in columns.absent_in(&headers) {
        warnings.push(missing(column, "a sync of this file sets nothing for it (fine for a partial export)".into()));
    }
    for (column, near) in columns.typos_in(&headers) {
        errors.push(missing(
            column,
            format!("did you mean {near:?}? (the file has a column of that name that nothing maps)"),
        ));
    }
}

/// The health model's inputs that no source feeds: no `sync.accounts.columns` entry maps
/// to it, no column of the configured accounts file maps itself to it, and no playbook's
/// `update` sets it. Without an accounts source in the config, or with a JSON one, or one
/// whose header cannot be read (already a warning), nothing is said: Keel cannot know.
/// `fields.<name>` is judged only against a file's header, since any column a config
/// leaves unmapped lands in `fields`.
fn unfed_inputs(config: &Config, model: &HealthModel, set: &PlaybookSet) -> Vec<Diagnostic> {
    let source = &config.sync.accounts;
    let columns = &source.spec.columns;
    if source.file.is_none() && columns.is_empty() {
        return Vec::new();
    }
    let headers = match source.file.as_deref().map(crate::sync::csv_header) {
        None => None,
        Some(Ok(Some(headers))) => Some(headers),
        Some(Ok(None) | Err(_)) => return Vec::new(),
    };
    let updated: Vec<&str> = set
        .playbooks
        .iter()
        .flat_map(|p| p.steps.iter().flat_map(|s| &s.actions))
        .filter_map(|a| match a {
            Action::Update { field, .. } => Some(field.as_str()),
            _ => None,
        })
        .collect();
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let mut said: Vec<&str> = Vec::new();
    for category in model.categories() {
        for input in model.inputs(category) {
            // Once per input, where the first category reading it reads it.
            if said.contains(&input.path.as_str()) {
                continue;
            }
            let target = match input.parts() {
                ("metrics", name) => Target::<AccountField>::Metric(name.to_string()),
                (_, name) if headers.is_some() => Target::Extra(name.to_string()),
                _ => continue,
            };
            if columns.feeds(&target, headers.as_deref()) || updated.contains(&input.path.as_str()) {
                continue;
            }
            said.push(&input.path);
            let header = match &source.file {
                Some(file) => format!(", and {} has no column that maps itself to it", file.display()),
                None => String::new(),
            };
            let text = crate::diagnostic::read_source(&input.file).unwrap_or_else(|_| {
                if input.file.ends_with("health.rhai") {
                    BUILTIN_RULES.to_string()
                } else {
                    String::new()
                }
            });
            warnings.push(
                Diagnostic {
                    file: input.file.clone(),
                    position: Some((input.line, input.column)),
                    key: None,
                    message: format!(
                        "health input {} (category {category:?}) is mapped by no source: no sync.accounts.columns \
                         entry maps to it{header}",
                        input.path
                    ),
                    snippet: None,
                    help: Some(format!(
                        "map the column that carries it in {} (e.g. \"Column Name\": {}); until then the category \
                         scores without it for every account",
                        config.file.display(),
                        input.path
                    )),
                }
                .with_source(&text),
            );
        }
    }
    warnings
}

fn check_playbooks(config: &Config) -> (CheckReport, Option<Loaded>) {
    let problems = |ds: Vec<Diagnostic>| ds.into_iter().map(Problem).collect();
    match config.load_playbooks() {
        Ok(loaded) => {
            let Loaded { model, set, .. } = &loaded;
            let report = CheckReport {
                config: config.file.clone(),
                loaded: Some(Loadout {
                    health_model: model.file.clone(),
                    playbooks: set.playbooks.len(),
                    enabled: set.playbooks.iter().filter(|p| p.enabled).count(),
                    email_templates: set.emails.len(),
                }),
                errors: Vec::new(),
                warnings: problems(set.unset_environment()),
                blocking: set.unset_environment().len(),
            };
            (report, Some(loaded))
        }
        Err(errors) => (
            CheckReport {
                config: config.file.clone(),
                loaded: None,
                errors: problems(errors),
                warnings: Vec::new(),
                blocking: 0,
            },
            None,
        ),
    }
}
