//! Who may call what: bearer tokens with scopes (`api.token`, `api.tokens`) and Segment
//! write keys (HTTP Basic, the key as the username, on `/v1/*`).
//!
//! Invariants: a credential is compared in constant time, over SHA-256 digests so that
//! its length does not leak either; an empty credential (an unset variable) is never
//! stored, so it can never match; 401 means "who are you?" (no or an unknown credential),
//! 403 "you may not" (a known token without the route's scope).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, Shared};
use crate::config::{ApiConfig, Scope};

type Hash = [u8; 32];

fn hash(secret: &[u8]) -> Hash {
    Sha256::digest(secret).into()
}

/// The credentials the API accepts, as digests.
pub struct Credentials {
    tokens: Vec<(Hash, Vec<Scope>)>,
    write_keys: Vec<Hash>,
}

impl Credentials {
    pub fn new(api: &ApiConfig) -> Credentials {
        Credentials {
            tokens: api.usable_tokens().map(|(s, scopes)| (hash(s.expose().as_bytes()), scopes.to_vec())).collect(),
            write_keys: api.write_keys.iter().map(|k| hash(k.expose().as_bytes())).collect(),
        }
    }

    /// The scopes of the bearer token in `headers`. Every configured token is compared,
    /// whichever matches, so timing does not tell which one did.
    fn scopes(&self, headers: &HeaderMap) -> Result<&[Scope], ApiError> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("an API token is needed: send `Authorization: Bearer <token>`"))?;
        let given = hash(given.as_bytes());
        let mut found = None;
        for (h, scopes) in &self.tokens {
            if bool::from(h.ct_eq(&given)) {
                found = Some(scopes.as_slice());
            }
        }
        found.ok_or_else(|| unauthorized("the API token is not one `api.token`/`api.tokens` configures"))
    }

    /// Allows the request when its token has `scope` (or `admin`).
    pub fn require(&self, headers: &HeaderMap, scope: Scope) -> Result<(), ApiError> {
        let scopes = self.scopes(headers)?;
        if scopes.contains(&scope) || scopes.contains(&Scope::Admin) {
            return Ok(());
        }
        Err(ApiError::new(StatusCode::FORBIDDEN, format!("this API token lacks the `{}` scope", scope.name())))
    }

    /// Allows a Segment request: HTTP Basic with a configured write key as the username
    /// (Segment's SDKs send `key:` with an empty password).
    pub fn require_write_key(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let user = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .map(|pair| pair.split_once(':').map_or(pair.clone(), |(u, _)| u.to_string()))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                unauthorized_basic("a Segment write key is needed: HTTP Basic with the key as the username")
            })?;
        let given = hash(user.as_bytes());
        let mut ok = false;
        for h in &self.write_keys {
            ok |= bool::from(h.ct_eq(&given));
        }
        if ok {
            Ok(())
        } else {
            Err(unauthorized_basic("the write key is not one `api.write_keys` configures"))
        }
    }
}

impl Credentials {
    /// Whether `key` is a configured write key: for a Segment body's `writeKey`, which
    /// older SDKs send instead of HTTP Basic. Compared like [`Self::require_write_key`].
    pub fn is_write_key(&self, key: &str) -> bool {
        let given = hash(key.as_bytes());
        let mut ok = false;
        for h in &self.write_keys {
            ok |= bool::from(h.ct_eq(&given));
        }
        ok && !key.is_empty()
    }
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, why)
}

fn unauthorized_basic(why: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, why)
}

/// `router`'s routes need a bearer token with `scope`.
pub fn scoped(router: Router<Shared>, state: &Shared, scope: Scope) -> Router<Shared> {
    let state = state.clone();
    router.route_layer(middleware::from_fn_with_state(
        state,
        move |State(s): State<Shared>, req: Request, next: Next| async move {
            match s.credentials.require(req.headers(), scope) {
                Ok(()) => next.run(req).await,
                Err(e) => challenge(e, "Bearer"),
            }
        },
    ))
}

/// `router`'s routes need a Segment write key.
pub fn write_keyed(router: Router<Shared>, state: &Shared) -> Router<Shared> {
    let state = state.clone();
    router.route_layer(middleware::from_fn_with_state(
        state,
        |State(s): State<Shared>, req: Request, next: Next| async move {
            match s.credentials.require_write_key(req.headers()) {
                Ok(()) => next.run(req).await,
                Err(e) => challenge(e, "Basic realm=\"keel\""),
            }
        },
    ))
}

/// A 401 says which scheme to use (RFC 9110).
fn challenge(e: ApiError, scheme: &'static str) -> Response {
    let unauthorized = e.status == StatusCode::UNAUTHORIZED;
    let mut response = e.into_response();
    if unauthorized {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
    }
    response
}
