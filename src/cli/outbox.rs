//! `keel outbox list` and `keel outbox retry`: what is waiting to be delivered, what could
//! not be, and putting dead entries back.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::table::{truncate, Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::model::Status;
use crate::services::outbox::{ListQuery, RetryTarget, Which};
use crate::services::ServiceError;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List outbox entries: pending ones by default.
    List(ListArgs),
    /// Put dead entries back in the queue, to be tried again now.
    Retry(RetryArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only dead entries (the last attempt failed, or the receiver refused for good).
    #[arg(long, conflicts_with = "all")]
    dead: bool,
    /// Every entry: pending, delivered, deferred, suppressed, dropped, dead.
    #[arg(long)]
    all: bool,
    /// Only this account's.
    #[arg(long)]
    account: Option<String>,
    /// Show at most this many (the oldest first).
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The entry's id (first column of `keel outbox list --dead`).
    #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
    id: Option<u64>,
    /// Every dead entry.
    #[arg(long)]
    all_dead: bool,
}

pub fn run(session: &Session, cmd: OutboxCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OutboxCommand::List(args) => list(session, args),
        OutboxCommand::Retry(args) => retry(session, args),
    }
}

fn list(session: &Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    let which = if args.all {
        Which::All
    } else if args.dead {
        Which::Dead
    } else {
        Which::Pending
    };
    let entries = session.book(None)?.outbox(&ListQuery { which, account: args.account, limit: args.limit })?;
    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = match which {
        Which::All => "",
        Which::Dead => "dead ",
        Which::Pending => "pending ",
    };
    if entries.is_empty() {
        writeln!(out, "No {what}outbox entries.")?;
        return Ok(ExitCode::SUCCESS);
    }
    let tz = session.config.timezone;
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("STATUS", Align::Left),
        ("CHANNEL", Align::Left),
        ("ACCOUNT", Align::Left),
        ("PLAYBOOK", Align::Left),
        ("TO", Align::Left),
        ("TRIES", Align::Right),
        ("NEXT / LAST", Align::Left),
    ]);
    for e in &entries {
        let when = match &e.status {
            Status::Pending => format!("next {}", e.next_at.with_timezone(&tz).format("%Y-%m-%d %H:%M")),
            Status::Dead { error, .. } => truncate(error, 70),
            _ => truncate(e.last_note(), 70),
        };
        table.row(vec![
            e.id.to_string(),
            e.state().to_string(),
            e.channel().as_str().to_string(),
            e.account.clone(),
            e.playbook.clone(),
            truncate(&e.target(), 40),
            e.attempts.to_string(),
            when,
        ]);
    }
    write!(out, "{}", table.render())?;
    writeln!(out, "{} {what}entr{}", entries.len(), if entries.len() == 1 { "y" } else { "ies" })?;
    if which == Which::Dead {
        writeln!(
            out,
            "`keel outbox retry ID` (or `--all-dead`) puts them back; `--format json` shows each one's history."
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn retry(session: &Session, args: RetryArgs) -> anyhow::Result<ExitCode> {
    let target = args.id.map_or(RetryTarget::AllDead, RetryTarget::One);
    let back = session.book(None)?.outbox_retry(target).map_err(|e| match e {
        ServiceError::NotFound { id, .. } => {
            anyhow::anyhow!("no outbox entry {id}; `keel outbox list --dead` lists the dead ones")
        }
        other => other.into(),
    })?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{} entr{} back in the queue; `keel run` (or `keel run --once`) delivers them.",
        back.len(),
        if back.len() == 1 { "y is" } else { "ies are" }
    )?;
    Ok(ExitCode::SUCCESS)
}
