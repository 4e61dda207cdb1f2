//! Contacts' email preferences: the suppression list. An address on it receives no
//! customer-facing mail — [`unsubscribe`] adds one (typed by hand, or from the signed token
//! of an unsubscribe link), [`suppressed`] lists them.
//!
//! Invariants: addresses are kept trimmed and lower-case; the first reason an address was
//! suppressed stands (unsubscribing again changes nothing); a token is verified against
//! this store's key before anything is written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::config::Config;
use crate::decide::unsubscribe::{TokenError, Unsubscribe};
use crate::store::{Store, Suppression};

/// Who is unsubscribing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeBy {
    /// An address, by hand (`keel contacts unsubscribe EMAIL`).
    Address(String),
    /// The token of an unsubscribe link (`…/unsubscribe?token=…`).
    Token(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribed {
    /// The address as it is kept (trimmed, lower-case).
    pub email: String,
    /// False when it was on the suppression list already.
    pub added: bool,
}

/// Puts an address on the suppression list as `unsubscribed`.
pub fn unsubscribe(
    store: &Store,
    config: &Config,
    by: &UnsubscribeBy,
    now: DateTime<Utc>,
) -> Result<Unsubscribed, ServiceError> {
    let (email, source) = match by {
        UnsubscribeBy::Address(e) => {
            if !e.contains('@') {
                return Err(ServiceError::InvalidArgument(format!("{e:?} is not an email address")));
            }
            (e.clone(), "keel contacts unsubscribe")
        }
        UnsubscribeBy::Token(t) => (token_address(store, config, t)?, "unsubscribe link"),
    };
    let added = store.suppress(&email, "unsubscribed", source, now)?;
    store.flush()?;
    Ok(Unsubscribed { email: email.trim().to_lowercase(), added })
}

/// The address an unsubscribe link's token was issued for, if this Keel issued it; writes
/// nothing (the page a link opens shows it before the reader confirms). A store with no
/// key yet (and no `email.unsubscribe_secret`) issued no token: every token is refused.
pub fn token_address(store: &Store, config: &Config, token: &str) -> Result<String, ServiceError> {
    match Unsubscribe::for_verifying(config, store)? {
        Some(u) => Ok(u.verify(token)?),
        None => Err(TokenError::BadSignature.into()),
    }
}

/// Every suppressed address, in address order.
pub fn suppressed(store: &Store) -> Result<Vec<Suppression>, ServiceError> {
    Ok(store.suppressions().collect::<Result<_, _>>()?)
}
