//! The unsubscribe link of every customer-facing email: `GET /unsubscribe?token=…` shows a
//! confirmation page, `POST /unsubscribe?token=…` (the page's button, or a mail provider's
//! RFC 8058 one-click `List-Unsubscribe=One-Click`) puts the address on the suppression
//! list through [`contacts::unsubscribe`], as `keel contacts unsubscribe --token` does.
//!
//! Invariants:
//! - No API token: the signed token in the link is the credential, verified against this
//!   store's key ([`crate::decide::unsubscribe`]). A missing, truncated, changed or foreign
//!   token is a 400 page and writes nothing.
//! - GET never unsubscribes (mail scanners and link previews follow links); it writes
//!   nothing, not even the store's key. POST is idempotent: a second one is a 200 too.
//! - Pages are self-contained HTML (no scripts, no external resources) under a CSP that
//!   allows nothing but inline style and a form posting back here; the one value shown (the
//!   address) is HTML-escaped, so account data never becomes markup. Pages are never
//!   cached (`no-store`): one is about a single reader's address.
//! - The body is read up to [`MAX_BODY`] (a few KB; more is 413); store work runs in
//!   `spawn_blocking`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Shared;
use crate::services::contacts::{self, UnsubscribeBy};
use crate::services::ServiceError;

/// The most a POST body may hold: RFC 8058's is `List-Unsubscribe=One-Click` (26 bytes).
pub const MAX_BODY: usize = 4 * 1024;

/// The route, with no credential layer; [`super::router`] merges it.
pub fn routes() -> Router<Shared> {
    Router::new().route("/unsubscribe", get(confirm).post(unsubscribe)).layer(DefaultBodyLimit::max(MAX_BODY))
}

/// The confirmation page: who would be unsubscribed, and the button that does it.
async fn confirm(State(state): State<Shared>, uri: Uri) -> Response {
    let token = match token(&uri) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let checked =
        tokio::task::spawn_blocking(move || contacts::token_address(&state.store, &state.config(), &token)).await;
    match checked {
        Ok(Ok(email)) => page(
            StatusCode::OK,
            "Unsubscribe?",
            &format!(
                "<p>Stop customer emails to <b>{}</b>?</p>\n\
                 <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
                 <button type=\"submit\">Unsubscribe</button></form>",
                escape(&email)
            ),
        ),
        Ok(Err(e)) => failure(e),
        Err(e) => joined(e),
    }
}

/// Unsubscribes the token's address. The body (RFC 8058's `List-Unsubscribe=One-Click`,
/// or the page's form, which sends the same) is read but not required: the token is the
/// credential, and a provider that posts something else still means "unsubscribe".
async fn unsubscribe(State(state): State<Shared>, uri: Uri, _body: Bytes) -> Response {
    let token = match token(&uri) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let done = tokio::task::spawn_blocking(move || {
        contacts::unsubscribe(&state.store, &state.config(), &UnsubscribeBy::Token(token), state.clock.now())
    })
    .await;
    match done {
        Ok(Ok(u)) => page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!("<p>You are unsubscribed: no more customer emails go to <b>{}</b>.</p>", escape(&u.email)),
        ),
        Ok(Err(e)) => failure(e),
        Err(e) => joined(e),
    }
}

/// The link's `token`, exactly once. Other query parameters are let be: an
/// `email.unsubscribe_url` may carry its own (`?src=mail`) and its links must keep working.
#[allow(clippy::result_large_err)] // a Response is the error: built once, returned at once
fn token(uri: &Uri) -> Result<String, Response> {
    let bad =
        |why: &str| Err(page(StatusCode::BAD_REQUEST, "This link does not work", &format!("<p>{}</p>", escape(why))));
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return bad("This unsubscribe link cannot be read: copy the whole link from the email.");
    };
    let mut tokens = pairs.into_iter().filter(|(n, _)| n == "token").map(|(_, v)| v);
    match (tokens.next(), tokens.next()) {
        (Some(t), None) if !t.trim().is_empty() => Ok(t),
        (Some(_), Some(_)) => bad("This unsubscribe link has two tokens: copy the link from the email as it is."),
        _ => bad("This unsubscribe link has no token: copy the whole link from the email."),
    }
}

/// A service's refusal as a page: a bad token is the reader's 400, anything else Keel's 500
/// (logged in full, answered in general words).
fn failure(e: ServiceError) -> Response {
    match e {
        ServiceError::Token(t) => {
            page(StatusCode::BAD_REQUEST, "This link does not work", &format!("<p>{}</p>", escape(&t.to_string())))
        }
        other => {
            tracing::error!(error = %other, "an unsubscribe request failed");
            internal()
        }
    }
}

fn internal() -> Response {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "<p>Keel could not handle this request; please try the link again later.</p>",
    )
}

/// A blocking task that did not finish (it panicked): Keel's own failure.
fn joined(e: tokio::task::JoinError) -> Response {
    tracing::error!(error = %e, "an unsubscribe task failed");
    internal()
}

/// A complete page; `body` is markup this module wrote, every value in it escaped.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         button{{font-size:1rem;padding:.5rem 1.25rem}}</style></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Text as HTML text or attribute value: nothing in it can open or close markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_cannot_open_or_close_markup() {
        assert_eq!(escape(r#"<b onclick="x">'a'&</b>"#), "&lt;b onclick=&quot;x&quot;&gt;&#39;a&#39;&amp;&lt;/b&gt;");
    }

    #[test]
    fn a_link_needs_exactly_one_token_and_other_parameters_are_let_be() {
        let uri = |q: &str| q.parse::<Uri>().unwrap();
        assert_eq!(token(&uri("/unsubscribe?src=mail&token=abc.def")).unwrap(), "abc.def");
        for q in ["/unsubscribe", "/unsubscribe?token=", "/unsubscribe?token=a&token=b"] {
            assert_eq!(token(&uri(q)).unwrap_err().status(), StatusCode::BAD_REQUEST, "{q}");
        }
    }
}
