//! `keel preview TEMPLATE --account ID`: an email template rendered for a real account,
//! as the exact message Keel would send (headers and parts), to the terminal or a file.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use minijinja::Value;

use super::Session;
use crate::decide::plan::with_unsubscribe_link;
use crate::decide::unsubscribe::Unsubscribe;
use crate::deliver::email::{build, from_mailbox, Outgoing};
use crate::lang::render::{context, for_recipient, render_email};
use crate::lang::view::AccountView;
use crate::model::{Audience, CapPolicy, Email};

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The template's name (playbooks/templates/NAME.txt, and .html if there is one).
    template: String,
    /// The account whose data fills it in.
    #[arg(long)]
    account: String,
    /// Render as customer mail to this contact's address (recipient, unsubscribe link);
    /// default: internal mail to the account's owner.
    #[arg(long)]
    contact: Option<String>,
    /// Write the message (.eml) here instead of the terminal.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

pub fn run(session: &Session, args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_playbooks(session, "nothing was rendered")?;
    let set = &loaded.set;
    if !set.emails.contains_key(&args.template) {
        let known: Vec<&str> = set.emails.keys().map(String::as_str).collect();
        anyhow::bail!("no email template {:?} used by the playbooks; known: {}", args.template, known.join(", "));
    }
    let store = session.open_store()?;
    let account =
        store.account(&args.account)?.ok_or_else(|| anyhow::anyhow!("no account {:?} in the store", args.account))?;
    let contacts = store.contacts_of(&account.id)?;
    let date = session.now.with_timezone(&session.config.timezone).date_naive();
    let health = store
        .health_on_or_before(&account.id, date)?
        .map(|p| crate::decide::health::with_trend(&store, &account.id, p))
        .transpose()?;
    let view = AccountView { account: &account, health, contacts: &contacts };
    let playbook = set
        .playbooks
        .iter()
        .find(|p| {
            p.steps.iter().flat_map(|s| &s.actions).any(
                |a| matches!(a, crate::lang::playbook::Action::Email { template, .. } if *template == args.template),
            )
        })
        .expect("a template in the set is used by a playbook");
    let base = context(&view, playbook, None, date);
    let (to, recipient, unsubscribe) = match &args.contact {
        Some(addr) => {
            let c = contacts
                .iter()
                .find(|c| c.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(addr)))
                .ok_or_else(|| anyhow::anyhow!("account {} has no contact with the address {addr}", account.id))?;
            let url = Unsubscribe::for_store(&session.config, &store)?.url(addr);
            (addr.clone(), Value::from_serialize(c), Some(url))
        }
        None => (
            account.owner.clone().unwrap_or_default(),
            Value::from_serialize(serde_json::json!({ "email": account.owner })),
            None,
        ),
    };
    let ctx = for_recipient(&base, recipient, unsubscribe.as_deref());
    let r = render_email(set, &args.template, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut email = Email {
        to: to.clone(),
        audience: Audience::Internal,
        template: args.template.clone(),
        subject: r.subject,
        text: r.text,
        html: r.html,
        unsubscribe_url: unsubscribe.clone(),
        digest: None,
        on_cap: CapPolicy::Defer,
    };
    if let Some(url) = &unsubscribe {
        with_unsubscribe_link(&mut email, url);
    }
    let from = from_mailbox(&session.config.email)?;
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
    .map_err(|f| anyhow::anyhow!("{}", f.error()))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, message.formatted())?;
            writeln!(io::stdout(), "wrote {} (open it with any mail program)", path.display())?;
        }
        None => {
            // The parts as written, not transfer-encoded, so a person can read them.
            let mut out = io::stdout().lock();
            writeln!(out, "From: {}\nTo: {to}\nSubject: {}", session.config.email.from, email.subject)?;
            if let Some(url) = &email.unsubscribe_url {
                writeln!(out, "List-Unsubscribe: <{url}>")?;
            }
            writeln!(out, "\n{}", email.text.trim_end())?;
            if let Some(html) = &email.html {
                writeln!(out, "\n--- text/html ---\n{}", html.trim_end())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
