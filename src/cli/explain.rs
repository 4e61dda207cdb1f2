//! `keel explain PLAYBOOK ACCOUNT [--at DATE]`: why a playbook did or did not fire for
//! an account. Parses, calls [`crate::services::explain`] (through the daemon's API when
//! `keel run` holds the store) and prints its answer; nothing is recorded or sent.

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::Args;

use super::{FormatArg, OutputFormat, Session};
use crate::deliver::forecast::Verdict as Forecast;
use crate::lang::explain::{Outcome, Part};
use crate::services::explain::{At, Delivery, Explanation, Request, Verdict};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The playbook's id.
    playbook: String,
    /// The account's id.
    account: String,
    /// The moment: a day YYYY-MM-DD (its end in the config's time zone, as `simulate
    /// --at` reads it) or an RFC 3339 instant. Default: now.
    #[arg(long, value_parser = At::parse)]
    at: Option<At>,
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_playbooks(session, "nothing was explained")?;
    let book = session.book_with(None, Some(loaded))?;
    let request = Request { playbook: args.playbook, account: args.account, at: args.at };
    let answer = book.explain(&request)?;
    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut out, &answer)?;
        writeln!(out)?;
    } else {
        out.write_all(text(&answer, session.config.timezone).as_bytes())?;
    }
    Ok(if answer.decision.verdict == Verdict::Failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn local(t: &DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// The answer as people read it, section by section.
fn text(e: &Explanation, tz: Tz) -> String {
    let mut s = String::new();
    let mut line = |text: String| {
        s.push_str(&text);
        s.push('\n');
    };
    let p = &e.playbook;
    line(format!("{} · {} {}", p.id, e.account.id, e.account.name));
    line(format!("  playbook: {}{}", p.name, if p.enabled { "" } else { " (disabled)" }));
    line(format!("  trigger:  {}", p.trigger));
    if let Some(a) = &p.audience {
        line(format!("  audience: `{a}`"));
    }
    line(format!("  schedule: {}", p.schedule));
    let when = match e.day {
        Some(d) => format!("{d} (its end, {})", local(&e.at, tz)),
        None => local(&e.at, tz),
    };
    line(format!("  at {when}: {}", e.due.why));

    for (title, part) in [("Audience", &e.audience), ("Condition", &e.condition)] {
        if let Some(part) = part {
            line(String::new());
            line(title.to_string());
            tree(part, 1, &mut line);
        }
    }
    if let Some(note) = &e.condition_note {
        line(format!("  note: {note}"));
    }

    line(String::new());
    line("State".into());
    let st = &e.state;
    let mut said = false;
    if let Some(inside) = st.inside {
        line(if inside {
            format!("  on_enter: inside episode {} (it held at the last evaluation: fires again only after it has been false)", st.episodes)
        } else {
            format!("  on_enter: outside ({} episode(s) so far): fires when it turns true", st.episodes)
        });
        said = true;
    }
    if let Some(last) = &st.last_fired {
        let next = st.next_window.map_or(String::new(), |n| format!("; next window from {}", local(&n, tz)));
        line(format!("  while_true: last fired {}{next}", local(last, tz)));
        said = true;
    }
    for q in &st.sequences {
        line(format!(
            "  sequence {}: step {} (after {}) due {}",
            q.occurrence,
            q.next_step,
            q.after,
            local(&q.due, tz)
        ));
        said = true;
    }
    if let Some(d) = &st.date {
        line(match (d.value, d.due_day) {
            (Some(v), Some(due)) => {
                let until = d.last_day.map_or("a year or more".into(), |l| l.to_string());
                format!(
                    "  date: {} {v} {} = {due}: fires from {due} through {until} (catch-up {})",
                    d.field, d.offset, d.catch_up
                )
            }
            _ => format!("  date: the account has no {}", d.field),
        });
        said = true;
    }
    if let Some(err) = &st.error {
        line(format!("  last evaluation failed (evaluated again at the next pass): {err}"));
        said = true;
    }
    if !said {
        line("  nothing kept".into());
    }

    line(String::new());
    let d = &e.decision;
    match d.at {
        Some(at) => {
            line(format!("Decision at {} (a dry run of the pass: nothing is recorded or sent)", local(&at, tz)))
        }
        None => line("Decision: no pass runs".into()),
    }
    match d.verdict {
        Verdict::Fires => {}
        Verdict::DecidesOther => {}
        Verdict::Quiet => {
            for why in &d.why_nothing {
                line(format!("  does not fire: {why}"));
            }
            if d.why_nothing.is_empty() {
                line("  does not fire".into());
            }
        }
        Verdict::Failed => {
            for f in &d.failures {
                line(format!("  failed: {f}"));
            }
        }
        Verdict::NotRun => line(format!("  not evaluated: {}", e.due.why)),
        Verdict::Held => line(format!(
            "  does not fire: {}; nothing is decided for it until `keel approve {}` or its pass shrinks within the limits",
            d.held.as_deref().unwrap_or("held by guard"),
            e.playbook.id
        )),
    }
    for f in &d.firings {
        line(format!("  fires: {}", f.occurrence));
        line(format!("    why:  {}", f.why));
        if !f.values.is_empty() {
            let read: Vec<String> = f.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            line(format!("    read: {}", read.join(", ")));
        }
        for a in &f.actions {
            line(format!("    does: {a}"));
        }
        for dl in &f.deliveries {
            line(format!("    delivery: {} to {}: {}", dl.channel, dl.to, forecast(&dl.verdict, tz)));
        }
        if !f.later_steps.is_empty() {
            line(format!("    then: steps after {}", f.later_steps.join(", ")));
        }
    }
    for o in &d.other {
        line(format!("  decides: {}", o.occurrence));
        line(format!("    why:  {}", o.why));
    }
    for n in &d.notes {
        line(format!("  note: {n}"));
    }

    line(String::new());
    line(match e.ledger_total {
        0 => "Ledger: nothing recorded for this playbook and account".into(),
        1 => "Ledger (1 entry)".into(),
        n if n > e.ledger.len() => format!("Ledger ({n} entries, the latest {} first)", e.ledger.len()),
        n => format!("Ledger ({n} entries, most recent first)"),
    });
    for r in &e.ledger {
        let entry = &r.entry;
        line(format!("  {}  {} ({})", local(&entry.at, tz), entry.decision.as_str(), entry.occurrence));
        line(format!("    why: {}", entry.why));
        if !entry.values.is_empty() {
            let read: Vec<String> = entry.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            line(format!("    read: {}", read.join(", ")));
        }
        for a in &entry.actions {
            line(format!("    → {a}"));
        }
        for o in &r.deliveries {
            line(format!("    delivery: {} to {}: {}", o.channel, o.to, stored(&o.state, tz)));
        }
        for t in &r.tasks {
            let due = t.due.map_or(String::new(), |d| format!(", due {}", local(&d, tz)));
            line(format!("    task #{} {}: {} for {}{due}", t.id, t.status, t.title, t.owner));
        }
    }
    s
}

/// A part and its parts, one line each: `source → with values → outcome`.
fn tree(part: &Part, depth: usize, line: &mut impl FnMut(String)) {
    let with = part.with_values.as_ref().map_or(String::new(), |w| format!(" → {w}"));
    let outcome = match &part.outcome {
        Outcome::NotEvaluated { why } => format!("not evaluated ({why})"),
        other => other.text(),
    };
    line(format!("{}{}{with} → {outcome}", "  ".repeat(depth), part.source));
    for p in &part.parts {
        // A plain value already shown in its parent's `with values` needs no line of its
        // own; a missing one does (`()` reads less plainly than "unknown").
        let shown = part.with_values.is_some()
            && p.parts.is_empty()
            && p.with_values.is_none()
            && matches!(p.outcome, Outcome::Value { .. });
        if !shown {
            tree(p, depth + 1, line);
        }
    }
}

/// What delivery would do with a dry run's email or webhook.
fn forecast(v: &Forecast, tz: Tz) -> String {
    match v {
        Forecast::Send { at } => format!("would send at {}", local(at, tz)),
        Forecast::Digest => "would join the digest, sent when the pass has completed".into(),
        Forecast::Suppressed { reason } => format!("would be suppressed: {reason}"),
        Forecast::Deferred { why, .. } => format!("would be deferred: {why}"),
        Forecast::Dropped { why } => format!("would be dropped: {why}"),
        Forecast::Dead { error } => format!("dead: {error}"),
    }
}

/// Where a stored email or webhook stands.
fn stored(d: &Delivery, tz: Tz) -> String {
    match d {
        Delivery::Sent { at } => format!("sent {}", local(at, tz)),
        Delivery::Pending { due } => format!("pending, due {}", local(due, tz)),
        Delivery::Deferred { until, why } => format!("deferred until {}: {why}", local(until, tz)),
        Delivery::Retrying { attempts, next } => format!("retrying ({attempts} failed), next {}", local(next, tz)),
        Delivery::Suppressed { reason } => format!("suppressed: {reason}"),
        Delivery::Dropped { reason } => format!("dropped: {reason}"),
        Delivery::Dead { error } => format!("dead: {error}"),
    }
}
