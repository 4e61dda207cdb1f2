//! `keel contacts`: the suppression list — unsubscribe an address (by hand or with the
//! token from an unsubscribe link) and list who receives no customer mail.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::table::{Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::decide::unsubscribe::Unsubscribe;

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Stop all customer-facing mail to an address (the suppression list).
    Unsubscribe(UnsubscribeArgs),
    /// List suppressed addresses: unsubscribed, bounced.
    Suppressed(FormatArg),
}

#[derive(Debug, Args)]
pub struct UnsubscribeArgs {
    /// The address.
    #[arg(required_unless_present = "token", conflicts_with = "token")]
    email: Option<String>,
    /// The token of an unsubscribe link (`…/unsubscribe?token=…`), verified first.
    #[arg(long)]
    token: Option<String>,
}

pub fn run(session: &Session, cmd: ContactsCommand) -> anyhow::Result<ExitCode> {
    let store = session.open_store()?;
    let mut out = io::stdout().lock();
    match cmd {
        ContactsCommand::Unsubscribe(args) => {
            let (email, source) = match (args.email, args.token) {
                (Some(e), _) => {
                    if !e.contains('@') {
                        anyhow::bail!("{e:?} is not an email address");
                    }
                    (e, "keel contacts unsubscribe")
                }
                (None, Some(t)) => (Unsubscribe::for_store(&session.config, &store)?.verify(&t)?, "unsubscribe link"),
                (None, None) => unreachable!("clap requires one"),
            };
            let new = store.suppress(&email, "unsubscribed", source, session.now)?;
            store.flush()?;
            if new {
                writeln!(out, "{} unsubscribed: no customer-facing email goes to it from now on (mail already queued is suppressed, not sent).", email.trim().to_lowercase())?;
            } else {
                writeln!(out, "{} was already on the suppression list.", email.trim().to_lowercase())?;
            }
        }
        ContactsCommand::Suppressed(format) => {
            let list: Vec<_> = store.suppressions().collect::<Result<_, _>>()?;
            if format.format == OutputFormat::Json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&[
                ("EMAIL", Align::Left),
                ("REASON", Align::Left),
                ("SINCE", Align::Left),
                ("SOURCE", Align::Left),
            ]);
            for s in &list {
                table.row(vec![
                    s.email.clone(),
                    s.reason.clone(),
                    s.at.format("%Y-%m-%d").to_string(),
                    s.source.clone(),
                ]);
            }
            write!(out, "{}", table.render())?;
            writeln!(out, "{} suppressed address(es).", list.len())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
