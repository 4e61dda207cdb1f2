//! `keel preview TEMPLATE --account ID`: an email template rendered for a real account,
//! as the exact message the playbook's action would send (its recipient, headers and
//! parts), to the terminal or a file.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Session;
use crate::services::preview;
use crate::services::ServiceError;

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The template's name (playbooks/templates/NAME.txt, and .html if there is one).
    template: String,
    /// The account whose data fills it in.
    #[arg(long)]
    account: String,
    /// For customer mail (a playbook sending to `contacts`): the contact to render it for
    /// (required there). Internal mail goes where the playbook's `to` says.
    #[arg(long)]
    contact: Option<String>,
    /// The playbook whose action to preview, when several send this template.
    #[arg(long)]
    playbook: Option<String>,
    /// Write the message (.eml) here instead of the terminal.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

pub fn run(session: &Session, args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_playbooks(session, "nothing was rendered")?;
    let store = session.open_store()?;
    let query = preview::PreviewArgs {
        template: args.template,
        account: args.account,
        contact: args.contact,
        playbook: args.playbook,
        now: session.now,
    };
    let p = preview::preview(&loaded.set, &store, &session.config, &query).map_err(|e| match e {
        ServiceError::NotFound { id, .. } => anyhow::anyhow!("no account {id:?} in the store"),
        other => other.into(),
    })?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &p.eml)?;
            writeln!(io::stdout(), "wrote {} (open it with any mail program)", path.display())?;
        }
        None => {
            // The parts as written, not transfer-encoded, so a person can read them.
            let mut out = io::stdout().lock();
            let how = if p.digest { ", in a digest" } else { "" };
            writeln!(out, "Playbook: {} ({} mail{how})", p.playbook, p.audience)?;
            writeln!(out, "From: {}\nTo: {}\nSubject: {}", p.from, p.to, p.subject)?;
            if let Some(url) = &p.unsubscribe_url {
                writeln!(out, "List-Unsubscribe: <{url}>")?;
                writeln!(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click")?;
            }
            writeln!(out, "\n{}", p.text.trim_end())?;
            if let Some(html) = &p.html {
                writeln!(out, "\n--- text/html ---\n{}", html.trim_end())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
