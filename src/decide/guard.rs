//! The blast-radius guard at a pass: before a pass decides for a guarded playbook, the
//! same pass is counted ([`Evaluator::count`]); a playbook that would fire for more
//! accounts than its limits allow decides nothing in that pass and is *held* until a
//! person approves that pass's size (`keel approve`) or a later pass shrinks below the
//! limits.
//!
//! Which playbooks are guarded: a playbook's own `guard:` (limits, or `off`) wins;
//! without one, the config's guard covers playbooks that email customers (or every
//! playbook with `applies_to: all`) unless it is `off`.
//!
//! Invariants:
//! - One implementation: the count is the real pass (trigger table, ledger, state) with
//!   nothing rendered or written, so "would fire N" is what the pass would then do.
//! - A held playbook's tick is not marked complete and its incremental watermark does
//!   not move: once approved, the held pass runs over the same accounts.
//! - An approval lets through one pass of at most the size approved; a larger one is
//!   held again. The ops address is emailed once per hold, not once per pass.
//! - A pass that cannot fire more than the limits allow (an incremental pass over a few
//!   changed accounts) is not counted: a quiet pass stays cheap.

use chrono::{DateTime, Utc};

use super::pass::{Due, Evaluator, PassReport, Selection};
use crate::config::{Config, GuardConfig, GuardScope};
use crate::lang::guard::{Limits, PlaybookGuard};
use crate::lang::playbook::Playbook;
use crate::model::{delivery_key, thousands, Email, GuardRecord, Hold, OutboxEntry, Payload};
use crate::store::{Store, StoreError};

/// The limits a pass of `pb` is held by, if it is guarded.
pub fn limits_for(config: &GuardConfig, pb: &Playbook) -> Option<Limits> {
    match &pb.guard {
        PlaybookGuard::Off => None,
        // Only a daily cap: the limits are the config's, as without a `guard:`.
        PlaybookGuard::Limits(own) if own.max_firings.is_none() && own.max_share.is_none() => inherited(config, pb),
        PlaybookGuard::Limits(own) => Some(Limits {
            max_firings: own.max_firings.map(|n| n.get()).or(config.limits.max_firings),
            max_share: own.max_share.or(config.limits.max_share),
        }),
        PlaybookGuard::Inherit => inherited(config, pb),
    }
}

/// The config's guard for a playbook without limits of its own.
fn inherited(config: &GuardConfig, pb: &Playbook) -> Option<Limits> {
    let covered = match config.applies_to {
        GuardScope::All => true,
        GuardScope::CustomerEmail => pb.emails_customers(),
    };
    (config.enabled && covered).then_some(config.limits)
}

/// What a hold was counted under: the playbook's file and its limits. A hold counted
/// under others is counted again.
pub fn counted(pb: &Playbook, limits: &Limits) -> String {
    crate::lang::digest(&[&pb.digest, &limits.describe()])
}

/// What the guard made of one guarded playbook at a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub playbook: String,
    pub outcome: Outcome,
    /// When the approval the look saw was given: only that one is used up by a hold
    /// (one given during the count stays in force).
    pub seen_approval: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Over its limits and not approved: it decides nothing in this pass.
    Held(Hold),
    /// Over its limits, approved for at least this size: it runs, and the approval is
    /// used up.
    Approved { would_fire: u64, size: u64 },
    /// It was held, and this pass is within the limits: it runs, and the hold ends.
    Cleared { would_fire: u64 },
    /// It was held, and is no longer guarded (`guard: off`, or it stopped emailing
    /// customers): it runs, and the hold ends.
    Unguarded,
}

/// The guard's look at one pass.
#[derive(Debug, Default)]
pub struct Look {
    pub verdicts: Vec<Verdict>,
    /// Audiences counted over the whole book, to keep for the incremental passes.
    pub audiences: Vec<(String, u64)>,
    /// Shutdown stopped the count: nothing may be decided on it.
    pub cancelled: bool,
    /// Per counted playbook that runs, the most new firings its pass may make: what the
    /// limits allow, or the approved size.
    pub budgets: Vec<(String, u64)>,
}

impl Look {
    pub fn held(&self) -> impl Iterator<Item = (&str, &Hold)> {
        self.verdicts.iter().filter_map(|v| match &v.outcome {
            Outcome::Held(h) => Some((v.playbook.as_str(), h)),
            _ => None,
        })
    }

    pub fn is_held(&self, playbook: &str) -> bool {
        self.held().any(|(id, _)| id == playbook)
    }
}

/// Counts the guarded playbooks of `due` over the pass's selection and says which are
/// held. Writes nothing.
pub fn look(
    ev: &Evaluator,
    config: &Config,
    due: &[Due],
    records: &[GuardRecord],
    now: DateTime<Utc>,
) -> Result<Look, StoreError> {
    let record = |id: &str| records.iter().find(|r| r.playbook == id);
    // The store's own count (a counter, not a scan: this runs before every pass).
    let book = ev.store.counters()?.accounts;
    let selected = match ev.selection {
        Selection::All => book,
        Selection::Only(ids) => ids.len() as u64,
    };
    let mut look = Look::default();
    let mut counted: Vec<(Due, Limits)> = Vec::new();
    for d in due {
        let rec = record(&d.playbook.id);
        let Some(limits) = limits_for(&config.guard, d.playbook) else {
            if rec.is_some_and(|r| r.held.is_some()) {
                let playbook = d.playbook.id.clone();
                look.verdicts.push(Verdict { playbook, outcome: Outcome::Unguarded, seen_approval: None });
            }
            continue;
        };
        // A pass over fewer accounts than the limits allow cannot exceed them.
        let audience = rec.and_then(|r| r.audience).unwrap_or(book);
        let approved = rec.is_some_and(|r| r.approved.is_some() || r.held.is_some());
        if approved || selected > limits.allowed(audience) {
            counted.push((*d, limits));
        }
    }
    if counted.is_empty() {
        return Ok(look);
    }
    let only: Vec<Due> = counted.iter().map(|(d, _)| *d).collect();
    let report: PassReport = ev.count(&only, now)?;
    if report.cancelled {
        return Ok(Look { cancelled: true, ..Look::default() });
    }
    for (d, limits) in counted {
        let id = &d.playbook.id;
        let stats = report.playbooks.get(id).cloned().unwrap_or_default();
        let rec = record(id);
        let audience = match ev.selection {
            Selection::All => {
                look.audiences.push((id.clone(), stats.audience));
                stats.audience
            }
            // Incremental: a share of the whole audience, as last counted.
            Selection::Only(_) => stats.audience.max(rec.and_then(|r| r.audience).unwrap_or(book)),
        };
        let would_fire = stats.started;
        look.budgets.push((id.clone(), limits.allowed(audience)));
        let outcome = if limits.exceeded(would_fire, audience) {
            match rec.and_then(|r| r.approved.as_ref()).filter(|a| would_fire <= a.size) {
                Some(a) => {
                    look.budgets.last_mut().expect("pushed above").1 = a.size;
                    Some(Outcome::Approved { would_fire, size: a.size })
                }
                None => {
                    let before = rec.and_then(|r| r.held.as_ref());
                    Some(Outcome::Held(Hold {
                        since: before.map_or(now, |h| h.since),
                        tick: d.tick,
                        would_fire,
                        audience,
                        limits: limits.describe(),
                        allowed: limits.allowed(audience),
                        sample: report.started_sample.get(id).cloned().unwrap_or_default(),
                        notified: before.is_some_and(|h| h.notified),
                        digest: self::counted(d.playbook, &limits),
                    }))
                }
            }
        } else if rec.is_some_and(|r| r.held.is_some()) {
            Some(Outcome::Cleared { would_fire })
        } else {
            None
        };
        if let Some(outcome) = outcome {
            let seen_approval = rec.and_then(|r| r.approved.as_ref()).map(|a| a.at);
            look.verdicts.push(Verdict { playbook: id.clone(), outcome, seen_approval });
        }
    }
    Ok(look)
}

/// Records the holds of a look (before the pass runs without them), queueing the ops
/// email of a new hold in the same write.
pub fn record_holds(store: &Store, config: &Config, look: &Look, now: DateTime<Utc>) -> Result<(), StoreError> {
    for v in &look.verdicts {
        let Outcome::Held(hold) = &v.outcome else { continue };
        let id = v.playbook.as_str();
        let notify = config.guard.notify.clone();
        let before = store.guard(id)?.and_then(|r| r.held).map(|h| h.would_fire);
        let written = store.update_guard(id, |rec| {
            let mut hold = hold.clone();
            let new = rec.held.is_none();
            let email = match (&notify, hold.notified) {
                (Some(to), false) => {
                    hold.notified = true;
                    Some(notify_email(id, &hold, to, now))
                }
                _ => None,
            };
            // The approval this count found too small is used up; one given since stays.
            if rec.approved.as_ref().map(|a| a.at) == v.seen_approval {
                rec.approved = None;
            }
            if new || rec.held.as_ref().map(|h| h.would_fire) != Some(hold.would_fire) {
                rec.log(now, "held", hold.describe());
            }
            rec.held = Some(hold);
            Some(email)
        })?;
        let notified = written.as_ref().and_then(|r| r.held.as_ref()).is_some_and(|h| h.notified);
        if before == Some(hold.would_fire) {
            // Held as before: said when it started (a held playbook is counted again
            // at each of its ticks).
            tracing::debug!(playbook = %id, would_fire = hold.would_fire, "still held by guard");
            continue;
        }
        tracing::warn!(
            playbook = %id,
            would_fire = hold.would_fire,
            audience = hold.audience,
            notified,
            "{}; `keel approve {id}` lets this pass through",
            hold.describe()
        );
    }
    Ok(())
}

/// After a completed pass: approvals used up and holds that cleared end, and the
/// audiences counted over the book are kept.
pub fn record_after(store: &Store, look: &Look, now: DateTime<Utc>) -> Result<(), StoreError> {
    for v in &look.verdicts {
        let (what, detail) = match &v.outcome {
            Outcome::Held(_) => continue,
            Outcome::Approved { would_fire, size } => (
                "released",
                format!("ran after approval: fired {} (approved up to {})", thousands(*would_fire), thousands(*size)),
            ),
            Outcome::Cleared { would_fire } => {
                ("cleared", format!("within the limits again: fired {}", thousands(*would_fire)))
            }
            Outcome::Unguarded => ("released", "no longer guarded: ran unguarded".to_string()),
        };
        store.update_guard(&v.playbook, |rec| {
            rec.held = None;
            rec.approved = None;
            rec.log(now, what, detail.clone());
            Some(None)
        })?;
        tracing::info!(playbook = %v.playbook, "guard: {detail}");
    }
    for (id, audience) in &look.audiences {
        store.update_guard(id, |rec| {
            if rec.audience == Some(*audience) {
                return None;
            }
            rec.audience = Some(*audience);
            Some(None)
        })?;
    }
    Ok(())
}

/// Ends a playbook's hold (and any approval) outside a pass, for `why`.
pub fn release(store: &Store, playbook: &str, now: DateTime<Utc>, why: &str) -> Result<(), StoreError> {
    store.update_guard(playbook, |rec| {
        rec.held.as_ref()?;
        rec.held = None;
        rec.approved = None;
        rec.log(now, "released", why.to_string());
        Some(None)
    })?;
    Ok(())
}

/// The one email the ops address gets about a hold.
fn notify_email(playbook: &str, hold: &Hold, to: &str, now: DateTime<Utc>) -> OutboxEntry {
    let sample = if hold.sample.is_empty() {
        String::new()
    } else {
        format!("\nSome of the accounts it would fire for: {}\n", hold.sample.join(", "))
    };
    let text = format!(
        "Keel held the playbook {playbook}: {}.\n\nIt decided nothing in this pass, and holds until someone approves this pass's size or the number shrinks below the limit.\n{sample}\nLook first:   keel simulate --playbook {playbook}\nThen:         keel approve {playbook} --size {}   (lets through one pass of up to that many firings)\nOr fix the playbook or the data; the next pass counts again.\n\n— Keel\n",
        hold.describe(),
        thousands(hold.would_fire),
    );
    let subject =
        format!("Keel held {playbook}: would fire {} of {}", thousands(hold.would_fire), thousands(hold.audience));
    OutboxEntry::queued(
        String::new(),
        playbook.to_string(),
        format!("guard:{}", hold.since.to_rfc3339()),
        delivery_key(&["guard", playbook, &hold.since.to_rfc3339()]),
        Payload::Email(Email::internal(to.to_string(), "(guard hold)", subject, text)),
        now,
    )
}
