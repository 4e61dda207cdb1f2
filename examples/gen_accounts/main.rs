//! Writes a deterministic sample book of business for `keel sync`:
//!
//! ```sh
//! cargo run --release --example gen_accounts -- --accounts 400 --seed 42 --today 2026-12-01 --out examples/data
//! ```

mod book;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Parser;

/// Generate accounts.csv, contacts.csv and events.ndjson for a book of business.
#[derive(Debug, Parser)]
struct Args {
    /// How many accounts.
    #[arg(long, default_value_t = 400)]
    accounts: u64,
    /// Seed: the same seed and arguments give the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The export date: renewals fall in the following year, events in the 30 days before.
    /// Default: today (local time).
    #[arg(long)]
    today: Option<NaiveDate>,
    /// Mean events per account.
    #[arg(long, default_value_t = 6.0)]
    events_per_account: f64,
    /// Folder to write the files into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spec = book::BookSpec {
        accounts: args.accounts,
        seed: args.seed,
        today: args.today.unwrap_or_else(|| chrono::Local::now().date_naive()),
        events_per_account: args.events_per_account,
    };
    let started = Instant::now();
    let counts = book::write_book(&spec, &args.out)
        .with_context(|| format!("could not write the book into {}", args.out.display()))?;
    let dir = args.out.display();
    eprintln!("{:>9} accounts -> {dir}/accounts.csv", counts.accounts);
    eprintln!("{:>9} contacts -> {dir}/contacts.csv", counts.contacts);
    eprintln!("{:>9} events   -> {dir}/events.ndjson", counts.events);
    eprintln!("in {:.1} s (seed {}, today {})", started.elapsed().as_secs_f64(), spec.seed, spec.today);
    Ok(())
}
