//! `keel store`: is the store whole (`verify`), a consistent copy of it (`backup`), and
//! putting a copy back (`restore`). The store is locked by a running `keel run`: stop it
//! first (the HTTP API will take backups of a live daemon).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{FormatArg, OutputFormat, Session};
use crate::store::{Store, Verification};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Walk every tree: checksums, indexes against records, counters and seal. Exit 1 with
    /// what is wrong.
    Verify(FormatArg),
    /// Copy the whole store, consistently, into DIR (new or empty), and verify the copy.
    Backup(DirArg),
    /// Replace the store with the backup in DIR (verified first); the current store is
    /// moved aside, never deleted.
    Restore(DirArg),
}

#[derive(Debug, Args)]
pub struct DirArg {
    /// The backup folder.
    dir: PathBuf,
}

pub fn run(session: &Session, cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    let dir = session.config.store_dir();
    let mut out = io::stdout().lock();
    match cmd {
        StoreCommand::Verify(f) => {
            let store = Store::open_for_inspection(&dir)?;
            let v = store.verify()?;
            if f.format == OutputFormat::Json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({ "ok": v.is_ok(), "records": v.records, "problems": v.problems }),
                )?;
                writeln!(out)?;
            } else {
                summary(&mut out, &dir.display().to_string(), &v)?;
            }
            Ok(if v.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        StoreCommand::Backup(a) => {
            let store = session.open_store()?;
            let v = store.backup(&a.dir)?;
            summary(&mut out, &a.dir.display().to_string(), &v)?;
            if !v.is_ok() {
                anyhow::bail!("the backup in {} does not verify", a.dir.display());
            }
            writeln!(out, "Backed up {} to {}.", dir.display(), a.dir.display())?;
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Restore(a) => {
            let stamp = session.now.format("%Y%m%dT%H%M%SZ").to_string();
            let (aside, v) = crate::store::restore(&dir, &a.dir, &stamp)?;
            summary(&mut out, &dir.display().to_string(), &v)?;
            writeln!(
                out,
                "Restored {} from {}; the store it replaced is kept in {}.",
                dir.display(),
                a.dir.display(),
                aside.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn summary(out: &mut impl Write, what: &str, v: &Verification) -> io::Result<()> {
    let records: u64 = v.records.values().sum();
    if v.is_ok() {
        writeln!(
            out,
            "{what}: ok — {records} records in {} trees checked (checksums, indexes, counters, seal)",
            v.records.len()
        )
    } else {
        writeln!(out, "{what}: DAMAGED — {} problem(s) in {records} records:", v.problems.len())?;
        for p in &v.problems {
            writeln!(out, "  - {p}")?;
        }
        writeln!(out, "Restore a backup with `keel store restore DIR` (the damaged store is kept aside).")
    }
}
