//! Health points: an account's health score on one day, with the per-category components
//! that explain it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The bands: green 80–100 (thriving), yellow 60–79 (at risk), red 0–59.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Red,
    Yellow,
    Green,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Red => "red",
            Band::Yellow => "yellow",
            Band::Green => "green",
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One day's health of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthPoint {
    pub date: NaiveDate,
    /// 0–100, the weighted mean of the known components.
    pub score: f64,
    /// The band after damping (see the health model's `damping`).
    pub band: Band,
    /// Category → its 0–100 score; `None` when the account lacks that category's inputs
    /// (its weight is then shared among the others).
    pub components: BTreeMap<String, Option<f64>>,
}
