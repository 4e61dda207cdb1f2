//! Playbook files as written. Strict serde types (`deny_unknown_fields`: a typo like
//! `tigger:` is an error, never a silently disabled playbook). Triggers and actions are
//! structs of optional keys rather than serde's tagged or untagged enums, whose errors
//! serde_yaml reports on the wrong line or as "did not match any variant"; validation
//! ([`super::validate`]) then insists on exactly one kind, with a message that says so.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

fn yes() -> bool {
    true
}

/// What a string field holds, for the message when YAML gave it another type.
#[derive(Clone, Copy)]
enum Kind {
    /// Text or a template: `to: 5` is a mistake, not the address "5".
    Text,
    /// A Rhai expression: `condition: 42` can never be true or false; `true` is allowed.
    Expression,
    /// A value to store: numbers and booleans are taken as their text.
    Scalar,
}

/// Accepts a YAML string only. serde_yaml would hand a number or a boolean to a `String`
/// field as its text, so `to: 5` or `condition: 42` would load and fail per account at
/// run time instead of at `keel check`.
struct Strict(Kind);

impl<'de> Visitor<'de> for Strict {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.0 {
            Kind::Text | Kind::Scalar => f.write_str("text (a quoted string)"),
            Kind::Expression => f.write_str("a Rhai expression, as text"),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        match self.0 {
            Kind::Expression | Kind::Scalar => Ok(v.to_string()),
            Kind::Text => Err(wrong(self.0, &format!("the boolean {v}"))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.number(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.number(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.number(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(wrong(self.0, "nothing (null)"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(wrong(self.0, "a list"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(wrong(self.0, "a mapping"))
    }
}

impl Strict {
    fn number<E: de::Error>(self, v: String) -> Result<String, E> {
        match self.0 {
            Kind::Scalar => Ok(v),
            _ => Err(wrong(self.0, &format!("the number {v}"))),
        }
    }
}

fn wrong<E: de::Error>(kind: Kind, found: &str) -> E {
    E::custom(match kind {
        Kind::Text | Kind::Scalar => format!("expected text, found {found}: quote it (\"…\") if you mean it as text"),
        Kind::Expression => {
            format!("expected a Rhai expression that is true or false (like `account.arr > 10000`), found {found}")
        }
    })
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(Strict(Kind::Text))
}

/// A value to store: text, or a number or boolean taken as its text (`value: 5`).
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(Strict(Kind::Scalar))
}

/// [`Strict`] for one kind, as a type (for options and maps).
struct Typed<const EXPR: bool>(String);

impl<'de, const EXPR: bool> Deserialize<'de> for Typed<EXPR> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Strict(if EXPR { Kind::Expression } else { Kind::Text })).map(Typed)
    }
}

/// An optional text; `null` (or an empty `key:`) is absent.
fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Typed<false>>::deserialize(d)?.map(|t| t.0))
}

fn opt_expr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Typed<true>>::deserialize(d)?.map(|t| t.0))
}

fn text_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(BTreeMap::<String, Typed<false>>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["actions"] }, { "required": ["steps"] }]))]
pub struct RawPlaybook {
    /// The playbook's stable name, unique across the folder: part of every ledger key, so
    /// renaming it makes a new playbook that has fired nothing yet.
    #[serde(deserialize_with = "text")]
    #[schemars(example = &"renewal-90")]
    pub id: String,
    /// The name people read (timelines, reports).
    #[serde(deserialize_with = "text")]
    pub name: String,
    /// Free text.
    #[serde(default, deserialize_with = "opt_text")]
    pub description: Option<String>,
    /// `false` keeps the playbook loaded and checked but never evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Which accounts the playbook applies to (Rhai); all when absent.
    #[serde(default, deserialize_with = "opt_expr")]
    #[schemars(schema_with = "super::schema::opt_expression")]
    pub audience: Option<String>,
    /// When Keel evaluates the playbook (cron); the config's `evaluation.schedule` when absent.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_cron")]
    pub schedule: Option<String>,
    /// Exactly one kind: `condition`, `date`, `event` or `schedule`.
    pub trigger: RawTrigger,
    /// A single step's actions (shorthand for one step after 0d).
    pub actions: Option<Vec<RawAction>>,
    /// A sequence: steps with delays and optional conditions.
    pub steps: Option<Vec<RawStep>>,
    /// Stops a sequence for an account when true.
    #[serde(default, deserialize_with = "opt_expr")]
    #[schemars(schema_with = "super::schema::opt_expression")]
    pub exit: Option<String>,
    /// The blast-radius guard for this playbook: `off`, or its own limits over the
    /// config's (`{ max_firings: 200, max_share: "5%", daily_email_cap: 1000 }`).
    pub guard: Option<crate::lang::guard::RawPlaybookGuard>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    /// Condition trigger, or the extra condition of a date/event/schedule trigger.
    #[serde(default, deserialize_with = "opt_expr")]
    #[schemars(schema_with = "super::schema::opt_expression")]
    pub condition: Option<String>,
    /// Condition trigger: `on_enter` (default) or `while_true` (with `every`).
    pub fire: Option<RawFire>,
    /// `while_true`: at most once per this long (`14d`).
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_span")]
    pub every: Option<String>,
    /// Date trigger: the account date field.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_date_field")]
    pub date: Option<String>,
    /// Date trigger: days from the date (`-90d` is before); default `0d`.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_offset")]
    pub offset: Option<String>,
    /// Date trigger: how late it may still fire (default `7d`), or `until_date`.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_catch_up")]
    pub catch_up: Option<String>,
    /// Event trigger: the event name.
    #[serde(default, deserialize_with = "opt_text")]
    pub event: Option<String>,
    /// Schedule trigger: a cron expression.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_cron")]
    pub schedule: Option<String>,
    /// Schedule trigger: the IANA zone of its cron; default the config's.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_timezone")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawFire {
    /// Once each time audience and condition turn true.
    OnEnter,
    /// While they hold, at most once per `every`.
    WhileTrue,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// How long after the firing (not the previous step) the step comes due (`3d`).
    #[serde(deserialize_with = "text")]
    #[schemars(schema_with = "super::schema::span")]
    pub after: String,
    /// Checked when the step comes due: when it does not hold, the step is skipped.
    #[serde(default, deserialize_with = "opt_expr")]
    #[schemars(schema_with = "super::schema::opt_expression")]
    pub when: Option<String>,
    /// At least one.
    pub actions: Vec<RawAction>,
}

/// Exactly one of `task`, `email`, `webhook`, `update`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct RawAction {
    /// A to-do (CTA) for a CSM.
    pub task: Option<RawTask>,
    /// An email from a template.
    pub email: Option<RawEmail>,
    /// An HTTP request.
    pub webhook: Option<RawWebhook>,
    /// Set a field of the account.
    pub update: Option<RawUpdate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    /// A template.
    #[serde(deserialize_with = "text")]
    pub title: String,
    /// A template (multi-line).
    #[serde(default, deserialize_with = "opt_text")]
    pub description: Option<String>,
    /// An address template, usually `{{ account.owner }}` or `{{ account.manager }}`.
    #[serde(deserialize_with = "text")]
    #[schemars(example = &"{{ account.owner }}")]
    pub owner: String,
    /// The due date, counted from when the task opens (`3d`).
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_span")]
    pub due_in: Option<String>,
    /// Default `normal`.
    pub priority: Option<Priority>,
    /// Overdue by this long, the task escalates (once) by email to `escalate_to`.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_span")]
    pub escalate_after: Option<String>,
    /// An address template; default the account's manager.
    #[serde(default, deserialize_with = "opt_text")]
    pub escalate_to: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// An address template (`{{ account.manager }}`), or `contacts`: the account's
    /// subscribed contacts (customer-facing mail).
    #[serde(deserialize_with = "text")]
    pub to: String,
    /// A template in `playbooks/templates/` (`<name>.txt`, optional `<name>.html`).
    #[serde(deserialize_with = "text")]
    pub template: String,
    /// Group this action's emails by recipient: one email listing every account.
    #[serde(default)]
    pub digest: bool,
    /// Over the frequency cap: `defer` (default) or `drop`.
    pub on_cap: Option<crate::model::CapPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// A template; `${VAR}` is read from Keel's environment when sending.
    #[serde(deserialize_with = "text")]
    pub url: String,
    /// Default `POST`.
    pub method: Option<Method>,
    /// Header templates; `${VAR}` as in `url`.
    #[serde(default, deserialize_with = "text_map")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body template.
    #[serde(default, deserialize_with = "opt_text")]
    pub body: Option<String>,
    /// Name of the environment variable holding the HMAC-SHA256 signing secret.
    #[serde(default, deserialize_with = "opt_text")]
    pub secret_env: Option<String>,
    /// `500ms`, `10s`, `1m` …; default `10s`.
    #[serde(default, deserialize_with = "opt_text")]
    #[schemars(schema_with = "super::schema::opt_delay")]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    /// `lifecycle_stage`, `segment`, `owner`, `manager`, `fields.<name>` or `metrics.<name>`.
    #[serde(deserialize_with = "text")]
    pub field: String,
    /// A template; a number or boolean is taken as its text.
    #[serde(deserialize_with = "scalar")]
    #[schemars(schema_with = "super::schema::scalar")]
    pub value: String,
}
