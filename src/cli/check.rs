//! `keel check`: validate the config, the health model, every rule, playbook and template,
//! and report *every* problem at once, each with file:line:column.

use std::io::{self, Write};
use std::process::ExitCode;

use super::Session;
use crate::evaluate::{render_diagnostics, Loaded};

pub fn run(session: &Session) -> anyhow::Result<ExitCode> {
    // The config itself was loaded (and would have failed) before we got here.
    let config = &session.config;
    match Loaded::load(&config.rules_dir, &config.playbooks_dir) {
        Ok(Loaded { model: health, set: playbooks, .. }) => {
            let enabled = playbooks.playbooks.iter().filter(|p| p.enabled).count();
            writeln!(
                io::stdout(),
                "ok: {}, health model {}, {} playbooks ({enabled} enabled), {} email templates: no problems found",
                config.file.display(),
                health.file.display(),
                playbooks.playbooks.len(),
                playbooks.emails.len(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            writeln!(io::stderr(), "{}", render_diagnostics(&errors))?;
            Ok(ExitCode::FAILURE)
        }
    }
}
