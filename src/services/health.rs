//! Health: every account scored with the health model for a day, the day's points
//! recorded ([`score`], and [`score_book`] beneath it for the pass and tests).
//!
//! Invariants: an account whose scoring fails is reported with why and skipped — it never
//! stops the others, and never gets a point for the day; band changes compare each
//! account's new point with its latest point before the day.
//!
//! Coverage ([`Coverage`]): how many accounts each category had inputs for is what the
//! scorer returned for them (a number, or `()` — no second reading of the model); which
//! inputs were missing is the category's inputs (see [`crate::lang::inputs`]) the account
//! lacks. A category with inputs for nobody, or a book largely scored on one category,
//! is a warning: either can turn half a book red without any score being wrong.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::ServiceError;
use crate::lang::health::{HealthModel, HealthRun, ScoreError};
use crate::lang::script::{EvalError, ScriptEngine};
use crate::model::{Account, Band, HealthPoint};
use crate::store::{Store, StoreError};
use crate::sync::group_thousands;

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
    /// Which categories had inputs for how many accounts.
    pub coverage: Coverage,
}

/// How much of the book each category could score.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    /// Accounts the model ran on: scored and unscored (not those whose scoring failed).
    pub accounts: u64,
    /// In the model's order.
    pub categories: Vec<CategoryCoverage>,
    pub warnings: Vec<CoverageWarning>,
}

/// One category's coverage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryCoverage {
    pub category: String,
    pub weight: f64,
    /// Accounts the category scored a number for.
    pub with_inputs: u64,
    /// `with_inputs` as a share of [`Coverage::accounts`], 0–100.
    pub percent: f64,
    /// Accounts scored on this category alone (every other one had no inputs): their
    /// health is this category's score. Always 0 for a model of one category.
    pub alone: u64,
    /// The category's inputs missing for the most accounts, most first (at most
    /// [`TOP_MISSING`]).
    pub missing: Vec<MissingInput>,
}

/// An input and how many accounts lacked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingInput {
    /// `metrics.<name>` or `fields.<name>`.
    pub input: String,
    pub accounts: u64,
}

/// What a coverage warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageWarningKind {
    /// A category had inputs for no account.
    NoInputs,
    /// More than [`ALONE_SHARE`] of the accounts were scored on one category alone.
    OneCategory,
}

/// A coverage problem, with the sentence the CLI prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageWarning {
    pub kind: CoverageWarningKind,
    /// The category (`no_inputs`); `None` for `one_category`.
    pub category: Option<String>,
    pub accounts: u64,
    pub message: String,
}

/// How many missing inputs a category's coverage names.
pub const TOP_MISSING: usize = 3;
/// Above this share of the book scored on one category alone (0–1), say so.
pub const ALONE_SHARE: f64 = 0.2;

/// A weight as written: `40`, `2.5`.
fn plain(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

/// Tallies coverage account by account, as [`score_book`] scores them.
#[derive(Debug)]
struct Tally {
    accounts: u64,
    /// Per category, in model order: (with inputs, alone, accounts lacking each of its
    /// inputs, in the model's order of them).
    categories: Vec<(u64, u64, Vec<u64>)>,
}

impl Tally {
    fn new(model: &HealthModel) -> Tally {
        let categories = model.categories().map(|c| (0, 0, vec![0; model.inputs(c).len()])).collect();
        Tally { accounts: 0, categories }
    }

    /// One account: the scorer's components (`None`: it scored no category at all).
    fn add(&mut self, model: &HealthModel, account: &Account, components: Option<&BTreeMap<String, Option<f64>>>) {
        self.accounts += 1;
        let had = |category: &str| components.and_then(|c| c.get(category).copied().flatten()).is_some();
        let known = model.categories().filter(|c| had(c)).count();
        // With one category in the model, every score is "alone": that is the model,
        // not a gap.
        let several = model.categories().nth(1).is_some();
        for (category, entry) in model.categories().zip(&mut self.categories) {
            if had(category) {
                entry.0 += 1;
                if known == 1 && several {
                    entry.1 += 1;
                }
            }
            for (input, lacking) in model.inputs(category).iter().zip(&mut entry.2) {
                if input.missing_from(account) {
                    *lacking += 1;
                }
            }
        }
    }

    fn finish(self, model: &HealthModel) -> Coverage {
        let accounts = self.accounts;
        let share = |n: u64| if accounts == 0 { 0.0 } else { n as f64 * 100.0 / accounts as f64 };
        let mut categories = Vec::new();
        let mut warnings = Vec::new();
        for (category, (with_inputs, alone, lacking)) in model.categories().zip(self.categories) {
            let mut missing: Vec<MissingInput> = model
                .inputs(category)
                .iter()
                .zip(lacking)
                .filter(|(_, n)| *n > 0)
                .map(|(input, accounts)| MissingInput { input: input.path.clone(), accounts })
                .collect();
            // Most missing first; ties in the order the category reads them (a stable sort).
            missing.sort_by_key(|m| std::cmp::Reverse(m.accounts));
            missing.truncate(TOP_MISSING);
            let weight = model.weight(category).unwrap_or(0.0);
            if accounts > 0 && with_inputs == 0 {
                let lacking = if missing.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = missing.iter().map(|m| m.input.as_str()).collect();
                    format!(" (missing: {})", names.join(", "))
                };
                warnings.push(CoverageWarning {
                    kind: CoverageWarningKind::NoInputs,
                    category: Some(category.to_string()),
                    accounts,
                    message: format!(
                        "category {category:?} had no inputs for any of {} accounts{lacking}: it is left out of \
                         every score, and its weight ({} of {}) goes to the other categories",
                        group_thousands(accounts as f64),
                        plain(weight),
                        plain(model.total_weight()),
                    ),
                });
            }
            categories.push(CategoryCoverage {
                category: category.to_string(),
                weight,
                with_inputs,
                percent: share(with_inputs),
                alone,
                missing,
            });
        }
        let alone: u64 = categories.iter().map(|c| c.alone).sum();
        if accounts > 0 && alone as f64 > ALONE_SHARE * accounts as f64 {
            let by: Vec<String> = categories
                .iter()
                .filter(|c| c.alone > 0)
                .map(|c| format!("{} {}", c.category, group_thousands(c.alone as f64)))
                .collect();
            warnings.push(CoverageWarning {
                kind: CoverageWarningKind::OneCategory,
                category: None,
                accounts: alone,
                message: format!(
                    "{} of {} accounts ({:.0}%) were scored on one category alone ({}): each one's health is \
                     that category's score, the others had no inputs",
                    group_thousands(alone as f64),
                    group_thousands(accounts as f64),
                    share(alone),
                    by.join(", ")
                ),
            });
        }
        Coverage { accounts, categories, warnings }
    }
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
    let (run, coverage) = score_book(store, model, engine, date)?;
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
        coverage,
    })
}

/// Scores every account in the store for `date` and records the day's points, with the
/// book's [`Coverage`]. Points are written in batches; a failing account is reported and
/// skipped.
pub fn score_book(
    store: &Store,
    model: &HealthModel,
    engine: &ScriptEngine,
    date: NaiveDate,
) -> Result<(HealthRun, Coverage), StoreError> {
    let mut tally = Tally::new(model);
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
                tally.add(model, &account, Some(&point.components));
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
            Ok(None) => {
                tally.add(model, &account, None);
                run.unscored += 1;
            }
            Err(e) => run.errors.push((account.id, e)),
        }
    }
    flush(&mut batch)?;
    store.flush()?;
    Ok((run, tally.finish(model)))
}
