//! What scripts and templates see of an account: the stored record, plus its health
//! (score, band, components, the day before, 30-day change) and its contacts.
//!
//! Built per account per evaluation from the store; serialised into Rhai with
//! `rhai::serde::to_dynamic`, and into templates with minijinja's serde support.

use chrono::{Duration, NaiveDate};
use serde::Serialize;

use crate::model::{Account, Band, Contact, HealthPoint};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct AccountView<'a> {
    #[serde(flatten)]
    pub account: &'a Account,
    /// For an account never scored, a map of unknowns (`score`, `band`: `()`; no
    /// components), so `account.health.band == "red"` is simply not true, rather than an
    /// error about reading a property of `()`.
    #[serde(serialize_with = "health_or_unknown")]
    pub health: Option<HealthView>,
    pub contacts: Vec<Contact>,
}

fn health_or_unknown<S: serde::Serializer>(health: &Option<HealthView>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Unknown {
        score: Option<f64>,
        band: Option<Band>,
        components: std::collections::BTreeMap<String, Option<f64>>,
        date: Option<NaiveDate>,
        change_30d: Option<f64>,
    }
    match health {
        Some(h) => h.serialize(s),
        None => Unknown { score: None, band: None, components: Default::default(), date: None, change_30d: None }
            .serialize(s),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthView {
    pub score: f64,
    pub band: Band,
    pub components: std::collections::BTreeMap<String, Option<f64>>,
    /// The date of the point this view reads.
    pub date: NaiveDate,
    /// Score change against the latest point 30 days earlier; `()` without history.
    pub change_30d: Option<f64>,
}

impl HealthView {
    /// The account's health as of `date`: its latest point on or before that day.
    pub fn as_of(store: &Store, account_id: &str, date: NaiveDate) -> Result<Option<HealthView>, StoreError> {
        let Some(point) = store.health_on_or_before(account_id, date)? else { return Ok(None) };
        let month_ago = store.health_on_or_before(account_id, point.date - Duration::days(30))?;
        Ok(Some(HealthView::from_point(point, month_ago.as_ref())))
    }

    pub fn from_point(point: HealthPoint, month_ago: Option<&HealthPoint>) -> HealthView {
        HealthView {
            change_30d: month_ago.map(|old| point.score - old.score),
            score: point.score,
            band: point.band,
            components: point.components,
            date: point.date,
        }
    }
}
