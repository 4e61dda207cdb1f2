//! The outbox: every email and webhook a firing decided, from the moment it was decided
//! until it is delivered, suppressed, dropped or dead.
//!
//! Invariants:
//! - An entry is written in the same store transaction as the ledger entry of the firing
//!   that decided it, so a crash never loses a decided action and never decides it twice.
//! - One entry per action and recipient, retried alone: a failing recipient never makes
//!   another one receive its mail twice.
//! - [`OutboxEntry::key`] is stable for the occurrence (account, playbook, occurrence,
//!   action, recipient): it becomes the email's `Message-ID` and the webhook's
//!   `Idempotency-Key`, so a receiver can drop the rare repeat after a crash mid-send.
//! - Finished entries (delivered, suppressed, dropped) are kept for the account timeline
//!   until the retention limit; dead entries are kept until retried.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Attempts kept in an entry's history (the attempt count stays exact).
pub const KEEP_HISTORY: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Short and unique in this store: what `keel outbox retry ID` takes.
    pub id: u64,
    pub account: String,
    pub playbook: String,
    /// The ledger occurrence that decided it (a task escalation: `task:<id>/escalation`).
    pub occurrence: String,
    /// Stable delivery id derived from the occurrence (see [`delivery_key`]).
    pub key: String,
    pub created: DateTime<Utc>,
    pub payload: Payload,
    pub status: Status,
    /// When a pending entry is next tried (not before).
    pub next_at: DateTime<Utc>,
    /// Delivery attempts made (deferrals by quiet hours or caps are not attempts).
    #[serde(default)]
    pub attempts: u32,
    /// What happened, newest last (at most [`KEEP_HISTORY`]).
    #[serde(default)]
    pub history: Vec<Note>,
}

impl OutboxEntry {
    /// An entry to send now, not yet numbered (the store gives it its id when it
    /// writes it).
    pub fn queued(
        account: String,
        playbook: String,
        occurrence: String,
        key: String,
        payload: Payload,
        now: DateTime<Utc>,
    ) -> OutboxEntry {
        OutboxEntry {
            id: 0,
            account,
            playbook,
            occurrence,
            key,
            created: now,
            payload,
            status: Status::Pending,
            next_at: now,
            attempts: 0,
            history: Vec::new(),
        }
    }

    pub fn channel(&self) -> Channel {
        match self.payload {
            Payload::Email(_) => Channel::Email,
            Payload::Webhook(_) => Channel::Webhook,
        }
    }

    /// Who or where it goes: the email address, or the webhook's method and URL.
    pub fn target(&self) -> String {
        match &self.payload {
            Payload::Email(e) => e.to.clone(),
            Payload::Webhook(w) => format!("{} {}", w.method, w.url),
        }
    }

    /// A short line on what it is (the subject, or the webhook target).
    pub fn summary(&self) -> String {
        match &self.payload {
            Payload::Email(e) if e.digest.is_some() => format!("digest {}", e.template),
            Payload::Email(e) => e.subject.clone(),
            Payload::Webhook(w) => format!("{} {}", w.method, w.url),
        }
    }

    /// The state in the words `run --once`'s delivery summary uses: a pending entry is
    /// `deferred` (quiet hours, a cap), `retrying` (an attempt failed) or `pending` (not
    /// tried yet); the others are their status.
    pub fn state(&self) -> &'static str {
        match self.status {
            Status::Pending if self.last_note().starts_with("deferred") => "deferred",
            Status::Pending if self.attempts > 0 => "retrying",
            _ => self.status.name(),
        }
    }

    pub fn note(&mut self, at: DateTime<Utc>, text: impl Into<String>) {
        self.history.push(Note { at, text: text.into() });
        if self.history.len() > KEEP_HISTORY {
            let extra = self.history.len() - KEEP_HISTORY;
            self.history.drain(..extra);
        }
    }

    /// The last thing that happened to it, in words.
    pub fn last_note(&self) -> &str {
        self.history.last().map_or("", |n| n.text.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    /// Waiting for `next_at`: new, retrying, or deferred (quiet hours, a frequency cap).
    Pending,
    Delivered {
        at: DateTime<Utc>,
    },
    /// Never sent: the recipient is unsubscribed, bounced, or the account is do-not-contact.
    Suppressed {
        at: DateTime<Utc>,
        reason: String,
    },
    /// Never sent: over the frequency cap, and the playbook said `drop`.
    Dropped {
        at: DateTime<Utc>,
        reason: String,
    },
    /// The last attempt failed, or the receiver refused for good. Kept; `keel outbox retry`.
    Dead {
        at: DateTime<Utc>,
        error: String,
    },
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered { .. } => "delivered",
            Status::Suppressed { .. } => "suppressed",
            Status::Dropped { .. } => "dropped",
            Status::Dead { .. } => "dead",
        }
    }

    /// When it reached a final state (for retention); pending and dead entries stay.
    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Status::Delivered { at } | Status::Suppressed { at, .. } | Status::Dropped { at, .. } => Some(*at),
            Status::Pending | Status::Dead { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub at: DateTime<Utc>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    Email(Email),
    Webhook(Webhook),
}

/// An email, rendered when it was decided (a digest is rendered when it is sent, from the
/// items of every account in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub audience: Audience,
    /// The template it was rendered from (the digest's template).
    pub template: String,
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Customer-facing mail: the recipient's one-click unsubscribe link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe_url: Option<String>,
    /// Part of a digest: sent as one email per group with every item in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestItem>,
    /// What to do when the recipient is over the frequency cap.
    #[serde(default)]
    pub on_cap: CapPolicy,
}

impl Email {
    /// Keel's own mail to one of its users (an overdue task's escalation, a guard's
    /// hold): plain text, none of the customer protections.
    pub fn internal(to: String, template: &str, subject: String, text: String) -> Email {
        Email {
            to,
            audience: Audience::Internal,
            template: template.to_string(),
            subject,
            text,
            html: None,
            unsubscribe_url: None,
            digest: None,
            on_cap: CapPolicy::Defer,
        }
    }
}

/// Who an email is for: customers get the inbox protections, Keel's own users do not need
/// them (but get the same correctness: once, with a stable Message-ID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Audience {
    /// A customer contact: suppression list, frequency caps, quiet hours and business
    /// days in `timezone`, an unsubscribe link.
    Customer { contact: String, timezone: String },
    /// A CSM, a manager: exempt from caps and quiet hours.
    Internal,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapPolicy {
    /// Send when the cap allows again.
    #[default]
    Defer,
    /// Do not send; recorded as dropped.
    Drop,
}

/// One account's part of a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestItem {
    /// Items with the same group are one email: playbook, tick and recipient.
    pub group: String,
    /// The tick of the pass that decided it: the digest waits until that pass completed,
    /// so it lists every account of the pass.
    pub tick: DateTime<Utc>,
    /// What the template sees as one element of `accounts` (`account`, `health`).
    pub item: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The environment variable holding the HMAC-SHA256 secret (read when sending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    pub timeout_ms: u64,
}

/// The stable delivery id of an action for one recipient: 32 hex digits of SHA-256 over
/// the parts that make the occurrence and the action. The same decision always gets the
/// same key; no two decisions share one.
pub fn delivery_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_key_is_stable_and_tells_parts_apart() {
        let a = delivery_key(&["A1", "red", "episode:1", "0", "ana@x.com"]);
        assert_eq!(a, delivery_key(&["A1", "red", "episode:1", "0", "ana@x.com"]));
        assert_eq!(a.len(), 32);
        assert_ne!(a, delivery_key(&["A1", "red", "episode:2", "0", "ana@x.com"]));
        // Separators matter: ("ab", "c") is not ("a", "bc").
        assert_ne!(delivery_key(&["ab", "c"]), delivery_key(&["a", "bc"]));
    }
}
