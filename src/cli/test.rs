//! `keel test`: run playbook test files and say which cases pass, naming what failed.
//! Ends with the plain "N passed, N failed" line CI systems read.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;

use super::Session;
use crate::evaluate::health::HealthModel;
use crate::evaluate::playbook::PlaybookSet;
use crate::evaluate::playtest::run_file;
use crate::evaluate::script::{Limits, ScriptEngine};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files; default: every *.yaml in the playbooks folder's tests/.
    files: Vec<PathBuf>,
}

pub fn run(session: &Session, args: TestArgs) -> anyhow::Result<ExitCode> {
    let config = &session.config;
    let mut engine = ScriptEngine::new(&Limits::default());
    let mut errors = Vec::new();
    let model = HealthModel::load(&mut engine, &config.rules_dir).map_err(|e| errors.extend(e)).ok();
    let set = PlaybookSet::load(&engine, &config.playbooks_dir).map_err(|e| errors.extend(e)).ok();
    let (Some(model), Some(set)) = (model, set) else {
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(anyhow!(
            "{}\n{} error(s) in the playbooks or rules; no test was run",
            rendered.join("\nerror: "),
            errors.len()
        ));
    };
    let files = if args.files.is_empty() {
        let dir = config.playbooks_dir.join("tests");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| anyhow!("cannot read {}: {e} (write tests there, or name test files)", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        args.files
    };
    let mut out = io::stdout().lock();
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    for file in &files {
        writeln!(out, "{}", file.display())?;
        match run_file(file, &set, &model, &engine, config.timezone) {
            Ok(results) => {
                for case in results {
                    if case.failures.is_empty() {
                        passed += 1;
                        writeln!(out, "  ok    {}", case.name)?;
                    } else {
                        failed += 1;
                        writeln!(out, "  FAIL  {}", case.name)?;
                        for f in &case.failures {
                            writeln!(out, "        {f}")?;
                        }
                    }
                }
            }
            Err(diagnostics) => {
                broken += 1;
                for d in diagnostics {
                    writeln!(io::stderr(), "error: {d}")?;
                }
            }
        }
    }
    if broken > 0 {
        writeln!(out, "{broken} test file(s) could not be read")?;
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed + broken == 0 && passed > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
