//! `keel check`: validate the config, the health model, every rule, playbook and template,
//! and report *every* problem at once, each with file:line:column.

use std::io::{self, Write};
use std::process::ExitCode;

use super::Session;
use crate::evaluate::health::HealthModel;
use crate::evaluate::playbook::PlaybookSet;
use crate::evaluate::script::{Limits, ScriptEngine};

pub fn run(session: &Session) -> anyhow::Result<ExitCode> {
    // The config itself was loaded (and would have failed) before we got here.
    let config = &session.config;
    let mut engine = ScriptEngine::new(&Limits::default());
    let mut errors = Vec::new();
    let health = HealthModel::load(&mut engine, &config.rules_dir).map_err(|e| errors.extend(e)).ok();
    let playbooks = PlaybookSet::load(&engine, &config.playbooks_dir).map_err(|e| errors.extend(e)).ok();

    if errors.is_empty() {
        let (health, playbooks) = (health.expect("no errors"), playbooks.expect("no errors"));
        let enabled = playbooks.playbooks.iter().filter(|p| p.enabled).count();
        writeln!(
            io::stdout(),
            "ok: {}, health model {}, {} playbooks ({enabled} enabled), {} email templates: no problems found",
            config.file.display(),
            health.file.display(),
            playbooks.playbooks.len(),
            playbooks.emails.len(),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut err = io::stderr().lock();
    let mut files: Vec<_> = errors.iter().map(|d| d.file.clone()).collect();
    files.sort();
    files.dedup();
    for d in &errors {
        writeln!(err, "error: {d}")?;
    }
    writeln!(err, "{} error(s) in {} file(s)", errors.len(), files.len())?;
    Ok(ExitCode::FAILURE)
}
