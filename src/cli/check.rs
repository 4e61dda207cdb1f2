//! `keel check`: validate the config, the health model, every rule, playbook and template,
//! and report *every* problem at once, each with file:line:column. Webhook values whose
//! `${VAR}` is unset here are warnings (exit 0): `keel run` refuses them where it runs. A
//! health input no source feeds is a warning too (exit 0).

use std::io::{self, Write};
use std::process::ExitCode;

use super::Session;
use crate::lang::render_diagnostics;
use crate::services::check::check;

pub fn run(session: &Session) -> anyhow::Result<ExitCode> {
    // The config itself was loaded (and would have failed) before we got here.
    let report = check(&session.config);
    let Some(loaded) = &report.loaded else {
        writeln!(io::stderr(), "{}", render_diagnostics(&report.error_diagnostics()))?;
        return Ok(ExitCode::FAILURE);
    };
    for w in &report.warnings {
        writeln!(io::stderr(), "warning: {}", w.0)?;
    }
    writeln!(
        io::stdout(),
        "ok: {}, health model {}, {} playbooks ({} enabled), {} email templates: {}",
        report.config.display(),
        loaded.health_model.display(),
        loaded.playbooks,
        loaded.enabled,
        loaded.email_templates,
        match (report.warnings.len(), report.blocking) {
            (0, _) => "no problems found".to_string(),
            (n, 0) => format!("no errors, {n} warning(s)"),
            (n, b) if b == n => format!("no errors, {n} warning(s) (`keel run` refuses to start until they are fixed)"),
            (n, b) => {
                format!("no errors, {n} warning(s) (`keel run` refuses to start until the {b} about the environment are fixed)")
            }
        }
    )?;
    Ok(ExitCode::SUCCESS)
}
