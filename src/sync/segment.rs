//! Segment-compatible ingest: the messages of Segment's HTTP Tracking API (`identify`,
//! `group`, `track`, in a `batch` or one at a time) → the same patches and upserts as a
//! file sync, so the change log and incremental passes see them.
//!
//! Mapping (config `sync.segment`):
//! - `group` (`groupId` + `traits`) upserts the account `groupId`; each trait maps to an
//!   account field by the same rules as a CSV column (`sync.segment.group.traits`, else a
//!   trait named like a field maps itself, else `fields.<trait>`).
//! - `identify` (`userId` + `traits`) upserts the contact `userId` (or, without one, the
//!   contact keyed by the lower-cased `traits.email`), traits mapped likewise; its account
//!   is `context.groupId`, else a trait mapped to `account_id`, else `traits.company.id`.
//! - `track` becomes an event with the `messageId` as its id, of the account named by
//!   `context.groupId`, else the configured property (`sync.segment.track.account_property`),
//!   else the account of the contact `userId`.
//!
//! Invariants:
//! - Every message is checked alone: a malformed one is *refused* (index, field, reason)
//!   and the well-formed ones of its batch are stored anyway. A well-formed one Keel cannot
//!   attach to the book (an anonymous identify without email, an event with no account
//!   anywhere, `page`/`screen`/`alias`) is *skipped* with its reason. Neither is silent.
//! - Retries change nothing: an event's id is its `messageId`, so a re-sent one is
//!   `unchanged`; an identify or group whose `messageId` was applied in the last week is
//!   a `duplicate` and not applied again — even when a later call changed the record since
//!   (applying the old traits again would undo it).
//! - An event of an account not in the store is stored and listed, as in a file sync.
//! - Unknown message keys are accepted and ignored: Segment accepts them, and the SDKs
//!   send keys of their own (`context`, `integrations`, `sentAt`, `_metadata`, `version`…).
//! - Within one batch, groups are stored first, then identifies, then tracks, so an
//!   identify names an account its batch just created and a track finds its user's account.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::mapping::{AccountField, ContactField, Target};
use super::values::Cell;
use super::{ColumnRef, Kind, RowBuilder, SourceSpec};
use crate::model::{validate_id, AccountPatch, ContactPatch, Event, EventPatch};
use crate::store::{Outcome, Store, StoreError};

/// Segment's limit on one request's JSON (500 KB), after any gzip is undone.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Segment's limit on one message's JSON (32 KB).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// How Segment messages map onto the book (`sync.segment` in the config).
#[derive(Debug, Clone, Default)]
pub struct SegmentSpec {
    /// `group` traits → account fields.
    pub group: SourceSpec<AccountField>,
    /// `identify` traits → contact fields.
    pub identify: SourceSpec<ContactField>,
    /// The `track` property naming the event's account, when `context.groupId` does not.
    pub account_property: Option<String>,
}

/// The Segment calls. Keel stores three; the others are accepted and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Call {
    Identify,
    Group,
    Track,
    Page,
    Screen,
    Alias,
}

impl Call {
    pub fn parse(s: &str) -> Option<Call> {
        Some(match s {
            "identify" => Call::Identify,
            "group" => Call::Group,
            "track" => Call::Track,
            "page" => Call::Page,
            "screen" => Call::Screen,
            "alias" => Call::Alias,
            _ => return None,
        })
    }

    /// "an identify", "a track": for messages.
    pub fn with_article(self) -> String {
        let article = if matches!(self, Call::Identify | Call::Alias) { "an" } else { "a" };
        format!("{article} {}", self.as_str())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Call::Identify => "identify",
            Call::Group => "group",
            Call::Track => "track",
            Call::Page => "page",
            Call::Screen => "screen",
            Call::Alias => "alias",
        }
    }
}

/// Why a request as a whole could not be read (HTTP 400): nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("the body must be a JSON object with a \"batch\" array of messages")]
    NoBatch,
    #[error("the body must be one JSON object (a Segment message)")]
    NotAnObject,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One message of a request, as a person finds it: its place and its `messageId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// 0-based position in the request's `batch` (0 for a single-message call).
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The message key at fault (`event`, `userId`, `traits.email`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
}

/// An event stored for an account that is not in the store (yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownAccount {
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub account: String,
}

/// What one upsert kind did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl Counts {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Inserted => self.inserted += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Rejected(_) => {}
        }
    }

    /// Records the request changed (new or different).
    pub fn changed(&self) -> u64 {
        self.inserted + self.updated
    }
}

/// What one request did: the HTTP answer's body and the daemon's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Messages in the request.
    pub received: usize,
    /// Messages stored or skipped: every one not refused.
    pub accepted: usize,
    pub accounts: Counts,
    pub contacts: Counts,
    pub events: Counts,
    /// Malformed messages, not stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
    /// Well-formed messages Keel stores nothing for, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Refusal>,
    /// Values left out of stored messages (`on_bad_value: skip_value`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Refusal>,
    /// Events stored for an account not in the store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_accounts: Vec<UnknownAccount>,
    /// `identify` and `group` messages whose `messageId` was applied already (a retry):
    /// not applied again.
    pub duplicates: usize,
}

impl IngestReport {
    /// One line for a 400 answer (Segment's SDKs print `message`): the first refusal and
    /// how many more.
    pub fn summary(&self) -> String {
        let Some(first) = self.refused.first() else {
            return format!("{} message(s) accepted", self.accepted);
        };
        let field = first.field.as_deref().map(|f| format!(" {f}:")).unwrap_or_default();
        let more = match self.refused.len() {
            1 => String::new(),
            n => format!(" (and {} more refused)", n - 1),
        };
        format!(
            "message {}{field} {}{more}; the other {} message(s) were accepted",
            first.index, first.reason, self.accepted
        )
    }
}

/// A request's messages, still raw, and the `writeKey` its body carries (older SDKs
/// authenticate only that way).
pub struct Request<'a> {
    pub write_key: Option<String>,
    messages: Vec<&'a RawValue>,
    /// The batch's own `context`, which Segment merges under each message's.
    context: Option<Map<String, Value>>,
    /// The call a single-message endpoint (`/v1/track`) stands for.
    call: Option<Call>,
}

impl<'a> Request<'a> {
    /// Reads a `/v1/batch` body: `{"batch": [...], "sentAt", "writeKey", "context"}`.
    pub fn batch(body: &'a str) -> Result<Request<'a>, BodyError> {
        #[derive(serde::Deserialize)]
        struct Batch<'a> {
            #[serde(borrow)]
            batch: Option<Vec<&'a RawValue>>,
            #[serde(rename = "writeKey")]
            write_key: Option<Value>,
            context: Option<Value>,
        }
        let parsed: Batch = serde_json::from_str(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => BodyError::NoBatch,
            _ => BodyError::Json(e.to_string()),
        })?;
        Ok(Request {
            write_key: parsed.write_key.and_then(|v| v.as_str().map(str::to_string)),
            messages: parsed.batch.ok_or(BodyError::NoBatch)?,
            context: match parsed.context {
                Some(Value::Object(c)) => Some(c),
                _ => None,
            },
            call: None,
        })
    }

    /// Reads a single-message body (`/v1/identify`, `/v1/group`, `/v1/track`).
    pub fn single(body: &'a str, call: Call) -> Result<Request<'a>, BodyError> {
        let raw: &RawValue = serde_json::from_str(body).map_err(|e| BodyError::Json(e.to_string()))?;
        let write_key = match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(m)) => m.get("writeKey").and_then(Value::as_str).map(str::to_string),
            _ => return Err(BodyError::NotAnObject),
        };
        Ok(Request { write_key, messages: vec![raw], context: None, call: Some(call) })
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// One message, checked and mapped, waiting for its kind's upsert.
enum Mapped {
    Account(AccountPatch),
    Contact(ContactPatch),
    /// An event whose account may still have to come from its user's contact.
    Event {
        event: Event,
        user: Option<String>,
        account: Option<String>,
    },
}

struct Item {
    index: usize,
    message_id: Option<String>,
    mapped: Mapped,
}

/// Checks, maps and stores a request's messages. The store is not flushed: the caller
/// does (the API shares one flush between concurrent requests).
pub fn ingest(
    store: &Store,
    spec: &SegmentSpec,
    request: Request,
    now: DateTime<Utc>,
) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport { received: request.messages.len(), ..Default::default() };
    let mut items = Vec::with_capacity(request.messages.len());
    for (index, raw) in request.messages.iter().enumerate() {
        match map_message(index, raw, request.call, request.context.as_ref(), spec, now, &mut report) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(refusal) => report.refused.push(refusal),
        }
    }
    report.accepted = report.received - report.refused.len();
    // A retried identify or group is dropped by its messageId: applying its traits again
    // would undo what a later call changed. (A track's messageId is its event's id.)
    let records = |i: &Item| matches!(i.mapped, Mapped::Account(_) | Mapped::Contact(_));
    let ids: Vec<&str> = items.iter().filter(|i| records(i)).filter_map(|i| i.message_id.as_deref()).collect();
    let seen: std::collections::HashSet<String> =
        ids.iter().zip(store.seen_messages(&ids, now)?).filter(|(_, s)| *s).map(|(id, _)| id.to_string()).collect();
    let items: Vec<Item> = if seen.is_empty() {
        items
    } else {
        let before = items.len();
        let kept: Vec<Item> = items
            .into_iter()
            .filter(|i| !(records(i) && i.message_id.as_ref().is_some_and(|m| seen.contains(m))))
            .collect();
        report.duplicates = before - kept.len();
        kept
    };
    let applied: Vec<(usize, String)> =
        items.iter().filter(|i| records(i)).filter_map(|i| Some((i.index, i.message_id.clone()?))).collect();
    store_items(store, items, now, &mut report)?;
    // Remembered once stored; one skipped (a contact without its account) may apply when
    // retried after its account came.
    let remember: Vec<&str> = applied
        .iter()
        .filter(|(index, _)| !report.skipped.iter().any(|s| s.index == *index))
        .map(|(_, id)| id.as_str())
        .collect();
    store.remember_messages(&remember, now)?;
    Ok(report)
}

fn store_items(
    store: &Store,
    items: Vec<Item>,
    now: DateTime<Utc>,
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    let (mut accounts, mut contacts, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for item in items {
        match item.mapped {
            Mapped::Account(p) => accounts.push(p),
            Mapped::Contact(p) => contacts.push((item.index, item.message_id, p)),
            Mapped::Event { event, user, account } => events.push((item.index, item.message_id, event, user, account)),
        }
    }
    if !accounts.is_empty() {
        for outcome in store.upsert_accounts(accounts, now)? {
            report.accounts.add(&outcome);
        }
    }
    if !contacts.is_empty() {
        let (places, patches): (Vec<_>, Vec<_>) = contacts.into_iter().map(|(i, m, p)| ((i, m), p)).unzip();
        for ((index, message_id), outcome) in places.into_iter().zip(store.upsert_contacts(patches, now)?) {
            match outcome {
                Outcome::Rejected(_) => report.skipped.push(Refusal {
                    index,
                    message_id,
                    field: Some("context.groupId".into()),
                    reason: "a new contact needs its account: send context.groupId, or a trait mapped to \
                             account_id (sync.segment.identify.traits)"
                        .into(),
                }),
                outcome => report.contacts.add(&outcome),
            }
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    // Each account and user looked up once per request.
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut user_account: HashMap<String, Option<String>> = HashMap::new();
    let mut stored = Vec::with_capacity(events.len());
    for (index, message_id, mut event, user, account) in events {
        let account = match account {
            Some(a) => Some(a),
            None => match user {
                Some(user) => match user_account.get(&user) {
                    Some(a) => a.clone(),
                    None => {
                        let a = store.contact(&user)?.map(|c| c.account_id);
                        user_account.insert(user, a.clone());
                        a
                    }
                },
                None => None,
            },
        };
        let Some(account) = account else {
            report.skipped.push(Refusal {
                index,
                message_id,
                field: Some("context.groupId".into()),
                reason: "no account for this event: send context.groupId, the property named by \
                         sync.segment.track.account_property, or identify its user with an account first"
                    .into(),
            });
            continue;
        };
        let is_known = match known.get(&account) {
            Some(&k) => k,
            None => {
                let k = store.account(&account)?.is_some();
                known.insert(account.clone(), k);
                k
            }
        };
        if !is_known {
            report.unknown_accounts.push(UnknownAccount {
                index,
                message_id: message_id.clone(),
                account: account.clone(),
            });
        }
        if event.id.is_empty() {
            event = EventPatch {
                id: None,
                account_id: Some(account),
                contact_id: event.contact_id,
                name: Some(event.name),
                timestamp: Some(event.timestamp),
                properties: event.properties,
            }
            .into_event()
            .expect("account, name and time are set");
        } else {
            event.account_id = account;
        }
        stored.push(event);
    }
    if !stored.is_empty() {
        for outcome in store.upsert_events(stored)? {
            report.events.add(&outcome);
        }
    }
    Ok(())
}

/// A message's fields as this module reads them, with the refusal for this message.
struct Message<'m> {
    index: usize,
    object: &'m Map<String, Value>,
    message_id: Option<String>,
}

impl Message<'_> {
    fn refuse(&self, field: Option<&str>, reason: impl Into<String>) -> Refusal {
        Refusal {
            index: self.index,
            message_id: self.message_id.clone(),
            field: field.map(str::to_string),
            reason: reason.into(),
        }
    }

    /// An id key (`userId`, `groupId`): a string or a number, as Segment takes them;
    /// `null` or absent is `None`.
    fn id(&self, key: &str) -> Result<Option<String>, Refusal> {
        let text = match self.object.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => return Err(self.refuse(Some(key), format!("must be a string, found {}", kind(other)))),
        };
        validate_id(&text).map_err(|e| self.refuse(Some(key), e.to_string()))?;
        Ok(Some(text))
    }

    /// An object key (`traits`, `properties`, `context`); `null` or absent is empty.
    fn object(&self, key: &str) -> Result<Option<&Map<String, Value>>, Refusal> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.refuse(Some(key), format!("must be an object, found {}", kind(other)))),
        }
    }

    /// `timestamp`, else `originalTimestamp`, else the time it arrived (as Segment does).
    fn timestamp(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, Refusal> {
        for key in ["timestamp", "originalTimestamp"] {
            match self.object.get(key) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => {
                    return DateTime::parse_from_rfc3339(s.trim()).map(|t| t.to_utc()).map_err(|_| {
                        self.refuse(
                            Some(key),
                            format!("invalid timestamp {s:?}: expected ISO 8601, like 2026-11-20T14:03:11.000Z"),
                        )
                    })
                }
                Some(other) => return Err(self.refuse(Some(key), format!("must be a string, found {}", kind(other)))),
            }
        }
        Ok(now)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks one message and maps it; `Ok(None)` when it is skipped (reported).
fn map_message(
    index: usize,
    raw: &RawValue,
    call: Option<Call>,
    batch_context: Option<&Map<String, Value>>,
    spec: &SegmentSpec,
    now: DateTime<Utc>,
    report: &mut IngestReport,
) -> Result<Option<Item>, Refusal> {
    let bare =
        |field: Option<&str>, reason: String| Refusal { index, message_id: None, field: field.map(Into::into), reason };
    if raw.get().len() > MAX_MESSAGE_BYTES {
        return Err(bare(
            None,
            format!("the message is {} bytes; Segment's limit is {MAX_MESSAGE_BYTES} (32 KB)", raw.get().len()),
        ));
    }
    let value: Value = serde_json::from_str(raw.get()).map_err(|e| bare(None, format!("invalid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(bare(None, format!("a message must be a JSON object, found {}", kind(&value))));
    };
    let message_id = match object.get("messageId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(bare(Some("messageId"), format!("must be a string, found {}", kind(other)))),
    };
    let m = Message { index, object: &object, message_id };
    if let Some(id) = &m.message_id {
        validate_id(id).map_err(|e| m.refuse(Some("messageId"), e.to_string()))?;
    }
    let call = match call {
        Some(call) => call,
        None => match object.get("type") {
            Some(Value::String(t)) => Call::parse(t).ok_or_else(|| {
                m.refuse(
                    Some("type"),
                    format!("unknown type {t:?}: expected identify, group, track, page, screen or alias"),
                )
            })?,
            None | Some(Value::Null) => return Err(m.refuse(Some("type"), "a batch message needs a type")),
            Some(other) => return Err(m.refuse(Some("type"), format!("must be a string, found {}", kind(other)))),
        },
    };
    let user = m.id("userId")?;
    let anonymous = m.id("anonymousId")?;
    if user.is_none() && anonymous.is_none() {
        return Err(m.refuse(Some("userId"), format!("{} needs a userId or an anonymousId", call.with_article())));
    }
    let context = m.object("context")?;
    let group_in_context = match context.and_then(|c| c.get("groupId")).or_else(|| batch_context?.get("groupId")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(_)) => None,
        Some(other) => {
            return Err(m.refuse(Some("context.groupId"), format!("must be a string, found {}", kind(other))))
        }
    };
    if let Some(g) = &group_in_context {
        validate_id(g).map_err(|e| m.refuse(Some("context.groupId"), e.to_string()))?;
    }
    let item = |mapped| Ok(Some(Item { index, message_id: m.message_id.clone(), mapped }));
    match call {
        Call::Group => {
            let Some(group) = m.id("groupId")? else {
                return Err(m.refuse(Some("groupId"), "a group needs a groupId (the account's id)"));
            };
            let traits = m.object("traits")?;
            let mut patch = map_traits(&m, traits, &spec.group, |_| false, report)?;
            patch.id = group;
            item(Mapped::Account(patch))
        }
        Call::Identify => {
            let traits = m.object("traits")?;
            let mut patch: ContactPatch =
                map_traits(&m, traits, &spec.identify, |t| *t == Target::Field(ContactField::Id), report)?;
            if patch.name.is_none() {
                let part = |k: &str| {
                    traits.and_then(|t| t.get(k)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
                };
                let full: Vec<&str> = [part("firstName"), part("lastName")].into_iter().flatten().collect();
                if !full.is_empty() {
                    patch.name = Some(full.join(" "));
                }
            }
            if let Some(g) = group_in_context {
                patch.account_id = Some(g);
            } else if patch.account_id.is_none() {
                if let Some(Value::Object(company)) = traits.and_then(|t| t.get("company")) {
                    if let Some(id) = company
                        .get("id")
                        .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())))
                    {
                        validate_id(&id).map_err(|e| m.refuse(Some("traits.company.id"), e.to_string()))?;
                        patch.account_id = Some(id);
                    }
                }
            }
            patch.id = match (user, &patch.email) {
                (Some(user), _) => user,
                (None, Some(email)) => email.to_lowercase(),
                (None, None) => {
                    report.skipped.push(m.refuse(
                        Some("userId"),
                        "an anonymous identify without traits.email names no contact Keel can keep",
                    ));
                    return Ok(None);
                }
            };
            item(Mapped::Contact(patch))
        }
        Call::Track => {
            let name = match object.get("event") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                None | Some(Value::Null) | Some(Value::String(_)) => {
                    return Err(m.refuse(Some("event"), "a track needs an event name"))
                }
                Some(other) => return Err(m.refuse(Some("event"), format!("must be a string, found {}", kind(other)))),
            };
            let properties = m.object("properties")?.cloned().unwrap_or_default();
            let timestamp = m.timestamp(now)?;
            let mut account = group_in_context;
            if account.is_none() {
                if let Some(key) = &spec.account_property {
                    account = match properties.get(key) {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) if s.trim().is_empty() => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        Some(other) => {
                            return Err(m.refuse(
                                Some(&format!("properties.{key}")),
                                format!("must be a string, found {}", kind(other)),
                            ))
                        }
                    };
                    if let Some(a) = &account {
                        validate_id(a).map_err(|e| m.refuse(Some(&format!("properties.{key}")), e.to_string()))?;
                    }
                }
            }
            let event = Event {
                // Empty until its account is known, when a message without a messageId
                // gets an id derived from its content (so its retry is a no-op too).
                id: m.message_id.clone().unwrap_or_default(),
                account_id: String::new(),
                contact_id: user.clone(),
                name,
                timestamp,
                properties,
            };
            item(Mapped::Event { event, user, account })
        }
        Call::Page | Call::Screen | Call::Alias => {
            report.skipped.push(m.refuse(
                Some("type"),
                format!("Keel stores identify, group and track; {} is not kept", call.with_article()),
            ));
            Ok(None)
        }
    }
}

/// A message's traits through the kind's mapping, as a JSON row of a file sync is read.
/// `skip` leaves out targets the message's own keys set (a contact's id is its `userId`).
fn map_traits<K: Kind<Record = P, Patch = P>, P>(
    m: &Message,
    traits: Option<&Map<String, Value>>,
    spec: &SourceSpec<K>,
    skip: impl Fn(&Target<K>) -> bool,
    report: &mut IngestReport,
) -> Result<P, Refusal> {
    let mut row = RowBuilder::<K>::new(spec.on_bad_value);
    for (key, value) in traits.into_iter().flatten() {
        let target = spec.columns.resolve(key);
        // The record's key comes from the message (groupId, userId), never a trait.
        if skip(&target) || (K::KEY.is_some() && target == Target::Field(K::KEY.expect("checked"))) {
            continue;
        }
        let formats = spec.columns.date_formats(key).unwrap_or(&spec.date_formats);
        row.cell(&target, Cell::Json(value), formats, || ColumnRef { number: None, name: format!("traits.{key}") });
    }
    for (column, reason) in std::mem::take(&mut row.skipped) {
        report.warnings.push(m.refuse(
            column.map(|c| c.name).as_deref(),
            format!("{reason} (the message was stored without this value)"),
        ));
    }
    if let Some((column, reason)) = row.errors.first().cloned() {
        return Err(m.refuse(column.map(|c| c.name).as_deref(), reason));
    }
    // The key is set by the caller; finish would refuse an empty one.
    Ok(row.patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::mapping::ColumnMap;

    fn now() -> DateTime<Utc> {
        "2026-12-01T09:00:00Z".parse().unwrap()
    }

    /// A batch as segment-analytics-python 2.4 sends it: null ids, `context.library`,
    /// `integrations`, `sentAt` and `writeKey` beside the batch.
    const BATCH: &str = r#"{"batch": [
      {"integrations": {}, "anonymousId": null, "traits": {"name": "Acme", "plan": "pro", "seats": 40, "arr": "$120,000"},
       "context": {"library": {"name": "analytics-python", "version": "2.4.0"}}, "timestamp": "2026-12-01T08:59:00.000+00:00",
       "userId": "u1", "groupId": "ACC-1", "type": "group", "messageId": "m-group", "_metadata": {"bundled": []}},
      {"integrations": {}, "anonymousId": null, "traits": {"email": "Ada@Acme.example", "firstName": "Ada", "lastName": "Lovelace", "title": "VP Ops"},
       "context": {"groupId": "ACC-1", "library": {"name": "analytics-python", "version": "2.4.0"}},
       "timestamp": "2026-12-01T08:59:01.000+00:00", "userId": "u1", "type": "identify", "messageId": "m-identify"},
      {"integrations": {}, "anonymousId": null, "properties": {"plan": "pro"}, "context": {"library": {"name": "analytics-python"}},
       "timestamp": "2026-12-01T08:59:02.000+00:00", "userId": "u1", "event": "Report Created", "type": "track",
       "messageId": "m-track", "version": 2, "channel": "server"}
    ], "sentAt": "2026-12-01T08:59:03.000+00:00", "writeKey": "wk-1"}"#;

    fn spec() -> SegmentSpec {
        let mut spec = SegmentSpec::default();
        spec.group.columns = ColumnMap::from_pairs([("seats".to_string(), Target::Metric("seats".into()))]);
        spec.identify.columns = ColumnMap::from_pairs([("title".to_string(), Target::Field(ContactField::Role))]);
        spec
    }

    #[test]
    fn identify_group_and_track_as_the_python_sdk_sends_them_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let request = Request::batch(BATCH).unwrap();
        assert_eq!(request.write_key.as_deref(), Some("wk-1"));
        let before = store.change_barrier().unwrap();
        let report = ingest(&store, &spec(), request, now()).unwrap();
        assert_eq!((report.received, report.accepted), (3, 3), "{report:?}");
        assert!(
            report.refused.is_empty() && report.skipped.is_empty() && report.unknown_accounts.is_empty(),
            "{report:?}"
        );
        assert_eq!((report.accounts.inserted, report.contacts.inserted, report.events.inserted), (1, 1, 1));

        let account = store.account("ACC-1").unwrap().unwrap();
        assert_eq!(account.name, "Acme");
        assert_eq!(account.arr, Some(120_000.0), "a trait named like a field maps itself, read as a CSV cell is");
        assert_eq!(account.metrics.get("seats"), Some(&40.0), "a mapped trait");
        assert_eq!(account.fields.get("plan"), Some(&Value::from("pro")), "an unmapped trait is kept in fields");
        let contact = store.contact("u1").unwrap().unwrap();
        assert_eq!(contact.account_id, "ACC-1");
        assert_eq!(contact.email.as_deref(), Some("Ada@Acme.example"));
        assert_eq!(contact.name, "Ada Lovelace", "firstName and lastName make the name");
        assert_eq!(contact.role.as_deref(), Some("VP Ops"));
        let from: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let events: Vec<Event> = store.events_of("ACC-1", from, now()).map(Result::unwrap).collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, "m-track", "the messageId is the event's id");
        assert_eq!(events[0].account_id, "ACC-1", "the track's user's account");
        assert_eq!(events[0].contact_id.as_deref(), Some("u1"));
        let mid = store.change_barrier().unwrap();
        let changed: Vec<String> = store.changed_between(before, mid).map(Result::unwrap).collect();
        assert!(changed.iter().any(|a| a == "ACC-1"), "the change log saw the ingest: {changed:?}");

        // The SDK retries a batch it got no answer for: nothing changes.
        let again = ingest(&store, &spec(), Request::batch(BATCH).unwrap(), now()).unwrap();
        assert_eq!(
            (again.duplicates, again.accounts.unchanged, again.contacts.unchanged, again.events.unchanged),
            (2, 0, 0, 1),
            "the group and identify are known by messageId, the track by its event id: {again:?}"
        );
        assert_eq!(again.accounts.changed() + again.contacts.changed() + again.events.changed(), 0);
        assert_eq!(store.event_count(), 1);
        let after = store.change_barrier().unwrap();
        let changed: Vec<String> = store.changed_between(mid, after).map(Result::unwrap).collect();
        assert!(changed.is_empty(), "a retry marks no account changed: {changed:?}");
    }

    #[test]
    fn malformed_messages_are_refused_by_index_and_field_and_the_rest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let big = "x".repeat(MAX_MESSAGE_BYTES);
        let body = format!(
            r#"{{"batch": [
              {{"type": "track", "userId": "u1", "event": "Login", "context": {{"groupId": "ACC-9"}}, "messageId": "ok-1"}},
              {{"type": "track", "userId": "u1", "context": {{"groupId": "ACC-9"}}, "messageId": "no-event"}},
              {{"type": "identify", "traits": {{"email": "a@b.example"}}, "messageId": "no-user"}},
              {{"type": "group", "userId": "u1", "messageId": "no-group"}},
              {{"type": "shout", "userId": "u1"}},
              {{"type": "track", "userId": "u1", "event": "Big", "properties": {{"blob": "{big}"}}}},
              {{"type": "track", "userId": "u1", "event": "Late", "timestamp": "yesterday", "context": {{"groupId": "ACC-9"}}}},
              {{"type": "identify", "userId": "u2", "traits": {{"email": "not an address"}}, "context": {{"groupId": "ACC-9"}}}},
              {{"type": "page", "userId": "u1", "name": "Home"}}
            ]}}"#
        );
        let report = ingest(&store, &SegmentSpec::default(), Request::batch(&body).unwrap(), now()).unwrap();
        let refused: Vec<(usize, Option<&str>)> =
            report.refused.iter().map(|r| (r.index, r.field.as_deref())).collect();
        assert_eq!(
            refused,
            vec![
                (1, Some("event")),
                (2, Some("userId")),
                (3, Some("groupId")),
                (4, Some("type")),
                (5, None),
                (6, Some("timestamp")),
                (7, Some("traits.email")),
            ],
            "{report:#?}"
        );
        assert_eq!(report.refused[0].message_id.as_deref(), Some("no-event"));
        assert_eq!(report.refused[1].reason, "an identify needs a userId or an anonymousId");
        assert!(report.refused[4].reason.contains("Segment's limit is 32768"), "{}", report.refused[4].reason);
        assert_eq!(report.skipped.len(), 1, "the page is skipped, said so: {:?}", report.skipped);
        assert_eq!(report.accepted, 2);
        assert_eq!(report.events.inserted, 1, "the good track of the batch is stored");
        assert_eq!(
            report.unknown_accounts,
            vec![UnknownAccount { index: 0, message_id: Some("ok-1".into()), account: "ACC-9".into() }],
            "an event of an account not in the store is kept and listed"
        );
        assert_eq!(store.event_count(), 1);
        assert!(
            report.summary().starts_with("message 1 event: a track needs an event name (and 6 more refused)"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn a_track_finds_its_account_by_the_configured_property_or_is_skipped_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let spec = SegmentSpec { account_property: Some("accountId".into()), ..Default::default() };
        let body = r#"{"batch": [
            {"type": "track", "anonymousId": "anon-1", "event": "Signup", "properties": {"accountId": "ACC-2"}},
            {"type": "track", "anonymousId": "anon-2", "event": "Visit"},
            {"type": "identify", "anonymousId": "anon-3", "traits": {"name": "No Email"}}
        ]}"#;
        let report = ingest(&store, &spec, Request::batch(body).unwrap(), now()).unwrap();
        assert!(report.refused.is_empty(), "{report:?}");
        assert_eq!(report.events.inserted, 1);
        assert_eq!(report.skipped.iter().map(|s| s.index).collect::<Vec<_>>(), vec![2, 1], "{report:?}");
        let from: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let event = store.events_of("ACC-2", from, now() + chrono::Duration::seconds(1)).next().unwrap().unwrap();
        assert!(event.id.starts_with("content-"), "no messageId: an id from its content, so a retry is a no-op");
        let again = ingest(&store, &spec, Request::batch(body).unwrap(), now()).unwrap();
        assert_eq!(again.events.unchanged, 1);
    }

    #[test]
    fn a_body_that_is_not_a_batch_is_refused_whole() {
        assert_eq!(Request::batch(r#"{"messages": []}"#).err(), Some(BodyError::NoBatch));
        assert_eq!(Request::batch(r#"[1, 2]"#).err(), Some(BodyError::NoBatch));
        assert!(matches!(Request::batch(r#"{"batch": ["#).err(), Some(BodyError::Json(_))));
        assert_eq!(Request::single("[]", Call::Track).err(), Some(BodyError::NotAnObject));
        let single = Request::single(r#"{"userId": "u1", "event": "Login", "writeKey": "k"}"#, Call::Track).unwrap();
        assert_eq!((single.len(), single.write_key.as_deref()), (1, Some("k")));
    }
}
