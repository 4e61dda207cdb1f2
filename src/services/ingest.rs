//! Records pushed in a request body (`POST /api/v1/accounts|contacts|events`): a JSON
//! array of records, imported exactly as `keel sync` imports a `.json` file of them
//! ([`crate::sync::sync_json_array`], the same reader and store path), and the report an
//! API client reads: counts, and each refused or warned record by its index.
//!
//! Invariants: a bad record never loses the good ones (it is reported by index, field
//! and message); re-sending the same records changes nothing and counts them
//! `unchanged`; a body that is not a JSON array (or not JSON) stores nothing; what is
//! answered is on disk (the sync flushes the store).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sync::RecordKind;
use super::ServiceError;
use crate::config::Config;
use crate::store::Store;
use crate::sync::{sync_json_array, SyncError, SyncReport};

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    pub kind: RecordKind,
    /// Records in the array.
    pub received: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Contacts and events stored for an account not in the store (yet).
    pub unknown_account: u64,
    /// Each rejected record, value left out and repeated id (the first 1,000), in order.
    pub errors: Vec<RecordError>,
}

/// One record's problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// The record's 0-based position in the array.
    pub index: u64,
    /// The key that was wrong (`arr`, `metrics.nps`); absent when the record as a whole was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    /// `rejected` (the record was not stored), `value_left_out` (it was stored without
    /// this field) or `repeated_id` (an earlier record had its id; both were applied).
    pub outcome: String,
}

/// What names a request body in the sync's report and log.
const BODY: &str = "request body";

/// Imports `body`, a JSON array of records of `kind`, mapped as the config's
/// `sync.<kind>` source maps a file's keys.
pub fn ingest(
    store: &Store,
    config: &Config,
    kind: RecordKind,
    body: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<IngestReport, ServiceError> {
    let name = Path::new(BODY);
    let sources = &config.sync;
    let synced = match kind {
        RecordKind::Accounts => sync_json_array(store, name, body, &sources.accounts.spec, now),
        RecordKind::Contacts => sync_json_array(store, name, body, &sources.contacts.spec, now),
        RecordKind::Events => sync_json_array(store, name, body, &sources.events.spec, now),
    };
    let report = synced.map_err(|e| match e {
        SyncError::File { message, .. } => ServiceError::InvalidArgument(format!("the body: {message}")),
        source => ServiceError::Sync { kind: kind.name(), source },
    })?;
    report.log("records pushed over the API");
    Ok(report_of(kind, &report))
}

fn report_of(kind: RecordKind, report: &SyncReport) -> IngestReport {
    let errors = report
        .errors
        .iter()
        .map(|e| RecordError {
            index: e.element.unwrap_or(0),
            field: e.column.as_ref().map(|c| c.name.clone()),
            message: e.message.clone(),
            outcome: match (e.skipped, e.repeated) {
                (true, _) => "value_left_out",
                (_, true) => "repeated_id",
                _ => "rejected",
            }
            .to_string(),
        })
        .collect();
    IngestReport {
        kind,
        received: report.rows(),
        inserted: report.inserted,
        updated: report.updated,
        unchanged: report.unchanged,
        rejected: report.rejected,
        unknown_account: report.orphans,
        errors,
    }
}
