//! `keel tasks`: the CTAs playbooks opened for CSMs and managers — list, done, snooze.

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{NaiveDate, TimeZone};
use clap::{Args, Subcommand};

use super::table::{truncate, Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::model::{Task, TaskStatus};

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
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TasksCommand::List(args) => list(session, args),
        TasksCommand::Done { id } => set(session, id, |t| {
            t.status = TaskStatus::Done;
            Ok(format!("task {id} is done"))
        }),
        TasksCommand::Cancel { id } => set(session, id, |t| {
            t.status = TaskStatus::Cancelled;
            Ok(format!("task {id} is cancelled"))
        }),
        TasksCommand::Snooze { id, until } => {
            let tz = session.config.timezone;
            let today = session.now.with_timezone(&tz).date_naive();
            if until <= today {
                anyhow::bail!("--until {until} is not after today ({today}); snooze to a later day");
            }
            set(session, id, |t| {
                t.status = TaskStatus::Snoozed;
                t.snoozed_until = Some(until);
                // Due again on the day it wakes (not overdue, not escalated, before).
                let wake = tz
                    .from_local_datetime(&until.and_hms_opt(0, 0, 0).expect("midnight"))
                    .earliest()
                    .map(|d| d.to_utc());
                if let Some(w) = wake {
                    if t.due.is_none_or(|d| d < w) {
                        t.due = Some(w);
                    }
                }
                Ok(format!("task {id} is snoozed until {until}"))
            })
        }
    }
}

fn set(
    session: &Session,
    id: u64,
    change: impl FnOnce(&mut Task) -> anyhow::Result<String>,
) -> anyhow::Result<ExitCode> {
    let store = session.open_store()?;
    let mut task = store.task(id)?.ok_or_else(|| anyhow::anyhow!("no task {id}; `keel tasks list` lists them"))?;
    if !task.is_open() {
        anyhow::bail!("task {id} is {} already", task.status.as_str());
    }
    let said = change(&mut task)?;
    task.updated = session.now;
    store.update_task(&task)?;
    store.flush()?;
    writeln!(io::stdout(), "{said}: {} ({})", task.title, task.account)?;
    Ok(ExitCode::SUCCESS)
}

fn list(session: &Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    let store = session.open_store()?;
    let tz = session.config.timezone;
    let now = session.now;
    let today = now.with_timezone(&tz).date_naive();
    let mut tasks: Vec<Task> = store
        .tasks()
        .filter(|t| {
            t.as_ref().map_or(true, |t| {
                (args.all || t.is_awake(today))
                    && (!args.overdue || t.is_overdue(now, today))
                    && args.owner.as_ref().is_none_or(|o| o.eq_ignore_ascii_case(&t.owner))
            })
        })
        .collect::<Result<_, _>>()?;
    tasks.sort_by(|a, b| a.due.is_none().cmp(&b.due.is_none()).then(a.due.cmp(&b.due)).then(a.id.cmp(&b.id)));
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
            if args.overdue {
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
    let mut overdue = 0;
    for t in &tasks {
        let late = t.is_overdue(now, today);
        overdue += late as usize;
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
    writeln!(out, "{} task(s), {overdue} overdue. `keel tasks done ID` closes one.", tasks.len())?;
    Ok(ExitCode::SUCCESS)
}
