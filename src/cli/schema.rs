//! `keel schema`: write the JSON Schemas of keel.yaml, playbooks, playbook tests and the
//! health model for editors (`schema/` by default), or with `--check` say whether the
//! folder holds what this Keel generates (exit 1 when not: for CI). Needs no config.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::services::schema::{self, DEFAULT_DIR};

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The folder to write the schemas into (or to check).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub out: PathBuf,
    /// Write nothing: exit 1 if the folder's schemas differ from the generated ones.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout();
    if args.check {
        let checked = schema::check(&args.out)?;
        writeln!(out, "ok: {} schema files in {} are up to date", checked.len(), args.out.display())?;
    } else {
        for (path, file) in schema::write(&args.out)? {
            writeln!(out, "wrote {} ({})", path.display(), file.describes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
