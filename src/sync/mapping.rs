//! Column mappings: which record field a source column (or JSON key) feeds.
//!
//! CRM exports name columns their own way ("Account Name", "Logins (30d)"); the config
//! maps them (`"Account Name": name`, `"Logins (30d)": metrics.logins_30d`). A column the
//! config does not map maps to the field of the same name if there is one, and otherwise
//! lands in the record's open `fields` (events: `properties`), so no data is dropped
//! unless the config says `ignore`.
//!
//! Targets are resolved once per file (per column), never per row.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::values::check_date_format;
use crate::diagnostic::did_you_mean;

/// The closed set of named fields of one record kind, for mapping.
pub trait FieldSet: Copy + Eq + fmt::Debug + 'static {
    /// The record kind, plural, as the CLI and config say it ("accounts").
    const KIND: &'static str;
    /// Every mappable field, by the name a config uses.
    const NAMES: &'static [(&'static str, Self)];
    /// Where unmapped columns land: `fields` (accounts, contacts) or `properties` (events).
    const EXTRA: &'static str;
    /// Whether `metrics.<name>` targets exist (accounts only).
    const HAS_METRICS: bool;
    /// The field that identifies a record, which a file must map for updates to find it.
    const KEY: Option<Self>;

    fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

/// Where one column's value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<F> {
    Field(F),
    Metric(String),
    Extra(String),
    Ignore,
}

/// Why a config's column target was refused; the message lists what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `metrics.<name>` for a record kind without metrics.
    #[error("{kind} have no metrics; map the column to {extra}.{name} instead")]
    NoMetrics { kind: &'static str, extra: &'static str, name: String },
    #[error("metric name {0:?} must be lower-case letters, digits and '_', starting with a letter (e.g. logins_30d)")]
    MetricName(String),
    /// `fields.` (or `properties.`) with nothing after the dot.
    #[error("{0}. needs a name after the dot")]
    EmptyExtraName(&'static str),
    /// No such field; `expected` lists the targets, `near` is the closest one's name.
    #[error("unknown {kind} field {target:?}; expected {expected}{}", did_you_mean_hint(.near.as_deref()))]
    Unknown { kind: &'static str, target: String, expected: String, near: Option<String> },
}

fn did_you_mean_hint(near: Option<&str>) -> String {
    near.map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default()
}

impl<F: FieldSet> Target<F> {
    /// Parses a target as written in the config.
    pub fn parse(s: &str) -> Result<Self, TargetError> {
        let s = s.trim();
        if s == "ignore" {
            return Ok(Target::Ignore);
        }
        if let Some(&(_, f)) = F::NAMES.iter().find(|(n, _)| *n == s) {
            return Ok(Target::Field(f));
        }
        if let Some(name) = s.strip_prefix("metrics.") {
            if !F::HAS_METRICS {
                return Err(TargetError::NoMetrics { kind: F::KIND, extra: F::EXTRA, name: name.to_string() });
            }
            if !is_metric_name(name) {
                return Err(TargetError::MetricName(name.to_string()));
            }
            return Ok(Target::Metric(name.to_string()));
        }
        if let Some(name) = s.strip_prefix(F::EXTRA).and_then(|r| r.strip_prefix('.')) {
            if name.is_empty() {
                return Err(TargetError::EmptyExtraName(F::EXTRA));
            }
            return Ok(Target::Extra(name.to_string()));
        }
        let names = F::NAMES.iter().map(|(n, _)| *n).chain(["ignore"]);
        Err(TargetError::Unknown {
            kind: singular(F::KIND),
            target: s.to_string(),
            expected: Self::expected(),
            near: did_you_mean(s, names).map(|n| n.to_string()),
        })
    }

    /// The target of a column the config does not map: the field of that exact name,
    /// else the open `fields`/`properties` under the column's own name.
    pub fn default_for(column: &str) -> Self {
        Self::parse(column).unwrap_or_else(|_| Target::Extra(column.to_string()))
    }

    fn expected() -> String {
        let mut s: Vec<String> = F::NAMES.iter().map(|(n, _)| n.to_string()).collect();
        if F::HAS_METRICS {
            s.push("metrics.<name>".into());
        }
        s.push(format!("{}.<name>", F::EXTRA));
        s.push("ignore".into());
        s.join(", ")
    }
}

fn singular(kind: &'static str) -> &'static str {
    kind.strip_suffix('s').unwrap_or(kind)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A list of `strftime` date formats, tried in order; written as one string or a list.
/// Each is checked while the config is read (see [`check_date_format`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DateFormats(pub Vec<String>);

impl<'de> Deserialize<'de> for DateFormats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DateFormats;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a date format like \"%m/%d/%Y\", or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DateFormats, E> {
                check_date_format(v).map_err(E::custom)?;
                Ok(DateFormats(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<DateFormats, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    check_date_format(&v).map_err(de::Error::custom)?;
                    out.push(v);
                }
                if out.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list of date formats; leave date_format out for ISO dates",
                    ));
                }
                Ok(DateFormats(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A config's column → target map for one record kind, with the columns' own date
/// formats (`"Renewal Date": { field: renewal_date, date_format: "%m/%d/%Y" }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap<F> {
    entries: HashMap<String, Target<F>>,
    /// The mapped columns in the order written, for reports that name them.
    order: Vec<String>,
    date_formats: HashMap<String, Vec<String>>,
}

impl<F: FieldSet> Default for ColumnMap<F> {
    fn default() -> Self {
        ColumnMap { entries: HashMap::new(), order: Vec::new(), date_formats: HashMap::new() }
    }
}

impl<F: FieldSet> ColumnMap<F> {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, Target<F>)>) -> Self {
        let mut map = ColumnMap::default();
        for (column, target) in pairs {
            map.order.push(column.clone());
            map.entries.insert(column, target);
        }
        map
    }

    /// The date formats the config gives this column itself, if any.
    pub fn date_formats(&self, column: &str) -> Option<&[String]> {
        self.date_formats.get(column).map(Vec::as_slice)
    }

    /// The columns the config maps, in the order written.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Mapped columns a file's header lacks while it has an unmapped column of a near
    /// name, with that name: a typo (`"Acount Name": name`), which would leave the field
    /// empty on every row while the real column lands in `fields`. A mapped column that
    /// is simply absent is not one: partial exports (a usage file with two columns) are
    /// normal and update only what they carry.
    pub fn typos_in<'h>(&self, headers: &'h [String]) -> Vec<(&str, &'h str)> {
        let unmapped: Vec<&str> = headers
            .iter()
            .map(String::as_str)
            .filter(|h| !self.entries.contains_key(*h) && matches!(Target::<F>::default_for(h), Target::Extra(_)))
            .collect();
        self.columns()
            .filter(|c| !headers.iter().any(|h| h == c))
            .filter_map(|c| did_you_mean(c, unmapped.iter().copied()).map(|near| (c, near)))
            .collect()
    }

    /// Mapped columns a file's header simply lacks (no near name either, so not a typo):
    /// a partial export that sets nothing for them. Said as a warning, never silently.
    pub fn absent_in(&self, headers: &[String]) -> Vec<&str> {
        let typos: Vec<&str> = self.typos_in(headers).into_iter().map(|(c, _)| c).collect();
        self.columns()
            .filter(|c| !matches!(self.entries.get(*c), Some(Target::Ignore)))
            .filter(|c| !headers.iter().any(|h| h == c) && !typos.contains(c))
            .collect()
    }

    /// The target for a source column: the config's mapping, else [`Target::default_for`].
    pub fn resolve(&self, column: &str) -> Target<F> {
        match self.entries.get(column) {
            Some(t) => t.clone(),
            None => Target::default_for(column),
        }
    }

    /// Whether a sync through this map can feed `target`: a column the config maps to it,
    /// or, given the source's header, a column the config leaves unmapped that maps
    /// itself there (`metrics.nps`; for `fields.x`, a column `x` or `fields.x`).
    pub fn feeds(&self, target: &Target<F>, headers: Option<&[String]>) -> bool {
        self.entries.values().any(|t| t == target)
            || headers.is_some_and(|headers| {
                headers.iter().any(|h| !self.entries.contains_key(h) && Target::<F>::default_for(h) == *target)
            })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// Deserialised from the config with the target checked *during* deserialisation, so a
// bad target is reported by serde_yaml at its own line and column.
impl<'de, F: FieldSet> Deserialize<'de> for ColumnMap<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<F>(PhantomData<F>);
        impl<'de, F: FieldSet> Visitor<'de> for V<F> {
            type Value = ColumnMap<F>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of source column names to fields, like \"Account Name\": name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = ColumnMap::default();
                while let Some(column) = map.next_key::<String>()? {
                    let TargetSpec(target, formats) = map.next_value()?;
                    if out.entries.insert(column.clone(), target).is_some() {
                        return Err(de::Error::custom(format!("column {column:?} is mapped twice")));
                    }
                    if let Some(DateFormats(formats)) = formats {
                        out.date_formats.insert(column.clone(), formats);
                    }
                    out.order.push(column);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// One column's mapping: a target (`name`), or `{ field: renewal_date, date_format: … }`.
struct TargetSpec<F>(Target<F>, Option<DateFormats>);

impl<'de, F: FieldSet> Deserialize<'de> for TargetSpec<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<F>(PhantomData<F>);
        impl<'de, F: FieldSet> Visitor<'de> for V<F> {
            type Value = TargetSpec<F>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name, or { field: NAME, date_format: FORMAT }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Target::parse(v).map(|t| TargetSpec(t, None)).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut target, mut formats) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "field" => {
                            let s: String = map.next_value()?;
                            target = Some(Target::parse(&s).map_err(de::Error::custom)?);
                        }
                        "date_format" => formats = Some(map.next_value::<DateFormats>()?),
                        other => return Err(de::Error::unknown_field(other, &["field", "date_format"])),
                    }
                }
                let target = target.ok_or_else(|| de::Error::missing_field("field"))?;
                Ok(TargetSpec(target, formats))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Account fields a source can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountField {
    Id,
    Name,
    Segment,
    Arr,
    Owner,
    Manager,
    RenewalDate,
    StartDate,
    LifecycleStage,
    Timezone,
}

impl FieldSet for AccountField {
    const KIND: &'static str = "accounts";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("id", Self::Id),
        ("name", Self::Name),
        ("segment", Self::Segment),
        ("arr", Self::Arr),
        ("owner", Self::Owner),
        ("manager", Self::Manager),
        ("renewal_date", Self::RenewalDate),
        ("start_date", Self::StartDate),
        ("lifecycle_stage", Self::LifecycleStage),
        ("timezone", Self::Timezone),
    ];
    const EXTRA: &'static str = "fields";
    const HAS_METRICS: bool = true;
    const KEY: Option<Self> = Some(Self::Id);
}

/// Contact fields a source can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactField {
    Id,
    AccountId,
    Email,
    Name,
    Role,
    Timezone,
    Unsubscribed,
}

impl FieldSet for ContactField {
    const KIND: &'static str = "contacts";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("id", Self::Id),
        ("account_id", Self::AccountId),
        ("email", Self::Email),
        ("name", Self::Name),
        ("role", Self::Role),
        ("timezone", Self::Timezone),
        ("unsubscribed", Self::Unsubscribed),
    ];
    const EXTRA: &'static str = "fields";
    const HAS_METRICS: bool = false;
    // A contact file may key on email alone: the id then defaults to the email.
    const KEY: Option<Self> = None;
}

/// Event fields a source can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventField {
    Id,
    AccountId,
    ContactId,
    Name,
    Timestamp,
}

impl FieldSet for EventField {
    const KIND: &'static str = "events";
    const NAMES: &'static [(&'static str, Self)] = &[
        ("id", Self::Id),
        ("account_id", Self::AccountId),
        ("contact_id", Self::ContactId),
        ("name", Self::Name),
        ("timestamp", Self::Timestamp),
    ];
    const EXTRA: &'static str = "properties";
    const HAS_METRICS: bool = false;
    // Events without an id get a content-derived one.
    const KEY: Option<Self> = None;
}

// JSON Schemas (`keel schema`): a field set's schema is its column target, as
// `Target::parse` reads it; a column map is an object of them, with the per-column form.

/// The schema of a column target of `F`: a field name, `metrics.<name>` (accounts),
/// `fields.<name>` / `properties.<name>`, or `ignore`.
fn target_schema<F: FieldSet>() -> schemars::Schema {
    let mut names: Vec<&str> = F::NAMES.iter().map(|(n, _)| *n).collect();
    names.push("ignore");
    let mut any_of = vec![schemars::json_schema!({ "type": "string", "enum": names })];
    if F::HAS_METRICS {
        any_of.push(schemars::json_schema!({
            "type": "string",
            "pattern": r"^\s*metrics\.[a-z][a-z0-9_]*\s*$",
            "description": "A usage number: lower-case letters, digits and '_', starting with a letter.",
            "examples": ["metrics.logins_30d"],
        }));
    }
    let extra = F::EXTRA;
    any_of.push(schemars::json_schema!({
        "type": "string",
        "pattern": format!(r"^\s*{extra}\..+$"),
        "description": format!("Kept in the record's open `{extra}` under this name."),
        "examples": [format!("{extra}.region")],
    }));
    schemars::json_schema!({
        "description": format!("Where the column goes: a {} field, {}`{extra}.<name>`, or `ignore`.",
            singular(F::KIND), if F::HAS_METRICS { "`metrics.<name>`, " } else { "" }),
        "anyOf": any_of,
    })
}

macro_rules! field_set_schema {
    ($($ty:ident),*) => {$(
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                target_schema::<$ty>()
            }
        }
    )*};
}

field_set_schema!(AccountField, ContactField, EventField);

impl schemars::JsonSchema for DateFormats {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DateFormats".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let format = schemars::json_schema!({ "type": "string", "pattern": "%", "examples": ["%m/%d/%Y"] });
        schemars::json_schema!({
            "description": "A strftime date format, or a list tried in order; YYYY-MM-DD is always accepted too.",
            "anyOf": [format.clone(), { "type": "array", "items": format, "minItems": 1 }],
        })
    }
}

impl<F: FieldSet + schemars::JsonSchema> schemars::JsonSchema for ColumnMap<F> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("ColumnMap_for_{}", F::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let target = generator.subschema_for::<F>();
        let formats = generator.subschema_for::<DateFormats>();
        schemars::json_schema!({
            "description": "Source column (or JSON key) → field, like \"Account Name\": name.",
            "type": "object",
            "additionalProperties": {
                "anyOf": [
                    target.clone(),
                    {
                        "type": "object",
                        "description": "A column with its own date formats.",
                        "properties": { "field": target, "date_format": formats },
                        "required": ["field"],
                        "additionalProperties": false,
                    },
                ],
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_fields_metrics_extras_and_ignore() {
        assert_eq!(Target::<AccountField>::parse("renewal_date"), Ok(Target::Field(AccountField::RenewalDate)));
        assert_eq!(Target::<AccountField>::parse("metrics.logins_30d"), Ok(Target::Metric("logins_30d".into())));
        assert_eq!(Target::<AccountField>::parse("fields.Industry"), Ok(Target::Extra("Industry".into())));
        assert_eq!(Target::<EventField>::parse("properties.plan"), Ok(Target::Extra("plan".into())));
        assert_eq!(Target::<ContactField>::parse("ignore"), Ok(Target::Ignore));
    }

    #[test]
    fn a_misspelt_target_says_what_was_expected_and_suggests() {
        let err = Target::<AccountField>::parse("renewal_dat").unwrap_err().to_string();
        assert!(err.ends_with(", ignore (did you mean `renewal_date`?)"), "{err}");
        assert!(err.contains("metrics.<name>"), "{err}");
        let err = Target::<EventField>::parse("nothing_like_it").unwrap_err().to_string();
        assert!(err.starts_with("unknown event field \"nothing_like_it\"; expected id, "), "{err}");
        assert!(err.ends_with("properties.<name>, ignore"), "no suggestion when nothing is near: {err}");
        let err = Target::<AccountField>::parse("metrics.Logins 30d").unwrap_err();
        assert_eq!(err, TargetError::MetricName("Logins 30d".into()));
        assert!(err.to_string().contains("lower-case"), "{err}");
        assert_eq!(
            Target::<ContactField>::parse("metrics.nps").unwrap_err().to_string(),
            "contacts have no metrics; map the column to fields.nps instead"
        );
        assert_eq!(
            Target::<EventField>::parse("properties.").unwrap_err().to_string(),
            "properties. needs a name after the dot"
        );
    }

    #[test]
    fn a_mapped_column_missing_next_to_a_near_unmapped_one_is_a_typo() {
        let map = ColumnMap::<AccountField>::from_pairs([
            ("Account ID".to_string(), Target::Field(AccountField::Id)),
            ("Acount Name".to_string(), Target::Field(AccountField::Name)),
            ("Start".to_string(), Target::Field(AccountField::StartDate)),
            ("NPS".to_string(), Target::Metric("nps".into())),
        ]);
        let headers: Vec<String> =
            ["Account ID", "Account Name", "Stage", "lifecycle_stage"].iter().map(|s| s.to_string()).collect();
        // Nothing maps "Stage", so it would land in fields: "Start" next to it is taken for
        // a typo too. "NPS" has no near column: a partial export, not a typo.
        assert_eq!(map.typos_in(&headers), vec![("Acount Name", "Account Name"), ("Start", "Stage")]);
        let mapped_stage = ColumnMap::<AccountField>::from_pairs([
            ("Start".to_string(), Target::Field(AccountField::StartDate)),
            ("Stage".to_string(), Target::Field(AccountField::LifecycleStage)),
        ]);
        assert_eq!(mapped_stage.typos_in(&headers), vec![], "a near column that is mapped is not the typo's");
    }

    #[test]
    fn unmapped_columns_keep_their_data() {
        let map =
            ColumnMap::<AccountField>::from_pairs([("Account Name".to_string(), Target::Field(AccountField::Name))]);
        assert_eq!(map.resolve("Account Name"), Target::Field(AccountField::Name));
        assert_eq!(map.resolve("arr"), Target::Field(AccountField::Arr));
        assert_eq!(map.resolve("Industry"), Target::Extra("Industry".into()));
    }
}
