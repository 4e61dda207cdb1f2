//! Playbooks: who they apply to, what triggers them, what they do.
//!
//! [`PlaybookSet::load`] reads every `*.yaml` in the playbooks folder and returns either a
//! fully validated set or *every* problem found, each a [`Diagnostic`] with
//! file:line:column: unknown keys, wrong types (`to: 5`), a trigger with no kind or two,
//! bad or negative durations, cron expressions that are invalid or never fire, Rhai syntax
//! errors mapped back to the YAML line, template syntax errors and unknown template
//! variables or fields ([`vars`]), texts over [`ONE_LINE_LIMIT`] / [`TEXT_LIMIT`], missing
//! email templates, duplicate ids. Webhook values reading an unset `${VAR}` are kept in
//! [`PlaybookSet::env_refs`]: the caller decides whether that is a warning or an error. Expressions and
//! templates are compiled here, once; evaluating an account compiles nothing.
//!
//! Limit: within one file, serde stops at the first *parse* error (a wrong type, an
//! unknown key); validation errors after a clean parse are all reported.

mod raw;
pub mod vars;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use minijinja::Environment;

pub use raw::{Method, Priority};
use raw::{RawAction, RawFire, RawPlaybook, RawStep, RawTrigger};

use super::duration::Span;
use super::schedule::CronSchedule;
use super::script::{Expression, Origin, ScriptEngine};
use crate::diagnostic::parse_yaml;
use crate::diagnostic::{byte_of_column, did_you_mean, read_source, yaml_path_position, Diagnostic, Seg};

/// Catch-up window of a date trigger when the playbook does not set one.
pub const DEFAULT_CATCH_UP_DAYS: i64 = 7;

const CRON_HELP: &str = "5 fields like crontab: \"0 8 * * 1-5\" is weekdays at 08:00";

/// The longest one-line text a playbook may hold (a task title or owner, an address, an
/// email subject, a webhook URL or header value, an update's value): every firing renders
/// it for its account, into the task, the ledger and `simulate`'s output.
pub const ONE_LINE_LIMIT: usize = 8 * 1024;

/// The longest multi-line text: a task description, a webhook body, an email template.
pub const TEXT_LIMIT: usize = 1024 * 1024;

/// A template's problem; `offset` is where in its source, when known.
struct TemplateProblem {
    message: String,
    help: Option<String>,
    offset: Option<usize>,
}

/// A byte count as people read it: `8 KiB`, `10.0 MiB`.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 * 1024 && b % (1024 * 1024) == 0 => format!("{} MiB", b / (1024 * 1024)),
        b if b >= 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

#[derive(Debug)]
pub struct Playbook {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub file: PathBuf,
    pub audience: Option<Expression>,
    /// When to evaluate it, if not on the config's default schedule. A schedule trigger
    /// is evaluated on its own cron instead.
    pub schedule: Option<CronSchedule>,
    pub trigger: Trigger,
    /// At least one; a plain `actions:` list is one step after 0d.
    pub steps: Vec<Step>,
    pub exit: Option<Expression>,
    /// A digest of the file as loaded: a pass decided under another digest cannot vouch
    /// for this definition, so the next pass is a full one.
    pub digest: String,
}

#[derive(Debug)]
pub enum Trigger {
    /// Fires when the condition turns true (`on_enter`), or while it is true, at most once
    /// per `every` (`while_true`).
    Condition { condition: Expression, fire: Fire },
    /// Fires once when today ≥ the date + offset, within the catch-up window.
    Date { field: DateField, offset: Span, catch_up: Span, condition: Option<Expression> },
    /// Fires for each matching event.
    Event { name: String, condition: Option<Expression> },
    /// Fires for each account in the audience at each tick.
    Schedule { cron: CronSchedule, timezone: Option<Tz>, condition: Option<Expression> },
}

impl Playbook {
    /// Every expression the playbook decides with: audience, trigger condition, the
    /// steps' `when`, `exit`.
    pub fn expressions(&self) -> impl Iterator<Item = &Expression> + '_ {
        let trigger = match &self.trigger {
            Trigger::Condition { condition, .. } => Some(condition),
            Trigger::Date { condition, .. }
            | Trigger::Event { condition, .. }
            | Trigger::Schedule { condition, .. } => condition.as_ref(),
        };
        self.audience.iter().chain(trigger).chain(self.steps.iter().filter_map(|s| s.when.as_ref())).chain(&self.exit)
    }
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Condition { .. } => "condition",
            Trigger::Date { .. } => "date",
            Trigger::Event { .. } => "event",
            Trigger::Schedule { .. } => "schedule",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    OnEnter,
    WhileTrue { every: Span },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateField {
    RenewalDate,
    StartDate,
    /// `fields.<name>`: any CRM date column.
    Field(String),
}

impl DateField {
    /// The field as playbooks write it (`renewal_date`, `fields.go_live`); it names the
    /// occurrence in the ledger.
    pub fn name(&self) -> String {
        match self {
            DateField::RenewalDate => "renewal_date".into(),
            DateField::StartDate => "start_date".into(),
            DateField::Field(f) => format!("fields.{f}"),
        }
    }

    /// The account's date in this field; a CRM column that is not a `YYYY-MM-DD` date
    /// has none.
    pub fn value(&self, account: &crate::model::Account) -> Option<chrono::NaiveDate> {
        match self {
            DateField::RenewalDate => account.renewal_date,
            DateField::StartDate => account.start_date,
            DateField::Field(f) => account.fields.get(f).and_then(|v| v.as_str()).and_then(|s| s.parse().ok()),
        }
    }
}

#[derive(Debug)]
pub struct Step {
    pub after: Span,
    pub when: Option<Expression>,
    pub actions: Vec<Action>,
}

/// Actions hold template *names* in the set's [`Environment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Task {
        title: String,
        description: Option<String>,
        owner: String,
        due_in: Option<Span>,
        priority: Priority,
        escalate: Option<Escalate>,
    },
    Email {
        to: Recipients,
        template: String,
        digest: bool,
        on_cap: crate::model::CapPolicy,
    },
    Webhook {
        url: String,
        method: Method,
        headers: BTreeMap<String, String>,
        body: Option<String>,
        secret_env: Option<String>,
        timeout: std::time::Duration,
    },
    Update {
        field: String,
        value: String,
    },
}

/// A task's escalation: overdue by `after`, email `to` (an address template), once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalate {
    pub after: Span,
    pub to: String,
}

/// Webhook timeout when the playbook does not set one.
pub const DEFAULT_WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// The account's subscribed contacts: customer-facing mail (unsubscribe, caps apply).
    Contacts,
    /// An address template, for internal mail (CSM, manager).
    Address(String),
}

/// An email template: `templates/<name>.txt` (first line `Subject: …`) and an optional
/// `templates/<name>.html`, compiled into the set's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTemplate {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Every playbook of a folder, validated, with its compiled templates.
pub struct PlaybookSet {
    pub playbooks: Vec<Playbook>,
    pub templates: Environment<'static>,
    pub emails: BTreeMap<String, EmailTemplate>,
    /// Webhook URLs and header values that read `${VAR}`, where they are written.
    pub env_refs: Vec<EnvRef>,
}

/// A webhook value that reads the environment when it is sent (`${CRM_HOOK}/deals`).
#[derive(Debug, Clone)]
pub struct EnvRef {
    /// Where it is written (the message is filled in by [`PlaybookSet::unset_environment`]).
    pub at: Diagnostic,
    /// The value as written.
    pub text: String,
}

/// Keel's environment as webhook delivery reads it: an empty variable counts as unset.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl PlaybookSet {
    /// The webhook values whose `${VAR}` is not set in Keel's environment now. Delivery
    /// reads them when sending, so each would make every entry of its webhook dead:
    /// `keel check` warns, `keel run` refuses to start (and a reload to apply).
    pub fn unset_environment(&self) -> Vec<Diagnostic> {
        self.env_refs
            .iter()
            .filter_map(|r| {
                let e = crate::lang::env::expand(&r.text, env_var).err()?;
                Some(Diagnostic {
                    message: e,
                    help: Some("webhooks read it from Keel's environment when they are sent".into()),
                    ..r.at.clone()
                })
            })
            .collect()
    }
}

impl std::fmt::Debug for PlaybookSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybookSet")
            .field("playbooks", &self.playbooks)
            .field("emails", &self.emails)
            .finish_non_exhaustive()
    }
}

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

    pub fn get(&self, id: &str) -> Option<&Playbook> {
        self.playbooks.iter().find(|p| p.id == id)
    }
}

/// Validation of one file: where errors go, and what compiles expressions and templates.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    dir: &'a Path,
    engine: &'a ScriptEngine,
    errors: &'a mut Vec<Diagnostic>,
    set: &'a mut PlaybookSet,
}

impl Ctx<'_> {
    /// Where `path` is; when the locator cannot follow it (flow style: `{ title: … }`),
    /// the nearest enclosing key it can find.
    fn position(&self, path: &[Seg]) -> Option<(usize, usize)> {
        (1..=path.len()).rev().find_map(|n| {
            yaml_path_position(self.text, &path[..n]).map(|(line, key, value)| {
                if n == path.len() {
                    (line, value.unwrap_or(key))
                } else {
                    (line, key)
                }
            })
        })
    }

    fn err(&mut self, path: &[Seg], message: String, help: Option<String>) {
        let position = self.position(path);
        self.push_err(path, position, message, help);
    }

    /// An error about `path` at a position inside its value (a template's variable).
    fn err_at(&mut self, path: &[Seg], position: (usize, usize), message: String, help: Option<String>) {
        self.push_err(path, Some(position), message, help);
    }

    fn push_err(&mut self, path: &[Seg], position: Option<(usize, usize)>, message: String, help: Option<String>) {
        let key = key_path(path);
        self.errors.push(
            Diagnostic {
                file: self.file.to_path_buf(),
                position,
                key: (!key.is_empty()).then_some(key),
                message,
                snippet: None,
                help,
            }
            .with_source(self.text),
        );
    }

    /// Where an expression's text starts in the file: after a quote, or on the line after
    /// a `|`/`>` block indicator.
    fn origin(&self, path: &[Seg]) -> Origin {
        let (mut line, mut column) = self.position(path).unwrap_or((1, 1));
        let mut indent = 0;
        let lines: Vec<&str> = self.text.lines().collect();
        let at = lines.get(line - 1).map_or("", |l| &l[byte_of_column(l, column)..]);
        if at.starts_with('"') || at.starts_with('\'') {
            column += 1;
        } else if at.starts_with('|') || at.starts_with('>') {
            line += 1;
            // YAML indents with spaces; counted in characters, like every column.
            indent = lines.get(line - 1).map_or(0, |l| l.chars().take_while(|&c| c == ' ').count());
            column = indent + 1;
        }
        Origin { file: self.file.to_path_buf(), line, column, indent }
    }

    fn expr(&mut self, path: &[Seg], source: &str) -> Option<Expression> {
        match self.engine.compile(source, self.origin(path)) {
            Ok(e) => {
                let unknown = self.engine.unknown_functions(source);
                for (name, offset) in &unknown {
                    let position = e.origin().position_of(source, *offset);
                    self.errors.push(
                        Diagnostic {
                            file: self.file.to_path_buf(),
                            position: Some(position),
                            key: None,
                            message: format!("unknown function `{name}`: not in rules/*.rhai nor Rhai's library"),
                            snippet: None,
                            help: did_you_mean(
                                name,
                                self.engine.library_functions().iter().map(String::as_str).chain([
                                    "days_until",
                                    "days_since",
                                    "today",
                                    "date",
                                ]),
                            )
                            .map(|n| format!("did you mean `{n}`?")),
                        }
                        .with_source(self.text),
                    );
                }
                unknown.is_empty().then_some(e)
            }
            Err(e) => {
                self.errors.push(
                    Diagnostic {
                        file: e.origin.file.clone(),
                        position: Some(e.position),
                        key: None,
                        message: format!("Rhai: {}", e.message),
                        snippet: None,
                        help: None,
                    }
                    .with_source(self.text),
                );
                None
            }
        }
    }

    fn span(&mut self, path: &[Seg], text: &str) -> Option<Span> {
        match Span::parse(text) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(path, e, None);
                None
            }
        }
    }

    /// Records a webhook value that reads `${VAR}`; a reference that can never expand
    /// (`${unclosed`, `${not a name}`) is an error now.
    fn env_ref(&mut self, path: &[Seg], text: &str) {
        if !text.contains('$') {
            return;
        }
        if let Err(e) = crate::lang::env::expand(text, |_| Some(String::new())) {
            self.err(path, e, Some("`${VAR}` reads an environment variable; `$$` is a literal `$`".into()));
            return;
        }
        let key = key_path(path);
        let at = Diagnostic {
            file: self.file.to_path_buf(),
            position: self.position(path),
            key: (!key.is_empty()).then_some(key),
            message: String::new(),
            snippet: None,
            help: None,
        }
        .with_source(self.text);
        self.set.env_refs.push(EnvRef { at, text: text.to_string() });
    }

    /// Compiles an inline one-line template (a title, an address, a URL); returns its
    /// name in the environment.
    fn template(&mut self, path: &[Seg], source: &str) -> Option<String> {
        self.template_as(path, source, "", ONE_LINE_LIMIT)
    }

    /// A template whose name ends in `suffix` (`.json` escapes printed values as JSON),
    /// at most `limit` bytes long.
    fn template_as(&mut self, path: &[Seg], source: &str, suffix: &str, limit: usize) -> Option<String> {
        // Named by file and key path: unique, where a position may not be (flow maps).
        let name = format!("{}#{}{suffix}", self.file.display(), key_path(path));
        let problems = self.check_template(&name, source, limit);
        if problems.is_empty() {
            return Some(name);
        }
        // Positions inside the value only when the value itself was found (not a flow
        // map's enclosing key).
        let origin = yaml_path_position(self.text, path).map(|_| self.origin(path));
        for p in problems {
            match (p.offset, &origin) {
                (Some(offset), Some(origin)) => {
                    let position = origin.position_of(source, offset);
                    self.err_at(path, position, p.message, p.help);
                }
                _ => self.err(path, p.message, p.help),
            }
        }
        None
    }

    /// Adds a template and checks its size, syntax and the variables it reads; every
    /// problem found, with where in `source` it is when known.
    fn check_template(&mut self, name: &str, source: &str, limit: usize) -> Vec<TemplateProblem> {
        // Before compiling anything: a 10 MB title would otherwise be rendered into every
        // account's task, ledger entry and `simulate` line.
        if source.len() > limit {
            return vec![TemplateProblem {
                message: format!("this text is {} long; at most {} is allowed here", size(source.len()), size(limit)),
                help: Some(format!(
                    "titles, addresses, subjects, URLs and header values take up to {}; descriptions, bodies and email templates up to {}",
                    size(ONE_LINE_LIMIT),
                    size(TEXT_LIMIT)
                )),
                offset: None,
            }];
        }
        if let Err(e) = self.set.templates.add_template_owned(name.to_string(), source.to_string()) {
            let line = e.line().map(|l| format!(" (template line {l})")).unwrap_or_default();
            return vec![TemplateProblem {
                message: format!("template syntax error{line}: {}", e.detail().unwrap_or("invalid template")),
                help: None,
                // At the start of the template's line that holds the error.
                offset: e.line().and_then(|l| {
                    if l <= 1 {
                        return Some(0);
                    }
                    source.match_indices('\n').nth(l - 2).map(|(i, _)| i + 1)
                }),
            }];
        }
        let template = self.set.templates.get_template(name).expect("just added");
        let mut read: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        read.sort();
        let mut problems = Vec::new();
        let mut reported = BTreeSet::new();
        for path in read {
            let Err(unknown) = vars::check(&path) else { continue };
            if !reported.insert(unknown.path.clone()) {
                continue;
            }
            let (what, help) = match unknown.path.rsplit_once('.') {
                None => ("template variable", format!("templates can use {}", unknown.known.join(", "))),
                Some((parent, _)) => ("field", format!("`{parent}` has {}", unknown.known.join(", "))),
            };
            problems.push(TemplateProblem {
                message: format!("unknown {what} `{}`", unknown.path),
                help: Some(unknown.near.map_or(help, |near| format!("did you mean `{near}`?"))),
                offset: vars::offset_in(source, &unknown.path),
            });
        }
        problems
    }

    /// Loads `templates/<name>.txt` (and `.html`) once, checking them.
    fn email_template(&mut self, path: &[Seg], name: &str) -> Option<()> {
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

    fn playbook(&mut self, raw: RawPlaybook) -> Option<Playbook> {
        let before = self.errors.len();
        if let Err(e) = crate::model::validate_id(&raw.id) {
            self.err(&[Seg::Key("id")], format!("invalid playbook id: {e}"), None);
        }
        let audience = raw.audience.as_deref().and_then(|a| self.expr(&[Seg::Key("audience")], a));
        let trigger = self.trigger(&raw.trigger);
        let schedule = match raw.schedule.as_deref() {
            None => None,
            Some(_) if raw.trigger.schedule.is_some() => {
                self.err(
                    &[Seg::Key("schedule")],
                    "a schedule trigger is evaluated on its own cron (`trigger.schedule`); remove this `schedule`"
                        .into(),
                    None,
                );
                None
            }
            Some(text) => match CronSchedule::parse(text) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.err(&[Seg::Key("schedule")], e, Some(CRON_HELP.into()));
                    None
                }
            },
        };
        let exit = raw.exit.as_deref().and_then(|e| self.expr(&[Seg::Key("exit")], e));
        let steps = match (raw.actions, raw.steps) {
            (Some(actions), None) => {
                let raw = RawStep { after: "0d".into(), when: None, actions };
                self.step(&[], raw, true).into_iter().collect()
            }
            (None, Some(steps)) if !steps.is_empty() => {
                let mut out = Vec::new();
                for (i, step) in steps.into_iter().enumerate() {
                    out.extend(self.step(&[Seg::Key("steps"), Seg::Index(i)], step, false));
                }
                out
            }
            (Some(_), Some(_)) => {
                self.err(&[Seg::Key("steps")], "a playbook has `actions` or `steps`, not both".into(), None);
                Vec::new()
            }
            _ => {
                self.err(&[Seg::Key("id")], "a playbook needs `actions` (or `steps` for a sequence)".into(), None);
                Vec::new()
            }
        };
        if exit.is_some() && steps.len() < 2 {
            self.err(
                &[Seg::Key("exit")],
                "`exit` stops a sequence: it needs `steps` with more than one step".into(),
                None,
            );
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Playbook {
            id: raw.id,
            name: raw.name,
            description: raw.description,
            enabled: raw.enabled,
            file: self.file.to_path_buf(),
            audience,
            schedule,
            trigger: trigger?,
            steps,
            exit,
            digest: crate::lang::digest(&[self.text]),
        })
    }

    fn trigger(&mut self, t: &RawTrigger) -> Option<Trigger> {
        let at = |k: &'static str| [Seg::Key("trigger"), Seg::Key(k)];
        let kinds: Vec<&str> = [
            (t.date.is_some(), "date"),
            (t.event.is_some(), "event"),
            (t.schedule.is_some(), "schedule"),
            (t.date.is_none() && t.event.is_none() && t.schedule.is_none() && t.condition.is_some(), "condition"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, k)| *k)
        .collect();
        match kinds.as_slice() {
            [] => {
                self.err(
                    &[Seg::Key("trigger")],
                    "the trigger has no kind: give it `condition`, `date`, `event` or `schedule`".into(),
                    None,
                );
                return None;
            }
            [_] => {}
            many => {
                self.err(
                    &[Seg::Key("trigger")],
                    format!("the trigger has several kinds ({}): give it one", many.join(", ")),
                    None,
                );
                return None;
            }
        }
        // Keys that only one kind reads must not sit on another, where they would be ignored.
        let misplaced = |on: bool, key: &'static str, kind: &str, ctx: &mut Self| {
            if on {
                ctx.err(
                    &at(key),
                    format!("`{key}` belongs to {kind} triggers, and this is a {} trigger", kinds[0]),
                    None,
                );
            }
        };
        let kind = kinds[0];
        misplaced(kind != "condition" && t.fire.is_some(), "fire", "condition", self);
        misplaced(kind != "condition" && t.every.is_some(), "every", "condition (while_true)", self);
        misplaced(kind != "date" && t.offset.is_some(), "offset", "date", self);
        misplaced(kind != "date" && t.catch_up.is_some(), "catch_up", "date", self);
        misplaced(kind != "schedule" && t.timezone.is_some(), "timezone", "schedule", self);
        let condition = t.condition.as_deref().and_then(|c| self.expr(&at("condition"), c));
        match kind {
            "condition" => {
                let fire = match (t.fire.unwrap_or(RawFire::OnEnter), &t.every) {
                    (RawFire::OnEnter, None) => Fire::OnEnter,
                    (RawFire::OnEnter, Some(_)) => {
                        self.err(
                            &at("every"),
                            "`every` goes with `fire: while_true`; `on_enter` fires once per episode".into(),
                            None,
                        );
                        return None;
                    }
                    (RawFire::WhileTrue, Some(every)) => {
                        let every = self.span(&at("every"), every)?;
                        if every.minutes() <= 0 {
                            self.err(&at("every"), "`every` must be positive".into(), None);
                            return None;
                        }
                        Fire::WhileTrue { every }
                    }
                    (RawFire::WhileTrue, None) => {
                        self.err(
                            &at("fire"),
                            "`fire: while_true` needs `every` (e.g. every: 7d): how often it may re-fire".into(),
                            None,
                        );
                        return None;
                    }
                };
                Some(Trigger::Condition { condition: condition?, fire })
            }
            "date" => {
                let raw_field = t.date.as_deref().unwrap_or_default();
                let field = match raw_field {
                    "renewal_date" => Some(DateField::RenewalDate),
                    "start_date" => Some(DateField::StartDate),
                    f => match f.strip_prefix("fields.") {
                        Some(name) if !name.is_empty() => Some(DateField::Field(name.to_string())),
                        _ => {
                            self.err(
                                &at("date"),
                                format!("unknown date field {f:?}: expected renewal_date, start_date or fields.<name>"),
                                None,
                            );
                            None
                        }
                    },
                };
                let offset = match &t.offset {
                    Some(o) => self.span(&at("offset"), o),
                    None => Some(Span::parse("0d").expect("valid")),
                };
                let catch_up = match &t.catch_up {
                    Some(c) => self.span(&at("catch_up"), c),
                    None => Some(Span::parse(&format!("{DEFAULT_CATCH_UP_DAYS}d")).expect("valid")),
                };
                if catch_up.is_some_and(Span::is_negative) {
                    self.err(&at("catch_up"), "`catch_up` must not be negative".into(), None);
                    return None;
                }
                Some(Trigger::Date { field: field?, offset: offset?, catch_up: catch_up?, condition })
            }
            "event" => {
                let name = t.event.clone().unwrap_or_default();
                if name.trim().is_empty() {
                    self.err(&at("event"), "the event name is empty".into(), None);
                    return None;
                }
                Some(Trigger::Event { name, condition })
            }
            _ => {
                let cron = match CronSchedule::parse(t.schedule.as_deref().unwrap_or_default()) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.err(&at("schedule"), e, Some(CRON_HELP.into()));
                        None
                    }
                };
                let timezone = match t.timezone.as_deref().map(str::parse::<Tz>) {
                    None => None,
                    Some(Ok(tz)) => Some(tz),
                    Some(Err(_)) => {
                        self.err(
                            &at("timezone"),
                            format!("unknown time zone {:?}", t.timezone.as_deref().unwrap_or("")),
                            None,
                        );
                        return None;
                    }
                };
                Some(Trigger::Schedule { cron: cron?, timezone, condition })
            }
        }
    }

    /// One step; `path` is the step's own path (empty for top-level `actions:`).
    fn step(&mut self, path: &[Seg], raw: RawStep, top_level: bool) -> Option<Step> {
        let with = |k: &'static str| [path, &[Seg::Key(k)]].concat();
        let after = if top_level { Span::parse("0d").ok() } else { self.span(&with("after"), &raw.after) };
        if after.is_some_and(Span::is_negative) {
            self.err(&with("after"), "`after` counts from the trigger and cannot be negative".into(), None);
        }
        let when = raw.when.as_deref().and_then(|w| self.expr(&with("when"), w));
        if raw.actions.is_empty() {
            self.err(&with("actions"), "a step needs at least one action".into(), None);
        }
        let mut actions = Vec::new();
        for (i, action) in raw.actions.into_iter().enumerate() {
            let at = [with("actions"), vec![Seg::Index(i)]].concat();
            actions.extend(self.action(&at, action));
        }
        Some(Step { after: after?, when, actions })
    }

    fn action(&mut self, path: &[Seg], raw: RawAction) -> Option<Action> {
        let kinds = [raw.task.is_some(), raw.email.is_some(), raw.webhook.is_some(), raw.update.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.err(path, "each action is exactly one of task, email, webhook, update".into(), None);
            return None;
        }
        let sub = |kind: &'static str, key: &'static str| [path, &[Seg::Key(kind), Seg::Key(key)]].concat();
        if let Some(task) = raw.task {
            let title = self.template(&sub("task", "title"), &task.title);
            let owner = self.template(&sub("task", "owner"), &task.owner);
            let description = match &task.description {
                Some(d) => Some(self.template_as(&sub("task", "description"), d, "", TEXT_LIMIT)?),
                None => None,
            };
            let due_in = match &task.due_in {
                Some(d) => Some(self.span(&sub("task", "due_in"), d)?),
                None => None,
            };
            if due_in.is_some_and(Span::is_negative) {
                let message = "`due_in` counts from when the task opens and cannot be negative".into();
                self.err(&sub("task", "due_in"), message, None);
                return None;
            }
            let escalate = match (&task.escalate_after, &task.escalate_to) {
                (Some(after), to) => {
                    let after = self.span(&sub("task", "escalate_after"), after);
                    let to = self.template(
                        &sub("task", if to.is_some() { "escalate_to" } else { "escalate_after" }),
                        to.as_deref().unwrap_or("{{ account.manager }}"),
                    );
                    if due_in.is_none() {
                        self.err(
                            &sub("task", "escalate_after"),
                            "a task escalates when overdue, so it needs a `due_in`".into(),
                            None,
                        );
                        return None;
                    }
                    if after.is_some_and(Span::is_negative) {
                        let message = "`escalate_after` counts from the due date and cannot be negative".into();
                        self.err(&sub("task", "escalate_after"), message, None);
                        return None;
                    }
                    Some(Escalate { after: after?, to: to? })
                }
                (None, Some(_)) => {
                    self.err(&sub("task", "escalate_to"), "`escalate_to` needs `escalate_after`".into(), None);
                    return None;
                }
                (None, None) => None,
            };
            return Some(Action::Task {
                title: title?,
                description,
                owner: owner?,
                due_in,
                priority: task.priority.unwrap_or(Priority::Normal),
                escalate,
            });
        }
        if let Some(email) = raw.email {
            let to = if email.to.trim() == "contacts" {
                Some(Recipients::Contacts)
            } else {
                self.template(&sub("email", "to"), &email.to).map(Recipients::Address)
            };
            let template = self.email_template(&sub("email", "template"), &email.template);
            template?;
            return Some(Action::Email {
                to: to?,
                template: email.template,
                digest: email.digest,
                on_cap: email.on_cap.unwrap_or_default(),
            });
        }
        if let Some(hook) = raw.webhook {
            let url = self.template(&sub("webhook", "url"), &hook.url);
            self.env_ref(&sub("webhook", "url"), &hook.url);
            let body = match &hook.body {
                // `.json`: values print as JSON (quoted, escaped), so account data cannot
                // break the body's structure.
                Some(b) => Some(self.template_as(&sub("webhook", "body"), b, ".json", TEXT_LIMIT)?),
                None => None,
            };
            let mut headers = BTreeMap::new();
            for (name, value) in &hook.headers {
                let at = [path, &[Seg::Key("webhook"), Seg::Key("headers"), Seg::Key(name)]].concat();
                self.env_ref(&at, value);
                headers.insert(name.clone(), self.template(&at, value)?);
            }
            let timeout = match &hook.timeout {
                Some(t) => match super::duration::parse_delay(t) {
                    Ok(d) => d,
                    Err(e) => {
                        self.err(&sub("webhook", "timeout"), e, None);
                        return None;
                    }
                },
                None => DEFAULT_WEBHOOK_TIMEOUT,
            };
            if let Some(var) = &hook.secret_env {
                if var.is_empty() || !var.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                    self.err(
                        &sub("webhook", "secret_env"),
                        format!("{var:?} is not an environment variable name"),
                        None,
                    );
                    return None;
                }
            }
            return Some(Action::Webhook {
                url: url?,
                method: hook.method.unwrap_or(Method::Post),
                headers,
                body,
                secret_env: hook.secret_env,
                timeout,
            });
        }
        let update = raw.update.expect("one kind is set");
        const FIELDS: &[&str] = &["lifecycle_stage", "segment", "owner", "manager"];
        if !FIELDS.contains(&update.field.as_str()) && !update.field.starts_with("fields.") {
            let help = did_you_mean(&update.field, FIELDS.iter().copied()).map(|n| format!("did you mean `{n}`?"));
            self.err(
                &sub("update", "field"),
                format!("`update` can set {} or fields.<name>, not {:?}", FIELDS.join(", "), update.field),
                help,
            );
            return None;
        }
        let value = self.template(&sub("update", "value"), &update.value)?;
        Some(Action::Update { field: update.field, value })
    }
}

/// `actions[0].task.title`
fn key_path(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => k.to_string(),
            Seg::Index(i) => format!("[{i}]"),
        })
        .collect::<Vec<_>>()
        .join(".")
        .replace(".[", "[")
}

fn plain(file: &Path, message: String) -> Diagnostic {
    Diagnostic { file: file.to_path_buf(), position: None, key: None, message, snippet: None, help: None }
}

/// Names used by [`PlaybookSet`] templates, for tests and `check`'s summary.
pub fn template_names(set: &PlaybookSet) -> BTreeSet<String> {
    set.templates.templates().map(|(name, _)| name.to_string()).collect()
}
