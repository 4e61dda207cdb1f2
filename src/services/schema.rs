//! `keel schema`: the JSON Schemas of the files people write — `keel.yaml`, playbooks,
//! playbook tests and the health model — derived from the raw serde types the loaders
//! read, so an editor (VS Code's YAML extension, any yaml-language-server client) checks
//! keys and shapes as you type and shows each key's doc comment as hover text.
//!
//! Invariants:
//! - Generated, never written by hand: the committed `schema/` folder is this module's
//!   output, and [`check`] (`keel schema --check`, and Keel's own tests) says when it is
//!   stale.
//! - Deterministic: keys sorted, pretty-printed, one trailing newline, so a regenerated
//!   file differs only where a type did.
//! - A schema refuses what its loader refuses for shape (unknown keys, wrong types,
//!   malformed durations, zones, cron fields) and accepts the rest; `keel check` stays the
//!   judge of everything else (Rhai, templates, cron days that never come). One
//!   deliberate difference: text is text. serde_yaml reads `name: 5` as the text "5" for
//!   most keys (the playbook loader refuses it, `to: 5` being a mistake); the schemas flag
//!   a number or boolean where text is meant everywhere, so an editor says "quote it".

use std::io;
use std::path::{Path, PathBuf};

/// The folder `keel schema` writes to when no `--out` is given (relative to the
/// working folder).
pub const DEFAULT_DIR: &str = "schema";

/// One generated schema file: its name in the schema folder, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFile {
    pub name: &'static str,
    /// What it describes, as the command's output says it.
    pub describes: &'static str,
    pub text: String,
}

/// Why writing or checking the schema folder failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Files that are missing or differ from what Keel generates.
    #[error(
        "the schema files are stale: {} differ{} from what this Keel generates; run `keel schema{}` and commit the result",
        stale.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if stale.len() == 1 { "s" } else { "" },
        out_flag(dir)
    )]
    Stale { dir: PathBuf, stale: Vec<PathBuf> },
}

fn out_flag(dir: &Path) -> String {
    if dir == Path::new(DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --out {}", dir.display())
    }
}

/// Every schema, in a fixed order.
pub fn generate() -> Vec<SchemaFile> {
    let file = |name, describes, schema: schemars::Schema| {
        let mut text = serde_json::to_string_pretty(&schema).expect("a schema is JSON");
        text.push('\n');
        SchemaFile { name, describes, text }
    };
    vec![
        file("keel.schema.json", "keel.yaml", crate::config::file_schema()),
        file("playbook.schema.json", "playbooks/*.yaml", crate::lang::playbook::file_schema()),
        file("playbook-test.schema.json", "playbooks/tests/*.yaml", super::playtest::file_schema()),
        file("health.schema.json", "rules/health.yaml", crate::lang::health::model_schema()),
    ]
}

/// Writes every schema into `dir` (created if need be); returns the files written.
pub fn write(dir: &Path) -> Result<Vec<(PathBuf, SchemaFile)>, SchemaError> {
    std::fs::create_dir_all(dir).map_err(|source| SchemaError::Write { path: dir.to_path_buf(), source })?;
    generate()
        .into_iter()
        .map(|file| {
            let path = dir.join(file.name);
            std::fs::write(&path, &file.text).map_err(|source| SchemaError::Write { path: path.clone(), source })?;
            Ok((path, file))
        })
        .collect()
}

/// Whether `dir` holds exactly what [`generate`] makes: `Ok` with the files checked, or
/// [`SchemaError::Stale`] naming every file missing or different.
pub fn check(dir: &Path) -> Result<Vec<PathBuf>, SchemaError> {
    let mut checked = Vec::new();
    let mut stale = Vec::new();
    for file in generate() {
        let path = dir.join(file.name);
        match std::fs::read_to_string(&path) {
            Ok(text) if text == file.text => checked.push(path),
            Ok(_) => stale.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => stale.push(path),
            Err(source) => return Err(SchemaError::Read { path, source }),
        }
    }
    if stale.is_empty() {
        Ok(checked)
    } else {
        Err(SchemaError::Stale { dir: dir.to_path_buf(), stale })
    }
}
