//! How a row's cells become a record of each kind: which parser each field uses and what
//! a row must carry. One impl of [`Kind`] per record kind; the readers are generic.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::mapping::{AccountField, ContactField, EventField, FieldSet};
use super::values::{Cell, ValueError};
use crate::model::{validate_id, AccountPatch, ContactPatch, Event, EventPatch, IdError, Segment, SegmentError};
use crate::store::{Outcome, Store, StoreError};

/// Per-column parsing options from the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions<'a> {
    /// Date formats tried in order before ISO (the column's own, else the source's).
    pub date_formats: &'a [String],
}

/// Why one cell could not set its field: the import reports it against the row and
/// column and goes on with the next cell.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("ARR cannot be negative, found {0}")]
    NegativeArr(f64),
}

pub trait Kind: FieldSet {
    /// What a row becomes before the store sees it.
    type Record;
    type Patch: Default;
    /// Column groups a CSV header must map at least one of, e.g. events need a timestamp.
    const REQUIRED: &'static [&'static [Self]];

    fn set(patch: &mut Self::Patch, field: Self, cell: Cell, opts: &ParseOptions) -> Result<(), FieldError>;
    /// Whether a row is worthless without this field, so an unreadable cell rejects the
    /// row even under `on_bad_value: skip_value` (ids, and what names or dates an event).
    fn is_required(field: Self) -> bool;
    /// The account a record belongs to, for reporting records whose account is not in
    /// the store; `None` for accounts themselves (and a contact update that names none).
    fn account_of(_record: &Self::Record) -> Option<&str> {
        None
    }
    fn set_metric(_patch: &mut Self::Patch, _name: &str, _value: f64) {
        unreachable!("only kinds with HAS_METRICS map metrics")
    }
    fn set_extra(patch: &mut Self::Patch, key: &str, value: Value);
    /// Completes the record, or says which required field the row lacked.
    fn finish(patch: Self::Patch) -> Result<Self::Record, String>;
    /// The id a row is upserted under, for reporting a file that holds an id twice; `None`
    /// for kinds where a repeat is normal (an event delivered twice is one event).
    fn id_of(_record: &Self::Record) -> Option<&str> {
        None
    }
    fn store(store: &Store, records: Vec<Self::Record>, now: DateTime<Utc>) -> Result<Vec<Outcome>, StoreError>;
}

fn id(cell: Cell) -> Result<String, FieldError> {
    let id = cell.text()?;
    validate_id(&id)?;
    Ok(id)
}

impl Kind for AccountField {
    type Record = AccountPatch;
    type Patch = AccountPatch;
    const REQUIRED: &'static [&'static [Self]] = &[&[Self::Id]];

    fn set(p: &mut AccountPatch, field: Self, cell: Cell, opts: &ParseOptions) -> Result<(), FieldError> {
        match field {
            Self::Id => p.id = id(cell)?,
            Self::Name => p.name = Some(cell.text()?),
            Self::Segment => p.segment = Some(Segment::parse(&cell.text()?)?),
            Self::Arr => {
                let arr = cell.number()?;
                if arr < 0.0 {
                    return Err(FieldError::NegativeArr(arr));
                }
                p.arr = Some(arr)
            }
            Self::Owner => p.owner = Some(cell.email()?),
            Self::Manager => p.manager = Some(cell.email()?),
            Self::RenewalDate => p.renewal_date = Some(cell.date(opts.date_formats)?),
            Self::StartDate => p.start_date = Some(cell.date(opts.date_formats)?),
            Self::LifecycleStage => p.lifecycle_stage = Some(cell.text()?),
            Self::Timezone => p.timezone = Some(cell.timezone()?),
        }
        Ok(())
    }

    fn is_required(field: Self) -> bool {
        field == Self::Id
    }

    fn set_metric(p: &mut AccountPatch, name: &str, value: f64) {
        p.metrics.push((name.to_string(), value));
    }

    fn set_extra(p: &mut AccountPatch, key: &str, value: Value) {
        p.fields.push((key.to_string(), value));
    }

    fn finish(p: AccountPatch) -> Result<AccountPatch, String> {
        if p.id.is_empty() {
            return Err("missing id".into());
        }
        Ok(p)
    }

    fn id_of(record: &AccountPatch) -> Option<&str> {
        Some(&record.id)
    }

    fn store(store: &Store, records: Vec<AccountPatch>, now: DateTime<Utc>) -> Result<Vec<Outcome>, StoreError> {
        store.upsert_accounts(records, now)
    }
}

impl Kind for ContactField {
    type Record = ContactPatch;
    type Patch = ContactPatch;
    const REQUIRED: &'static [&'static [Self]] = &[&[Self::Id, Self::Email]];

    fn set(p: &mut ContactPatch, field: Self, cell: Cell, _opts: &ParseOptions) -> Result<(), FieldError> {
        match field {
            Self::Id => p.id = id(cell)?,
            Self::AccountId => p.account_id = Some(id(cell)?),
            Self::Email => p.email = Some(cell.email()?),
            Self::Name => p.name = Some(cell.text()?),
            Self::Role => p.role = Some(cell.text()?),
            Self::Timezone => p.timezone = Some(cell.timezone()?),
            Self::Unsubscribed => p.unsubscribed = Some(cell.boolean()?),
        }
        Ok(())
    }

    /// A contact without a readable address can never be emailed, so email counts too.
    fn is_required(field: Self) -> bool {
        matches!(field, Self::Id | Self::AccountId | Self::Email)
    }

    fn account_of(record: &ContactPatch) -> Option<&str> {
        record.account_id.as_deref()
    }

    fn set_extra(p: &mut ContactPatch, key: &str, value: Value) {
        p.fields.push((key.to_string(), value));
    }

    /// A contact list keyed by email alone is common (marketing exports): the lower-cased
    /// email then serves as the id, so the next import finds the same contact.
    fn finish(mut p: ContactPatch) -> Result<ContactPatch, String> {
        if p.id.is_empty() {
            match &p.email {
                Some(email) => p.id = email.to_lowercase(),
                None => return Err("missing id (and no email to use as one)".into()),
            }
        }
        Ok(p)
    }

    fn id_of(record: &ContactPatch) -> Option<&str> {
        Some(&record.id)
    }

    fn store(store: &Store, records: Vec<ContactPatch>, now: DateTime<Utc>) -> Result<Vec<Outcome>, StoreError> {
        store.upsert_contacts(records, now)
    }
}

impl Kind for EventField {
    type Record = Event;
    type Patch = EventPatch;
    const REQUIRED: &'static [&'static [Self]] = &[&[Self::AccountId], &[Self::Name], &[Self::Timestamp]];

    fn set(p: &mut EventPatch, field: Self, cell: Cell, _opts: &ParseOptions) -> Result<(), FieldError> {
        match field {
            Self::Id => p.id = Some(id(cell)?),
            Self::AccountId => p.account_id = Some(id(cell)?),
            Self::ContactId => p.contact_id = Some(id(cell)?),
            Self::Name => p.name = Some(cell.text()?),
            Self::Timestamp => p.timestamp = Some(cell.timestamp()?),
        }
        Ok(())
    }

    fn is_required(field: Self) -> bool {
        !matches!(field, Self::ContactId)
    }

    fn account_of(record: &Event) -> Option<&str> {
        Some(&record.account_id)
    }

    fn set_extra(p: &mut EventPatch, key: &str, value: Value) {
        p.properties.insert(key.to_string(), value);
    }

    fn finish(p: EventPatch) -> Result<Event, String> {
        p.into_event().map_err(|field| format!("missing {field}"))
    }

    fn store(store: &Store, records: Vec<Event>, _now: DateTime<Utc>) -> Result<Vec<Outcome>, StoreError> {
        store.upsert_events(records)
    }
}
