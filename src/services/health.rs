//! Health: every account scored with the health model for a day, the day's points
//! recorded ([`score`], and [`score_book`] beneath it for the pass and tests).
//!
//! Invariants: an account whose scoring fails is reported with why and skipped — it never
//! stops the others, and never gets a point for the day; band changes compare each
//! account's new point with its latest point before the day.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::ServiceError;
use crate::lang::health::{HealthModel, HealthRun, ScoreError};
use crate::lang::script::{EvalError, ScriptEngine};
use crate::model::{Band, HealthPoint};
use crate::store::{Store, StoreError};

/// Accounts in one band and their ARR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BandTotals {
    pub accounts: u64,
    pub arr: f64,
}

/// Accounts that moved from one band to another since their previous point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BandChange {
    pub from: Band,
    pub to: Band,
    pub accounts: u64,
}

/// An account that could not be scored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountError {
    pub account: String,
    pub error: String,
}

/// What a scoring run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub date: NaiveDate,
    /// The health model's file.
    pub model: PathBuf,
    /// Accounts that got a point (the bands summed).
    pub scored: u64,
    /// Accounts with no category inputs at all.
    pub unscored: u64,
    pub bands: BTreeMap<Band, BandTotals>,
    /// Changes in band order (from, then to).
    pub changes: Vec<BandChange>,
    pub errors: Vec<AccountError>,
}

impl HealthReport {
    /// A band's totals; zero when no account is in it.
    pub fn band(&self, band: Band) -> BandTotals {
        self.bands.get(&band).copied().unwrap_or_default()
    }
}

/// Which day [`score`] scores.
#[derive(Debug, Clone, Copy)]
pub struct ScoreArgs {
    /// The day; `None`: today in `timezone`.
    pub at: Option<NaiveDate>,
    pub now: DateTime<Utc>,
    /// The config's zone.
    pub timezone: Tz,
}

/// Scores every account for the day, records the points, and reports what it did.
pub fn score(
    store: &Store,
    model: &HealthModel,
    engine: &ScriptEngine,
    args: ScoreArgs,
) -> Result<HealthReport, ServiceError> {
    let date = args.at.unwrap_or_else(|| args.now.with_timezone(&args.timezone).date_naive());
    let run = score_book(store, model, engine, date)?;
    let bands: BTreeMap<Band, BandTotals> =
        run.bands.iter().map(|(b, (n, arr))| (*b, BandTotals { accounts: *n, arr: *arr })).collect();
    Ok(HealthReport {
        date,
        model: model.file.clone(),
        scored: bands.values().map(|b| b.accounts).sum(),
        unscored: run.unscored,
        bands,
        changes: run.changes.iter().map(|(&(from, to), &accounts)| BandChange { from, to, accounts }).collect(),
        errors: run.errors.iter().map(|(id, e)| AccountError { account: id.clone(), error: e.to_string() }).collect(),
    })
}

/// Scores every account in the store for `date` and records the day's points.
/// Points are written in batches; a failing account is reported and skipped.
pub fn score_book(
    store: &Store,
    model: &HealthModel,
    engine: &ScriptEngine,
    date: NaiveDate,
) -> Result<HealthRun, StoreError> {
    const BATCH: usize = 4096;
    engine.set_today(date);
    let mut scope = engine.scope();
    let mut run = HealthRun { date: Some(date), ..HealthRun::default() };
    let mut batch: Vec<(String, HealthPoint)> = Vec::with_capacity(BATCH);
    let yesterday = date.pred_opt().unwrap_or(date);
    let flush = |batch: &mut Vec<(String, HealthPoint)>| {
        let points: Vec<(&str, &HealthPoint)> = batch.iter().map(|(id, p)| (id.as_str(), p)).collect();
        store.record_health(&points)?;
        batch.clear();
        Ok::<_, StoreError>(())
    };
    for account in store.accounts() {
        let account = account?;
        if let Err(message) = scope.set_account(&account) {
            let error = EvalError { file: model.file.clone(), position: (1, 1), message: message.to_string() };
            run.errors.push((account.id, ScoreError { category: "(account)".into(), error }));
            continue;
        }
        let previous = store.health_on_or_before(&account.id, yesterday)?.filter(|p| p.date < date).map(|p| p.band);
        match model.score(engine, &mut scope, date, previous) {
            Ok(Some(point)) => {
                let entry = run.bands.entry(point.band).or_default();
                entry.0 += 1;
                entry.1 += account.arr.unwrap_or(0.0);
                if let Some(from) = previous.filter(|&b| b != point.band) {
                    *run.changes.entry((from, point.band)).or_default() += 1;
                }
                batch.push((account.id, point));
                if batch.len() >= BATCH {
                    flush(&mut batch)?;
                }
            }
            Ok(None) => run.unscored += 1,
            Err(e) => run.errors.push((account.id, e)),
        }
    }
    flush(&mut batch)?;
    store.flush()?;
    Ok(run)
}
