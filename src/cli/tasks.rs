//! `keel tasks`: the CTAs playbooks opened for CSMs and managers — list, done, snooze.

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Args, Subcommand};

use super::table::{truncate, Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::services::tasks::{ListQuery, StatusFilter};
use crate::services::ServiceError;

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Open tasks (snoozed ones whose day has come count as open), oldest due first.
    List(ListArgs),
    /// Mark a task done.
    Done { id: u64 },
    /// Hide a task until a day; it is open again (and due) from that day on.
    Snooze {
        id: u64,
        /// YYYY-MM-DD, in the config's time zone.
        #[arg(long)]
        until: NaiveDate,
    },
    /// Cancel a task (it will not escalate; the playbook may open a new one).
    Cancel { id: u64 },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this owner's (email, case-insensitive).
    #[arg(long)]
    owner: Option<String>,
    /// Only tasks past their due time.
    #[arg(long)]
    overdue: bool,
    /// Every task, done and cancelled too.
    #[arg(long)]
    all: bool,
    /// Show at most this many (the soonest due).
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    let (task, said) = match cmd {
        TasksCommand::List(args) => return list(session, args),
        TasksCommand::Done { id } => (session.book(None)?.task_done(id), "is done".to_string()),
        TasksCommand::Cancel { id } => (session.book(None)?.task_cancel(id), "is cancelled".to_string()),
        TasksCommand::Snooze { id, until } => {
            let task = match session.book(None)?.task_snooze(id, until) {
                Err(ServiceError::NotAfterToday { until, today }) => {
                    anyhow::bail!("--until {until} is not after today ({today}); snooze to a later day")
                }
                other => other,
            };
            (task, format!("is snoozed until {until}"))
        }
    };
    let task = task.map_err(|e| match e {
        ServiceError::NotFound { id, .. } => anyhow::anyhow!("no task {id}; `keel tasks list` lists them"),
        other => other.into(),
    })?;
    writeln!(io::stdout(), "task {} {said}: {} ({})", task.id, task.title, task.account)?;
    Ok(ExitCode::SUCCESS)
}

fn list(session: &Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    let tz = session.config.timezone;
    let status = if args.all { StatusFilter::All } else { StatusFilter::Open };
    let query = ListQuery { owner: args.owner, overdue: args.overdue, status, limit: args.limit };
    let list = session.book(None)?.tasks(&query)?;
    let tasks = &list.tasks;
    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut out, &tasks)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if tasks.is_empty() {
        writeln!(
            out,
            "No {}tasks.",
            if query.overdue {
                "overdue "
            } else if args.all {
                ""
            } else {
                "open "
            }
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("DUE", Align::Left),
        ("PRIORITY", Align::Left),
        ("STATUS", Align::Left),
        ("OWNER", Align::Left),
        ("ACCOUNT", Align::Left),
        ("TITLE", Align::Left),
    ]);
    for t in tasks {
        let late = list.is_overdue(t.id);
        let due = t.due.map_or("-".into(), |d| d.with_timezone(&tz).format("%Y-%m-%d").to_string());
        table.row(vec![
            t.id.to_string(),
            if late { format!("{due} (overdue)") } else { due },
            t.priority.clone(),
            t.status.as_str().to_string(),
            t.owner.clone(),
            t.account.clone(),
            truncate(&t.title, 60),
        ]);
    }
    write!(out, "{}", table.render())?;
    let shown = if list.matched > tasks.len() {
        format!("{} of {} task(s) shown", tasks.len(), list.matched)
    } else {
        format!("{} task(s)", tasks.len())
    };
    writeln!(out, "{shown}, {} overdue. `keel tasks done ID` closes one.", list.overdue.len())?;
    Ok(ExitCode::SUCCESS)
}
