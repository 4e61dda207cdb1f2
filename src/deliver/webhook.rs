//! Webhooks: an outbox entry becomes one HTTP request (reqwest, rustls).
//!
//! Every request carries `Idempotency-Key: <key>` (stable for the occurrence, so a
//! receiver can drop a repeat) and, when the playbook names a `secret_env`, a signature a
//! receiver checks before trusting the body:
//!
//! ```text
//! X-Keel-Signature: sha256=<hex of HMAC-SHA256(secret, raw request body)>
//! ```
//!
//! Receiver side: compute the HMAC over the body bytes exactly as received, hex-encode it,
//! compare with the header in constant time (the README shows it in Python).
//!
//! `${VAR}` in the URL and header values is read from Keel's environment when sending,
//! never stored: a Slack webhook URL or an API token stays out of git and out of the
//! store.
//!
//! 2xx is delivered; 429 and 5xx (and 408) are retried, `Retry-After` honoured; any other
//! status is refused for good (dead); timeouts and connection errors are retried.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use sha2::Sha256;

use super::retry::{retry_after, Failure};
use crate::model::Webhook;

pub const SIGNATURE_HEADER: &str = "X-Keel-Signature";

/// `sha256=<hex>` over `body` with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("sha256={}", tag.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(32)
        .build()?)
}

/// Sends one webhook; returns the receiver's status line.
pub async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, Failure> {
    let method = reqwest::Method::from_bytes(hook.method.as_bytes())
        .map_err(|_| Failure::permanent(format!("invalid method {:?}", hook.method)))?;
    let env = |s: &str| {
        crate::lang::env::expand(s, |n| std::env::var(n).ok().filter(|v| !v.is_empty())).map_err(|e| {
            Failure::permanent(format!("{e}; set it in Keel's environment and `keel outbox retry` this entry"))
        })
    };
    let url = env(&hook.url)?;
    let url = reqwest::Url::parse(&url).map_err(|e| Failure::permanent(format!("invalid URL {:?}: {e}", hook.url)))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &hook.headers {
        let value = &env(value)?;
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Failure::permanent(format!("invalid header name {name:?}")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| Failure::permanent(format!("header {name} has a value HTTP cannot carry: {value:?}")))?;
        headers.insert(n, v);
    }
    headers.insert("idempotency-key", HeaderValue::from_str(key).expect("keys are hex"));
    let body = hook.body.clone().unwrap_or_default();
    if hook.body.is_some() && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(var) = &hook.secret_env {
        let secret = std::env::var(var).ok().filter(|s| !s.is_empty()).ok_or_else(|| {
            Failure::permanent(format!(
                "the signing secret {var} is not set in Keel's environment; set it and `keel outbox retry` this entry"
            ))
        })?;
        let sig = signature(secret.as_bytes(), body.as_bytes());
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&sig).expect("hex is a valid header value"));
    }
    let mut request = client.request(method, url).headers(headers).timeout(Duration::from_millis(hook.timeout_ms));
    if hook.body.is_some() {
        request = request.body(body);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(Failure::transient(format!("no answer within {} ms", hook.timeout_ms)));
        }
        Err(e) => return Err(Failure::transient(format!("request failed: {}", error_chain(&e)))),
    };
    let status = response.status();
    let after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| retry_after(v, now));
    if status.is_success() {
        return Ok(format!("HTTP {status}"));
    }
    let text = response.text().await.unwrap_or_default();
    let said = text.chars().take(200).collect::<String>();
    let error = format!("HTTP {status}: {}", said.trim());
    if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
        Err(Failure::Transient { error, after })
    } else {
        Err(Failure::Permanent { error, bounce: false })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
