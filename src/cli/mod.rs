//! The `keel` command line. `main.rs` parses [`Cli`] and calls [`run`]; everything a
//! command does lives in the library, and everything it prints is built here.
//!
//! Exit codes: 0 success; 1 an error (message on stderr, never a panic); 2 bad usage
//! (clap); [`EXIT_DEAD`] `run --once` did its work but outbox entries went dead in it (or
//! tasks opened with a template that failed);
//! [`EXIT_ROWS_REJECTED`] a sync stored the good rows but rejected some; `keel plan` exits
//! [`plan::EXIT_CHANGES`] (2, as clap's usage errors) when the working set differs from
//! the running one.

mod accounts;
mod approve;
mod check;
mod contacts;
mod explain;
mod health;
mod outbox;
mod plan;
mod preview;
mod run;
mod schema;
mod simulate;
mod store;
mod sync;
mod table;
mod tasks;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::{BookClock, Clock, ManualClock, OffsetClock, SystemClock};
use crate::config::{Config, DEFAULT_CONFIG};
use crate::lang::health::HealthModel;
use crate::lang::Loaded;
use crate::services::access::{Book, Local};
use crate::store::{Store, StoreError};

/// `keel run --once` evaluated and delivered, but some outbox entries went dead in it, or
/// tasks opened with a template that failed for their account.
pub const EXIT_DEAD: u8 = 3;

/// sysexits' EX_DATAERR: some input rows were rejected (the good ones were stored).
pub const EXIT_ROWS_REJECTED: u8 = 65;

#[derive(Debug, Parser)]
#[command(name = "keel", version, about = "Playbook automation for Customer Success teams", long_about = None)]
pub struct Cli {
    /// The config file; paths inside it are relative to its folder.
    #[arg(long, short = 'c', global = true, default_value = DEFAULT_CONFIG, env = "KEEL_CONFIG")]
    pub config: PathBuf,

    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Pin "now" (RFC 3339), for demos and reproducible output; default: the config's
    /// `clock`, else the machine's clock.
    #[arg(long, global = true, env = "KEEL_NOW", hide = true)]
    pub now: Option<DateTime<Utc>>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import accounts, contacts or events from CSV, JSON or NDJSON files (upsert).
    ///
    /// With no kind, syncs every file the config names under sync.*.file, in the order
    /// accounts, contacts, events, then shows the book of business.
    Sync(sync::SyncArgs),
    /// Look at the accounts in the store.
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// What the playbooks would fire on a day, for which accounts, and why (changes nothing).
    Simulate(simulate::SimulateArgs),
    /// Compare the working playbooks and rules with the set the daemon runs: the diff, and
    /// what the next pass would do differently (changes nothing; exit 2 when they differ).
    Plan(plan::PlanArgs),
    /// Why a playbook did or did not fire for an account: its condition's values, state,
    /// ledger and deliveries (changes nothing).
    Explain(explain::ExplainArgs),
    /// Run playbook tests (playbooks/tests/*.yaml): accounts, a frozen day, expected firings.
    Test(test::TestArgs),
    /// Validate the config, health model, rules, playbooks and templates; report every error.
    Check,
    /// Score every account with the health model (rules/health.yaml) and record the day's point.
    Health(health::HealthArgs),
    /// Run the daemon: evaluate each playbook on its schedule, deliver what fires, reload on change.
    Run(run::RunArgs),
    /// The outbox: emails and webhooks waiting, delivered or dead; retry dead ones.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// Tasks (CTAs) playbooks opened: list, done, snooze, cancel.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Contacts' email preferences: unsubscribe, the suppression list.
    #[command(subcommand)]
    Contacts(contacts::ContactsCommand),
    /// Render an email template for an account, as Keel would send it.
    Preview(preview::PreviewArgs),
    /// The store itself: verify it is whole, back it up, restore a backup.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Playbooks the blast-radius guard holds; approve one held pass to let it through.
    Approve(approve::ApproveArgs),
    /// Write the JSON Schemas editors check keel.yaml, playbooks and tests with (schema/).
    Schema(schema::SchemaArgs),
}

/// Output format of commands that show data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// What every command starts from: the config and a clock.
pub struct Session {
    pub config: Config,
    pub now: DateTime<Utc>,
    /// `now` was pinned with `--now` / `KEEL_NOW`, or read from the config's `clock`,
    /// rather than from the machine's clock.
    pub pinned: bool,
    /// `now` came from `--now` / `KEEL_NOW` (not the config's clock): a running daemon
    /// answers as of its own clock, so such a command cannot go through it.
    explicit_now: bool,
    /// The config's pinned clock and the machine's time this command started at, when
    /// `now` came from it: opening the store starts that clock, if it was not yet.
    book_clock: Option<(BookClock, DateTime<Utc>)>,
}

impl Session {
    /// The one place a command's "now" is decided: `--now` / `KEEL_NOW` first, then the
    /// config's `clock.start` (a demo book), else the machine's clock.
    pub fn new(config: Config, now: Option<DateTime<Utc>>) -> anyhow::Result<Session> {
        let explicit_now = now.is_some();
        let real = Utc::now();
        let book_clock =
            config.clock_start.filter(|_| now.is_none()).map(|start| BookClock { start, file: config.clock_file() });
        if let Some(clock) = &book_clock {
            if !config.store_dir().exists() {
                clock.forget()?;
            }
        }
        let (now, pinned) = match (now, &book_clock) {
            (Some(now), _) => (now, true),
            (None, Some(clock)) => (clock.now(real)?, true),
            (None, None) => (real, false),
        };
        Ok(Session { config, now, pinned, explicit_now, book_clock: book_clock.map(|c| (c, real)) })
    }

    /// The book as this command reaches it: the store, opened here, or — when `keel run`
    /// holds it — the daemon's API, which answers with the same services. `model` names
    /// the inputs health lacked (only `accounts show` needs it).
    pub fn book(&self, model: Option<HealthModel>) -> anyhow::Result<Box<dyn Book + '_>> {
        self.book_with(model, None)
    }

    /// [`Self::book`] with the rules and playbooks loaded here, for a command that
    /// evaluates them on the store this process opens (a daemon uses its own).
    pub fn book_with(&self, model: Option<HealthModel>, loaded: Option<Loaded>) -> anyhow::Result<Box<dyn Book + '_>> {
        match self.open_store() {
            Ok(store) => Ok(Box::new(Local { store, config: &self.config, now: self.now, model, loaded })),
            Err(e) if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Locked { .. })) => {
                if self.explicit_now {
                    anyhow::bail!(
                        "the store is in use by keel run, whose API answers as of the daemon's clock, not --now / KEEL_NOW: \
                         drop it, or stop the daemon"
                    );
                }
                tracing::debug!("the store is in use: going through keel run's API");
                Ok(Box::new(crate::api::client::Client::new(&self.config)?))
            }
            Err(e) => Err(e),
        }
    }

    pub fn open_store(&self) -> anyhow::Result<Store> {
        let dir = self.config.store_dir();
        let store = Store::open(&dir)?;
        if let Some((clock, real)) = &self.book_clock {
            clock.start_at(*real)?;
        }
        Ok(store)
    }

    /// The clock a pass or the daemon runs on: a pinned `--once` runs its pass at exactly
    /// `now` (what `simulate --at` of the same instant shows); a pinned daemon starts at
    /// `now` and runs on in real time; otherwise the machine's clock.
    pub fn clock(&self, once: bool) -> Arc<dyn Clock> {
        match (self.pinned, once) {
            (true, true) => Arc::new(ManualClock::new(self.now)),
            (true, false) => Arc::new(OffsetClock::new(self.now)),
            (false, _) => Arc::new(SystemClock),
        }
    }
}

/// Loads rules, health model and playbooks, or fails with every problem rendered and
/// `consequence` ("nothing was simulated") saying what did not happen.
pub(crate) fn load_playbooks(session: &Session, consequence: &str) -> anyhow::Result<Loaded> {
    let config = &session.config;
    config.load_playbooks().map_err(|errors| load_failed(&errors, consequence))
}

/// The error for `errors` found loading the rules and playbooks.
fn load_failed(errors: &[crate::diagnostic::Diagnostic], consequence: &str) -> anyhow::Error {
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "{}\n{} error(s) in the rules or playbooks (`keel check` lists them); {consequence}",
        rendered.join("\nerror: "),
        errors.len()
    )
}

/// [`load_playbooks`] for delivering: a webhook whose `${VAR}` is unset in this
/// environment is an error too, since each of its entries would go dead.
pub(crate) fn load_for_delivery(session: &Session, consequence: &str) -> anyhow::Result<Loaded> {
    let loaded = load_playbooks(session, consequence)?;
    let unset = loaded.set.unset_environment();
    if unset.is_empty() {
        Ok(loaded)
    } else {
        Err(load_failed(&unset, consequence))
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The schemas describe every config; writing them reads none.
    if let Command::Schema(args) = cli.command {
        return schema::run(args);
    }
    let config = Config::load(&cli.config)?;
    let session = Session::new(config, cli.now)?;
    match cli.command {
        Command::Sync(args) => sync::run(&session, args),
        Command::Accounts(cmd) => accounts::run(&session, cmd),
        Command::Health(args) => health::run(&session, args),
        Command::Check => check::run(&session),
        Command::Simulate(args) => simulate::run(&session, args),
        Command::Plan(args) => plan::run(&session, args),
        Command::Explain(args) => explain::run(&session, args),
        Command::Test(args) => test::run(&session, args),
        Command::Run(args) => run::run(&session, args),
        Command::Outbox(cmd) => outbox::run(&session, cmd),
        Command::Tasks(cmd) => tasks::run(&session, cmd),
        Command::Contacts(cmd) => contacts::run(&session, cmd),
        Command::Preview(args) => preview::run(&session, args),
        Command::Store(cmd) => store::run(&session, cmd),
        Command::Approve(args) => approve::run(&session, args),
        Command::Schema(args) => schema::run(args),
    }
}
