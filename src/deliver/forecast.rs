//! What delivery would do with an outbox entry at a moment, without doing it: the
//! verdict `simulate` shows next to each email and webhook a dry run decides.
//!
//! It applies the delivery rules in delivery's own order, with delivery's own functions
//! (the suppression check, the sending window, the frequency-cap rule): suppressed →
//! deferred to the next sending window → capped (deferred or dropped) → sent (a digest:
//! joins its group's one email). Emails already queued and due count against the cap
//! first, then the emails a dry run plans, in order, as they would once sent; a firing's
//! own `update`s (a `fields.do_not_contact`) are seen by its emails.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::protect;
use crate::config::Protections;
use crate::model::{Account, Audience, CapPolicy, OutboxEntry, Payload, Status};
use crate::store::{cap_full, Store, StoreError};

/// Delivery's answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Goes out at `at`.
    Send { at: DateTime<Utc> },
    /// Joins its digest, sent once the pass that decided it has completed.
    Digest,
    /// Never sent: the address is suppressed.
    Suppressed { reason: String },
    /// Waits until `until`.
    Deferred { until: DateTime<Utc>, why: String },
    /// Dropped by the frequency cap (the playbook says `on_cap: drop`).
    Dropped { why: String },
    /// Decided dead (a template failed for the account, no address).
    Dead { error: String },
}

/// Verdicts for a run's entries, in the order delivery would take them.
pub struct Forecast<'a> {
    store: &'a Store,
    protections: &'a Protections,
    timezone: Tz,
    /// Sends this forecast has already let through, by address.
    planned: HashMap<String, Vec<DateTime<Utc>>>,
    /// Accounts as the dry run's own `update`s leave them, by id.
    updated: HashMap<String, Account>,
}

impl<'a> Forecast<'a> {
    pub fn new(store: &'a Store, protections: &'a Protections, timezone: Tz) -> Forecast<'a> {
        Forecast { store, protections, timezone, planned: HashMap::new(), updated: HashMap::new() }
    }

    /// Counts the customer emails already queued and due by `at` against the cap: one
    /// delivery round sends them first, in due order.
    pub fn queued_until(&mut self, at: DateTime<Utc>) -> Result<(), StoreError> {
        const MOST: usize = 100_000;
        for e in self.store.outbox_due(at, MOST)? {
            if let Payload::Email(m) = &e.payload {
                if matches!(m.audience, Audience::Customer { .. }) && m.digest.is_none() {
                    self.planned.entry(m.to.trim().to_lowercase()).or_default().push(e.next_at.max(at));
                }
            }
        }
        Ok(())
    }

    /// The account as the firing being forecast leaves it (its `update`s applied): an
    /// update to `fields.do_not_contact` suppresses the email of the same firing.
    pub fn account_after(&mut self, account: Account) {
        self.updated.insert(account.id.clone(), account);
    }

    /// What delivery would do with `entry`, due at its `next_at` (not before `now`).
    pub fn verdict(&mut self, entry: &OutboxEntry, now: DateTime<Utc>) -> Result<Verdict, StoreError> {
        if let Status::Dead { error, .. } = &entry.status {
            return Ok(Verdict::Dead { error: error.clone() });
        }
        let at = entry.next_at.max(now);
        let Payload::Email(m) = &entry.payload else { return Ok(Verdict::Send { at }) };
        // Internal mail goes out as it is; a digest is one email per group, after the pass.
        let sent = if m.digest.is_some() { Verdict::Digest } else { Verdict::Send { at } };
        let Audience::Customer { contact, timezone } = &m.audience else { return Ok(sent) };
        let reason = match self.updated.get(&entry.account) {
            Some(account) => super::suppression_with(self.store, &m.to, contact, Some(account))?,
            None => super::suppression(self.store, &m.to, contact, &entry.account)?,
        };
        if let Some(reason) = reason {
            return Ok(Verdict::Suppressed { reason });
        }
        let tz: Tz = timezone.parse().unwrap_or(self.timezone);
        if let Some(until) = protect::next_window(self.protections, tz, at) {
            let local = until.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z");
            let why = format!("{}; next window {local}", protect::why_not(self.protections, tz, at));
            return Ok(Verdict::Deferred { until, why });
        }
        let key = m.to.trim().to_lowercase();
        if let Some(cap) = self.protections.cap {
            let mut marks = self.store.cap_marks(&key)?;
            marks.extend(self.planned.get(&key).into_iter().flatten().copied());
            if let Some(until) = cap_full(marks.into_iter(), at, cap.max, cap.per) {
                let why = format!("frequency cap: {} emails per {}d to {} reached", cap.max, cap.per.num_days(), m.to);
                return Ok(match m.on_cap {
                    CapPolicy::Drop => Verdict::Dropped { why },
                    _ => Verdict::Deferred { until, why: format!("{why}; next send fits at {until}") },
                });
            }
        }
        self.planned.entry(key).or_default().push(at);
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FrequencyCap;
    use crate::model::Email;

    fn email(id: u64, to: &str, on_cap: CapPolicy, at: DateTime<Utc>) -> OutboxEntry {
        OutboxEntry {
            id,
            account: "A".into(),
            playbook: "p".into(),
            occurrence: format!("o{id}"),
            key: format!("k{id}"),
            created: at,
            payload: Payload::Email(Email {
                to: to.into(),
                audience: Audience::Customer { contact: "C".into(), timezone: "UTC".into() },
                template: "t".into(),
                subject: "s".into(),
                text: "x".into(),
                html: None,
                unsubscribe_url: None,
                digest: None,
                on_cap,
            }),
            status: Status::Pending,
            next_at: at,
            attempts: 0,
            history: Vec::new(),
        }
    }

    #[test]
    fn planned_emails_count_against_the_cap_of_the_ones_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cap = FrequencyCap { max: 1, per: chrono::Duration::days(7) };
        let protections = Protections { cap: Some(cap), ..Protections::default() };
        // A Tuesday at 10:00 UTC: inside the sending window.
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let mut forecast = Forecast::new(&store, &protections, "UTC".parse().unwrap());
        let first = forecast.verdict(&email(1, "sam@x.example", CapPolicy::Defer, now), now).unwrap();
        assert_eq!(first, Verdict::Send { at: now });
        // The same address again, in another case: capped until the first leaves the window.
        let second = forecast.verdict(&email(2, "SAM@x.example ", CapPolicy::Defer, now), now).unwrap();
        assert!(
            matches!(&second, Verdict::Deferred { until, .. } if *until == now + chrono::Duration::days(7)),
            "{second:?}"
        );
        let dropped = forecast.verdict(&email(3, "sam@x.example", CapPolicy::Drop, now), now).unwrap();
        assert!(matches!(dropped, Verdict::Dropped { .. }), "{dropped:?}");
        // Another address is not affected; at 22:00 it waits for the window instead.
        let late = now + chrono::Duration::hours(12);
        let other = forecast.verdict(&email(4, "kim@x.example", CapPolicy::Defer, late), late).unwrap();
        assert!(matches!(&other, Verdict::Deferred { why, .. } if why.contains("quiet hours")), "{other:?}");
    }
}
