//! Deliver: the outbox worked off — emails ([`email`]), webhooks ([`webhook`]) — with
//! the inbox protections customers are owed ([`protect`], [`unsubscribe`]) and retries
//! ([`retry`]). Tasks need no delivery: a firing writes them straight into the store;
//! their overdue escalations are emails queued here.
//!
//! [`Deliverer::deliver_due`] takes the pending entries whose time has come (earliest
//! first), and works them concurrently, at most `email_concurrency` emails and
//! `webhook_concurrency` webhooks at a time. Each entry ends its turn in one of:
//! delivered; retrying (`next_at` moved by backoff or `Retry-After`); deferred (quiet
//! hours, a frequency cap: `next_at` moved, not an attempt); suppressed; dropped; dead.
//!
//! Customer-facing email, in this order: the suppression list (unsubscribed, bounced,
//! do-not-contact: recorded as suppressed, never sent) → quiet hours and business days in
//! the recipient's zone (deferred to the next window, never dropped) → the frequency cap
//! (deferred or dropped, as the playbook says) → send.
//!
//! Invariants:
//! - At-least-once: an entry leaves `pending` only after the receiver accepted it (or
//!   refused it for good). A crash between sending and recording repeats the send, with
//!   the same `Message-ID` / `Idempotency-Key`.
//! - A digest is sent only after the pass that decided it completed (its tick is marked),
//!   so it lists every account of that pass, once.
//! - `next_at` of an entry left pending is always later than now: one call never loops.
//! - A frequency-cap place is taken by a send attempt once it holds its connection slot,
//!   and settled (confirmed or released) after the attempt's outcome is recorded; places
//!   a crash or stop left held are settled by [`Deliverer::new`] at the next start.

pub mod email;
pub mod forecast;
pub mod protect;
pub mod retry;
mod smtp;
pub mod webhook;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use lettre::message::Mailbox;
use minijinja::{context, Value};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, DeliveryConfig, Protections};
use crate::lang::render::{render_email, RenderError, RenderedEmail};
use crate::lang::Loaded;
use crate::model::{delivery_key, Audience, CapPolicy, Email, OutboxEntry, Payload, Status, Task};
use crate::store::{CapCheck, Store, StoreError};
use retry::Failure;

/// Entries taken from the outbox at a time.
const BATCH: usize = 256;
/// How long a digest waits before looking again whether its pass has completed.
const DIGEST_WAIT: StdDuration = StdDuration::from_secs(5);
/// How often finished entries past the retention limit are removed.
const PURGE_EVERY: StdDuration = StdDuration::from_secs(3600);

/// What one delivery round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Outbox entries delivered (each account's part of a digest is one).
    pub delivered: u64,
    /// Emails and webhook calls that went out: a digest of 40 accounts is one.
    pub messages: u64,
    /// Failed this time, to be tried again.
    pub retrying: u64,
    /// Moved to a later window (quiet hours, business days, a frequency cap).
    pub deferred: u64,
    pub suppressed: u64,
    pub dropped: u64,
    pub dead: u64,
    /// Overdue tasks whose escalation email was queued.
    pub escalated: u64,
}

impl DeliveryReport {
    fn add(&mut self, o: Outcome, n: u64) {
        let slot = match o {
            Outcome::Delivered => &mut self.delivered,
            Outcome::Retrying => &mut self.retrying,
            Outcome::Deferred => &mut self.deferred,
            Outcome::Suppressed => &mut self.suppressed,
            Outcome::Dropped => &mut self.dropped,
            Outcome::Dead => &mut self.dead,
            Outcome::Waiting => return,
        };
        *slot += n;
    }

    pub fn is_empty(&self) -> bool {
        *self == DeliveryReport::default()
    }
}

/// Totals since start, for `/metrics`: each outbox entry's outcome by channel, emails and
/// webhook calls sent, escalations queued. Shared with the API (an `Arc`), added to once
/// per entry's turn (atomics; no lock).
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub email: OutcomeCounters,
    pub webhook: OutcomeCounters,
    /// Emails and webhook calls that went out: a digest of 40 accounts is one.
    pub messages: AtomicU64,
    pub escalated: AtomicU64,
}

/// Outbox entries of one channel by the outcome of their turn.
#[derive(Debug, Default)]
pub struct OutcomeCounters {
    pub delivered: AtomicU64,
    pub retrying: AtomicU64,
    pub deferred: AtomicU64,
    pub suppressed: AtomicU64,
    pub dropped: AtomicU64,
    pub dead: AtomicU64,
}

/// The channels, as the `channel` label says them.
pub const CHANNELS: [&str; 2] = ["email", "webhook"];
/// The outcomes, as the `outcome` label says them.
pub const OUTCOMES: [&str; 6] = ["delivered", "retrying", "deferred", "suppressed", "dropped", "dead"];

impl OutcomeCounters {
    /// The counts in [`OUTCOMES`] order.
    pub fn values(&self) -> [u64; 6] {
        [&self.delivered, &self.retrying, &self.deferred, &self.suppressed, &self.dropped, &self.dead]
            .map(|c| c.load(Ordering::Relaxed))
    }

    fn add(&self, o: Outcome, n: u64) {
        let slot = match o {
            Outcome::Delivered => &self.delivered,
            Outcome::Retrying => &self.retrying,
            Outcome::Deferred => &self.deferred,
            Outcome::Suppressed => &self.suppressed,
            Outcome::Dropped => &self.dropped,
            Outcome::Dead => &self.dead,
            Outcome::Waiting => return,
        };
        slot.fetch_add(n, Ordering::Relaxed);
    }
}

impl DeliveryCounters {
    /// The counters of `channel` ([`CHANNELS`]).
    pub fn channel(&self, channel: &str) -> Option<&OutcomeCounters> {
        match channel {
            "email" => Some(&self.email),
            "webhook" => Some(&self.webhook),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Retrying,
    Deferred,
    Suppressed,
    Dropped,
    Dead,
    /// A digest whose pass has not completed yet.
    Waiting,
}

pub struct Deliverer {
    store: Store,
    config: DeliveryConfig,
    protections: Protections,
    timezone: Tz,
    from: Mailbox,
    mailer: email::Mailer,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The playbooks in force: digests are rendered when sent. Swapped on reload.
    loaded: RwLock<Arc<Loaded>>,
    email_slots: Semaphore,
    webhook_slots: Semaphore,
    /// Shared with the API's `/metrics`.
    pub counters: Arc<DeliveryCounters>,
}

impl Deliverer {
    /// A deliverer over `store`. Call it once per process, before any delivery: it
    /// reclaims the frequency-cap marks held by attempts a crash or a stop interrupted.
    pub fn new(config: &Config, store: Store, loaded: Arc<Loaded>, clock: Arc<dyn Clock>) -> anyhow::Result<Deliverer> {
        let d = &config.delivery;
        let (released, confirmed) = store.reclaim_sends()?;
        if released + confirmed > 0 {
            tracing::info!(
                released,
                confirmed,
                "frequency-cap places held by sends a stop or crash interrupted: settled from their recorded outcome"
            );
        }
        Ok(Deliverer {
            store,
            config: d.clone(),
            protections: config.email.protections.clone(),
            timezone: config.timezone,
            from: email::from_mailbox(&config.email)?,
            mailer: email::Mailer::new(&config.email, d.email_concurrency)?,
            http: webhook::client()?,
            clock,
            loaded: RwLock::new(loaded),
            email_slots: Semaphore::new(d.email_concurrency),
            webhook_slots: Semaphore::new(d.webhook_concurrency),
            counters: Arc::default(),
        })
    }

    /// Puts a reloaded set of playbooks in force for digests sent from now on.
    pub fn set_loaded(&self, loaded: Arc<Loaded>) {
        *self.loaded.write().expect("loaded lock") = loaded;
    }

    /// Where email goes (SMTP server or folder), for logs and reports.
    pub fn mail_destination(&self) -> String {
        self.mailer.describe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Delivers everything due now: overdue tasks' escalations first, then pending outbox
    /// entries, batch after batch until none is due. Stops taking new entries when `stop`
    /// is cancelled; entries already being sent finish.
    pub async fn deliver_due(self: &Arc<Self>, stop: &CancellationToken) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        let now = self.clock.now();
        for task in self.store.due_escalations(now)? {
            let queued = u64::from(self.escalate(task, now)?);
            report.escalated += queued;
            self.counters.escalated.fetch_add(queued, Ordering::Relaxed);
        }
        loop {
            if stop.is_cancelled() {
                break;
            }
            let now = self.clock.now();
            let batch = self.store.outbox_due(now, BATCH)?;
            let full = batch.len() == BATCH;
            let mut groups = BTreeSet::new();
            let mut work = tokio::task::JoinSet::new();
            for entry in batch {
                // A digest's items go out as one email: the first item due takes the group.
                if let Payload::Email(Email { digest: Some(d), .. }) = &entry.payload {
                    if !groups.insert(d.group.clone()) {
                        continue;
                    }
                }
                let me = self.clone();
                let email = matches!(entry.payload, Payload::Email(_));
                work.spawn(async move { me.process(entry).await.map(|(o, n)| (o, n, email)) });
            }
            while let Some(done) = work.join_next().await {
                let (outcome, n, email) = done.expect("a delivery task panicked")?;
                report.add(outcome, n);
                // Counted as each entry's turn ends: a scrape during a long round sees it.
                let channel = if email { &self.counters.email } else { &self.counters.webhook };
                channel.add(outcome, n);
                if outcome == Outcome::Delivered {
                    report.messages += 1;
                    self.counters.messages.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !full {
                break;
            }
        }
        Ok(report)
    }

    /// Works off the outbox until `stop`: after each round it sleeps until the next entry
    /// is due (at most a second) or `wake` says a pass queued new work.
    pub async fn serve(self: Arc<Self>, stop: CancellationToken, wake: Arc<Notify>) {
        let mut last_purge: Option<std::time::Instant> = None;
        loop {
            if stop.is_cancelled() {
                break;
            }
            match self.deliver_due(&stop).await {
                Ok(r) if !r.is_empty() => tracing::info!(
                    delivered = r.delivered,
                    messages = r.messages,
                    retrying = r.retrying,
                    deferred = r.deferred,
                    suppressed = r.suppressed,
                    dropped = r.dropped,
                    dead = r.dead,
                    escalated = r.escalated,
                    "delivery round"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "delivery round failed; trying again shortly"),
            }
            if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                last_purge = Some(std::time::Instant::now());
                match self.store.purge_outbox(self.clock.now() - self.config.retention) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "finished outbox entries past the retention limit removed"),
                    Err(e) => tracing::warn!(error = %e, "outbox retention sweep failed"),
                }
            }
            let now = self.clock.now();
            let wait = match self.store.next_outbox_due() {
                Ok(Some(t)) => (t - now).to_std().unwrap_or_default().min(crate::clock::POLL),
                _ => crate::clock::POLL,
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait.max(StdDuration::from_millis(20))) => {}
            }
        }
    }

    /// One entry's turn (a digest: its whole group). Returns what happened and to how
    /// many entries.
    async fn process(&self, mut entry: OutboxEntry) -> Result<(Outcome, u64), StoreError> {
        let now = self.clock.now();
        match entry.payload.clone() {
            Payload::Webhook(hook) => {
                // The slot is held until the result is durable: at most `webhook_concurrency`
                // requests are ever sent but unrecorded.
                let _slot = self.webhook_slots.acquire().await.expect("semaphore open");
                let result = webhook::send(&self.http, &hook, &entry.key, now).await;
                let mut entries = vec![entry];
                let outcome = self.settle(&mut entries, result, now, None)?;
                self.store.durable().await?;
                Ok((outcome, 1))
            }
            Payload::Email(m) => {
                let mut entries = vec![];
                let (rendered, key) = match &m.digest {
                    None => {
                        let r =
                            RenderedEmail { subject: m.subject.clone(), text: m.text.clone(), html: m.html.clone() };
                        (Ok(r), entry.key.clone())
                    }
                    Some(d) => {
                        if self.store.last_tick(&entry.playbook)?.is_none_or(|t| t < d.tick) {
                            entry.next_at = now + Duration::from_std(DIGEST_WAIT).expect("small");
                            self.store.update_outbox(&[entry])?;
                            return Ok((Outcome::Waiting, 1));
                        }
                        let mut items = self.store.digest_items(&d.group)?;
                        if !items.iter().any(|i| i.id == entry.id) {
                            items.push(entry.clone());
                        }
                        let r = self.render_digest(&entry, &m, &items, now);
                        entries = items;
                        (r, delivery_key(&["digest", &d.group]))
                    }
                };
                if entries.is_empty() {
                    entries.push(entry);
                }
                let n = entries.len() as u64;
                let rendered = match rendered {
                    Ok(r) => r,
                    Err(error) => {
                        let outcome =
                            self.settle(&mut entries, Err(Failure::permanent(error.to_string())), now, None)?;
                        return Ok((outcome, n));
                    }
                };
                if let Audience::Customer { contact, timezone } = &m.audience {
                    if let Some(reason) = suppression(&self.store, &m.to, contact, &entries[0].account)? {
                        for e in &mut entries {
                            e.status = Status::Suppressed { at: now, reason: reason.clone() };
                            e.note(now, format!("suppressed: {reason}"));
                        }
                        self.store.update_outbox(&entries)?;
                        return Ok((Outcome::Suppressed, n));
                    }
                    let tz: Tz = timezone.parse().unwrap_or(self.timezone);
                    if let Some(at) = protect::next_window(&self.protections, tz, now) {
                        let local = at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z");
                        let why = protect::why_not(&self.protections, tz, now);
                        return self.defer(entries, at, now, format!("deferred: {why}; next window {local}"));
                    }
                }
                // Held until the result is durable (below): a crash repeats at most
                // `email_concurrency` messages, each with its Message-ID.
                let _slot = self.email_slots.acquire().await.expect("semaphore open");
                // The cap mark is taken only now, by this attempt, once it has its
                // connection slot: an email waiting for a slot holds no place under the
                // cap, and at most `email_concurrency` marks are ever held at once.
                let now = self.clock.now();
                let mut reserved = false;
                if let (Audience::Customer { .. }, Some(cap)) = (&m.audience, self.protections.cap) {
                    match self.store.reserve_send(&m.to, entries[0].id, now, cap.max, cap.per)? {
                        CapCheck::Reserved => reserved = true,
                        CapCheck::Full { until } => {
                            let days = cap.per.num_days();
                            let why = format!("frequency cap: {} emails per {days}d to {} reached", cap.max, m.to);
                            if m.on_cap == CapPolicy::Drop {
                                for e in &mut entries {
                                    e.status = Status::Dropped { at: now, reason: why.clone() };
                                    e.note(now, format!("dropped: {why}"));
                                }
                                self.store.update_outbox(&entries)?;
                                return Ok((Outcome::Dropped, n));
                            }
                            return self.defer(
                                entries,
                                until,
                                now,
                                format!("deferred: {why}; next send fits at {until}"),
                            );
                        }
                    }
                }
                // The playbook's own daily cap of customer emails (`guard.daily_email_cap`),
                // counted per day in the config's zone; the rest wait for the next day.
                if let (Audience::Customer { .. }, Some(cap)) = (&m.audience, self.daily_cap(&entries[0].playbook)) {
                    let day = now.with_timezone(&self.timezone).date_naive();
                    if !self.store.take_daily_place(&entries[0].playbook, day, cap)? {
                        if reserved {
                            // The frequency-cap place was not used: give it back.
                            self.store.settle_send(&m.to, entries[0].id, false)?;
                        }
                        let next = crate::decide::time::start_of_day(self.timezone, day.succ_opt().unwrap_or(day));
                        let why =
                            format!("daily cap: {cap} customer emails a day from {} reached", entries[0].playbook);
                        let local = next.with_timezone(&self.timezone).format("%a %Y-%m-%d %H:%M %Z");
                        return self.defer(entries, next, now, format!("deferred: {why}; next day starts {local}"));
                    }
                }
                let outgoing = email::Outgoing {
                    to: &m.to,
                    subject: &rendered.subject,
                    text: &rendered.text,
                    html: rendered.html.as_deref(),
                    key: &key,
                    unsubscribe_url: m.unsubscribe_url.as_deref(),
                    account: &entries[0].account,
                    playbook: &entries[0].playbook,
                    date: now,
                };
                let result = self.mailer.send(&self.from, &outgoing).await;
                let delivered = result.is_ok();
                let customer = matches!(m.audience, Audience::Customer { .. }).then_some(m.to.as_str());
                let outcome = self.settle(&mut entries, result, now, customer)?;
                // After the outcome is recorded: a crash between the two leaves the mark
                // held, and the next start settles it from the recorded outcome.
                if reserved {
                    self.store.settle_send(&m.to, entries[0].id, delivered)?;
                }
                // Durable before the slot is free: not everything since the store's last
                // periodic flush is repeated after a crash, only the messages in flight.
                self.store.durable().await?;
                Ok((outcome, n))
            }
        }
    }

    /// The playbook's `guard.daily_email_cap`, in the playbooks in force.
    fn daily_cap(&self, playbook: &str) -> Option<u32> {
        let loaded = self.loaded.read().expect("loaded lock").clone();
        match &loaded.set.get(playbook)?.guard {
            crate::lang::guard::PlaybookGuard::Limits(l) => l.daily_email_cap.map(|c| c.get()),
            _ => None,
        }
    }

    fn defer(
        &self,
        mut entries: Vec<OutboxEntry>,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        why: String,
    ) -> Result<(Outcome, u64), StoreError> {
        let at = at.max(now + Duration::seconds(1));
        for e in &mut entries {
            e.next_at = at;
            // One note per reason: a contact over the cap for days gets one line, not one per round.
            if e.last_note() != why {
                e.note(now, why.clone());
            }
        }
        self.store.update_outbox(&entries)?;
        Ok((Outcome::Deferred, entries.len() as u64))
    }

    /// Records an attempt's result on the entries it was for.
    fn settle(
        &self,
        entries: &mut [OutboxEntry],
        result: Result<String, Failure>,
        now: DateTime<Utc>,
        customer: Option<&str>,
    ) -> Result<Outcome, StoreError> {
        let outcome = match &result {
            Ok(_) => Outcome::Delivered,
            Err(Failure::Permanent { .. }) => Outcome::Dead,
            Err(Failure::Transient { .. }) if entries[0].attempts + 1 >= self.config.max_attempts => Outcome::Dead,
            Err(Failure::Transient { .. }) => Outcome::Retrying,
        };
        for e in entries.iter_mut() {
            e.attempts += 1;
            match &result {
                Ok(said) => {
                    e.status = Status::Delivered { at: now };
                    e.note(now, format!("delivered (attempt {}): {said}", e.attempts));
                }
                Err(f) if outcome == Outcome::Dead => {
                    let error = match f {
                        Failure::Transient { error, .. } => format!("gave up after {} attempts: {error}", e.attempts),
                        Failure::Permanent { error, .. } => error.clone(),
                    };
                    e.status = Status::Dead { at: now, error: error.clone() };
                    e.note(now, format!("dead: {error}"));
                }
                Err(f) => {
                    let after = match f {
                        Failure::Transient { after: Some(a), .. } => *a,
                        _ => retry::backoff(self.config.backoff, self.config.max_backoff, e.attempts, &e.key),
                    };
                    e.next_at =
                        now + Duration::from_std(after.max(StdDuration::from_secs(1))).unwrap_or(Duration::hours(1));
                    e.note(
                        now,
                        format!(
                            "attempt {} failed: {}; next at {}",
                            e.attempts,
                            f.error(),
                            e.next_at.format("%Y-%m-%d %H:%M:%S UTC")
                        ),
                    );
                }
            }
        }
        self.store.update_outbox(entries)?;
        if let Err(f) = &result {
            let e = &entries[0];
            tracing::warn!(id = e.id, playbook = %e.playbook, account = %e.account, target = %e.target(), attempts = e.attempts, error = %f.error(), "delivery failed");
            if let (Failure::Permanent { bounce: true, error }, Some(to)) = (f, customer) {
                let new = self.store.suppress(to, "bounced", error, now)?;
                if new {
                    tracing::warn!(email = %to, "hard bounce: address suppressed for customer mail");
                }
            }
        }
        Ok(outcome)
    }

    /// The one email of a digest group, from its items (accounts by name).
    fn render_digest(
        &self,
        leader: &OutboxEntry,
        m: &Email,
        items: &[OutboxEntry],
        now: DateTime<Utc>,
    ) -> Result<RenderedEmail, RenderError> {
        let mut parts: Vec<serde_json::Value> = items
            .iter()
            .filter_map(|i| match &i.payload {
                Payload::Email(Email { digest: Some(d), .. }) => Some(d.item.clone()),
                _ => None,
            })
            .collect();
        parts.sort_by(|a, b| {
            let name =
                |v: &serde_json::Value| v.pointer("/account/name").and_then(|n| n.as_str()).unwrap_or("").to_string();
            name(a).cmp(&name(b))
        });
        let loaded = self.loaded.read().expect("loaded lock").clone();
        let today = now.with_timezone(&self.timezone).date_naive();
        let ctx = digest_context(&loaded.set, &leader.playbook, &parts, today, &m.to, m.unsubscribe_url.as_deref());
        render_email(&loaded.set, &m.template, &ctx)
    }

    /// Queues an overdue task's escalation email and marks the task escalated, together;
    /// false when the task was closed or snoozed meanwhile (nothing queued).
    fn escalate(&self, task: Task, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(esc) = task.escalation.as_ref() else { return Ok(false) };
        let to = esc.to.clone();
        let tz = self.timezone;
        let due =
            task.due.map_or("no due date".into(), |d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string());
        let text = format!(
            "The task \"{}\" for account {} is overdue.\n\nOwner:    {}\nDue:      {due}\nPriority: {}\nPlaybook: {}\nTask:     {} (`keel tasks done {}` when it is done)\n{}\n— Keel\n",
            task.title,
            task.account,
            task.owner,
            task.priority,
            task.playbook,
            task.id,
            task.id,
            task.description.as_deref().map(|d| format!("\n{d}\n")).unwrap_or_default(),
        );
        let subject = crate::lang::render::one_line(&format!("Overdue task: {}", task.title));
        let entry = OutboxEntry::queued(
            task.account.clone(),
            task.playbook.clone(),
            format!("task:{}/escalation", task.id),
            delivery_key(&["task", &task.id.to_string(), "escalation"]),
            Payload::Email(Email::internal(to, "(task escalation)", subject, text)),
            now,
        );
        let queued = self.store.escalate(task.id, now, entry)?;
        if queued {
            tracing::info!(task = task.id, account = %task.account, owner = %task.owner, "task overdue: escalation queued");
        }
        Ok(queued)
    }
}

/// An account marked do-not-contact in the CRM (`fields.do_not_contact`: true, "true",
/// "yes", 1).
pub fn do_not_contact(a: &crate::model::Account) -> bool {
    match a.fields.get("do_not_contact") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(serde_json::Value::String(s)) => matches!(s.trim().to_lowercase().as_str(), "true" | "yes" | "1" | "y"),
        _ => false,
    }
}

/// Why customer mail to this address must not go out, if it must not: the suppression
/// list, the contact's own opt-out, the account's do-not-contact.
pub fn suppression(store: &Store, to: &str, contact: &str, account: &str) -> Result<Option<String>, StoreError> {
    suppression_with(store, to, contact, store.account(account)?.as_ref())
}

/// [`suppression`] with the account record given (a dry run's, with the firing's updates
/// applied).
pub fn suppression_with(
    store: &Store,
    to: &str,
    contact: &str,
    account: Option<&crate::model::Account>,
) -> Result<Option<String>, StoreError> {
    if let Some(s) = store.suppression(to)? {
        return Ok(Some(format!("{} ({}, since {})", s.reason, s.source, s.at.format("%Y-%m-%d"))));
    }
    if store.contact(contact)?.is_some_and(|c| c.unsubscribed) {
        return Ok(Some("unsubscribed (the contact record says so)".into()));
    }
    if account.is_some_and(do_not_contact) {
        return Ok(Some("do-not-contact (the account's fields.do_not_contact)".into()));
    }
    Ok(None)
}

/// What a digest's template sees: its parts (`accounts`, sorted as the caller gives them),
/// the first one as `account`/`health`, and the recipient. The deliverer renders each
/// digest from this, and `keel preview` a digest of one account.
pub fn digest_context(
    set: &crate::lang::playbook::PlaybookSet,
    playbook: &str,
    parts: &[serde_json::Value],
    today: chrono::NaiveDate,
    to: &str,
    unsubscribe_url: Option<&str>,
) -> Value {
    let name = set.playbooks.iter().find(|p| p.id == playbook).map_or(playbook.to_string(), |p| p.name.clone());
    let first = parts.first().cloned().unwrap_or_default();
    context! {
        accounts => Value::from_serialize(parts),
        account => Value::from_serialize(first.get("account")),
        health => Value::from_serialize(first.get("health")),
        contacts => Value::from(Vec::<Value>::new()),
        playbook => context! { id => playbook.to_string(), name => name },
        today => today.to_string(),
        event => Value::from(()),
        recipient => context! { email => to.to_string() },
        unsubscribe_url => unsubscribe_url.unwrap_or_default().to_string(),
    }
}
