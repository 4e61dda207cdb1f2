//! An account's health as a pass reads it: the day's point with its trend from the
//! stored history.

use chrono::Duration;

use crate::lang::view::{HealthView, TREND_DAYS};
use crate::model::{Band, HealthPoint};
use crate::store::{Store, StoreError};

/// A view of `point` with its trend read from the account's stored history.
pub fn with_trend(store: &Store, account_id: &str, point: HealthPoint) -> Result<HealthView, StoreError> {
    let mut earlier = [None, None, None];
    for (slot, days) in earlier.iter_mut().zip(TREND_DAYS) {
        *slot = store.health_on_or_before(account_id, point.date - Duration::days(days))?.map(|p| p.score);
    }
    Ok(HealthView::new(point, earlier))
}

/// The band damping starts from when an account is scored for `date`: its latest point
/// before that day (a point of the day itself is the one being scored again). The pass
/// reads the same point (`decide::pass`, the account's health).
pub fn previous_band(store: &Store, account_id: &str, date: chrono::NaiveDate) -> Result<Option<Band>, StoreError> {
    Ok(store.health_on_or_before(account_id, date - Duration::days(1))?.map(|p| p.band))
}
