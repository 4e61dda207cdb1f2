//! The language CS Ops write: playbook files, the health model, Rhai rules and
//! expressions, templates, durations and schedules — parsed, validated and compiled.
//!
//! Nothing here reads the store or sends anything: this layer turns files into checked,
//! compiled values, and evaluates an expression against an account view it is handed.
//!
//! - [`script`]: the sandboxed Rhai engine every expression and rule runs on, and
//!   [`explain`]: an expression taken apart, each part's value for an account;
//! - [`health`]: the health model, and [`inputs`]: what each of its categories reads;
//!   [`playbook`]: playbook files, validated;
//! - [`render`]: templates; [`view`]: what scripts and templates see of an account;
//! - [`duration`], [`schedule`]: `7d`, cron; [`env`]: `${VAR}` expansion; [`guard`]: the
//!   blast-radius guard's limits;
//! - [`sources`]: the texts a set was loaded from (what the daemon records, what `keel
//!   plan` compares).

pub mod duration;
pub mod env;
pub mod explain;
pub mod guard;
pub mod health;
pub mod inputs;
pub mod playbook;
pub mod render;
pub mod schedule;
pub mod script;
pub mod sources;
pub mod view;

use std::path::Path;

use crate::diagnostic::Diagnostic;

/// Everything evaluation needs, loaded and compiled once: the engine with the rule
/// library, the health model and the playbooks. A reload builds a new one and swaps it in
/// only when it loaded without errors.
pub struct Loaded {
    pub engine: script::ScriptEngine,
    pub model: health::HealthModel,
    pub set: playbook::PlaybookSet,
    /// The texts this was loaded from; `None` when the files kept changing while they
    /// were read (then no one can say which texts were loaded).
    pub sources: Option<sources::Sources>,
}

/// How often a load is tried again when the files changed while it read them.
const LOAD_ATTEMPTS: usize = 3;

impl Loaded {
    /// Loads the rules (`rules_dir`) and playbooks (`playbooks_dir`), returning every
    /// problem found in either. The files' texts are read before and after: when both
    /// readings agree, they are what was loaded ([`Loaded::sources`]); when a file changed
    /// in between (an editor saving), the load is done again, a few times at most.
    pub fn load(rules_dir: &Path, playbooks_dir: &Path) -> Result<Loaded, Vec<Diagnostic>> {
        let mut before = sources::Sources::read(rules_dir, playbooks_dir);
        let mut attempt = 1;
        loop {
            let result = Self::load_once(rules_dir, playbooks_dir);
            let after = sources::Sources::read(rules_dir, playbooks_dir);
            let settled = after == before;
            if settled || attempt == LOAD_ATTEMPTS {
                return result.map(|loaded| Loaded { sources: settled.then_some(after), ..loaded });
            }
            before = after;
            attempt += 1;
        }
    }

    fn load_once(rules_dir: &Path, playbooks_dir: &Path) -> Result<Loaded, Vec<Diagnostic>> {
        let mut engine = script::ScriptEngine::new(&script::Limits::default());
        let mut errors = Vec::new();
        let model = health::HealthModel::load(&mut engine, rules_dir).map_err(|e| errors.extend(e)).ok();
        let set = playbook::PlaybookSet::load(&engine, playbooks_dir).map_err(|e| errors.extend(e)).ok();
        match (model, set) {
            (Some(model), Some(set)) => Ok(Loaded { engine, model, set, sources: None }),
            _ => Err(errors),
        }
    }
}

/// A short hex digest (SHA-256, first 16 bytes) of some texts, each length-prefixed so
/// that moving text from one part to the next changes it.
pub fn digest(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Diagnostics as `keel check` prints them: each `error: …`, then a count of errors and
/// files.
pub fn render_diagnostics(errors: &[Diagnostic]) -> String {
    let mut files: Vec<_> = errors.iter().map(|d| &d.file).collect();
    files.sort();
    files.dedup();
    let mut out = String::new();
    for d in errors {
        out.push_str(&format!("error: {d}\n"));
    }
    out.push_str(&format!("{} error(s) in {} file(s)", errors.len(), files.len()));
    out
}
