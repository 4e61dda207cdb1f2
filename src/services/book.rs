//! The book of business at a glance: accounts, ARR and renewals coming up, per segment.
//!
//! Invariants: the segment rows sum to the total row; segments are in coverage order
//! (enterprise, mid_market, smb, custom ones by name, accounts with none last); a renewal
//! counts when it falls within [`RENEWAL_HORIZON_DAYS`] of today, today included.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::model::Segment;
use crate::store::Store;

/// How far ahead a renewal counts as coming up.
pub const RENEWAL_HORIZON_DAYS: u64 = 90;

/// The segment of accounts that name none.
pub const NO_SEGMENT: &str = "(none)";

/// One segment's (or the whole book's) totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentTotals {
    pub segment: String,
    pub accounts: u64,
    pub arr: f64,
    /// Renewals within [`RENEWAL_HORIZON_DAYS`] of today.
    pub renewing: u64,
}

/// Serialised as it is: `POST /api/v1/sync` answers it and the CLI reads it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookOverview {
    pub store: PathBuf,
    /// Today in the config's zone: what renewals count from.
    pub today: NaiveDate,
    pub contacts: usize,
    pub events: usize,
    pub segments: Vec<SegmentTotals>,
    /// The segments summed; its `segment` is `total`.
    pub total: SegmentTotals,
}

pub fn overview(store: &Store, now: DateTime<Utc>, timezone: Tz) -> Result<BookOverview, ServiceError> {
    let today = now.with_timezone(&timezone).date_naive();
    let horizon = today + chrono::Days::new(RENEWAL_HORIZON_DAYS);
    let mut rows: Vec<SegmentTotals> = Vec::new();
    for account in store.accounts() {
        let account = account?;
        let segment = account.segment.as_ref().map_or(NO_SEGMENT, Segment::as_str);
        let i = match rows.iter().position(|r| r.segment == segment) {
            Some(i) => i,
            None => {
                rows.push(SegmentTotals { segment: segment.to_string(), ..SegmentTotals::default() });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.accounts += 1;
        row.arr += account.arr.unwrap_or(0.0);
        row.renewing += u64::from(account.renewal_date.is_some_and(|d| d >= today && d <= horizon));
    }
    let order = |s: &str| match s {
        "enterprise" => 0,
        "mid_market" => 1,
        "smb" => 2,
        NO_SEGMENT => 4,
        _ => 3,
    };
    rows.sort_by_key(|r| (order(&r.segment), r.segment.clone()));
    let mut total = SegmentTotals { segment: "total".into(), ..SegmentTotals::default() };
    for r in &rows {
        total.accounts += r.accounts;
        total.arr += r.arr;
        total.renewing += r.renewing;
    }
    Ok(BookOverview {
        store: store.path().to_path_buf(),
        today,
        contacts: store.contact_count(),
        events: store.event_count(),
        segments: rows,
        total,
    })
}
