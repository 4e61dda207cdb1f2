//! Sync: source files (CSV, JSON arrays, NDJSON) → records → upserts into the store.
//!
//! Invariants:
//! - A bad row never stops the good ones: it is reported with its line (and column, for
//!   CSV) and the reason, and counted as rejected; every good row is stored. Under
//!   [`OnBadValue::SkipValue`] (the default) an unreadable optional cell is left out of
//!   its row, which is stored and the cell reported as a warning; a bad required field
//!   still rejects the row. A cell is reported on the line it is on, also after a
//!   multi-line cell in its row.
//! - Contacts and events whose account is not in the store are stored, counted and
//!   listed by line ([`SyncReport::orphans`]), never silently.
//! - A mapped column the CSV header lacks next to an unmapped column of a near name is a
//!   mapping typo and fails the file before any row is stored. A stray CSV
//!   quote is one bad row, not the rows it would swallow: reading resumes on the line after
//!   it (module `quotes`). Line numbers are the file's, as an editor counts them.
//! - An account or contact id that a file holds twice is reported with both lines; both
//!   rows apply, in file order.
//! - Upsert: re-importing a file changes nothing and the counts say `unchanged`; a row
//!   that carries some fields updates only those.
//! - Rows are stored in batches of [`BATCH_ROWS`], each atomic, and the store is flushed
//!   before [`sync_file`] returns, so a reported sync is on disk.
//! - Problems with the file as a whole (unreadable, no id column, duplicate headers, a
//!   JSON array with a syntax error or not in UTF-8) fail before any row is stored.

pub mod mapping;
mod quotes;
mod records;
pub mod segment;
mod values;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use mapping::{AccountField, ColumnMap, ContactField, EventField, FieldSet, Target, TargetError};
pub use quotes::{MAX_QUOTED_BYTES, MAX_QUOTED_LINES};
pub use records::{FieldError, Kind, ParseOptions};
pub use values::{Cell, ValueError};

use crate::store::{Outcome, Store, StoreError};

/// Rows per store batch: large enough that sled's per-batch cost vanishes, small enough
/// that a million-row file never holds more than this in memory.
pub const BATCH_ROWS: usize = 8192;

/// Row reports (rejected rows, repeated ids) kept in a report; the counts always cover
/// every row.
pub const MAX_KEPT_ERRORS: usize = 1000;

/// How to read one source: its column mapping and parsing options (from the config).
#[derive(Debug, Clone)]
pub struct SourceSpec<F: FieldSet> {
    pub columns: ColumnMap<F>,
    /// Date formats tried in order for date columns without their own (ISO always).
    pub date_formats: Vec<String>,
    pub on_bad_value: OnBadValue,
}

impl<F: FieldSet> Default for SourceSpec<F> {
    fn default() -> Self {
        SourceSpec { columns: ColumnMap::default(), date_formats: Vec::new(), on_bad_value: OnBadValue::default() }
    }
}

/// What an unreadable cell of an optional field does to its row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnBadValue {
    /// The row is rejected whole (every bad cell is reported).
    RejectRow,
    /// The row is stored without that field and the cell is reported as a warning; a bad
    /// id or other required field ([`Kind::is_required`]) still rejects the row. One
    /// unreadable renewal date should not make a customer vanish.
    #[default]
    SkipValue,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("could not read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A column, as a person finds it in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRef {
    /// 1-based column number (CSV); `None` for a JSON key.
    pub number: Option<usize>,
    pub name: String,
}

/// Why one row was rejected, or (with `skipped`) why one of its cells was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: u64,
    /// The row's 0-based position in a JSON array (a file's or a request body's); `None`
    /// for CSV and NDJSON, whose rows are found by line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<u64>,
    pub column: Option<ColumnRef>,
    pub message: String,
    /// A warning: the row was stored without this cell (`on_bad_value: skip_value`).
    pub skipped: bool,
    /// A warning: the row's id repeats an earlier row's; it was applied all the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(ColumnRef { number: Some(n), name }) => {
                write!(f, "{}:{n}: column {name:?}: {}", self.line, self.message)
            }
            Some(ColumnRef { number: None, name }) => write!(f, "{}: key {name:?}: {}", self.line, self.message),
            None => write!(f, "{}: {}", self.line, self.message),
        }?;
        if self.skipped {
            f.write_str(" (warning: the row was stored without this value)")?;
        }
        Ok(())
    }
}

/// What a sync did, for the summary line and for scripts. Serialised as it is, so a
/// report made by `keel run` (`POST /api/v1/sync`) reads back into this type and prints
/// the same as one made here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// `accounts`, `contacts` or `events` ([`FieldSet::KIND`]); a `String` so that a
    /// report read back from JSON owns it.
    pub kind: String,
    pub file: PathBuf,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Rows whose id an earlier row of the same file already had (accounts, contacts).
    /// They were applied, in file order, and are counted in inserted/updated/unchanged.
    pub repeated: u64,
    /// Cells left out of rows that were stored (`on_bad_value: skip_value`).
    pub skipped_values: u64,
    /// The first [`MAX_KEPT_ERRORS`] row reports, in file order: why each rejected row
    /// was rejected, each skipped cell, and each repeated id with the line that had it first.
    pub errors: Vec<RowError>,
    /// Contacts and events stored for an account that is not in the store, as counted;
    /// the first [`MAX_KEPT_ERRORS`] are kept in `orphan_rows` (line, account id).
    pub orphans: u64,
    pub orphan_rows: Vec<(u64, String)>,
    /// Mapped columns this CSV file's header lacks: it set nothing for them.
    pub absent_columns: Vec<String>,
    pub elapsed: Duration,
}

impl SyncReport {
    pub fn rows(&self) -> u64 {
        self.inserted + self.updated + self.unchanged + self.rejected
    }

    /// Rows that are in the store after the sync (new, changed or already so).
    pub fn stored(&self) -> u64 {
        self.inserted + self.updated + self.unchanged
    }

    /// Rows per second over the whole sync (read, parse, store, flush).
    pub fn rate(&self) -> f64 {
        self.rows() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn reject(&mut self, error: RowError) {
        self.rejected += 1;
        self.keep(error);
    }

    fn keep(&mut self, error: RowError) {
        if self.errors.len() < MAX_KEPT_ERRORS {
            self.errors.push(error);
        }
    }
}

impl SyncReport {
    /// Logs the import: one line at info, and a warning (with the first problem) when rows
    /// were rejected, values left out, or records name an account not in the store, so a
    /// daemon's log shows bad data as what it is.
    pub fn log(&self, what: &'static str) {
        let file = self.file.display();
        tracing::info!(%file, inserted = self.inserted, updated = self.updated, unchanged = self.unchanged, rejected = self.rejected, "{what}");
        if self.rejected + self.skipped_values + self.orphans > 0 {
            let first = self.errors.first().map_or(String::new(), |e| format!("{file}:{e}"));
            tracing::warn!(
                %file,
                rejected = self.rejected,
                values_left_out = self.skipped_values,
                unknown_account = self.orphans,
                %first,
                "rows of the source need fixing (`keel sync` prints each)"
            );
        }
        if !self.absent_columns.is_empty() {
            let columns = self.absent_columns.join(", ");
            tracing::warn!(%file, %columns, "mapped columns are not in the file's header: it set nothing for them");
        }
    }
}

impl fmt::Display for SyncReport {
    /// `accounts.csv: 400 accounts in 0.04 s (10,000 accounts/s): 398 inserted, …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} in {:.2} s ({} {}/s): {} inserted, {} updated, {} unchanged, {} rejected",
            self.file.display(),
            group_thousands(self.rows() as f64),
            self.kind,
            self.elapsed.as_secs_f64(),
            group_thousands(self.rate()),
            self.kind,
            group_thousands(self.inserted as f64),
            group_thousands(self.updated as f64),
            group_thousands(self.unchanged as f64),
            group_thousands(self.rejected as f64)
        )?;
        match self.repeated {
            0 => {}
            1 => write!(f, ", 1 repeated id")?,
            n => write!(f, ", {n} repeated ids")?,
        }
        match self.skipped_values {
            0 => {}
            1 => write!(f, ", 1 unreadable value left out")?,
            n => write!(f, ", {n} unreadable values left out")?,
        }
        match self.orphans {
            0 => Ok(()),
            n => write!(f, ", {n} for an account not in the store"),
        }
    }
}

/// `1234567.8` → `1,234,568`.
pub fn group_thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0.0 && digits != "0" {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Told how far through the file a sync is, for a progress bar. `()` ignores it.
pub trait Progress {
    fn start(&self, _total_bytes: u64) {}
    fn advance(&self, _bytes_read: u64) {}
    fn finish(&self) {}
}

impl Progress for () {}

/// File formats a source can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// One JSON array of objects.
    JsonArray,
    /// One JSON object per line (NDJSON / JSON Lines).
    JsonLines,
}

impl Format {
    /// By extension (`.csv`, `.ndjson`, `.jsonl`); `.json` and anything else by the first
    /// non-blank byte (`[` array, `{` lines, else CSV).
    fn detect(path: &Path, head: &[u8]) -> Format {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Format::Csv,
            "ndjson" | "jsonl" => Format::JsonLines,
            _ => match head.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => Format::JsonArray,
                Some(b'{') => Format::JsonLines,
                _ => Format::Csv,
            },
        }
    }
}

/// Imports one file of records of kind `K` into the store.
pub fn sync_file<K: Kind>(
    store: &Store,
    path: &Path,
    spec: &SourceSpec<K>,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let read_err = |source| SyncError::Read { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(read_err)?;
    let total = file.metadata().map_err(read_err)?.len();
    let mut head = [0u8; 64];
    let n = file.read(&mut head).map_err(read_err)?;
    let mut file = File::open(path).map_err(read_err)?;
    let format = Format::detect(path, &head[..n]);
    let origin = Origin::File(path);
    sync_with(store, origin, now, started, total, progress, |sink| match format {
        Format::Csv => read_csv(path, file, spec, sink, progress),
        Format::JsonLines => read_json_lines(path, file, spec, sink, progress),
        Format::JsonArray => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(read_err)?;
            read_json_array(origin, bytes, spec, sink, progress)
        }
    })
}

/// Imports a JSON array of records of kind `K` held in memory (a request body of the
/// API's `POST /api/v1/accounts|contacts|events`): the very reader and store path a
/// `.json` file takes in [`sync_file`], so both upsert, update partially and report bad
/// records the same. Each row report carries the record's index ([`RowError::element`]);
/// `name` stands for the file in the report and in messages.
pub fn sync_json_array<K: Kind>(
    store: &Store,
    name: &Path,
    bytes: Vec<u8>,
    spec: &SourceSpec<K>,
    now: DateTime<Utc>,
) -> Result<SyncReport, SyncError> {
    let total = bytes.len() as u64;
    let origin = Origin::Body(name);
    sync_with(store, origin, now, Instant::now(), total, &(), |sink| read_json_array(origin, bytes, spec, sink, &()))
}

/// Where rows come from: a file, or a request body (whose records are found by index
/// rather than by line).
#[derive(Debug, Clone, Copy)]
enum Origin<'p> {
    File(&'p Path),
    Body(&'p Path),
}

impl Origin<'_> {
    fn path(&self) -> &Path {
        match self {
            Origin::File(p) | Origin::Body(p) => p,
        }
    }
}

/// The part every sync shares: the sink, the reader `read` feeding it, the last batch,
/// the flush, the report in order.
fn sync_with<K: Kind>(
    store: &Store,
    origin: Origin,
    now: DateTime<Utc>,
    started: Instant,
    total: u64,
    progress: &dyn Progress,
    read: impl FnOnce(&mut Sink<K>) -> Result<(), SyncError>,
) -> Result<SyncReport, SyncError> {
    let (file, body) = match origin {
        Origin::File(p) => (p, false),
        Origin::Body(p) => (p, true),
    };
    let mut sink = Sink::<K> {
        store,
        now,
        pending: Vec::with_capacity(BATCH_ROWS),
        first_line: HashMap::new(),
        known_accounts: HashMap::new(),
        element: None,
        body,
        report: SyncReport { kind: K::KIND.to_string(), file: file.to_path_buf(), ..Default::default() },
    };
    progress.start(total);
    let result = read(&mut sink);
    progress.finish();
    result?;
    sink.flush()?;
    store.flush()?;
    let mut report = sink.report;
    // Rows the store refused are learnt a batch later than rows that failed to parse.
    report.errors.sort_by_key(|e| (e.line, e.element));
    report.orphan_rows.sort();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The header row of a CSV source, as a sync reads it (BOM and spaces trimmed), for
/// `keel check` to hold a mapping against; `None` for JSON sources, whose keys vary by row.
pub fn csv_header(path: &Path) -> Result<Option<Vec<String>>, SyncError> {
    let read_err = |source| SyncError::Read { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(read_err)?;
    let mut head = [0u8; 64];
    let n = file.read(&mut head).map_err(read_err)?;
    if Format::detect(path, &head[..n]) != Format::Csv {
        return Ok(None);
    }
    let file = File::open(path).map_err(read_err)?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let headers = reader.byte_headers().map_err(|e| SyncError::File {
        path: path.to_path_buf(),
        message: format!("cannot read the header row: {e}"),
    })?;
    Ok(Some(
        headers.iter().map(|h| String::from_utf8_lossy(h).trim_start_matches('\u{feff}').trim().to_string()).collect(),
    ))
}

/// Collects built rows into batches for the store and tallies the outcomes.
struct Sink<'s, K: Kind> {
    store: &'s Store,
    now: DateTime<Utc>,
    /// Each row's line and (JSON arrays) index, and its record.
    pending: Vec<(u64, Option<u64>, K::Record)>,
    /// The line (and index) each id was first seen on, to report a repeat with both
    /// (kinds with [`Kind::id_of`] only: a repeated event is the same event delivered twice).
    first_line: HashMap<Box<str>, (u64, Option<u64>)>,
    /// Whether each account id a contact or event named is in the store (looked up once).
    known_accounts: HashMap<String, bool>,
    /// The index in its JSON array of the row being fed, set by the array's reader.
    element: Option<u64>,
    /// Rows come from a request body: a repeat names the record by index, not line.
    body: bool,
    report: SyncReport,
}

impl<K: Kind> Sink<'_, K> {
    fn row(&mut self, line: u64, built: Built<K>) -> Result<(), SyncError> {
        self.row_at(line, built, None)
    }

    /// [`Self::row`] for a row whose cells start on different lines (a quoted cell before
    /// them held line ends): `cell_lines[i]` is the line cell `i + 1` starts on, so a bad
    /// cell is reported on its own line.
    fn row_at(&mut self, line: u64, built: Built<K>, cell_lines: Option<&[u64]>) -> Result<(), SyncError> {
        let element = self.element;
        let line_of = |column: &Option<ColumnRef>| match (cell_lines, column) {
            (Some(lines), Some(ColumnRef { number: Some(n), .. })) => lines.get(n - 1).copied().unwrap_or(line),
            _ => line,
        };
        match built {
            Ok((record, skipped)) => {
                for (column, message) in skipped {
                    self.report.skipped_values += 1;
                    let line = line_of(&column);
                    self.report.keep(RowError { line, element, column, message, skipped: true, repeated: false });
                }
                if let Some(id) = K::id_of(&record) {
                    match self.first_line.get(id) {
                        Some(&(first, first_element)) => {
                            self.report.repeated += 1;
                            let message = match (self.body, first_element) {
                                (true, Some(first)) => format!(
                                    "id {id:?} repeats record {first}: both records were applied, in order, \
                                     so this record's values win where both carry one"
                                ),
                                _ => format!(
                                    "id {id:?} repeats line {first}: both rows were applied, in file order, \
                                     so this row's values win where both rows carry one"
                                ),
                            };
                            self.report.keep(RowError {
                                line,
                                element,
                                column: None,
                                message,
                                skipped: false,
                                repeated: true,
                            });
                        }
                        None => {
                            self.first_line.insert(id.into(), (line, element));
                        }
                    }
                }
                self.pending.push((line, element, record));
                if self.pending.len() >= BATCH_ROWS {
                    self.flush()?;
                }
            }
            Err(errors) => {
                // One rejected row, however many of its cells were bad; each cell is reported.
                self.report.rejected += 1;
                for (column, message) in errors {
                    if self.report.errors.len() < MAX_KEPT_ERRORS {
                        let line = line_of(&column);
                        self.report.errors.push(RowError {
                            line,
                            element,
                            column,
                            message,
                            skipped: false,
                            repeated: false,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SyncError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::with_capacity(self.pending.len());
        let mut records = Vec::with_capacity(self.pending.len());
        for (line, element, record) in self.pending.drain(..) {
            lines.push((line, element));
            records.push(record);
        }
        // Each contact's or event's account, looked up once per id per sync; only rows the
        // store then accepts are counted as orphans.
        let mut orphan_of = Vec::with_capacity(records.len());
        for record in &records {
            let orphan = match K::account_of(record) {
                Some(id) => match self.known_accounts.get(id) {
                    Some(&known) => (!known).then(|| id.to_string()),
                    None => {
                        let known = self.store.account(id)?.is_some();
                        self.known_accounts.insert(id.to_string(), known);
                        (!known).then(|| id.to_string())
                    }
                },
                None => None,
            };
            orphan_of.push(orphan);
        }
        let outcomes = K::store(self.store, records, self.now)?;
        for (((line, element), outcome), orphan) in lines.into_iter().zip(outcomes).zip(orphan_of) {
            let stored = !matches!(outcome, Outcome::Rejected(_));
            match outcome {
                Outcome::Inserted => self.report.inserted += 1,
                Outcome::Updated => self.report.updated += 1,
                Outcome::Unchanged => self.report.unchanged += 1,
                Outcome::Rejected(message) => self.report.reject(RowError {
                    line,
                    element,
                    column: None,
                    message,
                    skipped: false,
                    repeated: false,
                }),
            }
            if let (true, Some(account)) = (stored, orphan) {
                self.report.orphans += 1;
                if self.report.orphan_rows.len() < MAX_KEPT_ERRORS {
                    self.report.orphan_rows.push((line, account));
                }
            }
        }
        Ok(())
    }
}

/// Cell reports of one row: where, and what was wrong.
type CellErrors = Vec<(Option<ColumnRef>, String)>;

/// A built row with the cells left out of it, or every reason it was rejected.
type Built<K> = Result<(<K as Kind>::Record, CellErrors), CellErrors>;

/// Builds one record from its cells, collecting every bad cell of the row.
struct RowBuilder<K: Kind> {
    patch: K::Patch,
    on_bad_value: OnBadValue,
    errors: CellErrors,
    /// Bad cells of optional fields, left out under [`OnBadValue::SkipValue`].
    skipped: CellErrors,
}

impl<K: Kind> RowBuilder<K> {
    fn new(on_bad_value: OnBadValue) -> Self {
        RowBuilder { patch: K::Patch::default(), on_bad_value, errors: Vec::new(), skipped: Vec::new() }
    }

    fn cell(&mut self, target: &Target<K>, cell: Cell, formats: &[String], column: impl FnOnce() -> ColumnRef) {
        if cell.is_empty() {
            return;
        }
        let opts = ParseOptions { date_formats: formats };
        let result = match target {
            Target::Field(field) => K::set(&mut self.patch, *field, cell, &opts),
            Target::Metric(name) => {
                cell.number().map(|v| K::set_metric(&mut self.patch, name, v)).map_err(FieldError::from)
            }
            Target::Extra(key) => {
                K::set_extra(&mut self.patch, key, cell.to_json());
                Ok(())
            }
            Target::Ignore => Ok(()),
        };
        if let Err(e) = result {
            let required = matches!(target, Target::Field(f) if K::is_required(*f));
            match self.on_bad_value {
                OnBadValue::SkipValue if !required => self.skipped.push((Some(column()), e.to_string())),
                _ => self.errors.push((Some(column()), e.to_string())),
            }
        }
    }

    fn finish(mut self) -> Built<K> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        match K::finish(self.patch) {
            Ok(record) => Ok((record, self.skipped)),
            Err(message) => {
                self.errors.push((None, message));
                Err(self.errors)
            }
        }
    }
}

fn read_csv<K: Kind>(
    path: &Path,
    file: File,
    spec: &SourceSpec<K>,
    sink: &mut Sink<K>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let file_err = |message: String| SyncError::File { path: path.to_path_buf(), message };
    let read_err = |source: io::Error| SyncError::Read { path: path.to_path_buf(), source };
    // `flexible`: a row with the wrong number of cells is that row's error, not the file's.
    let mut reader = csv::ReaderBuilder::new().flexible(true).buffer_capacity(1 << 20).from_reader(RowLimit {
        file,
        pos: 0,
        row_start: 0,
    });
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(|e| file_err(format!("cannot read the header row: {e}")))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            std::str::from_utf8(h)
                .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
                .map_err(|_| file_err(format!("header of column {} is not valid UTF-8", i + 1)))
        })
        .collect::<Result<_, _>>()?;
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(file_err("the file is empty or has no header row".into()));
    }
    if let Some(message) = duplicate_header(&headers) {
        return Err(file_err(message));
    }
    check_mapped_columns(&spec.columns, &headers).map_err(file_err)?;
    sink.report.absent_columns = spec.columns.absent_in(&headers).into_iter().map(str::to_string).collect();
    let targets: Vec<Target<K>> = headers.iter().map(|h| spec.columns.resolve(h)).collect();
    let formats: Vec<&[String]> =
        headers.iter().map(|h| spec.columns.date_formats(h).unwrap_or(&spec.date_formats)).collect();
    check_required_columns::<K>(&targets).map_err(file_err)?;
    // Few columns map to a named field (a kind has a dozen), so a short list is linear too.
    let mut first_mapped: Vec<(K, usize)> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        if let Target::Field(f) = t {
            if let Some(&(_, j)) = first_mapped.iter().find(|(g, _)| g == f) {
                return Err(file_err(format!(
                    "columns {:?} and {:?} both map to {}; map one of them to ignore",
                    headers[j],
                    headers[i],
                    f.name()
                )));
            }
            first_mapped.push((*f, i));
        }
    }

    let mut raw = RawRows::open(path).map_err(read_err)?;
    let mut record = csv::ByteRecord::new();
    let mut rows: u64 = 0;
    // Where the csv reader's next row starts (its line as the csv crate counts).
    reader.get_mut().row_start = reader.position().byte();
    // Reads on from `byte`, the start of `line`, after a row that could not be trusted.
    let resume = |reader: &mut csv::Reader<RowLimit>, byte: u64, line: u64| {
        let mut at = csv::Position::new();
        at.set_byte(byte).set_line(line);
        reader.get_mut().row_start = byte;
        reader.seek(at).map_err(|e| file_err(format!("cannot read on from line {line}: {e}")))
    };
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if e.is_io_error() => {
                let source = match e.into_kind() {
                    csv::ErrorKind::Io(source) => source,
                    other => io::Error::other(format!("{other:?}")),
                };
                // The disk failing is the file's problem, not a row's: stop (a retry would loop).
                if !source.get_ref().is_some_and(|inner| inner.is::<RowTooLong>()) {
                    return Err(read_err(source));
                }
                // One row ran past MAX_ROW_BYTES: a stray quote if the raw bytes show one.
                let (line, content) = raw.start(reader.get_ref().row_start).map_err(read_err)?;
                let scan = raw.scan(content, line, content + MAX_ROW_BYTES).map_err(read_err)?;
                let next = match stray_quote(&scan) {
                    Some(stray) => {
                        let at = stray.span.line;
                        let message = format!("{}; reading went on from line {}", stray.message, at + 1);
                        sink.row(at, Err(vec![(Some(stray_column(&headers, stray.span.cell)), message)]))?;
                        Some((stray.span.next_line_byte, at + 1))
                    }
                    None => {
                        let next = raw.next_line(content).map_err(read_err)?;
                        let message = format!(
                            "row is longer than {} MiB, which no export writes; reading went on from the next line",
                            MAX_ROW_BYTES >> 20
                        );
                        sink.row(line, Err(vec![(None, message)]))?;
                        next.map(|byte| (byte, line + 1))
                    }
                };
                match next {
                    Some((byte, line)) => {
                        resume(&mut reader, byte, line)?;
                        raw.reset(byte, line).map_err(read_err)?;
                        continue;
                    }
                    None => break,
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                sink.row(line, Err(vec![(None, format!("unreadable row: {e}"))]))?;
                continue;
            }
        }
        let Some(position) = record.position().cloned() else {
            return Err(file_err("the CSV reader lost its place in the file".into()));
        };
        let end = reader.position().byte();
        reader.get_mut().row_start = end;
        let (line, content) = raw.start(position.byte()).map_err(read_err)?;
        rows += 1;
        if rows.is_multiple_of(4096) {
            progress.advance(position.byte());
        }
        let wrong_count = record.len() != headers.len();
        if wrong_count && record.len() == 1 && record.get(0).is_some_and(|c| c.is_empty()) {
            continue; // a blank line
        }
        // A row can only span lines through a quoted cell; that, or a wrong cell count, is
        // when a stray quote may be at work, so only then are the raw bytes read again.
        let spans_lines = record.as_slice().iter().any(|&b| b == b'\n' || b == b'\r');
        if spans_lines || wrong_count {
            let scan = raw.scan(content, line, end).map_err(read_err)?;
            if let Some(stray) = stray_quote(&scan) {
                let resume_line = stray.span.line + 1;
                let column = stray_column(&headers, stray.span.cell);
                let message = format!("{}; reading went on from line {resume_line}", stray.message);
                sink.row(stray.span.line, Err(vec![(Some(column), message)]))?;
                resume(&mut reader, stray.span.next_line_byte, resume_line)?;
                raw.reset(stray.span.next_line_byte, resume_line).map_err(read_err)?;
                continue;
            }
            if wrong_count {
                let mut msg = format!("row has {} cells; the header has {}", record.len(), headers.len());
                if let Some(span) = &scan.span {
                    let close = span.line + span.breaks;
                    msg.push_str(&format!(
                        " (the quote that opens cell {} on line {} closes on line {close}; if it is stray, lines {} \
                         to {close} were read into this row and not imported)",
                        span.cell,
                        span.line,
                        span.line + 1
                    ));
                } else if let Some(cell) = scan.open_at_end {
                    msg.push_str(&format!(" (the quote that opens cell {cell} is never closed)"));
                } else if let Some(cell) = scan.inner_quote {
                    msg.push_str(&format!(
                        " (cell {cell} holds a quote that is not at its start, so it quotes nothing: \
                         put the whole cell in quotes)"
                    ));
                }
                sink.row(line, Err(vec![(None, msg)]))?;
                continue;
            }
        }
        let mut row = RowBuilder::<K>::new(spec.on_bad_value);
        for (i, (raw, target)) in record.iter().zip(&targets).enumerate() {
            if matches!(target, Target::Ignore) {
                continue;
            }
            let column = || ColumnRef { number: Some(i + 1), name: headers[i].clone() };
            match std::str::from_utf8(raw) {
                Ok(text) => row.cell(target, Cell::Text(text), formats[i], column),
                Err(_) => row.errors.push((Some(column()), "cell is not valid UTF-8 text".into())),
            }
        }
        let cell_lines = spans_lines.then(|| cell_lines(&record, line));
        sink.row_at(line, row.finish(), cell_lines.as_deref())?;
    }
    Ok(())
}

/// The line each cell of a row that spans lines starts on: the row's first line plus the
/// line ends in the cells before it (only quoted cells hold any, kept as written). A
/// `\r\n` is one line end, as is a lone `\n` or `\r`, as editors count them.
fn cell_lines(record: &csv::ByteRecord, first: u64) -> Vec<u64> {
    let mut line = first;
    record
        .iter()
        .map(|cell| {
            let at = line;
            line += line_ends(cell);
            at
        })
        .collect()
}

fn line_ends(bytes: &[u8]) -> u64 {
    let mut n = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            n += 1;
        }
    }
    n
}

/// Bytes one CSV row (all its lines) may hold. Past this it is a runaway quote, or not
/// CSV; the limit bounds what one row can make the csv reader hold in memory.
pub const MAX_ROW_BYTES: u64 = 16 << 20;

/// The csv reader's input: the file, refusing to feed one row past [`MAX_ROW_BYTES`].
/// Without it a stray quote with no other quote after it reads the rest of the file,
/// however large, into one cell before the row can be judged.
struct RowLimit {
    file: File,
    /// File offset of the next byte to hand out.
    pos: u64,
    /// Where the row being read starts (set after each row).
    row_start: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("a row is longer than {} MiB", MAX_ROW_BYTES >> 20)]
struct RowTooLong;

impl Read for RowLimit {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos.saturating_sub(self.row_start) > MAX_ROW_BYTES {
            return Err(io::Error::other(RowTooLong));
        }
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RowLimit {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

/// A second, buffered reader over the CSV file that follows the csv reader row by row.
///
/// The csv crate puts a row's position where the previous row ended, before the blank
/// lines and the `\n` of a CRLF it skips, and counts only `\n`, so its line numbers run
/// short after either and stay at 1 in a file with old-Mac `\r` line ends. This reader
/// counts the lines itself, as an editor does (`\r\n`, `\n` or a lone `\r` is one line
/// end), and steps over the skipped bytes to give each row its real first line. It also
/// re-reads a suspect row's raw bytes for [`quotes::scan_row`]. Following in step costs a
/// second sequential read of the file, from the page cache.
struct RawRows {
    reader: BufReader<File>,
    /// File offset of the reader.
    pos: u64,
    /// Lines are counted up to this offset; `line` is the line it is on.
    counted_to: u64,
    line: u64,
    /// The byte before `counted_to` was a `\r` (a `\n` right after it ends no new line).
    after_cr: bool,
}

impl RawRows {
    fn open(path: &Path) -> io::Result<RawRows> {
        let reader = BufReader::with_capacity(1 << 18, File::open(path)?);
        Ok(RawRows { reader, pos: 0, counted_to: 0, line: 1, after_cr: false })
    }

    /// Where reading goes on after a row that could not be trusted: `byte` starts `line`.
    /// A `\r` just before it (a scan that stopped inside a `\r\n`) makes a `\n` at `byte`
    /// the rest of that line end, not a line of its own.
    fn reset(&mut self, byte: u64, line: u64) -> io::Result<()> {
        let mut after_cr = false;
        if byte > 0 {
            self.move_to(byte - 1)?;
            let mut b = [0u8; 1];
            after_cr = self.reader.read(&mut b)? == 1 && b[0] == b'\r';
            self.pos = byte;
        }
        (self.counted_to, self.line, self.after_cr) = (byte, line, after_cr);
        Ok(())
    }

    fn count(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\r' || (b == b'\n' && !self.after_cr) {
                self.line += 1;
            }
            self.after_cr = b == b'\r';
        }
        self.counted_to += bytes.len() as u64;
    }

    /// Counts the lines of the bytes from where counting stopped up to `byte`.
    fn count_to(&mut self, byte: u64) -> io::Result<()> {
        if byte <= self.counted_to {
            return Ok(());
        }
        self.move_to(self.counted_to)?;
        while self.counted_to < byte {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len().min((byte - self.counted_to) as usize);
            let chunk = chunk[..n].to_vec();
            self.count(&chunk);
            self.reader.consume(n);
            self.pos += n as u64;
        }
        Ok(())
    }

    fn move_to(&mut self, byte: u64) -> io::Result<()> {
        if byte != self.pos {
            // Within the buffer this only moves a cursor; beyond it, it seeks.
            self.reader.seek_relative(byte as i64 - self.pos as i64)?;
            self.pos = byte;
        }
        Ok(())
    }

    /// Steps over the line ends before the row the csv reader placed at `byte`, and
    /// returns the row's real first line and first byte.
    fn start(&mut self, byte: u64) -> io::Result<(u64, u64)> {
        self.count_to(byte)?;
        self.move_to(self.counted_to)?;
        loop {
            let chunk = self.reader.fill_buf()?;
            let skip = chunk.iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
            let done = skip < chunk.len() || chunk.is_empty();
            let skipped = chunk[..skip].to_vec();
            self.count(&skipped);
            self.reader.consume(skip);
            self.pos += skip as u64;
            if done {
                return Ok((self.line, self.pos));
            }
        }
    }

    /// The offset just after the first line end from `byte` on; `None` if there is none.
    fn next_line(&mut self, byte: u64) -> io::Result<Option<u64>> {
        self.move_to(byte)?;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let (n, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            self.reader.consume(n);
            self.pos += n as u64;
            if found {
                return Ok(Some(self.pos));
            }
        }
    }

    /// Scans the raw bytes of the row from `byte` (its first, on `line`) to `end`.
    fn scan(&mut self, byte: u64, line: u64, end: u64) -> io::Result<quotes::RowScan> {
        self.move_to(byte)?;
        let len = end.saturating_sub(byte);
        let mut bytes = Read::by_ref(&mut self.reader).take(len);
        let scan = quotes::scan_row(&mut bytes, byte, line);
        self.pos = byte + (len - bytes.limit());
        scan
    }
}

/// A quote judged stray, and what to tell the user about it.
struct Stray {
    span: quotes::QuotedSpan,
    message: String,
}

/// Whether a row's multi-line cell is surely a stray quote's doing rather than a real
/// multi-line cell: its quote never closes, closes inside other text, or runs past the
/// limits. Then the lines after the quote's are rows of their own. A cell that closes
/// cleanly is not judged here even if its row has the wrong width: reading its lines as
/// rows could import a notes cell's lines as accounts, so that row is rejected whole.
fn stray_quote(scan: &quotes::RowScan) -> Option<Stray> {
    use quotes::Fault;
    let span = scan.span.clone()?;
    let breaks = span.breaks;
    let message = match &span.fault {
        Some(Fault::Unclosed) => {
            format!(
                "a quote opened here is never closed (the field runs over {breaks} line ends, to the end of the file)"
            )
        }
        Some(Fault::TooLong) => format!(
            "a quote opened here is never closed (the field runs over more than {MAX_QUOTED_LINES} lines or {} KiB)",
            MAX_QUOTED_BYTES / 1024
        ),
        Some(Fault::TextAfterClose { line }) => format!(
            "a quote opened here is never closed (the field runs over {breaks} line ends, to a quote on line \
             {line} that has other text right after it)"
        ),
        None => return None,
    };
    Some(Stray { span, message })
}

fn stray_column(headers: &[String], cell: usize) -> ColumnRef {
    let name = headers.get(cell.saturating_sub(1)).cloned().unwrap_or_else(|| "(beyond the header)".to_string());
    ColumnRef { number: Some(cell), name }
}

/// The first header named like an earlier one, by both column numbers. One pass with a
/// map, so a wide export (100k columns) is checked in milliseconds, not seconds.
fn duplicate_header(headers: &[String]) -> Option<String> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        if let Some(&j) = first.get(h.as_str()) {
            return Some(format!("columns {} and {} are both named {h:?}", j + 1, i + 1));
        }
        first.insert(h, i);
    }
    None
}

/// A mapped column the header lacks, next to an unmapped header column of a near name,
/// is a typo: its field would be empty on every row while the real column lands in
/// `fields` ([`ColumnMap::typos_in`]). Every such column is named, before any row is read.
fn check_mapped_columns<K: FieldSet>(columns: &ColumnMap<K>, headers: &[String]) -> Result<(), String> {
    let typos = columns.typos_in(headers);
    if typos.is_empty() {
        return Ok(());
    }
    let named: Vec<String> =
        typos.iter().map(|(column, near)| format!("{column:?} (did you mean {near:?}?)")).collect();
    let (noun, verb) = if typos.len() == 1 { ("column", "is") } else { ("columns", "are") };
    Err(format!(
        "mapped {noun} {} {verb} not in the header row (sync.{}.columns); nothing was imported",
        named.join(", "),
        K::KIND
    ))
}

/// A CSV header that cannot feed a required field would reject every row: say so once.
fn check_required_columns<K: Kind>(targets: &[Target<K>]) -> Result<(), String> {
    for group in K::REQUIRED {
        if !targets.iter().any(|t| matches!(t, Target::Field(f) if group.contains(f))) {
            let names: Vec<&str> = group.iter().map(|f| f.name()).collect();
            return Err(format!(
                "no column maps to {}; name a column so, or map one in the config under sync.{}.columns",
                names.join(" or "),
                K::KIND
            ));
        }
    }
    Ok(())
}

/// Feeds one JSON object's keys to a row. `metrics` and `fields`/`properties` objects
/// are taken apart, so `{"metrics": {"nps": 9}}` works without a mapping.
fn json_row<K: Kind>(object: &Map<String, Value>, spec: &SourceSpec<K>) -> Built<K> {
    let mut row = RowBuilder::<K>::new(spec.on_bad_value);
    for (key, value) in object {
        let nested = match value {
            Value::Object(inner) if key == "metrics" && K::HAS_METRICS => Some((inner, true)),
            Value::Object(inner) if key == K::EXTRA => Some((inner, false)),
            _ => None,
        };
        match nested {
            Some((inner, is_metric)) => {
                for (name, v) in inner {
                    let target = if is_metric {
                        match Target::<K>::parse(&format!("metrics.{name}")) {
                            Ok(t) => t,
                            Err(e) => {
                                row.errors.push((
                                    Some(ColumnRef { number: None, name: format!("{key}.{name}") }),
                                    e.to_string(),
                                ));
                                continue;
                            }
                        }
                    } else {
                        Target::Extra(name.clone())
                    };
                    row.cell(&target, Cell::Json(v), &spec.date_formats, || ColumnRef {
                        number: None,
                        name: format!("{key}.{name}"),
                    });
                }
            }
            None => {
                let target = spec.columns.resolve(key);
                let formats = spec.columns.date_formats(key).unwrap_or(&spec.date_formats);
                row.cell(&target, Cell::Json(value), formats, || ColumnRef { number: None, name: key.clone() });
            }
        }
    }
    row.finish()
}

fn read_json_lines<K: Kind>(
    path: &Path,
    file: File,
    spec: &SourceSpec<K>,
    sink: &mut Sink<K>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    // Bytes, not `read_line`: that consumes a line that is not UTF-8 before it fails, so
    // skipping "the rest" of it would swallow the next, good line.
    let mut buf = Vec::new();
    let (mut line, mut bytes) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(source) => return Err(SyncError::Read { path: path.to_path_buf(), source }),
        };
        line += 1;
        bytes += n as u64;
        if line % 4096 == 0 {
            progress.advance(bytes);
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(text) => text,
            Err(e) => {
                let column = e.valid_up_to() + 1;
                sink.row(line, Err(vec![(None, format!("line is not valid UTF-8 text (from byte {column} on)"))]))?;
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let text = if line == 1 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text };
        let built = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => json_row(&object, spec),
            Ok(_) => Err(vec![(None, "expected a JSON object on this line".to_string())]),
            Err(e) => Err(vec![(None, format!("invalid JSON at column {}: {}", e.column(), json_reason(&e)))]),
        };
        sink.row(line, built)?;
    }
    Ok(())
}

fn read_json_array<K: Kind>(
    origin: Origin,
    bytes: Vec<u8>,
    spec: &SourceSpec<K>,
    sink: &mut Sink<K>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let path = origin.path();
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = valid.len() - valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
        SyncError::File {
            path: path.to_path_buf(),
            message: format!("not valid UTF-8 text at line {line} column {column}; nothing was imported"),
        }
    })?;
    crate::diagnostic::strip_bom(&mut text);
    // Parse the array shallowly first: a syntax error anywhere means we cannot trust where
    // one element ends and the next begins, so the file is refused as a whole.
    let elements: Vec<&RawValue> = serde_json::from_str(&text).map_err(|e| SyncError::File {
        path: path.to_path_buf(),
        message: match e.classify() {
            // Valid JSON, but an object or a number where the array of records belongs.
            serde_json::error::Category::Data => format!(
                "expected a JSON array of records, found {} (line {} column {}); nothing was imported",
                match json_reason(&e).trim_start_matches("invalid type: ").split(',').next() {
                    Some("map") => "an object".to_string(),
                    Some(other) => other.to_string(),
                    None => "something else".to_string(),
                },
                e.line(),
                e.column()
            ),
            _ => format!(
                "invalid JSON at line {} column {}: {}; nothing was imported",
                e.line(),
                e.column(),
                json_reason(&e)
            ),
        },
    })?;
    // Elements borrow from `text`, so each one's offset gives its line.
    let base = text.as_ptr() as usize;
    let (mut line, mut scanned) = (1u64, 0usize);
    for (i, element) in elements.into_iter().enumerate() {
        let offset = element.get().as_ptr() as usize - base;
        line += text.as_bytes()[scanned..offset].iter().filter(|&&b| b == b'\n').count() as u64;
        scanned = offset;
        if i % 4096 == 0 {
            progress.advance(offset as u64);
        }
        let (built, at) = match serde_json::from_str::<Value>(element.get()) {
            Ok(Value::Object(object)) => (json_row(&object, spec), line),
            Ok(_) => (Err(vec![(None, format!("element {} is not a JSON object", i + 1))]), line),
            // Within an element that parsed shallowly, only depth can fail (serde_json
            // stops at 128 levels rather than overflow the stack): say where in the file.
            Err(e) => {
                let at = line + e.line() as u64 - 1;
                let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
                let column = if e.line() == 1 { offset - line_start + e.column() } else { e.column() };
                let message = format!("invalid JSON in element {} at column {column}: {}", i + 1, json_reason(&e));
                (Err(vec![(None, message)]), at)
            }
        };
        sink.element = Some(i as u64);
        sink.row(at, built)?;
    }
    sink.element = None;
    Ok(())
}

/// serde_json's message without the " at line L column C" it appends: the callers say
/// where, in the file's terms.
fn json_reason(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_among_100k_headers_is_named_by_both_columns() {
        let mut headers: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        assert_eq!(duplicate_header(&headers), None);
        headers.push("c7".into());
        assert_eq!(duplicate_header(&headers).as_deref(), Some("columns 8 and 100001 are both named \"c7\""));
    }
}
