//! `keel approve`: the playbooks the blast-radius guard holds, and letting one held pass
//! through. It approves that pass's size, once: a pass that would fire more is held again.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Args;

use super::table::{Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::model::thousands;

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The held playbook whose pass to let through; without one, lists what is held.
    playbook: Option<String>,
    /// Approve only if it is held at this many firings (the WOULD FIRE you looked at):
    /// a recount since then is not approved unseen.
    #[arg(long, requires = "playbook")]
    size: Option<u64>,
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let tz = session.config.timezone;
    let book = session.book(None)?;
    let mut out = io::stdout().lock();
    let Some(playbook) = args.playbook else {
        let list = book.guard()?;
        if args.format.format == OutputFormat::Json {
            serde_json::to_writer_pretty(&mut out, &list)?;
            writeln!(out)?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut table = Table::new(&[
            ("PLAYBOOK", Align::Left),
            ("HELD SINCE", Align::Left),
            ("WOULD FIRE", Align::Right),
            ("AUDIENCE", Align::Right),
            ("LIMIT", Align::Left),
            ("APPROVED", Align::Left),
        ]);
        for r in &list.records {
            let Some(h) = &r.held else { continue };
            table.row(vec![
                r.playbook.clone(),
                h.since.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
                thousands(h.would_fire),
                thousands(h.audience),
                h.limits.clone(),
                r.approved.as_ref().map_or("-".into(), |a| format!("up to {} by {}", thousands(a.size), a.by)),
            ]);
        }
        if table.is_empty() {
            writeln!(out, "No playbook is held by the guard.")?;
        } else {
            write!(out, "{}", table.render())?;
            writeln!(
                out,
                "`keel approve PLAYBOOK --size N` lets its held pass of N through (`keel simulate --playbook PLAYBOOK` shows it first)."
            )?;
        }
        let mut events: Vec<_> =
            list.records.iter().flat_map(|r| r.history.iter().map(move |e| (e, &r.playbook))).collect();
        events.sort_by_key(|(e, _)| std::cmp::Reverse(e.at));
        if !events.is_empty() {
            writeln!(out, "\nRecent guard events:")?;
            for (e, id) in events.into_iter().take(10) {
                writeln!(
                    out,
                    "  {}  {id}  {}: {}",
                    e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
                    e.what,
                    e.detail
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let by = std::env::var("USER").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| "cli".into());
    let record = book.approve(&playbook, &by, args.size)?;
    if args.format.format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut out, &record)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let size = record.approved.as_ref().map_or(0, |a| a.size);
    writeln!(
        out,
        "approved: {playbook}'s next pass runs if it fires for at most {} accounts (more is held again); `keel run` picks it up at its next wakeup, `keel run --once` runs it now",
        thousands(size)
    )?;
    Ok(ExitCode::SUCCESS)
}
