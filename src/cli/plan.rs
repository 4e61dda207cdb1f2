//! `keel plan`: what the working playbooks, templates and rules would change against the
//! set the daemon runs, and what the next pass would do differently
//! ([`crate::services::plan`]).
//!
//! The command reads the working set from its config's folders (a set that does not load
//! is an error with `keel check`'s file:line:column messages), asks whoever holds the store
//! — the store itself, or `keel run` through its API — and prints the report.
//!
//! Exit status, for CI: 0 the working set is the running set; 2 it differs (something
//! would change); 1 an error.

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::Args;

use super::table::{Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::services::plan::{Change, Counts, Due, PlaybookPlan, Report, Request, Sample};

/// `keel plan`'s status when the sets differ (terraform's `-detailed-exitcode`).
pub const EXIT_CHANGES: u8 = 2;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The moment of the pass to compare: an RFC 3339 instant, a day YYYY-MM-DD (its end
    /// in the config's time zone, as `simulate --at`), or `now`. Default: the next pass —
    /// now when something is due now, else the next tick of the working playbooks.
    #[arg(long, value_parser = parse_at, value_name = "DATE/TIME")]
    at: Option<At>,
    /// How many accounts to list per playbook that newly fire, and that no longer fire.
    #[arg(long, default_value_t = crate::services::plan::DEFAULT_SAMPLE, value_name = "N")]
    sample: usize,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Clone, Copy)]
enum At {
    Now,
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_at(s: &str) -> Result<At, String> {
    if s.eq_ignore_ascii_case("now") {
        return Ok(At::Now);
    }
    s.parse::<NaiveDate>().map(At::Date).or_else(|_| s.parse::<DateTime<Utc>>().map(At::Instant)).map_err(|_| {
        format!("{s:?} is neither `now`, a date (2026-11-23) nor an RFC 3339 instant (2026-11-23T14:00:00Z)")
    })
}

pub fn run(session: &Session, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let config = &session.config;
    let working = super::load_playbooks(session, "nothing was planned")?;
    let Some(sources) = working.sources else {
        anyhow::bail!("the playbook files kept changing while they were read; nothing was planned: run keel plan again")
    };
    for skipped in &sources.skipped {
        eprintln!("warning: left out of the working set: {skipped}");
    }
    let at = match args.at {
        None => None,
        Some(At::Now) => Some(session.now),
        Some(At::Date(d)) => Some(crate::decide::time::end_of_day(config.timezone, d)),
        Some(At::Instant(t)) => Some(t),
    };
    let book = session.book(None)?;
    let request = Request { at, sample: args.sample, files: sources.files };
    let report = book.plan(&request)?;
    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&report, config.timezone))?;
    }
    if !report.failures.is_empty() {
        let mut err = io::stderr().lock();
        for f in report.failures.iter().take(20) {
            writeln!(
                err,
                "warning: with the {} set, {} failed for account {}: {}",
                f.set, f.playbook, f.account, f.error
            )?;
        }
    }
    Ok(if report.changed { ExitCode::from(EXIT_CHANGES) } else { ExitCode::SUCCESS })
}

/// The report as people read it: a summary, a table per playbook, then each change with
/// its diff and effect.
pub fn render(report: &Report, tz: Tz) -> String {
    let local = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let when = if report.at_given {
        format!("at {}", local(&report.at))
    } else {
        format!("at the next pass, {} (--at picks another moment)", local(&report.at))
    };
    match &report.running.recorded {
        Some(recorded) => {
            line(format!("Plan {when}: the working set against the running set recorded {}.", local(recorded)))
        }
        None => line(format!(
            "Plan {when}: no running set is recorded in this store (no `keel run` has run here yet), so the working \
             set is compared with an empty one."
        )),
    }
    let count = |c: Change| report.playbooks.iter().filter(|p| p.change == c).count();
    let mut parts: Vec<String> = [Change::Added, Change::Removed, Change::Changed, Change::Unchanged]
        .into_iter()
        .map(|c| format!("{} {}", count(c), c.as_str()))
        .collect();
    parts[0] = format!("Playbooks: {}", parts[0]);
    let templates = report.templates.len();
    let rules = if report.rules.is_some() { "the rules changed" } else { "the rules unchanged" };
    line(format!("{}; {templates} template file(s) changed; {rules}.", parts.join(", ")));
    line(String::new());

    let mut table = Table::new(&[
        ("PLAYBOOK", Align::Left),
        ("CHANGE", Align::Left),
        ("AT THE PASS", Align::Left),
        ("FIRES", Align::Right),
        ("CUSTOMER MAIL", Align::Right),
        ("INTERNAL MAIL", Align::Right),
        ("TASKS", Align::Right),
        ("WEBHOOKS", Align::Right),
    ]);
    for p in &report.playbooks {
        let side = if p.change == Change::Removed { &p.running } else { &p.working };
        let (r, w) = (&p.running.counts, &p.working.counts);
        let pair =
            |f: fn(&Counts) -> u64| if f(r) == f(w) { f(w).to_string() } else { format!("{} → {}", f(r), f(w)) };
        table.row(vec![
            p.id.clone(),
            p.change.as_str().to_string(),
            due(&side.due, tz),
            pair(|c| c.fired),
            pair(|c| c.customer_emails),
            pair(|c| c.internal_emails),
            pair(|c| c.tasks),
            pair(|c| c.webhooks),
        ]);
    }
    for row in table.render().lines() {
        line(row.to_string());
    }

    for p in report.playbooks.iter().filter(|p| worth_showing(p)) {
        line(String::new());
        let sign = match p.change {
            Change::Added => '+',
            Change::Removed => '-',
            _ => '~',
        };
        let why = if p.change == Change::Unchanged { "unchanged, but its effect changes" } else { p.change.as_str() };
        line(format!("{sign} {} ({}): {why}", p.id, p.file));
        if let Some(diff) = &p.diff {
            indented(&mut line, diff);
        }
        for t in &p.templates {
            line(format!("    sends {t}, which changed (below)"));
        }
        effect(&mut line, p, tz);
    }
    for t in &report.templates {
        line(String::new());
        let users: Vec<&str> =
            report.playbooks.iter().filter(|p| p.templates.contains(&t.file)).map(|p| p.id.as_str()).collect();
        let by =
            if users.is_empty() { "sent by no playbook".to_string() } else { format!("sent by {}", users.join(", ")) };
        line(format!("~ {}: {} ({by})", t.file, t.change.as_str()));
        indented(&mut line, &t.diff);
    }
    if let Some(rules) = &report.rules {
        line(String::new());
        line("~ the rules (health model and rule files): changed".to_string());
        for f in &rules.files {
            indented(&mut line, &f.diff);
        }
        if report.running.recorded.is_some() {
            let moved: u64 = rules.moves.iter().map(|m| m.accounts).sum();
            line(format!(
                "  bands on {}, every account scored with both models: {moved} of {} account(s) change band",
                rules.date, rules.accounts
            ));
            if !rules.moves.is_empty() {
                let mut t = Table::new(&[("FROM", Align::Left), ("TO", Align::Left), ("ACCOUNTS", Align::Right)]);
                for m in &rules.moves {
                    t.row(vec![m.from.clone(), m.to.clone(), m.accounts.to_string()]);
                }
                for row in t.render().lines() {
                    line(format!("    {row}"));
                }
            }
        }
    }
    line(String::new());
    for note in &report.notes {
        line(format!("note: {note}"));
    }
    if report.changed {
        line("The working set differs from the running set: exit status 2.".to_string());
    } else {
        line("No changes: the working set is the running set.".to_string());
    }
    out
}

/// A changed playbook, or one whose effect differs (the rules changed under it).
fn worth_showing(p: &PlaybookPlan) -> bool {
    p.change != Change::Unchanged || p.running.counts != p.working.counts || p.newly_firing + p.no_longer_firing > 0
}

fn indented(line: &mut impl FnMut(String), text: &str) {
    for l in text.lines() {
        line(format!("    {l}").trim_end().to_string());
    }
}

/// Where a playbook stands at the plan's moment.
fn due(d: &Due, tz: Tz) -> String {
    let local = |t: &Option<DateTime<Utc>>| {
        t.map_or("never".to_string(), |t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
    };
    match d {
        Due::Absent => "-".into(),
        Due::Disabled => "disabled".into(),
        Due::Due { .. } => "due".into(),
        Due::NotDue { next } => format!("not due (next {})", local(next)),
        Due::FirstRun { next } => format!("first run: counts from here (fires from {})", local(next)),
        Due::TooLate => "missed ticks too old: skipped".into(),
        Due::Held { reason } => format!("HELD: {reason}"),
    }
}

/// What the pass does with the playbook, running set against working set, and who fires
/// newly or no longer.
fn effect(line: &mut impl FnMut(String), p: &PlaybookPlan, tz: Tz) {
    let (r, w) = (&p.running, &p.working);
    let is_due = |d: &Due| matches!(d, Due::Due { .. });
    if !is_due(&r.due) && !is_due(&w.due) {
        let side = if p.change == Change::Removed { r } else { w };
        line(format!("  at the pass: {}; nothing to compare", due(&side.due, tz)));
        return;
    }
    let c = |x: &Counts| {
        let mut s = format!(
            "fires for {} account(s): {} customer email(s), {} internal email(s), {} task(s), {} webhook(s)",
            x.fired, x.customer_emails, x.internal_emails, x.tasks, x.webhooks
        );
        if x.dead > 0 {
            s.push_str(&format!("; {} of those emails and webhooks dead (a template failed)", x.dead));
        }
        if x.errors > 0 {
            s.push_str(&format!("; failed for {} account(s)", x.errors));
        }
        s
    };
    line(format!("  running set: {}", if is_due(&r.due) { c(&r.counts) } else { due(&r.due, tz) }));
    line(format!("  working set: {}", if is_due(&w.due) { c(&w.counts) } else { due(&w.due, tz) }));
    for (what, n, list) in [
        ("newly fires for", p.newly_firing, &p.newly_firing_sample),
        ("no longer fires for", p.no_longer_firing, &p.no_longer_firing_sample),
    ] {
        if n == 0 {
            continue;
        }
        let shown = if (list.len() as u64) < n { format!(", {} shown", list.len()) } else { String::new() };
        line(format!("  {what} {n} account(s){shown}:"));
        for s in list {
            line(format!("    {}", sample(s)));
        }
    }
}

fn sample(s: &Sample) -> String {
    let read: Vec<String> = s.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let name = if s.account_name.is_empty() || s.account_name == s.account {
        String::new()
    } else {
        format!(" {}", s.account_name)
    };
    format!("{}{name} ({}): {}", s.account, s.occurrence, read.join(", ")).trim_end_matches(": ").to_string()
}
