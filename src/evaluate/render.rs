//! Decided actions in words: a playbook action with its templates rendered for one
//! account. `simulate` shows these; the ledger records them with each firing, so the
//! account timeline says what was decided, not only that something was.

use chrono::NaiveDate;
use minijinja::{context, Value};

use super::playbook::{Action, Playbook, PlaybookSet, Recipients};
use super::view::AccountView;
use crate::model::Event;

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
    let ctx = context! {
        account => Value::from_serialize(view),
        health => Value::from_serialize(&view.health),
        contacts => Value::from_serialize(view.contacts),
        playbook => context! { id => playbook.id.clone(), name => playbook.name.clone() },
        today => date.to_string(),
        event => Value::from_serialize(event),
        accounts => Value::from(Vec::<Value>::new()),
        recipient => Value::from(()),
        unsubscribe_url => "",
    };
    let render = |name: &str| match set.templates.get_template(name).and_then(|t| t.render(&ctx)) {
        Ok(text) => one_line(&text),
        Err(e) => format!("<cannot render: {e}>"),
    };
    match action {
        Action::Task { title, owner, due_in, priority, .. } => {
            let due = due_in.map(|d| format!(", due in {d}")).unwrap_or_default();
            format!("task {:?} for {} ({}{due})", render(title), render(owner), priority.as_str())
        }
        Action::Email { to, template, digest } => {
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
        Action::Update { field, value } => format!("update {field} = {:?}", render(value)),
    }
}

/// Text on one line, runs of whitespace as one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
