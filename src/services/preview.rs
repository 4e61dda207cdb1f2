//! Preview: an email template rendered for a real account, as the exact message Keel
//! would send — internal mail to the account's owner, or customer mail to one of its
//! contacts (with that contact's unsubscribe link, added to the text if the template does
//! not print it, as at decision time).
//!
//! Invariants: nothing is written to the store or sent; the message is built by the same
//! code the mailer uses, so headers and parts are what a recipient would get.

use chrono::{DateTime, Utc};
use minijinja::Value;
use serde::Serialize;

use super::ServiceError;
use crate::config::Config;
use crate::decide::plan::with_unsubscribe_link;
use crate::decide::unsubscribe::Unsubscribe;
use crate::deliver::email::{build, from_mailbox, Outgoing};
use crate::lang::playbook::{Action, PlaybookSet};
use crate::lang::render::{context, for_recipient, render_email};
use crate::lang::view::AccountView;

/// What to render, for whom.
#[derive(Debug, Clone)]
pub struct PreviewArgs {
    /// The template's name (`playbooks/templates/NAME.txt`, and `.html` if there is one).
    pub template: String,
    pub account: String,
    /// Render as customer mail to this contact's address; `None`: internal mail to the
    /// account's owner.
    pub contact: Option<String>,
    pub now: DateTime<Utc>,
}

/// The message, as parts a person reads and as the RFC 5322 text a mail program opens.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub from: String,
    /// Empty when the account has no owner.
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub unsubscribe_url: Option<String>,
    /// The whole message as sent (transfer-encoded), for a `.eml` file.
    pub eml: String,
}

pub fn preview(
    set: &PlaybookSet,
    store: &crate::store::Store,
    config: &Config,
    args: &PreviewArgs,
) -> Result<Preview, ServiceError> {
    let unknown =
        || ServiceError::UnknownTemplate { name: args.template.clone(), known: set.emails.keys().cloned().collect() };
    if !set.emails.contains_key(&args.template) {
        return Err(unknown());
    }
    let account = store.account(&args.account)?.ok_or_else(|| ServiceError::not_found("account", &args.account))?;
    let contacts = store.contacts_of(&account.id)?;
    let date = args.now.with_timezone(&config.timezone).date_naive();
    let health = store
        .health_on_or_before(&account.id, date)?
        .map(|p| crate::decide::health::with_trend(store, &account.id, p))
        .transpose()?;
    let view = AccountView { account: &account, health, contacts: &contacts };
    let playbook = set
        .playbooks
        .iter()
        .find(|p| {
            p.steps
                .iter()
                .flat_map(|s| &s.actions)
                .any(|a| matches!(a, Action::Email { template, .. } if *template == args.template))
        })
        .ok_or_else(unknown)?;
    let base = context(&view, playbook, None, date);
    let (to, recipient, unsubscribe) = match &args.contact {
        Some(addr) => {
            let c = contacts
                .iter()
                .find(|c| c.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(addr)))
                .ok_or_else(|| ServiceError::NoSuchContact { account: account.id.clone(), address: addr.clone() })?;
            let url = Unsubscribe::for_store(config, store)?.url(addr);
            (addr.clone(), Value::from_serialize(c), Some(url))
        }
        None => (
            account.owner.clone().unwrap_or_default(),
            Value::from_serialize(serde_json::json!({ "email": account.owner })),
            None,
        ),
    };
    let ctx = for_recipient(&base, recipient, unsubscribe.as_deref());
    let r = render_email(set, &args.template, &ctx).map_err(|e| ServiceError::Render(e.to_string()))?;
    let mut email = crate::model::Email {
        to: to.clone(),
        audience: crate::model::Audience::Internal,
        template: args.template.clone(),
        subject: r.subject,
        text: r.text,
        html: r.html,
        unsubscribe_url: unsubscribe.clone(),
        digest: None,
        on_cap: crate::model::CapPolicy::Defer,
    };
    if let Some(url) = &unsubscribe {
        with_unsubscribe_link(&mut email, url);
    }
    let from = from_mailbox(&config.email).map_err(|e| ServiceError::Config(e.to_string()))?;
    let message = build(
        &from,
        &Outgoing {
            to: if to.is_empty() { "owner-missing@invalid" } else { &to },
            subject: &email.subject,
            text: &email.text,
            html: email.html.as_deref(),
            key: "preview",
            unsubscribe_url: email.unsubscribe_url.as_deref(),
            account: &account.id,
            playbook: &playbook.id,
        },
    )
    .map_err(|f| ServiceError::Render(f.error().to_string()))?;
    Ok(Preview {
        from: config.email.from.clone(),
        to,
        subject: email.subject,
        text: email.text,
        html: email.html,
        unsubscribe_url: email.unsubscribe_url,
        eml: String::from_utf8_lossy(&message.formatted()).into_owned(),
    })
}
