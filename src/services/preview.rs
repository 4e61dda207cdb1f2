//! Preview: an email template rendered for a real account, as the exact message the
//! playbook's action would send — the same recipient resolution, the same parts, the
//! same headers.
//!
//! Invariants: the message is what the pass would decide, because it *is* what the pass
//! decides: the action is planned by [`crate::decide::plan::Planner`] (which resolves its
//! recipients: the manager for `to: "{{ account.manager }}"`, each contact for
//! `to: contacts`), a digest action is rendered as the deliverer renders a digest (of this
//! one account), and the message is built by the mailer's own code (`List-Unsubscribe`,
//! `List-Unsubscribe-Post` on customer mail). Nothing is sent, and nothing is written to
//! the store but the unsubscribe key a first send would create.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ServiceError;
use crate::config::Config;
use crate::decide::plan::{with_unsubscribe_link, Firing, Planner};
use crate::decide::unsubscribe::Unsubscribe;
use crate::deliver::digest_context;
use crate::deliver::email::{build, from_mailbox, Outgoing};
use crate::lang::playbook::{Action, Playbook, PlaybookSet, Recipients};
use crate::lang::render::{context, render_email};
use crate::lang::view::AccountView;
use crate::model::{Audience, Payload, Status};

/// What to render, for whom.
#[derive(Debug, Clone)]
pub struct PreviewArgs {
    /// The template's name (`playbooks/templates/NAME.txt`, and `.html` if there is one).
    pub template: String,
    pub account: String,
    /// For customer mail (`to: contacts`): the contact it is rendered for. Required there,
    /// refused for internal mail (its recipient is what the playbook's `to` renders).
    pub contact: Option<String>,
    /// The playbook whose action is previewed; needed only when several send the template.
    pub playbook: Option<String>,
    pub now: DateTime<Utc>,
}

/// The message, as parts a person reads and as the RFC 5322 text a mail program opens.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The playbook whose action this is.
    pub playbook: String,
    pub from: String,
    /// As the playbook resolves it; empty when its `to` renders empty for this account
    /// (the real send would be dead, with that reason).
    pub to: String,
    /// `internal` or `customer`.
    pub audience: &'static str,
    /// Sent as part of a digest (one email per recipient per pass).
    pub digest: bool,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub unsubscribe_url: Option<String>,
    /// The whole message as sent (transfer-encoded), for a `.eml` file.
    pub eml: String,
}

/// The first email action of `playbook` that sends `template`.
fn action_of<'a>(playbook: &'a Playbook, template: &str) -> Option<&'a Action> {
    playbook
        .steps
        .iter()
        .flat_map(|s| &s.actions)
        .find(|a| matches!(a, Action::Email { template: t, .. } if t == template))
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
    let senders: Vec<(&Playbook, &Action)> =
        set.playbooks.iter().filter_map(|p| action_of(p, &args.template).map(|a| (p, a))).collect();
    let (playbook, action) = match &args.playbook {
        Some(id) => *senders.iter().find(|(p, _)| p.id == *id).ok_or_else(|| ServiceError::NotSentBy {
            template: args.template.clone(),
            playbook: id.clone(),
            sent_by: senders.iter().map(|(p, _)| p.id.clone()).collect(),
        })?,
        None => match senders.as_slice() {
            [] => return Err(unknown()),
            [one] => *one,
            several => {
                return Err(ServiceError::AmbiguousTemplate {
                    template: args.template.clone(),
                    playbooks: several.iter().map(|(p, _)| p.id.clone()).collect(),
                })
            }
        },
    };
    let Action::Email { to: recipients, digest, .. } = action else { unreachable!("action_of finds emails") };

    let account = store.account(&args.account)?.ok_or_else(|| ServiceError::not_found("account", &args.account))?;
    let contacts = store.contacts_of(&account.id)?;
    let date = args.now.with_timezone(&config.timezone).date_naive();
    let health = store
        .health_on_or_before(&account.id, date)?
        .map(|p| crate::decide::health::with_trend(store, &account.id, p))
        .transpose()?;
    let view = AccountView { account: &account, health, contacts: &contacts };
    match (recipients, &args.contact) {
        (Recipients::Contacts, None) => {
            return Err(ServiceError::NeedsContact {
                template: args.template.clone(),
                playbook: playbook.id.clone(),
                account: account.id.clone(),
                contacts: contacts.iter().filter_map(|c| c.email.clone()).collect(),
            })
        }
        (Recipients::Address(to), Some(_)) => {
            return Err(ServiceError::NotCustomerMail {
                template: args.template.clone(),
                playbook: playbook.id.clone(),
                to: set.templates.get_template(to).map(|t| t.source().to_string()).unwrap_or_default(),
            })
        }
        _ => {}
    }

    let unsubscribe = Unsubscribe::for_store(config, store)?;
    let planner = Planner { set, unsubscribe: &unsubscribe, timezone: config.timezone };
    let firing =
        Firing { playbook, view: &view, event: None, occurrence: "preview", now: args.now, date, tick: args.now };
    let work = planner.plan(std::slice::from_ref(action), &firing, &context(&view, playbook, None, date));
    let mut entries = work.outbox.into_iter();
    let entry = match &args.contact {
        Some(addr) => entries
            .find(|e| e.target().eq_ignore_ascii_case(addr.trim()))
            .ok_or_else(|| ServiceError::NoSuchContact { account: account.id.clone(), address: addr.clone() })?,
        None => entries.next().ok_or_else(|| ServiceError::Render("the action plans no email".into()))?,
    };
    if let Status::Dead { error, .. } = &entry.status {
        return Err(ServiceError::Render(format!("playbook {}: {error}", playbook.id)));
    }
    let Payload::Email(mut email) = entry.payload else { unreachable!("an email action plans emails") };
    if let Some(item) = email.digest.take() {
        // As the deliverer renders the digest: here, of this one account.
        let ctx = digest_context(set, &playbook.id, &[item.item], date, &email.to, email.unsubscribe_url.as_deref());
        let r = render_email(set, &email.template, &ctx).map_err(|e| ServiceError::Render(e.to_string()))?;
        (email.subject, email.text, email.html) = (r.subject, r.text, r.html);
        if let Some(url) = email.unsubscribe_url.clone() {
            with_unsubscribe_link(&mut email, &url);
        }
    }
    let from = from_mailbox(&config.email).map_err(|e| ServiceError::Config(e.to_string()))?;
    let message = build(
        &from,
        &Outgoing {
            to: if email.to.is_empty() { "recipient-missing@invalid" } else { &email.to },
            subject: &email.subject,
            text: &email.text,
            html: email.html.as_deref(),
            key: &entry.key,
            unsubscribe_url: email.unsubscribe_url.as_deref(),
            account: &account.id,
            playbook: &playbook.id,
            date: args.now,
        },
    )
    .map_err(|f| ServiceError::Render(f.error().to_string()))?;
    Ok(Preview {
        playbook: playbook.id.clone(),
        from: config.email.from.clone(),
        to: email.to,
        audience: match email.audience {
            Audience::Internal => "internal",
            Audience::Customer { .. } => "customer",
        },
        digest: *digest,
        subject: email.subject,
        text: email.text,
        html: email.html,
        unsubscribe_url: email.unsubscribe_url,
        eml: String::from_utf8_lossy(&message.formatted()).into_owned(),
    })
}
