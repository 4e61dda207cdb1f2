//! Contacts: the people at an account (users, champions, executive sponsors) who receive
//! tech-touch outreach and can unsubscribe from it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::set_if;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    /// The source's contact id.
    pub id: String,
    /// The id of the account the contact belongs to.
    pub account_id: String,
    /// Where customer-facing email goes; a contact without one gets none.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: String,
    /// Title or role at the account ("VP Operations", "Executive Sponsor", …).
    #[serde(default)]
    pub role: Option<String>,
    /// The contact's IANA time zone: quiet hours and business days are kept in it.
    #[serde(default)]
    #[schemars(with = "Option<super::schema::TimeZone>")]
    pub timezone: Option<Tz>,
    /// Opted out of customer-facing email. Only ever set by a source or an unsubscribe;
    /// Keel never clears it on its own.
    #[serde(default)]
    pub unsubscribed: bool,
    /// Any other source column, kept as the source gave it.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// When a sync last changed this record.
    #[serde(default = "super::epoch")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactPatch {
    pub id: String,
    pub account_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<String>,
    pub timezone: Option<Tz>,
    pub unsubscribed: Option<bool>,
    pub fields: Vec<(String, Value)>,
}

impl From<Contact> for ContactPatch {
    /// A patch carrying every field of the contact.
    fn from(c: Contact) -> ContactPatch {
        ContactPatch {
            id: c.id,
            account_id: Some(c.account_id),
            email: c.email,
            name: Some(c.name),
            role: c.role,
            timezone: c.timezone,
            unsubscribed: Some(c.unsubscribed),
            fields: c.fields.into_iter().collect(),
        }
    }
}

impl ContactPatch {
    /// Builds a new contact from the patch; `None` when the patch lacks the account id a
    /// new contact needs (an update may omit it, an insert may not).
    pub fn into_new(self, now: DateTime<Utc>) -> Option<Contact> {
        let mut contact = Contact {
            id: String::new(),
            account_id: self.account_id.clone()?,
            email: None,
            name: String::new(),
            role: None,
            timezone: None,
            unsubscribed: false,
            fields: BTreeMap::new(),
            updated_at: now,
        };
        contact.id.clone_from(&self.id);
        self.apply(&mut contact, now);
        Some(contact)
    }

    /// Applies the patch; returns whether the contact changed.
    pub fn apply(self, contact: &mut Contact, now: DateTime<Utc>) -> bool {
        let mut changed = false;
        changed |= set_if(&mut contact.account_id, self.account_id);
        changed |= set_if(&mut contact.email, self.email.map(Some));
        changed |= set_if(&mut contact.name, self.name);
        changed |= set_if(&mut contact.role, self.role.map(Some));
        changed |= set_if(&mut contact.timezone, self.timezone.map(Some));
        changed |= set_if(&mut contact.unsubscribed, self.unsubscribed);
        for (key, value) in self.fields {
            if contact.fields.get(&key) != Some(&value) {
                contact.fields.insert(key, value);
                changed = true;
            }
        }
        if changed {
            contact.updated_at = now;
        }
        changed
    }
}
