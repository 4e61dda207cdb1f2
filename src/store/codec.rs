//! How records are laid out on disk: one format byte, then the record.
//!
//! The format byte is the migration hook: a later release that changes the encoding (a
//! compact binary one is the obvious next step for the million-account benchmark) bumps
//! [`RECORD_FORMAT`], still reads the old format, and rewrites records as it meets them.
//! A record written by a *newer* Keel is refused with a clear error rather than misread.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Format 1: `[1u8] ++ JSON`. JSON because records hold open CRM fields of any JSON type
/// and a store a person can dump and read is worth a few microseconds per record today.
pub const RECORD_FORMAT: u8 = 1;

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    buf.push(RECORD_FORMAT);
    // Serialising our own model types to JSON cannot fail: every map key is a string and
    // no Serialize impl in the model returns an error.
    serde_json::to_writer(&mut buf, record).expect("model records always serialise to JSON");
    buf
}

#[derive(Debug)]
pub enum DecodeError {
    Empty,
    TooNew(u8),
    Json(serde_json::Error),
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&RECORD_FORMAT, body)) => serde_json::from_slice(body).map_err(DecodeError::Json),
        Some((&format, _)) => Err(DecodeError::TooNew(format)),
    }
}
