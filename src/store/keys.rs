//! Key layouts. sled orders keys as bytes, so each layout is chosen for the scans it must
//! answer without a full scan:
//! - `contacts_by_account`: `account_id \0 contact_id` → an account's contacts are a prefix.
//! - `events`: `account_id \0 time(8 bytes, big-endian, sign-flipped) event_id` → an
//!   account's events between two instants are one range scan, oldest first.
//! - `ledger`: `account_id \0 playbook_id \0 occurrence` → an account's timeline is a
//!   prefix, and "has this occurrence fired?" is one point lookup.
//!
//! Ids never contain `\0` ([`crate::model::validate_id`] rejects control characters), so
//! the separator cannot be confused with an id byte.

use chrono::{DateTime, Utc};

pub const SEP: u8 = 0;

/// `account_id \0` — the prefix of every key belonging to one account.
pub fn account_prefix(account_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(account_id.len() + 1 + 8 + 40);
    key.extend_from_slice(account_id.as_bytes());
    key.push(SEP);
    key
}

pub fn contact_index_key(account_id: &str, contact_id: &str) -> Vec<u8> {
    let mut key = account_prefix(account_id);
    key.extend_from_slice(contact_id.as_bytes());
    key
}

/// Microseconds since the epoch with the sign bit flipped, so that big-endian byte order
/// is time order for instants before 1970 too.
pub fn time_bytes(at: DateTime<Utc>) -> [u8; 8] {
    ((at.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn event_key(account_id: &str, at: DateTime<Utc>, event_id: &str) -> Vec<u8> {
    let mut key = account_prefix(account_id);
    key.extend_from_slice(&time_bytes(at));
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// `account_id \0 day(4 bytes, big-endian, days from CE)`: an account's health history
/// is a prefix, in date order.
pub fn health_key(account_id: &str, date: chrono::NaiveDate) -> Vec<u8> {
    use chrono::Datelike;
    let mut key = account_prefix(account_id);
    key.extend_from_slice(&(date.num_days_from_ce() as u32).to_be_bytes());
    key
}

pub fn ledger_key(account_id: &str, playbook_id: &str, occurrence: &str) -> Vec<u8> {
    let mut key = account_prefix(account_id);
    key.extend_from_slice(playbook_id.as_bytes());
    key.push(SEP);
    key.extend_from_slice(occurrence.as_bytes());
    key
}

/// The first key at or after `at` for this account (a range bound).
pub fn event_bound(account_id: &str, at: DateTime<Utc>) -> Vec<u8> {
    let mut key = account_prefix(account_id);
    key.extend_from_slice(&time_bytes(at));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bytes_sort_like_time_across_the_epoch() {
        let times = [-86_400_000_000i64, -1, 0, 1, 1_700_000_000_000_000];
        let keys: Vec<_> = times.iter().map(|&us| time_bytes(DateTime::from_timestamp_micros(us).unwrap())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
