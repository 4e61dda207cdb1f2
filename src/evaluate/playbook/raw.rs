//! Playbook files as written. Strict serde types (`deny_unknown_fields`: a typo like
//! `tigger:` is an error, never a silently disabled playbook). Triggers and actions are
//! structs of optional keys rather than serde's tagged or untagged enums, whose errors
//! serde_yaml reports on the wrong line or as "did not match any variant"; validation
//! ([`super::validate`]) then insists on exactly one kind, with a message that says so.

use std::collections::BTreeMap;

use serde::Deserialize;

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlaybook {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Which accounts the playbook applies to (Rhai); all when absent.
    pub audience: Option<String>,
    /// When Keel evaluates the playbook (cron); the config's `evaluation.schedule` when absent.
    pub schedule: Option<String>,
    pub trigger: RawTrigger,
    /// A single step's actions (shorthand for one step after 0d).
    pub actions: Option<Vec<RawAction>>,
    /// A sequence: steps with delays and optional conditions.
    pub steps: Option<Vec<RawStep>>,
    /// Stops a sequence for an account when true.
    pub exit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    /// Condition trigger, or the extra condition of a date/event/schedule trigger.
    pub condition: Option<String>,
    pub fire: Option<RawFire>,
    pub every: Option<String>,
    /// Date trigger: the account date field.
    pub date: Option<String>,
    pub offset: Option<String>,
    pub catch_up: Option<String>,
    /// Event trigger: the event name.
    pub event: Option<String>,
    /// Schedule trigger: a cron expression.
    pub schedule: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFire {
    OnEnter,
    WhileTrue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub after: String,
    pub when: Option<String>,
    pub actions: Vec<RawAction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub task: Option<RawTask>,
    pub email: Option<RawEmail>,
    pub webhook: Option<RawWebhook>,
    pub update: Option<RawUpdate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub title: String,
    pub description: Option<String>,
    pub owner: String,
    pub due_in: Option<String>,
    pub priority: Option<Priority>,
    /// Overdue by this long, the task escalates (once) by email to `escalate_to`.
    pub escalate_after: Option<String>,
    /// An address template; default the account's manager.
    pub escalate_to: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// An address template (`{{ account.manager }}`), or `contacts`: the account's
    /// subscribed contacts (customer-facing mail).
    pub to: String,
    /// A template in `playbooks/templates/` (`<name>.txt`, optional `<name>.html`).
    pub template: String,
    /// Group this action's emails by recipient: one email listing every account.
    #[serde(default)]
    pub digest: bool,
    /// Over the frequency cap: `defer` (default) or `drop`.
    pub on_cap: Option<crate::model::CapPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    pub method: Option<Method>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body template.
    pub body: Option<String>,
    /// Name of the environment variable holding the HMAC-SHA256 signing secret.
    pub secret_env: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    /// `lifecycle_stage`, or `fields.<name>`.
    pub field: String,
    pub value: String,
}
