//! What the blast-radius guard costs a pass: the generated book's first pass and a pass
//! over every account with nothing new (incremental off), with the guard off, on by
//! default (the playbooks that email contacts are counted first), and on for every
//! playbook (`applies_to: all`: every playbook counted first), timed around the whole
//! tick (the count is a pass of its own).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use keel::config::Config;
use keel::daemon::{Daemon, ManualClock};
use keel::lang::Loaded;
use keel::store::Store;
use keel::sync::sync_file;

#[derive(Debug, Clone)]
pub struct GuardRow {
    pub setting: &'static str,
    pub first_s: f64,
    pub first_fired: u64,
    pub held: Vec<String>,
    pub recheck_s: f64,
}

/// The settings measured, as `keel.yaml` spells them.
const SETTINGS: [(&str, &str); 3] =
    [("guard: off", "guard: off\n"), ("default", ""), ("applies_to: all", "guard:\n  applies_to: all\n")];

pub fn run(
    dir: &Path,
    n: u64,
    config_text: &str,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> anyhow::Result<Vec<GuardRow>> {
    let spec = super::book::BookSpec { accounts: n, seed: 7, today, events_per_account: 6.0 };
    let data = dir.join("data");
    super::book::write_book(&spec, &data)?;
    let mut rows = Vec::new();
    for (name, extra) in SETTINGS {
        let here = dir.join(name.replace([' ', ':'], "_"));
        std::fs::create_dir_all(&here)?;
        let path = here.join("keel.yaml");
        std::fs::write(&path, format!("{config_text}\n{extra}"))?;
        let config = Config::load(&path)?;
        let store = Store::open(&config.store_dir())?;
        let sync = &config.sync;
        sync_file(&store, &data.join("accounts.csv"), &sync.accounts.spec, now, &())?;
        sync_file(&store, &data.join("contacts.csv"), &sync.contacts.spec, now, &())?;
        store.flush()?;
        let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let clock = Arc::new(ManualClock::new(now));
        let daemon = Daemon::new(config.clone(), store.clone(), loaded, clock.clone());
        let started = Instant::now();
        let first = daemon.tick(&AtomicBool::new(false))?;
        let first_s = started.elapsed().as_secs_f64();
        let first_fired = first.report.as_ref().map_or(0, |r| r.fired());
        let held = first.held.iter().map(|h| format!("{} ({})", h.playbook, h.hold.would_fire)).collect();
        drop(daemon);
        let mut every = config.clone();
        every.evaluation.incremental = false;
        let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        clock.set(now + Duration::hours(1));
        let daemon = Daemon::new(every, store.clone(), loaded, clock.clone());
        let started = Instant::now();
        let recheck = daemon.tick(&AtomicBool::new(false))?;
        let recheck_s = started.elapsed().as_secs_f64();
        recheck.report.context("the pass over every account")?;
        eprintln!("bench: guard {name}: first pass {first_s:.2} s, re-check {recheck_s:.2} s");
        rows.push(GuardRow { setting: name, first_s, first_fired, held, recheck_s });
    }
    Ok(rows)
}
