//! Unsubscribe tokens: the link in every customer-facing email and its `List-Unsubscribe`
//! header carry a token that names the address and proves Keel issued it.
//!
//! A token is `base64url(email) "." base64url(HMAC-SHA256(key, "unsubscribe\0" email)[..16])`:
//! unguessable without the key (128 bits of MAC), checked in constant time, and it needs
//! no lookup table, so links in mail sent years ago still work. The key is
//! `email.unsubscribe_secret` (from the environment) or, without one, 32 random bytes Keel
//! makes once and keeps in the store. The HTTP API's `/unsubscribe` route
//! serves the link; it and `keel contacts unsubscribe --token` use the same [`Unsubscribe::verify`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::store::{Store, StoreError};

const MAC_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this unsubscribe link is incomplete or was changed: copy the whole link from the email (or unsubscribe by address)")]
    Malformed,
    #[error("this unsubscribe token was not issued by this Keel (its signature does not match)")]
    BadSignature,
}

#[derive(Clone)]
pub struct Unsubscribe {
    key: Vec<u8>,
    base_url: String,
}

impl std::fmt::Debug for Unsubscribe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsubscribe").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl Unsubscribe {
    pub fn new(key: Vec<u8>, base_url: impl Into<String>) -> Unsubscribe {
        Unsubscribe { key, base_url: base_url.into() }
    }

    /// The configured secret, or the store's own key.
    pub fn for_store(config: &Config, store: &Store) -> Result<Unsubscribe, StoreError> {
        let key = match &config.email.unsubscribe_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => store.unsubscribe_key()?,
        };
        Ok(Unsubscribe::new(key, config.email.unsubscribe_url.clone()))
    }

    /// [`Self::for_store`] without writing: a store that has no key yet (nothing was
    /// ever sent from it) gets a throwaway one, so a dry run can show links without
    /// creating the key the first real send will.
    pub fn for_reading(config: &Config, store: &Store) -> Result<Unsubscribe, StoreError> {
        let key = match &config.email.unsubscribe_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => match store.existing_unsubscribe_key()? {
                Some(k) => k,
                None => b"a dry run's throwaway key".to_vec(),
            },
        };
        Ok(Unsubscribe::new(key, config.email.unsubscribe_url.clone()))
    }

    /// [`Self::for_store`] for checking a token, without writing: a store that has no key
    /// yet never issued a token, so there is nothing to verify against (`None`) — unlike
    /// [`Self::for_reading`], whose throwaway key is public and must never verify a link.
    pub fn for_verifying(config: &Config, store: &Store) -> Result<Option<Unsubscribe>, StoreError> {
        let key = match &config.email.unsubscribe_secret {
            Some(s) => Some(s.expose().as_bytes().to_vec()),
            None => store.existing_unsubscribe_key()?,
        };
        Ok(key.map(|k| Unsubscribe::new(k, config.email.unsubscribe_url.clone())))
    }

    fn mac(&self, email: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(b"unsubscribe\0");
        mac.update(email.trim().to_lowercase().as_bytes());
        mac
    }

    pub fn token(&self, email: &str) -> String {
        let tag = self.mac(email).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(email.trim().to_lowercase()), URL_SAFE_NO_PAD.encode(&tag[..MAC_BYTES]))
    }

    /// The one-click link for an address.
    pub fn url(&self, email: &str) -> String {
        let sep = if self.base_url.contains('?') { '&' } else { '?' };
        format!("{}{sep}token={}", self.base_url, self.token(email))
    }

    /// The address a token was issued for, if Keel issued it.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        let (email, tag) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let email = URL_SAFE_NO_PAD.decode(email).map_err(|_| TokenError::Malformed)?;
        let email = String::from_utf8(email).map_err(|_| TokenError::Malformed)?;
        // Keel issues tokens for the trimmed, lower-case address only: another spelling
        // of it (which the MAC, over the normal form, would accept) was not issued.
        if email != email.trim().to_lowercase() {
            return Err(TokenError::Malformed);
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
        if tag.len() != MAC_BYTES {
            return Err(TokenError::BadSignature);
        }
        self.mac(&email).verify_truncated_left(&tag).map_err(|_| TokenError::BadSignature)?;
        Ok(email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_address_and_only_its_key_verifies_it() {
        let u = Unsubscribe::new(b"k1".to_vec(), "https://cs.example.com/unsubscribe");
        let t = u.token("Ana@Example.com");
        assert_eq!(u.verify(&t).unwrap(), "ana@example.com");
        assert!(u.url("ana@example.com").starts_with("https://cs.example.com/unsubscribe?token="));
        let other = Unsubscribe::new(b"k2".to_vec(), "x");
        assert_eq!(other.verify(&t), Err(TokenError::BadSignature));
        // Another address with the first one's signature is refused.
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode("bob@example.com"));
        assert_eq!(u.verify(&forged), Err(TokenError::BadSignature));
        assert_eq!(u.verify("nonsense"), Err(TokenError::Malformed));
        // The issued token's signature under another spelling of the same address.
        let respelled = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(" ANA@Example.com"));
        assert_eq!(u.verify(&respelled), Err(TokenError::Malformed));
    }
}
