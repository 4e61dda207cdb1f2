//! Accounts: the customers a CS team looks after.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::set_if;

/// One customer account, as stored. Optional fields are `None` until a source carries
/// them: Keel never invents a renewal date or an owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub segment: Option<Segment>,
    /// Annual recurring revenue, in the book's currency.
    #[serde(default)]
    pub arr: Option<f64>,
    /// The CSM who owns the account (email).
    #[serde(default)]
    pub owner: Option<String>,
    /// The CSM's manager (email): where escalations go.
    #[serde(default)]
    pub manager: Option<String>,
    #[serde(default)]
    pub renewal_date: Option<NaiveDate>,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub lifecycle_stage: Option<String>,
    /// The account's IANA time zone; the config's default applies when `None`.
    #[serde(default)]
    pub timezone: Option<Tz>,
    /// Any other CRM column, kept as the source gave it.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// Usage numbers (logins_30d, active_users, licensed_users, nps, …).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// When a sync last changed this record. Re-importing unchanged data leaves it alone,
    /// which is what lets a later pass evaluate only what changed.
    #[serde(default = "super::epoch")]
    pub updated_at: DateTime<Utc>,
}

impl Account {
    pub fn new(id: impl Into<String>, now: DateTime<Utc>) -> Self {
        Account {
            id: id.into(),
            name: String::new(),
            segment: None,
            arr: None,
            owner: None,
            manager: None,
            renewal_date: None,
            start_date: None,
            lifecycle_stage: None,
            timezone: None,
            fields: BTreeMap::new(),
            metrics: BTreeMap::new(),
            updated_at: now,
        }
    }

    /// The name to show people: the account's name, or its id while no source has named it.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

impl From<Account> for AccountPatch {
    /// A patch carrying every field of the account (to store a complete record).
    fn from(a: Account) -> AccountPatch {
        AccountPatch {
            id: a.id,
            name: Some(a.name),
            segment: a.segment,
            arr: a.arr,
            owner: a.owner,
            manager: a.manager,
            renewal_date: a.renewal_date,
            start_date: a.start_date,
            lifecycle_stage: a.lifecycle_stage,
            timezone: a.timezone,
            fields: a.fields.into_iter().collect(),
            metrics: a.metrics.into_iter().collect(),
        }
    }
}

/// What one source row says about an account: only the fields it carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountPatch {
    pub id: String,
    pub name: Option<String>,
    pub segment: Option<Segment>,
    pub arr: Option<f64>,
    pub owner: Option<String>,
    pub manager: Option<String>,
    pub renewal_date: Option<NaiveDate>,
    pub start_date: Option<NaiveDate>,
    pub lifecycle_stage: Option<String>,
    pub timezone: Option<Tz>,
    pub fields: Vec<(String, Value)>,
    pub metrics: Vec<(String, f64)>,
}

impl AccountPatch {
    /// Applies the patch; returns whether the account changed (and then stamps `updated_at`).
    pub fn apply(self, account: &mut Account, now: DateTime<Utc>) -> bool {
        let mut changed = false;
        changed |= set_if(&mut account.name, self.name);
        changed |= set_if(&mut account.segment, self.segment.map(Some));
        changed |= set_if(&mut account.arr, self.arr.map(Some));
        changed |= set_if(&mut account.owner, self.owner.map(Some));
        changed |= set_if(&mut account.manager, self.manager.map(Some));
        changed |= set_if(&mut account.renewal_date, self.renewal_date.map(Some));
        changed |= set_if(&mut account.start_date, self.start_date.map(Some));
        changed |= set_if(&mut account.lifecycle_stage, self.lifecycle_stage.map(Some));
        changed |= set_if(&mut account.timezone, self.timezone.map(Some));
        for (key, value) in self.fields {
            if account.fields.get(&key) != Some(&value) {
                account.fields.insert(key, value);
                changed = true;
            }
        }
        for (key, value) in self.metrics {
            // Compare bit patterns so that re-importing 0.1 is a no-op and a NaN never
            // counts as a change forever (NaN is rejected at parse time anyway).
            if account.metrics.get(&key).map(|v| v.to_bits()) != Some(value.to_bits()) {
                account.metrics.insert(key, value);
                changed = true;
            }
        }
        if changed {
            account.updated_at = now;
        }
        changed
    }
}

/// The fields a playbook's `update` may set by name; `fields.<name>` and
/// `metrics.<name>` are the others.
pub const UPDATABLE: &[&str] = &["lifecycle_stage", "segment", "owner", "manager"];

/// Whether a playbook's `update` may set `field`.
pub fn updatable(field: &str) -> bool {
    UPDATABLE.contains(&field)
        || field.strip_prefix("fields.").is_some_and(|f| !f.is_empty())
        || field.strip_prefix("metrics.").is_some_and(|f| !f.is_empty())
}

/// A playbook's `update`, decided for one account: the value to set, rendered and typed
/// ([`update_value`]). The store applies it with the firing that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldUpdate {
    pub account: String,
    pub field: String,
    pub value: Value,
}

/// Why an update's text does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// A metric was given text that is not a finite number.
    #[error("`{field}` is a metric and takes a number, not {text:?}")]
    NotANumber { field: String, text: String },
    #[error(transparent)]
    Segment(#[from] SegmentError),
}

/// The value an update's rendered text stands for in `field`, as the account stores it:
/// a metric is a finite number, a segment a segment's name, the rest text; empty text
/// clears an optional field. An error says why the text does not fit.
pub fn update_value(field: &str, text: &str) -> Result<Value, UpdateError> {
    let text = text.trim();
    if field.starts_with("metrics.") {
        return match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::from(n)),
            _ => Err(UpdateError::NotANumber { field: field.to_string(), text: text.to_string() }),
        };
    }
    if field == "segment" && !text.is_empty() {
        return Ok(Value::from(Segment::parse(text)?.as_str()));
    }
    if text.is_empty() && !field.starts_with("fields.") {
        return Ok(Value::Null);
    }
    Ok(Value::from(text))
}

impl Account {
    /// The value of an [`updatable`] field (`Null` when unset).
    pub fn field(&self, field: &str) -> Value {
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::from);
        match field {
            "lifecycle_stage" => text(&self.lifecycle_stage),
            "segment" => self.segment.as_ref().map_or(Value::Null, |s| Value::from(s.as_str())),
            "owner" => text(&self.owner),
            "manager" => text(&self.manager),
            f => match (f.strip_prefix("fields."), f.strip_prefix("metrics.")) {
                (Some(name), _) => self.fields.get(name).cloned().unwrap_or(Value::Null),
                (_, Some(name)) => self.metrics.get(name).map_or(Value::Null, |n| Value::from(*n)),
                _ => Value::Null,
            },
        }
    }

    /// Sets an [`updatable`] field to a value from [`update_value`]; returns whether the
    /// account changed. `updated_at` is left alone: it says when a *sync* last changed
    /// the record.
    pub fn set_field(&mut self, field: &str, value: &Value) -> bool {
        let text = value.as_str().map(str::to_string);
        match field {
            "lifecycle_stage" => set_if(&mut self.lifecycle_stage, Some(text)),
            "segment" => set_if(&mut self.segment, Some(text.and_then(|t| Segment::parse(&t).ok()))),
            "owner" => set_if(&mut self.owner, Some(text)),
            "manager" => set_if(&mut self.manager, Some(text)),
            f => match (f.strip_prefix("fields."), f.strip_prefix("metrics.")) {
                (Some(name), _) if self.fields.get(name) != Some(value) => {
                    match value {
                        Value::Null => self.fields.remove(name),
                        v => self.fields.insert(name.to_string(), v.clone()),
                    };
                    true
                }
                (_, Some(name)) => match value.as_f64() {
                    Some(n) if self.metrics.get(name).map(|v| v.to_bits()) != Some(n.to_bits()) => {
                        self.metrics.insert(name.to_string(), n);
                        true
                    }
                    _ => false,
                },
                _ => false,
            },
        }
    }
}

/// A field's value as the timeline prints it: text bare, `none` when unset.
pub fn field_text(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        // Metrics are stored as floats: 12 reads as 12, not 12.0.
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

impl AccountPatch {
    /// The value this patch brings for an [`updatable`] field, if it carries the field.
    pub fn value_of(&self, field: &str) -> Option<Value> {
        let text = |v: &Option<String>| v.clone().map(Value::from);
        match field {
            "lifecycle_stage" => text(&self.lifecycle_stage),
            "segment" => self.segment.as_ref().map(|s| Value::from(s.as_str())),
            "owner" => text(&self.owner),
            "manager" => text(&self.manager),
            f => match (f.strip_prefix("fields."), f.strip_prefix("metrics.")) {
                (Some(name), _) => self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
                (_, Some(name)) => self.metrics.iter().rev().find(|(k, _)| k == name).map(|(_, n)| Value::from(*n)),
                _ => None,
            },
        }
    }

    /// Leaves `field` out of the patch: the account keeps the value it has.
    pub fn drop_field(&mut self, field: &str) {
        match field {
            "lifecycle_stage" => self.lifecycle_stage = None,
            "segment" => self.segment = None,
            "owner" => self.owner = None,
            "manager" => self.manager = None,
            f => {
                if let Some(name) = f.strip_prefix("fields.") {
                    self.fields.retain(|(k, _)| k != name);
                } else if let Some(name) = f.strip_prefix("metrics.") {
                    self.metrics.retain(|(k, _)| k != name);
                }
            }
        }
    }
}

/// The coverage model an account is served by. CRMs spell these
/// many ways; [`Segment::parse`] folds the common spellings onto the three standard ones
/// and keeps any other plain name as a custom segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Segment {
    Enterprise,
    MidMarket,
    Smb,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("segment {0:?} is neither a standard segment (enterprise, mid_market, smb) nor a plain name (letters, digits, spaces, '-' or '_')")]
pub struct SegmentError(pub String);

impl Segment {
    /// Normalises a CRM's spelling: `"Mid-Market"`, `"mid market"` and `"MM"` all mean
    /// `mid_market`. A custom segment is kept as a lower-case snake_case name so that rules
    /// compare against one spelling.
    pub fn parse(raw: &str) -> Result<Segment, SegmentError> {
        let mut slug = String::with_capacity(raw.len());
        let mut pending_sep = false;
        for c in raw.trim().chars() {
            if c.is_alphanumeric() {
                if pending_sep && !slug.is_empty() {
                    slug.push('_');
                }
                pending_sep = false;
                slug.extend(c.to_lowercase());
            } else if c == ' ' || c == '-' || c == '_' {
                pending_sep = true;
            } else {
                return Err(SegmentError(raw.to_string()));
            }
        }
        Ok(match slug.as_str() {
            "" => return Err(SegmentError(raw.to_string())),
            "enterprise" | "ent" | "large_enterprise" => Segment::Enterprise,
            "mid_market" | "midmarket" | "mm" | "mid" | "commercial" => Segment::MidMarket,
            "smb" | "small_business" | "small_and_medium_business" | "s_m_b" => Segment::Smb,
            _ => Segment::Other(slug),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Segment::Enterprise => "enterprise",
            Segment::MidMarket => "mid_market",
            Segment::Smb => "smb",
            Segment::Other(s) => s,
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Segment {
    type Error = SegmentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Segment::parse(&s)
    }
}

impl From<Segment> for String {
    fn from(s: Segment) -> String {
        match s {
            Segment::Other(s) => s,
            other => other.as_str().to_string(),
        }
    }
}

impl Account {
    /// The account's dates a date trigger can name, as `(field, date)`: `renewal_date`,
    /// `start_date` and every `fields.<name>` holding a `YYYY-MM-DD` string. The store
    /// indexes them by day, so a pass finds the accounts whose date falls due without a scan.
    pub fn trigger_dates(&self) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, NaiveDate)> + '_ {
        use std::borrow::Cow;
        let fixed = [("renewal_date", self.renewal_date), ("start_date", self.start_date)]
            .into_iter()
            .filter_map(|(name, d)| d.map(|d| (Cow::Borrowed(name), d)));
        let fields = self.fields.iter().filter_map(|(k, v)| {
            let d: NaiveDate = v.as_str()?.parse().ok()?;
            Some((Cow::Owned(format!("fields.{k}")), d))
        });
        fixed.chain(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crm_spellings_fold_onto_standard_segments() {
        for (raw, want) in [
            ("Enterprise", Segment::Enterprise),
            ("  ENT ", Segment::Enterprise),
            ("Mid-Market", Segment::MidMarket),
            ("mid market", Segment::MidMarket),
            ("MM", Segment::MidMarket),
            ("SMB", Segment::Smb),
            ("Small Business", Segment::Smb),
            ("Strategic Accounts", Segment::Other("strategic_accounts".into())),
        ] {
            assert_eq!(Segment::parse(raw).unwrap(), want, "{raw:?}");
        }
    }

    #[test]
    fn segments_with_punctuation_or_empty_are_rejected() {
        for raw in ["", "   ", "Tier 1!", "smb/ent"] {
            assert!(Segment::parse(raw).is_err(), "{raw:?} should be rejected");
        }
    }

    #[test]
    fn an_update_value_takes_its_fields_type_and_sets_it() {
        assert_eq!(update_value("metrics.seats", " 12 "), Ok(Value::from(12.0)));
        assert_eq!(
            update_value("metrics.seats", "twelve").unwrap_err().to_string(),
            "`metrics.seats` is a metric and takes a number, not \"twelve\""
        );
        assert!(
            matches!(update_value("metrics.seats", "NaN"), Err(UpdateError::NotANumber { .. })),
            "a metric is a finite number"
        );
        assert_eq!(update_value("segment", "Mid-Market"), Ok(Value::from("mid_market")));
        assert_eq!(update_value("segment", "Tier 1!"), Err(UpdateError::Segment(SegmentError("Tier 1!".into()))));
        assert_eq!(update_value("owner", ""), Ok(Value::Null), "empty text clears an optional field");
        assert_eq!(update_value("fields.note", ""), Ok(Value::from("")), "a CRM column keeps what it is given");

        let mut account = Account::new("A1", DateTime::from_timestamp(0, 0).unwrap());
        assert!(account.set_field("segment", &update_value("segment", "smb").unwrap()));
        assert!(account.set_field("metrics.seats", &Value::from(3.0)));
        assert!(!account.set_field("metrics.seats", &Value::from(3.0)), "the same value is no change");
        assert!(account.set_field("fields.go_live", &Value::from("2026-12-24")));
        assert_eq!(account.segment, Some(Segment::Smb));
        assert_eq!(field_text(&account.field("metrics.seats")), "3");
        assert_eq!(field_text(&account.field("lifecycle_stage")), "none");
        assert_eq!(account.trigger_dates().count(), 1, "a date written by an update is a trigger date");
    }

    #[test]
    fn a_patch_that_repeats_the_record_changes_nothing() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let t1 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let patch = AccountPatch {
            id: "A1".into(),
            name: Some("Acme".into()),
            arr: Some(0.1 + 0.2),
            metrics: vec![("nps".into(), 9.0)],
            fields: vec![("industry".into(), Value::from("Retail"))],
            ..Default::default()
        };
        let mut account = Account::new("A1", t0);
        assert!(patch.clone().apply(&mut account, t0));
        assert!(!patch.apply(&mut account, t1));
        assert_eq!(account.updated_at, t0, "an unchanged record keeps its timestamp");
    }
}
