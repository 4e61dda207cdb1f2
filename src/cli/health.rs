//! `keel health`: score every account with the health model and record the day's point;
//! then how many accounts each category had inputs for, and warnings when a category had
//! inputs for nobody or much of the book was scored on one category alone.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::anyhow;
use chrono::NaiveDate;
use clap::Args;

use super::table::{money, Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::lang::health::HealthModel;
use crate::lang::script::{Limits, ScriptEngine};
use crate::model::Band;
use crate::services::health;
use crate::sync::group_thousands;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The day to score (YYYY-MM-DD); default: today in the config's time zone.
    #[arg(long)]
    at: Option<NaiveDate>,
    #[command(flatten)]
    format: FormatArg,
}

/// Loads the rule library and the health model, rendering every problem found.
pub fn load_model(session: &Session) -> anyhow::Result<(ScriptEngine, HealthModel)> {
    let mut engine = ScriptEngine::new(&Limits::default());
    match HealthModel::load(&mut engine, &session.config.rules_dir) {
        Ok(model) => Ok((engine, model)),
        Err(diagnostics) => {
            let count = diagnostics.len();
            let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            Err(anyhow!(
                "{}\n{count} error(s) in the health model or rules; nothing was scored",
                rendered.join("\nerror: ")
            ))
        }
    }
}

pub fn run(session: &Session, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let (engine, model) = load_model(session)?;
    let store = session.open_store()?;
    let started = Instant::now();
    let day = health::ScoreArgs { at: args.at, now: session.now, timezone: session.config.timezone };
    let report = health::score(&store, &model, &engine, day)?;
    let date = report.date;
    let elapsed = started.elapsed();
    let scored = report.scored;

    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        // Through a `Value`: keys in order, as this command has always printed them.
        serde_json::to_writer_pretty(&mut out, &serde_json::to_value(&report)?)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "Scored {scored} accounts for {date} with {} in {:.2} s ({} accounts/s)",
            report.model.display(),
            elapsed.as_secs_f64(),
            crate::sync::group_thousands(scored as f64 / elapsed.as_secs_f64().max(1e-9))
        )?;
        let mut table = Table::new(&[("BAND", Align::Left), ("ACCOUNTS", Align::Right), ("ARR", Align::Right)]);
        for band in [Band::Green, Band::Yellow, Band::Red] {
            let totals = report.band(band);
            table.row(vec![band.to_string(), totals.accounts.to_string(), money(totals.arr)]);
        }
        if report.unscored > 0 {
            table.row(vec!["unscored".into(), report.unscored.to_string(), "-".into()]);
        }
        write!(out, "{}", table.render())?;
        if report.changes.is_empty() {
            writeln!(out, "No band changes since each account's previous point.")?;
        } else {
            let changes: Vec<String> =
                report.changes.iter().map(|c| format!("{} {} → {}", c.accounts, c.from, c.to)).collect();
            writeln!(out, "Band changes since each account's previous point: {}", changes.join(", "))?;
        }
        write!(out, "{}", coverage_table(&report.coverage))?;
    }
    if args.format.format != OutputFormat::Json {
        let mut err = io::stderr().lock();
        for w in &report.coverage.warnings {
            writeln!(err, "warning: {}", w.message)?;
        }
    }
    if report.errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut err = io::stderr().lock();
    for e in report.errors.iter().take(20) {
        writeln!(err, "  account {}: {}", e.account, e.error)?;
    }
    writeln!(err, "error: {} account(s) could not be scored; the others were", report.errors.len())?;
    Ok(ExitCode::FAILURE)
}

/// Per category: accounts with inputs, accounts scored on it alone, the inputs most missed.
fn coverage_table(coverage: &health::Coverage) -> String {
    let mut table = Table::new(&[
        ("CATEGORY", Align::Left),
        ("WEIGHT", Align::Right),
        ("WITH INPUTS", Align::Right),
        ("%", Align::Right),
        ("ALONE", Align::Right),
        ("MISSING MOST", Align::Left),
    ]);
    let count = |n: u64| group_thousands(n as f64);
    for c in &coverage.categories {
        let missing: Vec<String> = c.missing.iter().map(|m| format!("{} ({})", m.input, count(m.accounts))).collect();
        table.row(vec![
            c.category.clone(),
            super::table::number(c.weight),
            count(c.with_inputs),
            format!("{:.0}%", c.percent),
            count(c.alone),
            if missing.is_empty() { "-".into() } else { missing.join(", ") },
        ]);
    }
    format!("Inputs per category, of {} accounts:\n{}", count(coverage.accounts), table.render())
}
