//! Events: what an account's users did in the product (Segment `track` calls, exports
//! from product analytics). Keyed by id so the same event arriving twice is one event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// Segment's `messageId` where the event came from Segment; otherwise the source's id,
    /// or a digest of the event's content (see [`EventPatch::into_event`]).
    pub id: String,
    /// The id of the account whose user did it.
    pub account_id: String,
    /// The contact who did it, if the source says.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// What happened: the name event triggers match.
    pub name: String,
    /// When it happened (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// Anything else the source sent with it.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// An event as a source row carries it. Unlike accounts, events are facts: a row must
/// carry the account, the name and the time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPatch {
    pub id: Option<String>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub name: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub properties: Map<String, Value>,
}

impl EventPatch {
    /// Completes the event, or names the first required field that is missing.
    ///
    /// A row without an id gets one derived from its content (FNV-1a over account, name,
    /// time and properties), so re-importing a file of id-less events is still a no-op.
    pub fn into_event(self) -> Result<Event, &'static str> {
        let account_id = self.account_id.ok_or("account_id")?;
        let name = self.name.ok_or("name")?;
        let timestamp = self.timestamp.ok_or("timestamp")?;
        let id = match self.id {
            Some(id) => id,
            None => content_id(&account_id, self.contact_id.as_deref(), &name, timestamp, &self.properties),
        };
        Ok(Event { id, account_id, contact_id: self.contact_id, name, timestamp, properties: self.properties })
    }
}

/// A stable id from an event's content. FNV-1a is written out rather than taken from
/// `std::hash`, whose output may change between Rust releases: these ids are stored.
fn content_id(
    account: &str,
    contact: Option<&str>,
    name: &str,
    at: DateTime<Utc>,
    props: &Map<String, Value>,
) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
        // A separator that cannot occur in ids keeps ("ab","c") apart from ("a","bc").
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    };
    feed(account.as_bytes());
    feed(contact.unwrap_or("").as_bytes());
    feed(name.as_bytes());
    feed(&at.timestamp_micros().to_be_bytes());
    // serde_json's Map is ordered by key (no preserve_order feature), so this is canonical.
    feed(Value::Object(props.clone()).to_string().as_bytes());
    format!("content-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(name: &str) -> EventPatch {
        EventPatch {
            account_id: Some("A1".into()),
            name: Some(name.into()),
            timestamp: DateTime::from_timestamp(1_700_000_000, 0),
            ..Default::default()
        }
    }

    #[test]
    fn id_less_events_get_a_stable_content_id() {
        let a = patch("Logged In").into_event().unwrap();
        let b = patch("Logged In").into_event().unwrap();
        let c = patch("Report Created").into_event().unwrap();
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert!(a.id.starts_with("content-"));
    }

    #[test]
    fn an_event_needs_account_name_and_time() {
        let mut p = patch("x");
        p.timestamp = None;
        assert_eq!(p.into_event().unwrap_err(), "timestamp");
    }
}
