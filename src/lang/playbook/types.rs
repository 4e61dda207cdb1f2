//! The validated runtime types of playbooks: what a pass decides with and plans from.
//!
//! Built only by validation (`validate`) from the raw serde types; every expression and template
//! they name is already compiled (templates by name in [`PlaybookSet::templates`]), so
//! evaluating an account compiles nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono_tz::Tz;
use minijinja::Environment;

pub use super::raw::{Method, Priority};
use crate::diagnostic::Diagnostic;
use crate::lang::duration::Span;
use crate::lang::schedule::CronSchedule;
use crate::lang::script::Expression;

/// Catch-up window of a date trigger when the playbook does not set one.
pub const DEFAULT_CATCH_UP_DAYS: i64 = 7;

/// The longest one-line text a playbook may hold (a task title or owner, an address, an
/// email subject, a webhook URL or header value, an update's value): every firing renders
/// it for its account, into the task, the ledger and `simulate`'s output.
pub const ONE_LINE_LIMIT: usize = 8 * 1024;

/// The longest multi-line text: a task description, a webhook body, an email template.
pub const TEXT_LIMIT: usize = 1024 * 1024;
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
    /// Its blast-radius guard setting (`decide::guard` resolves it with the config's).
    pub guard: crate::lang::guard::PlaybookGuard,
}

#[derive(Debug)]
pub enum Trigger {
    /// Fires when the condition turns true (`on_enter`), or while it is true, at most once
    /// per `every` (`while_true`).
    Condition { condition: Expression, fire: Fire },
    /// Fires once when today ≥ the date + offset, within the catch-up window.
    Date { field: DateField, offset: Span, catch_up: CatchUp, condition: Option<Expression> },
    /// Fires for each matching event.
    Event { name: String, condition: Option<Expression> },
    /// Fires for each account in the audience at each tick.
    Schedule { cron: CronSchedule, timezone: Option<Tz>, condition: Option<Expression> },
}

/// How long after its due day a date trigger may still fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// For this long (at least the due day itself).
    Span(Span),
    /// Until the date itself (`catch_up: until_date`): renewal preparation that started
    /// late still gets its task — but among the playbooks on the same date field that
    /// catch up this way, only the most recent due step fires; the earlier ones are
    /// recorded as skipped.
    UntilDate,
}

impl std::fmt::Display for CatchUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatchUp::Span(s) => write!(f, "{s}"),
            CatchUp::UntilDate => f.write_str("until_date"),
        }
    }
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

impl Playbook {
    /// Whether a step emails the account's contacts: customer-facing mail, guarded by
    /// default.
    pub fn emails_customers(&self) -> bool {
        self.steps.iter().flat_map(|s| &s.actions).any(|a| matches!(a, Action::Email { to: Recipients::Contacts, .. }))
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
                    message: e.to_string(),
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
    pub fn get(&self, id: &str) -> Option<&Playbook> {
        self.playbooks.iter().find(|p| p.id == id)
    }
}

/// Names used by [`PlaybookSet`] templates, for tests and `check`'s summary.
pub fn template_names(set: &PlaybookSet) -> BTreeSet<String> {
    set.templates.templates().map(|(name, _)| name.to_string()).collect()
}
