//! `keel simulate`: what would fire, for whom, and why — without recording or sending
//! anything.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use super::{FormatArg, OutputFormat, Session};
use crate::decide::simulate::{Filter, Simulator};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The day to simulate: YYYY-MM-DD, or an RFC 3339 instant (its day in the config's
    /// time zone). Default: today.
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
    let crate::lang::Loaded { engine, model, set } = super::load_playbooks(session, "nothing was simulated")?;
    if let Some(id) = &args.playbook {
        if set.get(id).is_none() {
            let ids: Vec<&str> = set.playbooks.iter().map(|p| p.id.as_str()).collect();
            anyhow::bail!("no playbook {id:?}; the playbooks are: {}", ids.join(", "));
        }
    }
    let store = session.open_store()?;
    if let Some(id) = &args.account {
        if store.account(id)?.is_none() {
            anyhow::bail!("no account with id {id:?} in {}", store.path().display());
        }
    }
    let date = match args.at {
        Some(Day::Date(d)) => d,
        Some(Day::Instant(t)) => t.with_timezone(&config.timezone).date_naive(),
        None => session.now.with_timezone(&config.timezone).date_naive(),
    };
    let simulator = Simulator {
        set: &set,
        model: &model,
        engine: &engine,
        store: &store,
        timezone: config.timezone,
        given_health: None,
    };
    let report = simulator.run(date, &Filter { playbook: args.playbook, account: args.account })?;

    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "Simulating {} playbook(s) over {} account(s) for {date} ({}). Nothing is recorded or sent.\n",
            report.playbooks.len(),
            report.accounts,
            report.timezone
        )?;
        for f in &report.firings {
            writeln!(out, "{} · {} {}", f.playbook, f.account, f.account_name)?;
            writeln!(out, "  why:  {}", f.why)?;
            for action in &f.actions {
                writeln!(out, "  does: {action}")?;
            }
            if !f.later_steps.is_empty() {
                writeln!(out, "  then: steps after {}", f.later_steps.join(", "))?;
            }
        }
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &report.firings {
            *per.entry(f.playbook.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = per.iter().map(|(p, n)| format!("{p} {n}")).collect();
        if report.firings.is_empty() {
            writeln!(out, "Nothing would fire.")?;
        } else {
            writeln!(out, "\nWould fire {} time(s): {}", report.firings.len(), summary.join(", "))?;
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
