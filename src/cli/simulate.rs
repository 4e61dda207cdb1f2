//! `keel simulate`: what would fire, for whom, and why — without recording or sending
//! anything.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use super::{FormatArg, OutputFormat, Session};
use chrono_tz::Tz;

use crate::decide::tick::Context;
use crate::deliver::forecast::Verdict;
use crate::services::simulate::{simulate, Request};
use crate::services::ServiceError;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The moment to simulate: an RFC 3339 instant, or a day YYYY-MM-DD (its end in the
    /// config's time zone: everything due by then, decided in one pass, as after
    /// downtime). Default: now.
    #[arg(long, value_parser = parse_day)]
    at: Option<Day>,
    /// Only this playbook.
    #[arg(long)]
    playbook: Option<String>,
    /// Only this account.
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Clone, Copy)]
enum Day {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_day(s: &str) -> Result<Day, String> {
    s.parse::<NaiveDate>()
        .map(Day::Date)
        .or_else(|_| s.parse::<DateTime<Utc>>().map(Day::Instant))
        .map_err(|_| format!("{s:?} is neither a date (2026-11-22) nor an RFC 3339 instant (2026-11-22T08:00:00Z)"))
}

pub fn run(session: &Session, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let config = &session.config;
    let loaded = super::load_playbooks(session, "nothing was simulated")?;
    let store = session.open_store()?;
    let tz = config.timezone;
    // A day stands for its end: the pass the daemon would run then, caught up with
    // every tick of the day.
    let (at, day) = match args.at {
        Some(Day::Date(d)) => (crate::decide::time::end_of_day(tz, d), Some(d)),
        Some(Day::Instant(t)) => (t, None),
        None => (session.now, None),
    };
    let ctx = Context { store: &store, loaded: &loaded, config };
    let request = Request { at, playbook: args.playbook, account: args.account };
    let report = simulate(ctx, &request).map_err(|e| match e {
        ServiceError::NotFound { id, .. } => anyhow::anyhow!("no account with id {id:?} in {}", store.path().display()),
        e => e.into(),
    })?;

    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let when = match day {
            Some(d) => format!("for {d} ({})", report.timezone),
            None => format!("at {}", at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")),
        };
        writeln!(
            out,
            "Simulating {} playbook(s) over {} account(s) {when}. Nothing is recorded or sent.\n",
            report.playbooks.len(),
            report.accounts,
        )?;
        for f in &report.firings {
            writeln!(out, "{} · {} {}", f.playbook, f.account, f.account_name)?;
            writeln!(out, "  why:  {}", f.why)?;
            if !f.values.is_empty() {
                let read: Vec<String> = f.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                writeln!(out, "  read: {}", read.join(", "))?;
            }
            for action in &f.actions {
                writeln!(out, "  does: {action}")?;
            }
            for d in &f.deliveries {
                writeln!(out, "  sent: {} to {}: {}", d.channel, d.to, verdict(&d.verdict, tz))?;
            }
            if !f.later_steps.is_empty() {
                writeln!(out, "  then: steps after {}", f.later_steps.join(", "))?;
            }
        }
        for (word, list) in [("skipped", &report.skipped), ("exits", &report.exited)] {
            for o in list {
                writeln!(out, "{} · {} {} ({word})", o.playbook, o.account, o.account_name)?;
                writeln!(out, "  why:  {}", o.why)?;
            }
        }
        for h in &report.held {
            writeln!(
                out,
                "HELD {}: {}; the daemon would decide nothing for it (`keel approve {}` lets the pass through)",
                h.playbook,
                h.hold.describe(),
                h.playbook
            )?;
        }
        if report.held_shown {
            writeln!(out, "note: the firings above are the held pass's, shown without the guard: none of them happens until it is approved")?;
        }
        for note in report.notes.iter().chain(&report.guard_notes) {
            writeln!(out, "note: {note}")?;
        }
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &report.firings {
            *per.entry(f.playbook.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = per.iter().map(|(p, n)| format!("{p} {n}")).collect();
        if report.firings.is_empty() {
            writeln!(out, "Nothing would fire.")?;
            for why in &report.why_nothing {
                writeln!(out, "  why:  {why}")?;
            }
        } else {
            writeln!(out, "\nWould fire {} time(s): {}", report.firings.len(), summary.join(", "))?;
        }
        if !report.skipped.is_empty() || !report.exited.is_empty() {
            writeln!(out, "Would skip {}, and stop {} sequence(s).", report.skipped.len(), report.exited.len())?;
        }
    }
    if report.failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut err = io::stderr().lock();
    for f in report.failures.iter().take(20) {
        writeln!(err, "  playbook {}, account {}: {}", f.playbook, f.account, f.error)?;
    }
    writeln!(err, "error: {} evaluation(s) failed; the others were simulated", report.failures.len())?;
    Ok(ExitCode::FAILURE)
}

/// What delivery would do, in words.
fn verdict(v: &Verdict, tz: Tz) -> String {
    let local = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string();
    match v {
        Verdict::Send { at } => format!("sends at {}", local(at)),
        Verdict::Digest => "joins the digest, sent when the pass has completed".into(),
        Verdict::Suppressed { reason } => format!("suppressed: {reason}"),
        Verdict::Deferred { why, .. } => format!("deferred: {why}"),
        Verdict::Dropped { why } => format!("dropped: {why}"),
        Verdict::Dead { error } => format!("dead: {error}"),
    }
}
