//! `keel contacts`: the suppression list — unsubscribe an address (by hand or with the
//! token from an unsubscribe link) and list who receives no customer mail.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::table::{Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::services::contacts::{self, UnsubscribeBy};

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
    let mut out = io::stdout().lock();
    match cmd {
        ContactsCommand::Unsubscribe(args) => {
            let by = match (args.email, args.token) {
                (Some(e), _) => UnsubscribeBy::Address(e),
                (None, Some(t)) => UnsubscribeBy::Token(t),
                (None, None) => unreachable!("clap requires one"),
            };
            let done = session.book(None)?.unsubscribe(&by)?;
            if done.added {
                writeln!(out, "{} unsubscribed: no customer-facing email goes to it from now on (mail already queued is suppressed, not sent).", done.email)?;
            } else {
                writeln!(out, "{} was already on the suppression list.", done.email)?;
            }
        }
        ContactsCommand::Suppressed(format) => {
            let list = contacts::suppressed(&session.open_store()?)?;
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
