//! Accounts: the book of business filtered and sorted as CSMs and CS Ops look at it
//! ([`list`]), and one account with everything Keel knows and did about it ([`show`]).
//!
//! Invariants: the list order is total (ties break on id), so the same store always lists
//! the same way; accounts missing the sort value go last whichever the direction of the
//! primary key. Only reads: nothing here writes to the store.
//!
//! Paging is by position, not offset: a [`Cursor`] holds the sort value and id of the last
//! account a page listed, and the next page lists what sorts after it. Accounts added
//! (or removed) between pages therefore never shift a page: none listed already comes
//! again, none not yet listed is skipped. Only an account whose sort value changes
//! between pages (its ARR, renewal, name or health) can move across the position.
//!
//! Cost: [`list`] reads one health point per account it lists, and only then: when
//! neither `--band` nor `--sort health` needs it earlier, health is read after the limit,
//! so `--limit 20` over a million accounts reads 20 points.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::lang::health::HealthModel;
use crate::model::{Account, Band, Contact, Event, HealthPoint, LedgerEntry, OutboxEntry, Segment, Task};
use crate::store::Store;

/// How [`list`] orders accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// Largest ARR first.
    #[default]
    Arr,
    /// Soonest renewal first.
    Renewal,
    /// By display name, case-insensitive.
    Name,
    Id,
    /// Lowest health score first (the most at risk); accounts never scored last.
    Health,
}

/// What [`list`] keeps and in which order.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// Only this segment (any spelling [`Segment::parse`] folds).
    pub segment: Option<String>,
    /// Only accounts owned by this CSM (email, case-insensitive).
    pub owner: Option<String>,
    /// Only accounts whose latest health point (as of their today) is in this band.
    pub band: Option<Band>,
    pub sort: SortKey,
    /// Reverse the whole order (the id tie-break too).
    pub reverse: bool,
    /// At most this many, after sorting.
    pub limit: Option<usize>,
    /// Only accounts sorting after this position: the `next_cursor` of the page before.
    /// It must have been made with the same `sort` and `reverse`.
    pub after: Option<Cursor>,
}

/// The accounts that matched, in order, with their ARR summed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountList {
    pub accounts: Vec<ListedAccount>,
    /// ARR of the accounts listed (missing ARR counts as 0).
    pub arr: f64,
    /// Where the next page starts ([`Cursor::encode`]), when `limit` left accounts out;
    /// `None` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One listed account with its latest health (as of the account's today).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedAccount {
    #[serde(flatten)]
    pub account: Account,
    /// `None` when the account has never been scored (`keel health` scores them).
    pub health: Option<HealthSummary>,
}

impl std::ops::Deref for ListedAccount {
    type Target = Account;
    fn deref(&self) -> &Account {
        &self.account
    }
}

/// The score and band of a health point: what a list row shows (not its components).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthSummary {
    pub score: f64,
    pub band: Band,
    /// The day it was scored.
    pub date: NaiveDate,
}

/// Lists the accounts `query` keeps. `now` and `timezone` (the config's, for accounts that
/// name no zone) say which day's health point counts: the latest on or before the
/// account's today, as `accounts show` reads it.
pub fn list(store: &Store, query: &ListQuery, now: DateTime<Utc>, timezone: Tz) -> Result<AccountList, ServiceError> {
    let segment = query.segment.as_deref().map(Segment::parse).transpose()?;
    let owner = query.owner.as_deref().map(str::to_lowercase);
    // Health is read before sorting only when the filter or the order needs it.
    let health_first = query.band.is_some() || query.sort == SortKey::Health;
    let health_of = |account: &Account| -> Result<Option<HealthSummary>, ServiceError> {
        let today = now.with_timezone(&account.timezone.unwrap_or(timezone)).date_naive();
        Ok(store.health_on_or_before(&account.id, today)?.map(|p| HealthSummary {
            score: p.score,
            band: p.band,
            date: p.date,
        }))
    };
    if let Some(after) = &query.after {
        if after.key.sort() != query.sort || after.reverse != query.reverse {
            return Err(ServiceError::InvalidCursor(format!(
                "it continues a listing sorted by {}{}, not by {}{}",
                after.key.sort().as_str(),
                if after.reverse { " reversed" } else { "" },
                query.sort.as_str(),
                if query.reverse { " reversed" } else { "" },
            )));
        }
    }
    let direct = |o: Ordering| if query.reverse { o.reverse() } else { o };
    let mut rows = Vec::new();
    for account in store.accounts() {
        let account = account?;
        if segment.as_ref().is_some_and(|s| account.segment.as_ref() != Some(s)) {
            continue;
        }
        if owner.as_ref().is_some_and(|o| account.owner.as_deref().map(str::to_lowercase).as_ref() != Some(o)) {
            continue;
        }
        let health = if health_first { health_of(&account)? } else { None };
        if query.band.is_some_and(|b| health.is_none_or(|h| h.band != b)) {
            continue;
        }
        let row = ListedAccount { account, health };
        let key = SortValue::of(query.sort, &row);
        if let Some(after) = &query.after {
            if direct(key.cmp(&after.key).then_with(|| row.id.cmp(&after.id))) != Ordering::Greater {
                continue;
            }
        }
        rows.push((key, row));
    }
    rows.sort_by(|(ka, a), (kb, b)| direct(ka.cmp(kb).then_with(|| a.id.cmp(&b.id))));
    let mut next_cursor = None;
    if let Some(limit) = query.limit {
        if rows.len() > limit {
            rows.truncate(limit);
            next_cursor = rows
                .last()
                .map(|(key, row)| Cursor { key: key.clone(), id: row.id.clone(), reverse: query.reverse }.encode());
        }
    }
    let mut accounts: Vec<ListedAccount> = rows.into_iter().map(|(_, row)| row).collect();
    if !health_first {
        for row in &mut accounts {
            row.health = health_of(&row.account)?;
        }
    }
    let arr = accounts.iter().map(|a| a.arr.unwrap_or(0.0)).sum();
    Ok(AccountList { accounts, arr, next_cursor })
}

impl SortKey {
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Arr => "arr",
            SortKey::Renewal => "renewal",
            SortKey::Name => "name",
            SortKey::Id => "id",
            SortKey::Health => "health",
        }
    }
}

/// An account's value for one sort key, compared as a CSM expects: biggest ARR first,
/// soonest renewal first, lowest health first, by name case-insensitively; a missing
/// value last. Values of different keys never meet ([`list`] refuses a cursor of another
/// key); ties break on the id, outside this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SortValue {
    Arr(Option<f64>),
    Renewal(Option<NaiveDate>),
    /// The lower-cased display name.
    Name(String),
    Id,
    Health(Option<f64>),
}

impl SortValue {
    fn of(key: SortKey, row: &ListedAccount) -> SortValue {
        match key {
            SortKey::Arr => SortValue::Arr(row.arr),
            SortKey::Renewal => SortValue::Renewal(row.renewal_date),
            SortKey::Name => SortValue::Name(row.display_name().to_lowercase()),
            SortKey::Id => SortValue::Id,
            SortKey::Health => SortValue::Health(row.health.map(|h| h.score)),
        }
    }

    fn sort(&self) -> SortKey {
        match self {
            SortValue::Arr(_) => SortKey::Arr,
            SortValue::Renewal(_) => SortKey::Renewal,
            SortValue::Name(_) => SortKey::Name,
            SortValue::Id => SortKey::Id,
            SortValue::Health(_) => SortKey::Health,
        }
    }

    fn cmp(&self, other: &SortValue) -> Ordering {
        match (self, other) {
            (SortValue::Arr(a), SortValue::Arr(b)) => {
                b.unwrap_or(f64::NEG_INFINITY).total_cmp(&a.unwrap_or(f64::NEG_INFINITY))
            }
            (SortValue::Renewal(a), SortValue::Renewal(b)) => {
                a.unwrap_or(NaiveDate::MAX).cmp(&b.unwrap_or(NaiveDate::MAX))
            }
            (SortValue::Name(a), SortValue::Name(b)) => a.cmp(b),
            (SortValue::Health(a), SortValue::Health(b)) => {
                a.unwrap_or(f64::INFINITY).total_cmp(&b.unwrap_or(f64::INFINITY))
            }
            _ => Ordering::Equal,
        }
    }
}

/// A position in an account listing: just after the account `id`, whose sort value was
/// `key`. Opaque to clients: [`Cursor::encode`] makes the text they pass back and
/// [`Cursor::decode`] reads it (URL-safe base64 of JSON: nothing to escape in a URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    key: SortValue,
    id: String,
    reverse: bool,
}

impl Cursor {
    pub fn encode(&self) -> String {
        use base64::Engine;
        // Plain data (strings, numbers, dates): serialising it cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor [`Cursor::encode`] made; anything else is refused.
    pub fn decode(text: &str) -> Result<Cursor, ServiceError> {
        use base64::Engine;
        let bad = || ServiceError::InvalidCursor("it is not one a listing returned".into());
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        serde_json::from_slice(&json).map_err(|_| bad())
    }
}

/// Which account [`show`] shows, and as of when.
#[derive(Debug, Clone)]
pub struct ShowQuery {
    pub id: String,
    /// How many days of events, back from `now`.
    pub events_days: u32,
    pub now: DateTime<Utc>,
    /// The config's zone: "today" for an account that names none.
    pub timezone: Tz,
}

/// A failed evaluation the last pass left on the account (retried at the next pass).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// A playbook id, or `(health)`.
    pub playbook: String,
    pub at: DateTime<Utc>,
    pub error: String,
}

/// One account as a CSM reviews it: fields, health and its trend, contacts, recent events,
/// and the timeline — every playbook decision, what it did, and where its mail stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDetail {
    pub account: Account,
    /// The latest point on or before the account's today.
    pub health: Option<HealthPoint>,
    /// The latest point on or before 30 days before `health`'s: the trend.
    pub health_30_days_before: Option<HealthPoint>,
    /// Each category `health` scored without inputs → the inputs it reads that the
    /// account lacks now, in the order it reads them (empty without a model to ask).
    pub health_no_inputs: BTreeMap<String, Vec<String>>,
    pub contacts: Vec<Contact>,
    /// Events of the last `events_days` days, oldest first.
    pub events: Vec<Event>,
    /// The ledger: playbook decisions, oldest first.
    pub timeline: Vec<LedgerEntry>,
    /// Evaluations that failed at the last pass.
    pub errors: Vec<Failure>,
    /// The account's outbox entries (emails, webhooks, task escalations).
    pub deliveries: Vec<OutboxEntry>,
    pub tasks: Vec<Task>,
    /// The account's today (its zone, else the config's): what relative dates count from.
    pub today: NaiveDate,
}

impl AccountDetail {
    /// The deliveries a decision on the timeline made.
    pub fn deliveries_of<'a>(&'a self, entry: &'a LedgerEntry) -> impl Iterator<Item = &'a OutboxEntry> + 'a {
        self.deliveries.iter().filter(move |d| d.playbook == entry.playbook && d.occurrence == entry.occurrence)
    }

    /// Escalation emails of overdue tasks (no decision on the timeline made them).
    pub fn escalations(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.deliveries.iter().filter(|d| d.occurrence.starts_with("task:"))
    }
}

/// One account. `model` (the health model in force, when it loads) names the inputs a
/// category scored without had missing.
pub fn show(store: &Store, query: &ShowQuery, model: Option<&HealthModel>) -> Result<AccountDetail, ServiceError> {
    let account = store.account(&query.id)?.ok_or_else(|| ServiceError::not_found("account", &query.id))?;
    let contacts = store.contacts_of(&account.id)?;
    let since = query.now - Duration::days(i64::from(query.events_days));
    let events =
        store.events_of(&account.id, since, query.now + Duration::seconds(1)).collect::<Result<Vec<_>, _>>()?;
    let timeline = store.ledger_of(&account.id)?;
    let errors = store
        .account_state(&account.id)?
        .failures()
        .map(|(what, f)| Failure { playbook: what.to_string(), at: f.at, error: f.message.clone() })
        .collect();
    let deliveries = store.outbox_of(&account.id)?;
    let tasks = store.tasks_of(&account.id)?;
    let today = query.now.with_timezone(&account.timezone.unwrap_or(query.timezone)).date_naive();
    let health = store.health_on_or_before(&account.id, today)?;
    let health_30_days_before = match &health {
        Some(p) => store.health_on_or_before(&account.id, p.date - Duration::days(30))?,
        None => None,
    };
    let health_no_inputs = health
        .iter()
        .flat_map(|p| p.components.iter().filter(|(_, s)| s.is_none()))
        .map(|(category, _)| {
            let missing = model.map(|m| m.missing_inputs(category, &account)).unwrap_or_default();
            (category.clone(), missing.iter().map(|i| i.path.clone()).collect())
        })
        .collect();
    Ok(AccountDetail {
        account,
        health,
        health_30_days_before,
        health_no_inputs,
        contacts,
        events,
        timeline,
        errors,
        deliveries,
        tasks,
        today,
    })
}
