//! Sync: source files (CSV, JSON arrays, NDJSON) → records → upserts into the store.
//!
//! Invariants:
//! - A bad row never stops the good ones: it is reported with its line (and column, for
//!   CSV) and the reason, and counted as rejected; every good row is stored.
//! - Upsert: re-importing a file changes nothing and the counts say `unchanged`; a row
//!   that carries some fields updates only those.
//! - Rows are stored in batches of [`BATCH_ROWS`], each atomic, and the store is flushed
//!   before [`sync_file`] returns, so a reported sync is on disk.
//! - Problems with the file as a whole (unreadable, no id column, duplicate headers, a
//!   JSON array with a syntax error) fail before any row is stored.

pub mod mapping;
mod records;
mod values;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use mapping::{AccountField, ColumnMap, ContactField, EventField, FieldSet, Target};
pub use records::{Kind, ParseOptions};
pub use values::Cell;

use crate::store::{Outcome, Store, StoreError};

/// Rows per store batch: large enough that sled's per-batch cost vanishes, small enough
/// that a million-row file never holds more than this in memory.
pub const BATCH_ROWS: usize = 8192;

/// Rejected-row details kept in a report; the counts always cover every row.
pub const MAX_KEPT_ERRORS: usize = 1000;

/// How to read one source: its column mapping and parsing options (from the config).
#[derive(Debug, Clone)]
pub struct SourceSpec<F: FieldSet> {
    pub columns: ColumnMap<F>,
    pub date_format: Option<String>,
}

impl<F: FieldSet> Default for SourceSpec<F> {
    fn default() -> Self {
        SourceSpec { columns: ColumnMap::default(), date_format: None }
    }
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// 1-based column number (CSV); `None` for a JSON key.
    pub number: Option<usize>,
    pub name: String,
}

/// Why one row was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: Option<ColumnRef>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(ColumnRef { number: Some(n), name }) => {
                write!(f, "{}:{n}: column {name:?}: {}", self.line, self.message)
            }
            Some(ColumnRef { number: None, name }) => write!(f, "{}: key {name:?}: {}", self.line, self.message),
            None => write!(f, "{}: {}", self.line, self.message),
        }
    }
}

/// What a sync did, for the summary line and for scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub kind: &'static str,
    pub file: PathBuf,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// The first [`MAX_KEPT_ERRORS`] rejected rows, in file order.
    pub errors: Vec<RowError>,
    pub elapsed: Duration,
}

impl SyncReport {
    pub fn rows(&self) -> u64 {
        self.inserted + self.updated + self.unchanged + self.rejected
    }

    /// Rows per second over the whole sync (read, parse, store, flush).
    pub fn rate(&self) -> f64 {
        self.rows() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn reject(&mut self, error: RowError) {
        self.rejected += 1;
        if self.errors.len() < MAX_KEPT_ERRORS {
            self.errors.push(error);
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
            self.inserted,
            self.updated,
            self.unchanged,
            self.rejected
        )
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
    let file = File::open(path).map_err(read_err)?;

    let mut sink = Sink::<K> {
        store,
        now,
        pending: Vec::with_capacity(BATCH_ROWS),
        report: SyncReport { kind: K::KIND, file: path.to_path_buf(), ..Default::default() },
    };
    let opts = ParseOptions { date_format: spec.date_format.as_deref() };
    progress.start(total);
    let result = match Format::detect(path, &head[..n]) {
        Format::Csv => read_csv(path, file, spec, &opts, &mut sink, progress),
        Format::JsonLines => read_json_lines(path, file, spec, &opts, &mut sink, progress),
        Format::JsonArray => read_json_array(path, file, spec, &opts, &mut sink, progress),
    };
    progress.finish();
    result?;
    sink.flush()?;
    store.flush()?;
    let mut report = sink.report;
    // Rows the store refused are learnt a batch later than rows that failed to parse.
    report.errors.sort_by_key(|e| e.line);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Collects built rows into batches for the store and tallies the outcomes.
struct Sink<'s, K: Kind> {
    store: &'s Store,
    now: DateTime<Utc>,
    pending: Vec<(u64, K::Record)>,
    report: SyncReport,
}

impl<K: Kind> Sink<'_, K> {
    fn row(&mut self, line: u64, built: Result<K::Record, Vec<(Option<ColumnRef>, String)>>) -> Result<(), SyncError> {
        match built {
            Ok(record) => {
                self.pending.push((line, record));
                if self.pending.len() >= BATCH_ROWS {
                    self.flush()?;
                }
            }
            Err(errors) => {
                // One rejected row, however many of its cells were bad; each cell is reported.
                self.report.rejected += 1;
                for (column, message) in errors {
                    if self.report.errors.len() < MAX_KEPT_ERRORS {
                        self.report.errors.push(RowError { line, column, message });
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
        let (lines, records): (Vec<u64>, Vec<K::Record>) = self.pending.drain(..).unzip();
        let outcomes = K::store(self.store, records, self.now)?;
        for (line, outcome) in lines.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Inserted => self.report.inserted += 1,
                Outcome::Updated => self.report.updated += 1,
                Outcome::Unchanged => self.report.unchanged += 1,
                Outcome::Rejected(message) => self.report.reject(RowError { line, column: None, message }),
            }
        }
        Ok(())
    }
}

/// Builds one record from its cells, collecting every bad cell of the row.
struct RowBuilder<K: Kind> {
    patch: K::Patch,
    errors: Vec<(Option<ColumnRef>, String)>,
}

impl<K: Kind> RowBuilder<K> {
    fn new() -> Self {
        RowBuilder { patch: K::Patch::default(), errors: Vec::new() }
    }

    fn cell(&mut self, target: &Target<K>, cell: Cell, opts: &ParseOptions, column: impl FnOnce() -> ColumnRef) {
        if cell.is_empty() {
            return;
        }
        let result = match target {
            Target::Field(field) => K::set(&mut self.patch, *field, cell, opts),
            Target::Metric(name) => cell.number().map(|v| K::set_metric(&mut self.patch, name, v)),
            Target::Extra(key) => {
                K::set_extra(&mut self.patch, key, cell.to_json());
                Ok(())
            }
            Target::Ignore => Ok(()),
        };
        if let Err(message) = result {
            self.errors.push((Some(column()), message));
        }
    }

    fn finish(mut self) -> Result<K::Record, Vec<(Option<ColumnRef>, String)>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        K::finish(self.patch).map_err(|message| {
            self.errors.push((None, message));
            self.errors
        })
    }
}

fn read_csv<K: Kind>(
    path: &Path,
    file: File,
    spec: &SourceSpec<K>,
    opts: &ParseOptions,
    sink: &mut Sink<K>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let file_err = |message: String| SyncError::File { path: path.to_path_buf(), message };
    // `flexible`: a row with the wrong number of cells is that row's error, not the file's.
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(BufReader::with_capacity(1 << 20, file));
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
    for (i, h) in headers.iter().enumerate() {
        if let Some(j) = headers[..i].iter().position(|other| other == h) {
            return Err(file_err(format!("columns {} and {} are both named {h:?}", j + 1, i + 1)));
        }
    }
    let targets: Vec<Target<K>> = headers.iter().map(|h| spec.columns.resolve(h)).collect();
    check_required_columns::<K>(&targets).map_err(file_err)?;
    for (i, t) in targets.iter().enumerate() {
        if let Target::Field(f) = t {
            if let Some(j) = targets[..i].iter().position(|o| o == t) {
                return Err(file_err(format!(
                    "columns {:?} and {:?} both map to {}; map one of them to ignore",
                    headers[j],
                    headers[i],
                    f.name()
                )));
            }
        }
    }

    let mut record = csv::ByteRecord::new();
    let mut rows: u64 = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            // The disk failing is the file's problem, not a row's: stop (a retry would loop).
            Err(e) if e.is_io_error() => {
                let source = match e.into_kind() {
                    csv::ErrorKind::Io(source) => source,
                    other => io::Error::other(format!("{other:?}")),
                };
                return Err(SyncError::Read { path: path.to_path_buf(), source });
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                sink.row(line, Err(vec![(None, format!("unreadable row: {e}"))]))?;
                continue;
            }
        }
        let position = record.position().expect("records read from a reader carry a position");
        let line = position.line();
        rows += 1;
        if rows % 4096 == 0 {
            progress.advance(position.byte());
        }
        if record.len() != headers.len() {
            if record.len() == 1 && record.get(0).is_some_and(|c| c.is_empty()) {
                continue; // a blank line
            }
            let msg = format!("row has {} cells; the header has {}", record.len(), headers.len());
            sink.row(line, Err(vec![(None, msg)]))?;
            continue;
        }
        let mut row = RowBuilder::<K>::new();
        for (i, (raw, target)) in record.iter().zip(&targets).enumerate() {
            if matches!(target, Target::Ignore) {
                continue;
            }
            let column = || ColumnRef { number: Some(i + 1), name: headers[i].clone() };
            match std::str::from_utf8(raw) {
                Ok(text) => row.cell(target, Cell::Text(text), opts, column),
                Err(_) => row.errors.push((Some(column()), "cell is not valid UTF-8 text".into())),
            }
        }
        sink.row(line, row.finish())?;
    }
    Ok(())
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
fn json_row<K: Kind>(
    object: &Map<String, Value>,
    spec: &SourceSpec<K>,
    opts: &ParseOptions,
) -> Result<K::Record, Vec<(Option<ColumnRef>, String)>> {
    let mut row = RowBuilder::<K>::new();
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
                                row.errors.push((Some(ColumnRef { number: None, name: format!("{key}.{name}") }), e));
                                continue;
                            }
                        }
                    } else {
                        Target::Extra(name.clone())
                    };
                    row.cell(&target, Cell::Json(v), opts, || ColumnRef {
                        number: None,
                        name: format!("{key}.{name}"),
                    });
                }
            }
            None => {
                let target = spec.columns.resolve(key);
                row.cell(&target, Cell::Json(value), opts, || ColumnRef { number: None, name: key.clone() });
            }
        }
    }
    row.finish()
}

fn read_json_lines<K: Kind>(
    path: &Path,
    file: File,
    spec: &SourceSpec<K>,
    opts: &ParseOptions,
    sink: &mut Sink<K>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = String::new();
    let (mut line, mut bytes) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = match reader.read_line(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // Not UTF-8: skip the rest of this line as raw bytes and reject it.
                let mut raw = Vec::new();
                let n = reader.read_until(b'\n', &mut raw).unwrap_or(0);
                line += 1;
                bytes += n as u64;
                sink.row(line, Err(vec![(None, "line is not valid UTF-8 text".into())]))?;
                continue;
            }
            Err(source) => return Err(SyncError::Read { path: path.to_path_buf(), source }),
        };
        line += 1;
        bytes += n as u64;
        if line % 4096 == 0 {
            progress.advance(bytes);
        }
        if buf.trim().is_empty() {
            continue;
        }
        if line == 1 {
            crate::diagnostic::strip_bom(&mut buf);
        }
        let built = match serde_json::from_str::<Value>(&buf) {
            Ok(Value::Object(object)) => json_row(&object, spec, opts),
            Ok(_) => Err(vec![(None, "expected a JSON object on this line".to_string())]),
            Err(e) => Err(vec![(None, format!("invalid JSON at column {}: {e}", e.column()))]),
        };
        sink.row(line, built)?;
    }
    Ok(())
}

fn read_json_array<K: Kind>(
    path: &Path,
    mut file: File,
    spec: &SourceSpec<K>,
    opts: &ParseOptions,
    sink: &mut Sink<K>,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|source| SyncError::Read { path: path.to_path_buf(), source })?;
    crate::diagnostic::strip_bom(&mut text);
    // Parse the array shallowly first: a syntax error anywhere means we cannot trust where
    // one element ends and the next begins, so the file is refused as a whole.
    let elements: Vec<&RawValue> = serde_json::from_str(&text).map_err(|e| SyncError::File {
        path: path.to_path_buf(),
        message: format!("invalid JSON at line {} column {}: {e}; nothing was imported", e.line(), e.column()),
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
        let built = match serde_json::from_str::<Value>(element.get()) {
            Ok(Value::Object(object)) => json_row(&object, spec, opts),
            _ => Err(vec![(None, format!("element {} is not a JSON object", i + 1))]),
        };
        sink.row(line, built)?;
    }
    Ok(())
}
