//! `keel accounts list` and `keel accounts show ID`: the book of business as CSMs and CS
//! Ops look at it, in aligned text or JSON.

use std::cmp::Ordering;
use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{NaiveDate, SecondsFormat};
use clap::{Args, Subcommand, ValueEnum};

use super::table::{money, number, truncate, Align, Table};
use super::{FormatArg, OutputFormat, Session};
use crate::model::{Band, Segment};
use crate::services::accounts::{AccountDetail, AccountList, ListQuery, SortKey};
use crate::services::ServiceError;

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// List accounts, filtered and sorted.
    List(ListArgs),
    /// Show one account: every field, its metrics, contacts and recent events.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this segment (enterprise, mid_market, smb, or a custom one; CRM spellings work).
    #[arg(long)]
    segment: Option<String>,
    /// Only accounts owned by this CSM (email, case-insensitive).
    #[arg(long)]
    owner: Option<String>,
    /// Only accounts whose latest health is in this band.
    #[arg(long, value_enum)]
    band: Option<BandArg>,
    /// Sort order: arr (largest first), renewal (soonest first), health (lowest first),
    /// name, id. Accounts missing the value go last.
    #[arg(long, value_enum, default_value_t = SortArg::Arr)]
    sort: SortArg,
    /// Reverse the sort order.
    #[arg(long)]
    reverse: bool,
    /// Show at most this many accounts.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortArg {
    Arr,
    Renewal,
    Name,
    Id,
    Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BandArg {
    Red,
    Yellow,
    Green,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The account's id.
    id: String,
    /// How many days of events to show.
    #[arg(long, default_value_t = 30)]
    events_days: u32,
    #[command(flatten)]
    format: FormatArg,
}

pub fn run(session: &Session, cmd: AccountsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountsCommand::List(args) => list(session, args),
        AccountsCommand::Show(args) => show(session, args),
    }
}

fn list(session: &Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    let query = ListQuery {
        segment: args.segment,
        owner: args.owner,
        band: args.band.map(|b| match b {
            BandArg::Red => Band::Red,
            BandArg::Yellow => Band::Yellow,
            BandArg::Green => Band::Green,
        }),
        sort: match args.sort {
            SortArg::Arr => SortKey::Arr,
            SortArg::Renewal => SortKey::Renewal,
            SortArg::Name => SortKey::Name,
            SortArg::Id => SortKey::Id,
            SortArg::Health => SortKey::Health,
        },
        reverse: args.reverse,
        limit: args.limit,
        after: None,
    };
    let AccountList { accounts, arr, .. } = session.book(None)?.accounts(&query)?;

    let mut out = io::stdout().lock();
    match args.format.format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &accounts)?;
            writeln!(out)?;
        }
        OutputFormat::Text => {
            let mut table = Table::new(&[
                ("ID", Align::Left),
                ("NAME", Align::Left),
                ("SEGMENT", Align::Left),
                ("ARR", Align::Right),
                ("HEALTH", Align::Right),
                ("BAND", Align::Left),
                ("OWNER", Align::Left),
                ("RENEWAL", Align::Left),
                ("STAGE", Align::Left),
            ]);
            for a in &accounts {
                table.row(vec![
                    a.id.clone(),
                    truncate(a.display_name(), 32),
                    opt(a.segment.as_ref().map(Segment::as_str)),
                    a.arr.map_or_else(|| "-".into(), money),
                    a.health.map_or_else(|| "-".into(), |h| format!("{:.1}", h.score)),
                    opt(a.health.map(|h| h.band.as_str())),
                    opt(a.owner.as_deref()),
                    a.renewal_date.map_or_else(|| "-".into(), |d| d.to_string()),
                    opt(a.lifecycle_stage.as_deref()),
                ]);
            }
            if table.is_empty() {
                writeln!(out, "No accounts match. (`keel sync` imports them.)")?;
            } else {
                write!(out, "{}", table.render())?;
                writeln!(out, "{} accounts, {} ARR", accounts.len(), money(arr))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn opt(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

fn show(session: &Session, args: ShowArgs) -> anyhow::Result<ExitCode> {
    // The model only names what a category scored without was missing: a model that does
    // not load (`keel check` says why) leaves the names out, not the account.
    let model = super::health::load_model(session).ok().map(|(_, model)| model);
    let book = session.book(model)?;
    let detail = book.account(&args.id, args.events_days).map_err(|e| match e {
        ServiceError::NotFound { id, .. } => {
            anyhow::anyhow!("no account with id {id:?} in {} (`keel accounts list` shows the ids)", book.describe())
        }
        other => other.into(),
    })?;

    let mut out = io::stdout().lock();
    if args.format.format == OutputFormat::Json {
        // Through a `Value`: keys in order, as this command has always printed them.
        serde_json::to_writer_pretty(&mut out, &serde_json::to_value(&detail)?)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let AccountDetail {
        account,
        health,
        health_30_days_before: month_ago,
        health_no_inputs,
        contacts,
        events,
        timeline,
        errors,
        ..
    } = &detail;
    let today = detail.today;

    writeln!(out, "{}  {}", account.id, account.display_name())?;
    let days = |d: NaiveDate| {
        let n = (d - today).num_days();
        match n.cmp(&0) {
            Ordering::Greater => format!("{d} (in {n} day{})", if n == 1 { "" } else { "s" }),
            Ordering::Equal => format!("{d} (today)"),
            Ordering::Less => format!("{d} ({} day{} ago)", -n, if n == -1 { "" } else { "s" }),
        }
    };
    let mut table = Table::new(&[("", Align::Left), ("", Align::Left)]);
    let mut field = |k: &str, v: String| table.row(vec![format!("  {k}"), v]);
    field("segment", opt(account.segment.as_ref().map(Segment::as_str)));
    field("arr", account.arr.map_or_else(|| "-".into(), money));
    field("owner", opt(account.owner.as_deref()));
    field("manager", opt(account.manager.as_deref()));
    field("renewal_date", account.renewal_date.map_or_else(|| "-".into(), days));
    field("start_date", account.start_date.map_or_else(|| "-".into(), days));
    field("lifecycle_stage", opt(account.lifecycle_stage.as_deref()));
    field(
        "timezone",
        account.timezone.map_or_else(|| format!("- (default {})", session.config.timezone), |t| t.to_string()),
    );
    field("updated_at", account.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true));
    write!(out, "{}", body(&table))?;

    match health {
        Some(point) => {
            let trend = match month_ago {
                Some(old) => {
                    format!(", {:+.1} over 30 days (was {:.1} on {})", point.score - old.score, old.score, old.date)
                }
                None => String::new(),
            };
            writeln!(out, "\nHealth {:.1} {} (scored {}{trend})", point.score, point.band, point.date)?;
            // A category scored without inputs is marked with the inputs it lacked: its
            // weight went to the others, which a bare "-" would not say.
            let mut t = Table::new(&[("", Align::Left), ("", Align::Right), ("", Align::Left)]);
            for (category, score) in &point.components {
                let (value, mark) = match score {
                    Some(s) => (format!("{s:.1}"), String::new()),
                    None => match health_no_inputs.get(category).filter(|m| !m.is_empty()) {
                        Some(missing) => ("-".into(), format!("no data (no inputs: {})", missing.join(", "))),
                        None => ("-".into(), "no data (no inputs)".into()),
                    },
                };
                t.row(vec![format!("  {category}"), value, mark]);
            }
            write!(out, "{}", body(&t))?;
        }
        None => writeln!(out, "\nHealth: not scored yet (`keel health` scores every account)")?,
    }

    if !account.metrics.is_empty() {
        writeln!(out, "\nMetrics")?;
        let mut t = Table::new(&[("", Align::Left), ("", Align::Right)]);
        for (k, v) in &account.metrics {
            t.row(vec![format!("  {k}"), number(*v)]);
        }
        write!(out, "{}", body(&t))?;
    }
    if !account.fields.is_empty() {
        writeln!(out, "\nFields")?;
        let mut t = Table::new(&[("", Align::Left), ("", Align::Left)]);
        for (k, v) in &account.fields {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            t.row(vec![format!("  {k}"), v]);
        }
        write!(out, "{}", body(&t))?;
    }

    writeln!(out, "\nContacts ({})", contacts.len())?;
    if !contacts.is_empty() {
        let mut t = Table::new(&[
            ("  ID", Align::Left),
            ("NAME", Align::Left),
            ("EMAIL", Align::Left),
            ("ROLE", Align::Left),
            ("EMAIL OPT-OUT", Align::Left),
        ]);
        for c in contacts {
            t.row(vec![
                format!("  {}", c.id),
                c.name.clone(),
                opt(c.email.as_deref()),
                opt(c.role.as_deref()),
                if c.unsubscribed { "yes".into() } else { "no".into() },
            ]);
        }
        write!(out, "{}", t.render())?;
    }

    writeln!(out, "\nEvents in the last {} days ({})", args.events_days, events.len())?;
    const SHOWN: usize = 10;
    if !events.is_empty() {
        let mut t = Table::new(&[("  TIME (UTC)", Align::Left), ("EVENT", Align::Left), ("CONTACT", Align::Left)]);
        for e in events.iter().rev().take(SHOWN) {
            t.row(vec![
                format!("  {}", e.timestamp.format("%Y-%m-%d %H:%M")),
                e.name.clone(),
                opt(e.contact_id.as_deref()),
            ]);
        }
        write!(out, "{}", t.render())?;
        if events.len() > SHOWN {
            writeln!(out, "  … {} earlier (--format json lists all)", events.len() - SHOWN)?;
        }
    }

    writeln!(out, "\nTimeline: playbook decisions ({})", timeline.len())?;
    if timeline.is_empty() && errors.is_empty() {
        writeln!(out, "  none yet (`keel run` evaluates the playbooks and records what fires)")?;
    }
    let tz = session.config.timezone;
    for f in errors {
        writeln!(
            out,
            "  {}  {}  error (evaluated again at the next pass)\n    {}",
            f.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
            f.playbook,
            f.error
        )?;
    }
    for entry in timeline.iter().rev().take(SHOWN) {
        writeln!(
            out,
            "  {}  {}  {} ({})",
            entry.at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
            entry.playbook,
            entry.decision.as_str(),
            entry.occurrence
        )?;
        writeln!(out, "    why: {}", entry.why)?;
        if !entry.values.is_empty() {
            let read: Vec<String> = entry.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            writeln!(out, "    read: {}", read.join(", "))?;
        }
        for action in &entry.actions {
            writeln!(out, "    → {action}")?;
        }
        for d in detail.deliveries_of(entry) {
            writeln!(out, "    {}", delivery_line(d, tz))?;
        }
    }
    if timeline.len() > SHOWN {
        writeln!(out, "  … {} earlier (--format json lists all)", timeline.len() - SHOWN)?;
    }
    let escalations: Vec<_> = detail.escalations().collect();
    if !escalations.is_empty() {
        writeln!(out, "\nTask escalations")?;
        for d in escalations {
            writeln!(out, "  {}", delivery_line(d, tz))?;
        }
    }
    writeln!(out, "\nTasks ({})", detail.tasks.len())?;
    if detail.tasks.is_empty() {
        writeln!(out, "  none")?;
    }
    for t in detail.tasks.iter().rev().take(SHOWN) {
        let due = t.due.map_or("no due date".into(), |d| format!("due {}", d.with_timezone(&tz).format("%Y-%m-%d")));
        writeln!(
            out,
            "  #{} [{}] {} — {}, {due}, {} ({})",
            t.id,
            t.status.as_str(),
            t.title,
            t.owner,
            t.priority,
            t.playbook
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One outbox entry on the timeline: channel, target, and where it stands.
fn delivery_line(d: &crate::model::OutboxEntry, tz: chrono_tz::Tz) -> String {
    use crate::model::Status;
    let at = |t: &chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let state = match &d.status {
        Status::Pending if d.attempts > 0 => format!("retrying ({} failed), next {}", d.attempts, at(&d.next_at)),
        Status::Pending if d.history.is_empty() => format!("pending, due {}", at(&d.next_at)),
        Status::Pending => format!("deferred to {}: {}", at(&d.next_at), d.last_note()),
        Status::Delivered { at: t } => format!("sent {}", at(t)),
        Status::Suppressed { reason, .. } => format!("suppressed: {reason}"),
        Status::Dropped { reason, .. } => format!("dropped: {reason}"),
        Status::Dead { error, .. } => format!("dead: {error} (`keel outbox retry {}`)", d.id),
    };
    let what = match &d.payload {
        crate::model::Payload::Email(e) => format!("email {:?} to {}", d.summary(), e.to),
        crate::model::Payload::Webhook(w) => format!("webhook {} {}", w.method, w.url),
    };
    format!("{} {what}: {state}", if matches!(d.payload, crate::model::Payload::Email(_)) { "✉" } else { "↗" })
}

/// A key/value table without its (empty) header line.
fn body(table: &Table) -> String {
    let rendered = table.render();
    rendered.split_once('\n').map_or(String::new(), |(_, rest)| rest.to_string())
}
