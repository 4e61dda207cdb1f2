//! How records are laid out on disk: one format byte, a checksum, then the record.
//!
//! The format byte is the migration hook: a release that changes the encoding bumps
//! [`RECORD_FORMAT`], still reads the older formats, and writes the new one. A record
//! written by a *newer* Keel is refused with a clear error rather than misread.
//!
//! Format 2 (written now): `[2] ++ crc32(body) as 4 bytes little-endian ++ body`, the body
//! JSON. The checksum is what makes a damaged record an error instead of a wrong value:
//! a flipped bit inside a record that sled's own log checks miss (a bad sector read back,
//! a file edited by hand, a copy gone wrong) fails [`decode`] with
//! [`DecodeError::Checksum`], and the store reports itself damaged. Format 1 (`[1] ++
//! JSON`, no checksum) is still read, from stores written before format 2.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format this build writes. JSON because records hold open CRM fields of any JSON
/// type, and a store a person can dump and read is worth a few microseconds per record.
pub const RECORD_FORMAT: u8 = 2;

/// The format before checksums.
const FORMAT_1: u8 = 1;

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[RECORD_FORMAT, 0, 0, 0, 0]);
    // Serialising our own model types to JSON cannot fail: every map key is a string and
    // no Serialize impl in the model returns an error.
    serde_json::to_writer(&mut buf, record).expect("model records always serialise to JSON");
    let sum = crc32fast::hash(&buf[5..]);
    buf[1..5].copy_from_slice(&sum.to_le_bytes());
    buf
}

#[derive(Debug)]
pub enum DecodeError {
    Empty,
    TooNew(u8),
    /// A format byte no Keel ever wrote (0): the record is damaged.
    Unknown(u8),
    /// The bytes are not what was written: the checksum does not match.
    Checksum {
        stored: u32,
        computed: u32,
    },
    Json(serde_json::Error),
}

/// The record's body, checked: JSON text whose checksum (format 2) matches.
pub fn body(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&RECORD_FORMAT, rest)) => {
            let (sum, body) = rest.split_at_checked(4).ok_or(DecodeError::Checksum { stored: 0, computed: 0 })?;
            let stored = u32::from_le_bytes(sum.try_into().expect("4 bytes"));
            let computed = crc32fast::hash(body);
            if stored != computed {
                return Err(DecodeError::Checksum { stored, computed });
            }
            Ok(body)
        }
        Some((&FORMAT_1, body)) => Ok(body),
        Some((&format, _)) if format > RECORD_FORMAT => Err(DecodeError::TooNew(format)),
        Some((&format, _)) => Err(DecodeError::Unknown(format)),
    }
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body(bytes)?).map_err(DecodeError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_single_bit_flip_in_a_record_is_caught() {
        let record = serde_json::json!({ "id": "ACC-1", "name": "Acme", "arr": 120000 });
        let bytes = encode(&record);
        assert_eq!(decode::<serde_json::Value>(&bytes).unwrap(), record);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            match decode::<serde_json::Value>(&damaged) {
                // A flip in the format byte can turn it into format 1 (no checksum): the
                // checksum bytes then precede the JSON, which no longer parses.
                Err(_) => {}
                Ok(v) => panic!("bit {bit}: a damaged record decoded as {v}"),
            }
        }
    }

    #[test]
    fn format_1_records_from_older_stores_are_still_read() {
        let mut old = vec![FORMAT_1];
        old.extend_from_slice(br#"{"id":"ACC-1"}"#);
        assert_eq!(decode::<serde_json::Value>(&old).unwrap(), serde_json::json!({ "id": "ACC-1" }));
    }
}
