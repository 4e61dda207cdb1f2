//! `simulate`: what the daemon's pass would decide at a moment, for which accounts, and
//! why — the real pass in dry-run mode ([`crate::decide::tick`] with [`Mode::DryRun`]),
//! so it follows the trigger table exactly: edge state for `on_enter`, the `every` window
//! of `while_true`, the ledger, running sequences and their exits, missed schedule ticks.
//! Next to each email and webhook it shows what delivery would do with it (suppress,
//! defer to a window or past a cap, drop, send).
//!
//! Invariant: nothing is written. The store's bytes are the same afterwards (tests check
//! the files).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::decide::tick::{self, Context, Mode, Options};
use crate::deliver::forecast::{Forecast, Verdict};
use crate::lang::playbook::PlaybookSet;
use crate::model::{Account, Decision, LedgerEntry};

/// What to simulate.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The moment of the pass.
    pub at: DateTime<Utc>,
    pub playbook: Option<String>,
    pub account: Option<String>,
}

/// One email or webhook a firing would queue, and what delivery would do with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `email` or `webhook`.
    pub channel: String,
    /// The address, or the webhook's method and URL.
    pub to: String,
    /// The subject, or the webhook target.
    pub summary: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub playbook: String,
    pub account: String,
    pub account_name: String,
    /// The ledger key's occurrence (`episode:2`, `renewal_date=2027-02-20`, `…/step:2`).
    pub occurrence: String,
    pub why: String,
    /// The values the audience and trigger read.
    pub values: BTreeMap<String, serde_json::Value>,
    /// The step's actions, rendered.
    pub actions: Vec<String>,
    /// Later steps of the sequence this firing starts, by delay (`3d`, `14d`).
    pub later_steps: Vec<String>,
    pub deliveries: Vec<Delivery>,
}

/// A decision that is not a firing: a skip (with its reason) or a sequence's exit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Other {
    pub playbook: String,
    pub account: String,
    pub account_name: String,
    pub occurrence: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub playbook: String,
    pub account: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The moment of the pass, and its day in the configured zone.
    pub at: DateTime<Utc>,
    pub date: NaiveDate,
    pub timezone: String,
    /// Accounts the pass would evaluate, and why those.
    pub accounts: u64,
    pub selection: String,
    /// The playbooks due at that moment.
    pub playbooks: Vec<String>,
    pub firings: Vec<Firing>,
    pub skipped: Vec<Other>,
    pub exited: Vec<Other>,
    /// A schedule trigger's first run, missed ticks skipped.
    pub notes: Vec<String>,
    /// With one playbook and one account named: why nothing was decided (outside the
    /// audience, the condition false with the values read, the date not due, already in
    /// the ledger, the playbook not due at that moment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub why_nothing: Vec<String>,
    pub failures: Vec<Failure>,
    /// Playbooks the blast-radius guard would hold at that moment (nothing of theirs is
    /// listed above), and what it lets through.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<crate::decide::tick::Held>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guard_notes: Vec<String>,
    /// The firings listed are the held pass's, shown without the guard (`--playbook`
    /// named a held playbook): nothing of them is decided until `keel approve`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held_shown: bool,
    /// With one playbook and one account named: its audience and condition taken apart,
    /// each sub-expression with its value, as the pass evaluated them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explained: Vec<crate::decide::pass::Explained>,
}

/// Dry-runs the pass the daemon would run at `request.at`.
pub fn simulate(ctx: Context, request: &Request) -> Result<Report, ServiceError> {
    let (store, set) = (ctx.store, &ctx.loaded.set);
    crate::decide::time::check_moment(request.at).map_err(ServiceError::InvalidArgument)?;
    if let Some(id) = &request.playbook {
        if set.get(id).is_none() {
            let known = set.playbooks.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ");
            return Err(ServiceError::InvalidArgument(format!("no playbook {id:?}; the playbooks are: {known}")));
        }
    }
    let only: Option<Vec<String>> = request.account.clone().map(|id| vec![id]);
    if let Some(id) = &request.account {
        if store.account(id)?.is_none() {
            return Err(ServiceError::not_found("account", id));
        }
    }
    // One playbook for one account: say why, when it decides nothing.
    let explain = request.playbook.is_some() && request.account.is_some();
    let options = Options {
        playbook: request.playbook.as_deref(),
        accounts: only.as_deref(),
        given_health: None,
        explain,
        unguarded: false,
    };
    let at = request.at;
    let mut done = tick::tick(ctx, at, Mode::DryRun, options, &AtomicBool::new(false))?;
    // `--playbook` naming a held playbook: who its held pass would reach is what a person
    // asks before approving it — the same dry run without the guard, the hold kept above.
    let mut held_shown = None;
    if let Some(id) = request.playbook.as_deref() {
        if let Some(h) = done.held.iter().find(|h| h.playbook == id).cloned() {
            let unguarded = Options { unguarded: true, ..options };
            let mut again = tick::tick(ctx, at, Mode::DryRun, unguarded, &AtomicBool::new(false))?;
            again.held = done.held;
            again.guard_notes = done.guard_notes;
            done = again;
            held_shown = Some(h);
        }
    }
    let tz = ctx.config.timezone;
    let mut report = Report {
        at,
        date: at.with_timezone(&tz).date_naive(),
        timezone: tz.to_string(),
        accounts: 0,
        selection: String::new(),
        playbooks: done.due.iter().map(|(id, _)| id.clone()).collect(),
        firings: Vec::new(),
        skipped: Vec::new(),
        exited: Vec::new(),
        notes: done.notes,
        why_nothing: Vec::new(),
        failures: Vec::new(),
        held: done.held.clone(),
        held_shown: held_shown.is_some(),
        guard_notes: done.guard_notes.clone(),
        explained: Vec::new(),
    };
    if let (true, Some(id)) = (explain, request.playbook.as_deref()) {
        if !done.due.iter().any(|(d, _)| d == id) {
            let pb = set.get(id).expect("checked above");
            let last = store.last_tick(id)?;
            let (cron, zone) = tick::schedule_of(ctx.config, pb);
            let next = last.and_then(|l| cron.next_in(zone, l));
            report.why_nothing.push(match (last, next) {
                (Some(l), Some(n)) => format!(
                    "{id} is not due at {}: its last pass was {}, its next tick is {} (`--at {}` shows that pass)",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    l.format("%Y-%m-%d %H:%M UTC"),
                    n.format("%Y-%m-%d %H:%M UTC"),
                    n.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                _ => format!("{id} is not due at {}", at.format("%Y-%m-%d %H:%M UTC")),
            });
        }
    }
    // `run --once` and the daemon import the configured files first; a dry run writes
    // nothing, so it reads the store as last synced. Say so when a file is newer.
    let written = std::fs::metadata(store.path().join("db")).and_then(|m| m.modified()).ok();
    let sync = &ctx.config.sync;
    for file in [&sync.accounts.file, &sync.contacts.file, &sync.events.file].into_iter().flatten() {
        let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok();
        if let (Some(file_at), Some(store_at)) = (modified, written) {
            if file_at > store_at {
                report.notes.push(format!(
                    "{} changed after the store was last written: this shows the store as last synced (`keel sync` first; `run --once` imports it before its pass)",
                    file.display()
                ));
            }
        }
    }
    if let Some(pass) = &done.report {
        report.accounts = pass.accounts;
        report.selection = pass.selection.clone();
        report.why_nothing.extend(pass.quiet.iter().map(|q| q.error.clone()));
        report.explained = pass.explained.clone();
        report.failures = pass
            .failures
            .iter()
            .map(|f| Failure { playbook: f.playbook.clone(), account: f.account.clone(), error: f.error.clone() })
            .collect();
    }
    // Names for the accounts that appear, read once each.
    let ids: BTreeSet<&str> = done.decided.iter().flat_map(|c| c.entries.iter().map(|e| e.account.as_str())).collect();
    let mut names = BTreeMap::new();
    for id in ids {
        let name = store.account(id)?.map(|a| a.display_name().to_string()).unwrap_or_default();
        names.insert(id.to_string(), name);
    }
    let mut forecast = Forecast::new(store, &ctx.config.email.protections, tz);
    forecast.queued_until(at)?;
    // Each account as its firings' updates leave it, so far in this run.
    let mut after: BTreeMap<String, Account> = BTreeMap::new();
    for chunk in &done.decided {
        for (i, entry) in chunk.entries.iter().enumerate() {
            let account_name = names.get(&entry.account).cloned().unwrap_or_default();
            match entry.decision {
                Decision::Fired => {
                    let updates: Vec<_> = chunk.updates.iter().filter(|(f, _)| *f == i).map(|(_, u)| u).collect();
                    if !updates.is_empty() {
                        let account = match after.remove(&entry.account) {
                            Some(a) => Some(a),
                            None => store.account(&entry.account)?,
                        };
                        if let Some(mut account) = account {
                            for u in updates {
                                account.set_field(&u.field, &u.value);
                            }
                            forecast.account_after(account.clone());
                            after.insert(entry.account.clone(), account);
                        }
                    }
                    let mut deliveries = Vec::new();
                    for (_, o) in chunk.outbox.iter().filter(|(f, _)| *f == i) {
                        deliveries.push(Delivery {
                            channel: o.channel().as_str().to_string(),
                            to: o.target(),
                            summary: o.summary(),
                            verdict: forecast.verdict(o, at)?,
                        });
                    }
                    report.firings.push(Firing {
                        playbook: entry.playbook.clone(),
                        account: entry.account.clone(),
                        account_name,
                        occurrence: entry.occurrence.clone(),
                        why: entry.why.clone(),
                        values: entry.values.clone(),
                        actions: entry.actions.clone(),
                        later_steps: later_steps(set, entry),
                        deliveries,
                    });
                }
                Decision::Skipped | Decision::Exited => {
                    let other = Other {
                        playbook: entry.playbook.clone(),
                        account: entry.account.clone(),
                        account_name,
                        occurrence: entry.occurrence.clone(),
                        why: entry.why.clone(),
                    };
                    if entry.decision == Decision::Skipped {
                        report.skipped.push(other);
                    } else {
                        report.exited.push(other);
                    }
                }
            }
        }
    }
    // Chunks come back in the order the workers finished them: account order reads best.
    let order = |p: &str, a: &str, o: &str| (a.to_string(), p.to_string(), o.to_string());
    report.firings.sort_by_key(|f| order(&f.playbook, &f.account, &f.occurrence));
    report.skipped.sort_by_key(|f| order(&f.playbook, &f.account, &f.occurrence));
    report.exited.sort_by_key(|f| order(&f.playbook, &f.account, &f.occurrence));
    Ok(report)
}

/// The delays of the steps still to come after a firing that starts a sequence (none for
/// a step of a running one).
fn later_steps(set: &PlaybookSet, entry: &LedgerEntry) -> Vec<String> {
    if entry.occurrence.contains("/step:") {
        return Vec::new();
    }
    let Some(pb) = set.get(&entry.playbook) else { return Vec::new() };
    let ran_first = pb.steps.first().is_some_and(|s| s.after.minutes() == 0);
    pb.steps.iter().skip(usize::from(ran_first)).map(|s| s.after.to_string()).collect()
}
