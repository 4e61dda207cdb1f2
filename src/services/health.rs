//! `keel health`: every account scored with the health model for a day, the day's points
//! recorded.

use chrono::NaiveDate;

use crate::lang::health::{HealthModel, HealthRun, ScoreError};
use crate::lang::script::{EvalError, ScriptEngine};
use crate::model::HealthPoint;
use crate::store::{Store, StoreError};

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
            let error = EvalError { file: model.file.clone(), position: (1, 1), message };
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
