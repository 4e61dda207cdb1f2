//! Reading a playbooks folder: every `*.yaml`/`*.yml` file, and the email templates the
//! playbooks name (`templates/<name>.txt`, `.html`). This is the I/O half of loading; each
//! parsed file goes to `validate`, and every problem of every file is collected
//! before the load fails.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use minijinja::Environment;

use super::raw::RawPlaybook;
use super::types::{EmailTemplate, PlaybookSet};
use super::validate::{Ctx, TemplateProblem};
use super::{ONE_LINE_LIMIT, TEXT_LIMIT};
use crate::diagnostic::{did_you_mean, parse_yaml, read_source, Diagnostic, Seg};
use crate::lang::script::{Origin, ScriptEngine};

impl PlaybookSet {
    /// Loads every `*.yaml`/`*.yml` in `dir` (templates in `dir/templates/`), compiling
    /// expressions with `engine` (which must already hold the rule library).
    pub fn load(engine: &ScriptEngine, dir: &Path) -> Result<PlaybookSet, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let mut set = PlaybookSet {
            playbooks: Vec::new(),
            templates: Environment::new(),
            emails: BTreeMap::new(),
            env_refs: Vec::new(),
        };
        set.templates.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // `money`, `number`, `date`, `plural`; the config's currency and date format
        // replace these defaults (`Config::load_playbooks`).
        crate::lang::render::register_filters(&mut set.templates, &crate::lang::render::Formats::default());
        // Account data is data: HTML-escaped in `.html` email parts, JSON-encoded in
        // webhook bodies; plain-text parts and subjects print it as it is.
        set.templates.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else if name.ends_with(".json") {
                minijinja::AutoEscape::Json
            } else {
                minijinja::AutoEscape::None
            }
        });
        let files = match fs::read_dir(dir) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect();
                files.sort();
                files
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                errors.push(plain(dir, format!("cannot read the playbooks folder: {e}")));
                Vec::new()
            }
        };
        let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in files {
            let text = match read_source(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(plain(&file, format!("cannot read this playbook: {e}")));
                    continue;
                }
            };
            let raw: RawPlaybook = match parse_yaml(&file, &text) {
                Ok(raw) => raw,
                Err(d) => {
                    errors.push(*d);
                    continue;
                }
            };
            let mut ctx = Ctx { file: &file, text: &text, dir, engine, errors: &mut errors, set: &mut set };
            if let Some(first) = ids.get(&raw.id) {
                let message = format!("playbook id {:?} is already used by {}", raw.id, first.display());
                ctx.err(&[Seg::Key("id")], message, Some("ids key the ledger: give each playbook its own".into()));
            }
            ids.insert(raw.id.clone(), file.clone());
            if let Some(playbook) = ctx.playbook(raw) {
                set.playbooks.push(playbook);
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }
}

impl Ctx<'_> {
    /// Loads `templates/<name>.txt` (and `.html`) once, checking them.
    pub(super) fn email_template(&mut self, path: &[Seg], name: &str) -> Option<()> {
        if self.set.emails.contains_key(name) {
            return Some(());
        }
        let dir = self.dir.join("templates");
        let text_path = dir.join(format!("{name}.txt"));
        let Ok(text) = read_source(&text_path) else {
            let mut known: Vec<String> = fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            known.sort();
            known.dedup();
            let help = did_you_mean(name, known.iter().map(String::as_str)).map(|n| format!("did you mean `{n}`?"));
            self.err(path, format!("no email template {name:?}: expected {}", text_path.display()), help);
            return None;
        };
        let file_err = |errors: &mut Vec<Diagnostic>, file: &Path, position: (usize, usize), p: TemplateProblem| {
            errors.push(
                Diagnostic {
                    file: file.to_path_buf(),
                    position: Some(position),
                    key: None,
                    message: p.message,
                    snippet: None,
                    help: p.help,
                }
                .with_source(&read_source(file).unwrap_or_default()),
            );
        };
        let Some((subject, body)) =
            text.split_once('\n').and_then(|(first, rest)| Some((first.strip_prefix("Subject:")?, rest)))
        else {
            let p = TemplateProblem {
                message: "an email template starts with a `Subject: …` line".into(),
                help: None,
                offset: None,
            };
            file_err(self.errors, &text_path, (1, 1), p);
            return None;
        };
        let subject_name = format!("{name}.subject");
        let text_name = format!("{name}.txt");
        let subject_column = "Subject:".len() + (subject.len() - subject.trim_start().len()) + 1;
        let mut ok = true;
        for (tname, source, origin, limit) in [
            (&subject_name, subject.trim(), Origin::at(&text_path, 1, subject_column), ONE_LINE_LIMIT),
            (&text_name, body, Origin::at(&text_path, 2, 1), TEXT_LIMIT),
        ] {
            for p in self.check_template(tname, source, limit) {
                let at = p.offset.map_or((origin.line, 1), |o| origin.position_of(source, o));
                file_err(self.errors, &text_path, at, p);
                ok = false;
            }
        }
        let html_path = dir.join(format!("{name}.html"));
        let html = match read_source(&html_path) {
            Ok(source) => {
                let html_name = format!("{name}.html");
                let origin = Origin::at(&html_path, 1, 1);
                for p in self.check_template(&html_name, &source, TEXT_LIMIT) {
                    let at = p.offset.map_or((1, 1), |o| origin.position_of(&source, o));
                    file_err(self.errors, &html_path, at, p);
                    ok = false;
                }
                Some(html_name)
            }
            Err(_) => None,
        };
        if ok {
            self.set.emails.insert(name.to_string(), EmailTemplate { subject: subject_name, text: text_name, html });
        }
        ok.then_some(())
    }
}

fn plain(file: &Path, message: String) -> Diagnostic {
    Diagnostic { file: file.to_path_buf(), position: None, key: None, message, snippet: None, help: None }
}
