//! `keel sync` as a service: which files a request names, each synced with
//! [`crate::sync::sync_file`], and the book overview after a sync of every source — what
//! the CLI prints, whether it syncs here ([`super::access::Local`]) or `keel run` does
//! (`POST /api/v1/sync`).
//!
//! Invariants: the files are read by the process holding the store, so a path is one on
//! that machine; a sync stops at the first file that fails as a whole (the reports of
//! the files before it are on disk, as from the CLI); results are
//! [`SyncReport`]s and a [`BookOverview`], which travel as JSON and back unchanged.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::book::{self, BookOverview};
use super::ServiceError;
use crate::config::{Config, Source};
use crate::store::Store;
use crate::sync::{sync_file, Kind, Progress, SyncReport};

/// A kind of record a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Accounts,
    Contacts,
    Events,
}

impl RecordKind {
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Accounts => "accounts",
            RecordKind::Contacts => "contacts",
            RecordKind::Events => "events",
        }
    }
}

/// What to sync: one file of one kind, or (`{}`) every file the config names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RecordKind>,
    /// The file, on the machine of the process that syncs; without it, the config's
    /// `sync.<kind>.file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// What a sync did: one report per file, in the order synced, and for a sync of every
/// source the book of business after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub reports: Vec<SyncReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book: Option<BookOverview>,
}

/// A progress bar for one file (the CLI's, drawn on a terminal); [`no_progress`] draws none.
pub type ProgressFor<'a> = &'a dyn Fn(&Path) -> Box<dyn Progress>;

/// No progress shown (the daemon's API).
pub fn no_progress(_file: &Path) -> Box<dyn Progress> {
    Box::new(())
}

/// Syncs what `request` names into `store`.
pub fn sync(
    store: &Store,
    config: &Config,
    request: &SyncRequest,
    now: DateTime<Utc>,
    progress: ProgressFor,
) -> Result<SyncOutcome, ServiceError> {
    let sources = &config.sync;
    let one_kind = |kind: RecordKind| -> Result<SyncReport, ServiceError> {
        let configured = match kind {
            RecordKind::Accounts => &sources.accounts.file,
            RecordKind::Contacts => &sources.contacts.file,
            RecordKind::Events => &sources.events.file,
        };
        let name = kind.name();
        let file = request.file.clone().or_else(|| configured.clone()).ok_or_else(|| {
            ServiceError::InvalidArgument(format!(
                "no {name} file: name one (`keel sync {name} FILE`) or set sync.{name}.file in {}",
                config.file.display()
            ))
        })?;
        match kind {
            RecordKind::Accounts => one(store, &file, &sources.accounts, now, progress),
            RecordKind::Contacts => one(store, &file, &sources.contacts, now, progress),
            RecordKind::Events => one(store, &file, &sources.events, now, progress),
        }
    };
    match (request.kind, &request.file) {
        (Some(kind), _) => Ok(SyncOutcome { reports: vec![one_kind(kind)?], book: None }),
        (None, Some(_)) => {
            Err(ServiceError::InvalidArgument("a file needs its kind: accounts, contacts or events".into()))
        }
        (None, None) => {
            let mut reports = Vec::new();
            for (kind, file) in [
                (RecordKind::Accounts, &sources.accounts.file),
                (RecordKind::Contacts, &sources.contacts.file),
                (RecordKind::Events, &sources.events.file),
            ] {
                if file.is_some() {
                    reports.push(one_kind(kind)?);
                }
            }
            if reports.is_empty() {
                return Err(ServiceError::InvalidArgument(format!(
                    "nothing to sync: {} names no files under sync.accounts.file, sync.contacts.file or sync.events.file; \
                     name a file instead, as in `keel sync accounts FILE`",
                    config.file.display()
                )));
            }
            let book = book::overview(store, now, config.timezone)?;
            Ok(SyncOutcome { reports, book: Some(book) })
        }
    }
}

fn one<K: Kind>(
    store: &Store,
    file: &Path,
    source: &Source<K>,
    now: DateTime<Utc>,
    progress: ProgressFor,
) -> Result<SyncReport, ServiceError> {
    let bar = progress(file);
    let report = sync_file(store, file, &source.spec, now, bar.as_ref())
        .map_err(|source| ServiceError::Sync { kind: K::KIND, source })?;
    tracing::info!(
        kind = K::KIND,
        file = %file.display(),
        inserted = report.inserted,
        updated = report.updated,
        unchanged = report.unchanged,
        rejected = report.rejected,
        rate = report.rate() as u64,
        "synced file"
    );
    Ok(report)
}
