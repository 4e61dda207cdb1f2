//! `keel sync`: import files into the store and say exactly what happened — here, or by
//! `keel run` when it holds the store ([`crate::services::access::Book::sync`]); either
//! way the same reports print the same.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::table::{money, Align, Table};
use super::{Session, EXIT_ROWS_REJECTED};
use crate::services::book::BookOverview;
use crate::services::sync::{RecordKind, SyncRequest};
use crate::sync::{Progress, SyncReport};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    kind: Option<SyncKind>,

    /// How many rejected rows to print per file (0: all that were kept, up to 1,000).
    #[arg(long, default_value_t = 20, global = true)]
    max_errors: usize,
}

#[derive(Debug, Subcommand)]
enum SyncKind {
    /// Accounts (CRM export): id, name, segment, ARR, owner, renewal date, metrics, …
    /// Default file: the config's sync.accounts.file.
    Accounts { file: Option<PathBuf> },
    /// Contacts: id or email, account id, name, role, opt-out. Default file: sync.contacts.file.
    Contacts { file: Option<PathBuf> },
    /// Product usage events: id, account id, name, timestamp, properties. Default file:
    /// sync.events.file.
    Events { file: Option<PathBuf> },
}

pub fn run(session: &Session, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let book = session.book(None)?;
    let sources = &session.config.sync;
    let show_book = args.kind.is_none();
    let request = match args.kind {
        Some(SyncKind::Accounts { file }) => SyncRequest {
            kind: Some(RecordKind::Accounts),
            file: Some(file_or_configured(session, file, &sources.accounts.file, "accounts")?),
        },
        Some(SyncKind::Contacts { file }) => SyncRequest {
            kind: Some(RecordKind::Contacts),
            file: Some(file_or_configured(session, file, &sources.contacts.file, "contacts")?),
        },
        Some(SyncKind::Events { file }) => SyncRequest {
            kind: Some(RecordKind::Events),
            file: Some(file_or_configured(session, file, &sources.events.file, "events")?),
        },
        None => SyncRequest::default(),
    };
    let outcome = book.sync(&request, &|file| Box::new(Bar::new(file)))?;
    let reports = outcome.reports;

    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    for report in &reports {
        writeln!(stdout, "{report}")?;
        print_rejections(&mut stderr, report, args.max_errors)?;
    }
    if let (true, Some(overview)) = (show_book, &outcome.book) {
        writeln!(stdout)?;
        write!(stdout, "{}", book_overview(session, overview))?;
    }
    let rejected: u64 = reports.iter().map(|r| r.rejected).sum();
    if rejected > 0 {
        // Said as it is: "the other rows were stored" when none were sent people looking
        // for accounts that were never imported.
        let stored: u64 = reports.iter().map(|r| r.stored()).sum();
        let rest = match stored {
            0 => "no row was stored".to_string(),
            n => format!("the other {n} row(s) were stored"),
        };
        writeln!(stderr, "error: {rejected} row(s) rejected; {rest}")?;
        return Ok(ExitCode::from(EXIT_ROWS_REJECTED));
    }
    Ok(ExitCode::SUCCESS)
}

/// The file named on the command line, or the one the config names for `kind`.
fn file_or_configured(
    session: &Session,
    named: Option<PathBuf>,
    configured: &Option<PathBuf>,
    kind: &str,
) -> anyhow::Result<PathBuf> {
    named.or_else(|| configured.clone()).ok_or_else(|| {
        anyhow::anyhow!(
            "no {kind} file: name one (`keel sync {kind} FILE`) or set sync.{kind}.file in {}",
            session.config.file.display()
        )
    })
}

/// Contacts or events with an unknown account listed by line after the count.
const ORPHANS_SHOWN: usize = 5;

fn print_rejections(out: &mut impl Write, report: &SyncReport, max: usize) -> io::Result<()> {
    let shown = if max == 0 { report.errors.len() } else { max.min(report.errors.len()) };
    for error in &report.errors[..shown] {
        writeln!(out, "  {}:{error}", report.file.display())?;
    }
    // Rejected rows, skipped values and repeated ids all have lines; say how many of each
    // went unprinted.
    let all = report.rejected + report.repeated + report.skipped_values;
    if all > shown as u64 && shown > 0 {
        writeln!(
            out,
            "  … and more: {} rejected row(s), {} value(s) left out and {} repeated id(s) in all \
             (--max-errors 0 prints up to 1,000)",
            report.rejected, report.skipped_values, report.repeated
        )?;
    }
    if !report.absent_columns.is_empty() {
        let named: Vec<String> = report.absent_columns.iter().map(|c| format!("{c:?}")).collect();
        writeln!(
            out,
            "  warning: mapped column(s) not in the header, so this file set nothing for them: {} (sync.{}.columns)",
            named.join(", "),
            report.kind
        )?;
    }
    if report.orphans > 0 {
        // Kept (an accounts file synced later makes them count), but never silently.
        let first: Vec<String> = report
            .orphan_rows
            .iter()
            .take(ORPHANS_SHOWN)
            .map(|(line, account)| format!("{}:{line} ({account})", report.file.display()))
            .collect();
        let more = if report.orphans > first.len() as u64 { ", …" } else { "" };
        writeln!(
            out,
            "  warning: {} {} stored for an account not in the store: {}{more}",
            report.orphans,
            report.kind,
            first.join(", ")
        )?;
    }
    Ok(())
}

/// The book of business at a glance: accounts and ARR per segment, renewals due soon.
fn book_overview(session: &Session, book: &BookOverview) -> String {
    let mut table = Table::new(&[
        ("SEGMENT", Align::Left),
        ("ACCOUNTS", Align::Right),
        ("ARR", Align::Right),
        ("RENEWING IN 90 DAYS", Align::Right),
    ]);
    for row in book.segments.iter().chain([&book.total]) {
        table.row(vec![row.segment.clone(), row.accounts.to_string(), money(row.arr), row.renewing.to_string()]);
    }
    format!(
        "Book of business in {} ({} contacts, {} events), as of {}:\n{}\nNext: keel --config {} accounts list --sort renewal\n",
        book.store.display(),
        book.contacts,
        book.events,
        book.today,
        table.render(),
        session.config.file.display(),
    )
}

/// A byte-based progress bar on stderr, drawn only when stderr is a terminal and the
/// file is big enough to be worth one.
struct Bar(Option<ProgressBar>);

impl Bar {
    const MIN_BYTES: u64 = 4 << 20;

    fn new(file: &Path) -> Bar {
        if !io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar.set_message(file.display().to_string());
        Bar(Some(bar))
    }
}

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        if let Some(bar) = &self.0 {
            if total_bytes < Self::MIN_BYTES {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            bar.set_length(total_bytes);
            bar.enable_steady_tick(Duration::from_millis(200));
        }
    }
    fn advance(&self, bytes_read: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(bytes_read);
        }
    }
    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
