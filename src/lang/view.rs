//! What scripts and templates see of an account: the stored record, plus its health
//! (score, band, components, the day before, 30-day change) and its contacts.
//!
//! Built per account per evaluation from the store; serialised into Rhai with
//! `rhai::serde::to_dynamic`, and into templates with minijinja's serde support.

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::{Account, Band, Contact, HealthPoint};

#[derive(Debug, Clone, Serialize)]
pub struct AccountView<'a> {
    #[serde(flatten)]
    pub account: &'a Account,
    /// For an account never scored, a map of unknowns (every [`HealthView`] field `()`;
    /// no components), so `account.health.band == "red"` is simply not true, rather than an
    /// error about reading a property of `()`.
    #[serde(serialize_with = "health_or_unknown")]
    pub health: Option<HealthView>,
    pub contacts: &'a [Contact],
}

/// An account's health as scripts see it (`account.health`): the view, or unknowns.
pub struct HealthField<'a>(pub &'a Option<HealthView>);

impl Serialize for HealthField<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        health_or_unknown(self.0, s)
    }
}

fn health_or_unknown<S: serde::Serializer>(health: &Option<HealthView>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Unknown {
        score: Option<f64>,
        band: Option<Band>,
        components: std::collections::BTreeMap<String, Option<f64>>,
        date: Option<NaiveDate>,
        change_7d: Option<f64>,
        change_30d: Option<f64>,
        change_90d: Option<f64>,
    }
    match health {
        Some(h) => h.serialize(s),
        None => Unknown {
            score: None,
            band: None,
            components: Default::default(),
            date: None,
            change_7d: None,
            change_30d: None,
            change_90d: None,
        }
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
    /// Score change against the latest point 7, 30 and 90 days earlier; `()` without
    /// history that old. The trend helpers: `account.health.change_30d <= -15` is
    /// the CS signal "dropped 15 points in 30 days".
    pub change_7d: Option<f64>,
    pub change_30d: Option<f64>,
    pub change_90d: Option<f64>,
}

/// Days back for [`HealthView`]'s trend fields.
pub const TREND_DAYS: [i64; 3] = [7, 30, 90];

impl HealthView {
    /// A view of `point`, with the scores of the latest points [`TREND_DAYS`] earlier
    /// (`None`: no history that old).
    pub fn new(point: HealthPoint, earlier: [Option<f64>; 3]) -> HealthView {
        let change = |i: usize| earlier[i].map(|old: f64| point.score - old);
        HealthView {
            change_7d: change(0),
            change_30d: change(1),
            change_90d: change(2),
            score: point.score,
            band: point.band,
            components: point.components,
            date: point.date,
        }
    }
}
