//! Decided actions in words: a playbook action with its templates rendered for one
//! account. `simulate` shows these; the ledger records them with each firing, so the
//! account timeline says what was decided, not only that something was.

use chrono::NaiveDate;
use minijinja::{context, Value};

use super::playbook::{Action, Playbook, PlaybookSet, Recipients};
use super::view::AccountView;
use crate::model::Event;

/// What every template sees for one account (`recipient`, `unsubscribe_url` and
/// `accounts` are empty here; [`for_recipient`] and digests fill them in).
pub fn context(view: &AccountView, playbook: &Playbook, event: Option<&Event>, date: NaiveDate) -> Value {
    context! {
        account => Value::from_serialize(view),
        health => Value::from_serialize(&view.health),
        contacts => Value::from_serialize(view.contacts),
        playbook => context! { id => playbook.id.clone(), name => playbook.name.clone() },
        today => date.to_string(),
        event => Value::from_serialize(event),
        accounts => Value::from(Vec::<Value>::new()),
        recipient => Value::from(()),
        unsubscribe_url => "",
    }
}

/// The context for one recipient of an email.
pub fn for_recipient(base: &Value, recipient: Value, unsubscribe_url: Option<&str>) -> Value {
    context! { recipient => recipient, unsubscribe_url => unsubscribe_url.unwrap_or(""), ..base.clone() }
}

/// Why a template did not render. minijinja's reason is part of the message, so it is not
/// also given as `source()`.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The playbooks name an email template that is not loaded.
    #[error("no email template {0:?} in the loaded playbooks")]
    NoEmail(String),
    /// One part of an email (subject, text, HTML), named by its template.
    #[error("template {template}: {reason}")]
    Part { template: String, reason: minijinja::Error },
    /// An inline template of a playbook.
    #[error("{0}")]
    Inline(minijinja::Error),
}

/// An email's parts, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// On one line: a value with a line break can never start a new header.
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Renders the email template `name` (subject, text, optional HTML) with `ctx`.
pub fn render_email(set: &PlaybookSet, name: &str, ctx: &Value) -> Result<RenderedEmail, RenderError> {
    let t = set.emails.get(name).ok_or_else(|| RenderError::NoEmail(name.to_string()))?;
    let render = |tname: &str| {
        set.templates
            .get_template(tname)
            .and_then(|t| t.render(ctx))
            .map_err(|reason| RenderError::Part { template: tname.to_string(), reason })
    };
    Ok(RenderedEmail {
        subject: one_line(&render(&t.subject)?),
        text: render(&t.text)?,
        html: t.html.as_deref().map(render).transpose()?,
    })
}

/// Renders one inline template of a playbook.
pub fn render_one(set: &PlaybookSet, name: &str, ctx: &Value) -> Result<String, RenderError> {
    set.templates.get_template(name).and_then(|t| t.render(ctx)).map_err(RenderError::Inline)
}

/// One action in words, its templates rendered for this account. A template that fails
/// to render says so in place (the firing is still recorded).
pub fn describe(
    set: &PlaybookSet,
    action: &Action,
    playbook: &Playbook,
    view: &AccountView,
    event: Option<&Event>,
    date: NaiveDate,
) -> String {
    describe_in(set, action, view, &context(view, playbook, event, date))
}

/// [`describe`] with the template context already built ([`context`]).
pub fn describe_in(set: &PlaybookSet, action: &Action, view: &AccountView, ctx: &Value) -> String {
    let render = |name: &str| match set.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(text) => one_line(&text),
        Err(e) => format!("<cannot render: {e}>"),
    };
    match action {
        Action::Task { title, owner, due_in, priority, .. } => {
            let due = due_in.map(|d| format!(", due in {d}")).unwrap_or_default();
            format!("task {:?} for {} ({}{due})", render(title), render(owner), priority.as_str())
        }
        Action::Email { to, template, digest, .. } => {
            let to = match to {
                Recipients::Contacts => {
                    let n = view.contacts.iter().filter(|c| !c.unsubscribed && c.email.is_some()).count();
                    format!("{n} subscribed contact(s)")
                }
                Recipients::Address(t) => render(t),
            };
            format!("email {template} to {to}{}", if *digest { " (in a digest)" } else { "" })
        }
        Action::Webhook { url, method, .. } => format!("webhook {} {}", method.as_str(), render(url)),
        // The value before is the account's as this pass read it: the timeline then
        // says what the update changed, not only what it set.
        Action::Update { field, value } => {
            let before = crate::model::field_text(&view.account.field(field));
            let after = match crate::model::update_value(field, &render(value)) {
                Ok(v) => crate::model::field_text(&v),
                Err(e) => format!("<cannot set: {e}>"),
            };
            format!("set {field}: {before} → {after}")
        }
    }
}

/// Text on one line, runs of whitespace as one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
