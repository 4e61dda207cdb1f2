//! Validation: the raw serde types of one parsed playbook file into the runtime types,
//! compiling its expressions and templates, and recording *every* problem found as a
//! [`Diagnostic`] at file:line:column (a validation error never stops the others).
//!
//! Pure but for the email templates a playbook names, which `load` reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono_tz::Tz;

use super::raw::{Method, Priority, RawAction, RawFire, RawPlaybook, RawStep, RawTrigger};
use super::types::*;
use super::vars;
use crate::diagnostic::{byte_of_column, did_you_mean, yaml_path_position, Diagnostic, Seg};
use crate::lang::duration::Span;
use crate::lang::schedule::CronSchedule;
use crate::lang::script::{Expression, Origin, ScriptEngine};

const CRON_HELP: &str = "5 fields like crontab: \"0 8 * * 1-5\" is weekdays at 08:00, \"0 9 * * 1#1\" the first Monday of the month, \"0 9 L * *\" its last day";

/// A template's problem; `offset` is where in its source, when known.
pub(super) struct TemplateProblem {
    pub(super) message: String,
    pub(super) help: Option<String>,
    pub(super) offset: Option<usize>,
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

/// Validation of one file: where errors go, and what compiles expressions and templates.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) dir: &'a Path,
    pub(super) engine: &'a ScriptEngine,
    pub(super) errors: &'a mut Vec<Diagnostic>,
    pub(super) set: &'a mut PlaybookSet,
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

    pub(super) fn err(&mut self, path: &[Seg], message: String, help: Option<String>) {
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
                self.err(path, e.to_string(), None);
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
            self.err(path, e.to_string(), Some("`${VAR}` reads an environment variable; `$$` is a literal `$`".into()));
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
    pub(super) fn check_template(&mut self, name: &str, source: &str, limit: usize) -> Vec<TemplateProblem> {
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

    pub(super) fn playbook(&mut self, raw: RawPlaybook) -> Option<Playbook> {
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
                    self.err(&[Seg::Key("schedule")], e.to_string(), Some(CRON_HELP.into()));
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
        let customer_email =
            steps.iter().flat_map(|s| &s.actions).any(|a| matches!(a, Action::Email { to: Recipients::Contacts, .. }));
        if let Some(crate::lang::guard::RawPlaybookGuard::Limits(l)) = &raw.guard {
            if l.daily_email_cap.is_some() && !customer_email {
                self.err(
                    &[Seg::Key("guard"), Seg::Key("daily_email_cap")],
                    "`daily_email_cap` caps the emails a playbook sends to contacts, and this one sends none".into(),
                    None,
                );
            }
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
            guard: raw.guard.into(),
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
                let catch_up = match t.catch_up.as_deref() {
                    Some("until_date") => {
                        if offset.is_some_and(|o| o.minutes() > 0) {
                            let message =
                                "`catch_up: until_date` needs a date before the field's (an offset of 0d or less)";
                            self.err(&at("catch_up"), message.into(), None);
                            return None;
                        }
                        Some(CatchUp::UntilDate)
                    }
                    Some(c) => self.span(&at("catch_up"), c).map(CatchUp::Span),
                    None => Some(CatchUp::Span(Span::parse(&format!("{DEFAULT_CATCH_UP_DAYS}d")).expect("valid"))),
                };
                if matches!(catch_up, Some(CatchUp::Span(s)) if s.is_negative()) {
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
                        self.err(&at("schedule"), e.to_string(), Some(CRON_HELP.into()));
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
                Some(t) => match crate::lang::duration::parse_delay(t) {
                    Ok(d) => d,
                    Err(e) => {
                        self.err(&sub("webhook", "timeout"), e.to_string(), None);
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
        let fields = crate::model::UPDATABLE;
        if !crate::model::updatable(&update.field) {
            let help = did_you_mean(&update.field, fields.iter().copied()).map(|n| format!("did you mean `{n}`?"));
            self.err(
                &sub("update", "field"),
                format!(
                    "`update` can set {}, fields.<name> or metrics.<name>, not {:?}",
                    fields.join(", "),
                    update.field
                ),
                help,
            );
            return None;
        }
        // A value with no template syntax is what every account gets: one that cannot
        // fit the field (text into a metric, a segment that is no name) is wrong now.
        if !update.value.contains("{{") && !update.value.contains("{%") {
            if let Err(e) = crate::model::update_value(&update.field, &update.value) {
                let help = update.field.starts_with("metrics.").then(|| {
                    "write a number (`value: 3`), or a template that renders one (`value: \"{{ account.metrics.seats * 2 }}\"`)".into()
                });
                self.err(&sub("update", "value"), e.to_string(), help);
                return None;
            }
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
