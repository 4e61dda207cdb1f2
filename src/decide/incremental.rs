//! Which accounts a pass evaluates: all of them, or only those whose outcome could differ
//! from the last pass ([5/5]: a quiet pass must cost next to nothing).
//!
//! A playbook's decision for an account depends on the account's data (record, contacts,
//! events, and the health scored from them), on its stored state, and on the day. Between
//! two passes of a playbook, an account's decision can only change when:
//! - a sync changed its data (the store's change log, read from the playbook's watermark);
//! - one of its timers came due: a sequence step, a `while_true` window (the wake log);
//! - a date trigger's date fell due (the date index, over the days since the last pass);
//! - the day changed and an expression reads the date (`today()`, `days_until`,
//!   `days_since`, the health trend): then every account, as the day moved for all.
//!
//! Any other account would decide exactly what it decided last time — nothing new — so
//! leaving it out changes no firing. A full pass runs instead when that reasoning has no
//! footing: a playbook never evaluated, edited (or the rules or zone changed), a schedule
//! trigger (it fires for every account in its audience at each tick), or a watermark older
//! than the pruned logs. `evaluation.incremental: false` makes every pass full; the tests
//! run both ways over the same days and compare the ledgers.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::decide::pass::{Due, Selection};
use crate::lang::health::HealthModel;
use crate::lang::playbook::{Playbook, Trigger};
use crate::lang::Loaded;
use crate::store::{Evaluated, Store, StoreError};

/// Words in an expression or rule that make its result depend on the day.
const READS_THE_DATE: [&str; 7] =
    ["today", "days_until", "days_since", "change_7d", "change_30d", "change_90d", "health.date"];

fn reads_the_date(text: &str) -> bool {
    READS_THE_DATE.iter().any(|w| text.contains(w))
}

/// What a playbook's decisions rest on besides the accounts' data: a digest of its file,
/// the rules and the zone, and whether any of them reads the date.
pub fn basis(pb: &Playbook, model: &HealthModel, tz: Tz) -> (String, bool) {
    let mut parts: Vec<&str> = vec![&pb.digest, tz.name()];
    parts.extend(model.sources.iter().map(String::as_str));
    let timed = model.sources.iter().any(|s| reads_the_date(s)) || pb.expressions().any(|e| reads_the_date(e.source()));
    (crate::lang::digest(&parts), timed)
}

/// A pass's accounts, why, and the change watermark it reads up to.
#[derive(Debug)]
pub struct Selected {
    pub selection: Selection,
    /// In words, for the log: why a full pass, or what an incremental one found.
    pub why: String,
    pub barrier: u64,
    /// The pass clock, and its day in the configured zone.
    pub now: DateTime<Utc>,
    pub date: NaiveDate,
}

/// Chooses the accounts for a pass of `due` at `now` (its day taken in `tz`), reading
/// nothing but the store (`dry_run`: writing nothing either).
pub fn select(
    store: &Store,
    due: &[Due],
    model: &HealthModel,
    tz: Tz,
    now: DateTime<Utc>,
    incremental: bool,
    dry_run: bool,
) -> Result<Selected, StoreError> {
    let date = now.with_timezone(&tz).date_naive();
    // Drawing a barrier writes the store's id counter; a dry run reads every change so far
    // instead (it records no watermark, so it needs none).
    let barrier = if dry_run { u64::MAX } else { store.change_barrier()? };
    let full = |why: String| Ok(Selected { selection: Selection::All, why, barrier, now, date });
    if !incremental {
        return full("evaluation.incremental is off".into());
    }
    let floor = store.changes_floor()?;
    let (mut since_seq, mut since_at) = (u64::MAX, now);
    // Date triggers whose day moved: (field, the last day seen, offset in days).
    let mut dated: Vec<(String, NaiveDate, i64)> = Vec::new();
    for d in due {
        let pb = d.playbook;
        let (digest, timed) = basis(pb, model, tz);
        let Some(e) = store.evaluated(&pb.id)? else {
            return full(format!("{} has not been evaluated before", pb.id));
        };
        if e.basis != digest {
            return full(format!("{}, the rules or the zone changed since its last pass", pb.id));
        }
        if e.seq < floor {
            return full(format!("{} last ran before the oldest change kept", pb.id));
        }
        if timed && e.date != date {
            return full(format!("{} reads the date, and the day changed", pb.id));
        }
        if matches!(pb.trigger, Trigger::Schedule { .. }) {
            return full(format!("{} is a schedule trigger: each tick is for every account", pb.id));
        }
        since_seq = since_seq.min(e.seq);
        since_at = since_at.min(e.at);
        if let Trigger::Date { field, offset, .. } = &pb.trigger {
            if e.date != date {
                dated.push((field.name(), e.date, offset.to_chrono().num_days()));
            }
        }
    }
    let mut ids = BTreeSet::new();
    let mut counts = [0usize; 3];
    for id in store.changed_between(since_seq, barrier) {
        counts[0] += usize::from(ids.insert(id?));
    }
    for id in store.waking_between(since_at, now) {
        counts[1] += usize::from(ids.insert(id?));
    }
    for (field, last, offset) in dated {
        // Due days from the last pass's day to today; a day of slack each side costs a
        // few no-op evaluations and keeps rounding of partial-day offsets harmless.
        let (from, to) = (last - Duration::days(offset + 1), date - Duration::days(offset - 1));
        for id in store.dated_between(&field, from, to) {
            counts[2] += usize::from(ids.insert(id?));
        }
    }
    let why = format!("incremental: {} changed, {} timers due, {} dates due", counts[0], counts[1], counts[2]);
    Ok(Selected { selection: Selection::Only(ids.into_iter().collect()), why, barrier, now, date })
}

/// Records how far the completed pass read, then prunes what every enabled playbook has
/// read past.
pub fn complete(store: &Store, loaded: &Loaded, due: &[Due], tz: Tz, selected: &Selected) -> Result<(), StoreError> {
    let (now, date, model) = (selected.now, selected.date, &loaded.model);
    for d in due {
        let basis = basis(d.playbook, model, tz).0;
        store.set_evaluated(&d.playbook.id, &Evaluated { seq: selected.barrier, at: now, date, basis })?;
    }
    let (mut seq, mut at) = (u64::MAX, now);
    for pb in loaded.set.playbooks.iter().filter(|p| p.enabled) {
        let Some(e) = store.evaluated(&pb.id)? else { return Ok(()) };
        seq = seq.min(e.seq);
        at = at.min(e.at);
    }
    let pruned = store.prune_logs(seq, at)?;
    if pruned > 0 {
        tracing::debug!(pruned, "change and wake logs pruned");
    }
    Ok(())
}
