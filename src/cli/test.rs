//! `keel test`: run playbook test files and say which cases pass, naming what failed.
//! Ends with the plain "N passed, N failed" line CI systems read.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Session;
use crate::services::playtest::{run_file, test_files};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files; default: every *.yaml in the playbooks folder's tests/.
    files: Vec<PathBuf>,
}

pub fn run(session: &Session, args: TestArgs) -> anyhow::Result<ExitCode> {
    let config = &session.config;
    let loaded = super::load_playbooks(session, "no test was run")?;
    let files = if args.files.is_empty() {
        let dir = config.playbooks_dir.join("tests");
        test_files(&dir).map_err(|e| {
            anyhow::anyhow!("cannot read {}: {e} (write tests there, or name test files)", dir.display())
        })?
    } else {
        args.files
    };
    let mut out = io::stdout().lock();
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    for file in &files {
        writeln!(out, "{}", file.display())?;
        match run_file(file, &loaded, config) {
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
