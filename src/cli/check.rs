//! `keel check`: validate the config, the health model, every rule, playbook and template,
//! and report *every* problem at once, each with file:line:column. Webhook values whose
//! `${VAR}` is unset here are warnings (exit 0): `keel run` refuses them where it runs.

use std::io::{self, Write};
use std::process::ExitCode;

use super::Session;
use crate::lang::{render_diagnostics, Loaded};

pub fn run(session: &Session) -> anyhow::Result<ExitCode> {
    // The config itself was loaded (and would have failed) before we got here.
    let config = &session.config;
    match Loaded::load(&config.rules_dir, &config.playbooks_dir) {
        Ok(Loaded { model: health, set: playbooks, .. }) => {
            // Not errors: the environment `keel run` starts in may be another one.
            let warnings = playbooks.unset_environment();
            for w in &warnings {
                writeln!(io::stderr(), "warning: {w}")?;
            }
            let enabled = playbooks.playbooks.iter().filter(|p| p.enabled).count();
            writeln!(
                io::stdout(),
                "ok: {}, health model {}, {} playbooks ({enabled} enabled), {} email templates: {}",
                config.file.display(),
                health.file.display(),
                playbooks.playbooks.len(),
                playbooks.emails.len(),
                match warnings.len() {
                    0 => "no problems found".to_string(),
                    n => format!("no errors, {n} warning(s) (`keel run` refuses to start until they are fixed)"),
                }
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            writeln!(io::stderr(), "{}", render_diagnostics(&errors))?;
            Ok(ExitCode::FAILURE)
        }
    }
}
