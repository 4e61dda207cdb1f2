//! Check: the config's rules, health model, playbooks and templates validated, with every
//! problem found (not just the first), each where it is.
//!
//! Invariants: errors and warnings are kept apart — a webhook value whose `${VAR}` is
//! unset in this environment is a warning here (the environment `keel run` starts in may
//! be another one), never an error; the report is whole whether or not loading failed.

use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::lang::Loaded;

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
