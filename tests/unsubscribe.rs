//! The unsubscribe link of a customer email, end to end: `keel run` sends the email (an
//! `.eml` file), the test takes the URL from its `List-Unsubscribe` header as it is and
//! POSTs `List-Unsubscribe=One-Click` to it as a mail provider does (RFC 8058), and the next
//! email to that address is recorded as suppressed. Opening the link (GET) only shows a
//! page; a changed, truncated, foreign or missing token is a 400 and suppresses nothing.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use serde_json::Value;

use crate::api::Api;
use crate::util::Workspace;

/// A day after `util::NOW` (a Wednesday, 09:00 UTC): the playbook fires again.
const NEXT_DAY: &str = "2026-12-02T09:00:00Z";

const OUTREACH: &str = "id: outreach\nname: Outreach\ntrigger:\n  condition: account.id == \"A-1\"\n  fire: while_true\n  every: 1d\nactions:\n  - email: { to: contacts, template: hello }\n";

const HELLO: &str =
    "Subject: A note for {{ recipient.name }}\nHi {{ recipient.name }},\n\nHow is {{ account.name }} doing?\n";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Acme with two contacts, a daily customer email to them, and the API on `port`, which
/// the emails' unsubscribe links name (no `email.unsubscribe_url`).
fn workspace(port: u16) -> Workspace {
    let ws = Workspace::new(&format!(
        "timezone: UTC\ndata_dir: .keel\nevaluation:\n  schedule: \"*/2 * * * * *\"\napi:\n  listen: 127.0.0.1:{port}\nemail:\n  from: \"Keel CS <keel@cs.example>\"\nsync:\n  accounts: {{ file: accounts.csv }}\n  contacts: {{ file: contacts.csv }}\n"
    ));
    ws.write("accounts.csv", "id,name,owner\nA-1,Acme,csm@cs.example\n");
    ws.write("contacts.csv", "id,account_id,email,name\nC-1,A-1,ana@acme.example,Ana\nC-2,A-1,bo@acme.example,Bo\n");
    ws.write("playbooks/outreach.yaml", OUTREACH);
    ws.write("playbooks/templates/hello.txt", HELLO);
    ws.keel(&["sync"]).ok();
    ws
}

/// The `.eml` files in the mail folder, as text.
fn mail(ws: &Workspace) -> Vec<String> {
    std::fs::read_dir(ws.path(".keel/mail"))
        .map(|d| d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
        .unwrap_or_default()
}

fn wait_for_mail(ws: &Workspace, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mail = mail(ws);
        if mail.len() >= count {
            return mail;
        }
        assert!(Instant::now() < deadline, "waited 60 s for {count} emails, have {}", mail.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A header of a message, unfolded; `None` when absent.
fn header(message: &str, name: &str) -> Option<String> {
    let message = message.replace("\r\n", "\n");
    let head = message.split("\n\n").next().unwrap();
    let mut value: Option<String> = None;
    for line in head.lines() {
        match (&mut value, line.starts_with([' ', '\t'])) {
            (Some(v), true) => v.push_str(line.trim_start()),
            (Some(_), false) => break,
            (None, false) => {
                if let Some((n, v)) = line.split_once(':') {
                    if n.eq_ignore_ascii_case(name) {
                        value = Some(v.trim().to_string());
                    }
                }
            }
            (None, true) => {}
        }
    }
    value
}

/// The link of the email to `to`, from its `List-Unsubscribe: <…>` header.
fn link(mail: &[String], to: &str) -> String {
    let message = mail
        .iter()
        .find(|m| header(m, "To").is_some_and(|t| t.contains(to)))
        .unwrap_or_else(|| panic!("no email to {to} among {}", mail.len()));
    assert_eq!(header(message, "List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let list = header(message, "List-Unsubscribe").expect("customer mail has List-Unsubscribe");
    list.strip_prefix('<').and_then(|l| l.strip_suffix('>')).unwrap_or_else(|| panic!("{list}")).to_string()
}

/// A POST as a mail provider sends RFC 8058's one-click unsubscribe.
fn one_click(client: &Client, url: &str) -> Response {
    client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .unwrap()
}

fn assert_page(response: &Response) {
    let h = response.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
}

/// `keel contacts suppressed --format json`: the addresses on the list.
fn suppressed(ws: &Workspace) -> Vec<String> {
    let list: Value = serde_json::from_str(&ws.keel(&["contacts", "suppressed", "--format", "json"]).ok()).unwrap();
    list.as_array().unwrap().iter().map(|s| s["email"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_one_click_post_to_the_link_in_an_email_unsubscribes_and_the_next_email_is_suppressed() {
    let port = free_port();
    let ws = workspace(port);
    let mut api = Api::start_on_config_listen(&ws);
    assert_eq!(api.base, format!("http://127.0.0.1:{port}"));
    let sent = wait_for_mail(&ws, 2);
    let ana = link(&sent, "ana@acme.example");
    let bo = link(&sent, "bo@acme.example");
    assert!(ana.starts_with(&format!("http://127.0.0.1:{port}/unsubscribe?token=")), "{ana}");
    let client = Client::new();

    // Opening the link (as a mail scanner does) shows the page and its button, nothing more.
    let page = client.get(&bo).send().unwrap();
    assert_eq!(page.status(), 200);
    assert_page(&page);
    let html = page.text().unwrap();
    assert!(html.contains("<b>bo@acme.example</b>") && html.contains("<form method=\"post\">"), "{html}");
    assert!(html.contains("name=\"List-Unsubscribe\" value=\"One-Click\""), "the form posts what RFC 8058 does");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external resource: {html}");

    // A token changed by one character, or cut short: 400, nothing suppressed.
    let (base, token) = bo.split_once("token=").unwrap();
    let mut changed: Vec<char> = token.chars().collect();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == 'A' { 'B' } else { 'A' };
    let changed: String = changed.into_iter().collect();
    let truncated = &token[..token.len() - 4];
    let foreign =
        keel::decide::unsubscribe::Unsubscribe::new(b"another store's key".to_vec(), "x").token("bo@acme.example");
    for bad in [changed.as_str(), truncated, &token[..token.find('.').unwrap()], foreign.as_str()] {
        let url = format!("{base}token={bad}");
        for response in [one_click(&client, &url), client.get(&url).send().unwrap()] {
            assert_eq!(response.status(), 400, "{url}");
            assert_page(&response);
            assert!(response.text().unwrap().contains("This link does not work"));
        }
    }
    let missing = one_click(&client, base);
    assert_eq!(missing.status(), 400);
    assert!(missing.text().unwrap().contains("no token"));
    // A body past a few KB is refused before it is read.
    let big = client.post(&bo).body(vec![b'x'; 16 * 1024]).send().unwrap();
    assert_eq!(big.status(), 413);

    // The provider's one-click POST to the link exactly as the header gives it.
    let done = one_click(&client, &ana);
    assert_eq!(done.status(), 200);
    assert_page(&done);
    assert!(done.text().unwrap().contains("You are unsubscribed"));
    let again = one_click(&client, &ana);
    assert_eq!(again.status(), 200, "a second POST is answered the same");

    let (status, _) = crate::run::terminate(&mut api.child);
    assert_eq!(status.code(), Some(0));
    assert_eq!(suppressed(&ws), ["ana@acme.example"], "only the one-click POST suppressed anyone");
    let list = ws.keel(&["contacts", "suppressed"]).ok();
    assert!(list.contains("unsubscribe link"), "{list}");

    // The next day the playbook fires again: ana's email is suppressed, bo's goes out.
    // (A daily schedule from here: a day of missed 2-second ticks takes a while to count.)
    let config = std::fs::read_to_string(ws.path("keel.yaml")).unwrap();
    ws.write("keel.yaml", &config.replace(r#"schedule: "*/2 * * * * *""#, r#"schedule: "0 9 * * *""#));
    ws.keel_at(NEXT_DAY, &["run", "--once"]).ok();
    let outbox: Value = serde_json::from_str(&ws.keel(&["outbox", "list", "--all", "--format", "json"]).ok()).unwrap();
    let states: Vec<(String, String, String)> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let to = e["payload"]["email"]["to"].as_str().unwrap().to_string();
            (e["created"].as_str().unwrap()[..10].to_string(), to, e["status"]["state"].as_str().unwrap().to_string())
        })
        .collect();
    let day = |d: &str, to: &str| states.iter().find(|(c, t, _)| c == d && t == to).map(|(_, _, s)| s.as_str());
    assert_eq!(day("2026-12-01", "ana@acme.example"), Some("delivered"), "{states:?}");
    assert_eq!(day("2026-12-02", "ana@acme.example"), Some("suppressed"), "{states:?}");
    assert_eq!(day("2026-12-02", "bo@acme.example"), Some("delivered"), "{states:?}");
    assert_eq!(mail(&ws).len(), 3, "bo's second email only");
}

/// A store that never sent mail has no key: no token verifies, not even one signed with
/// the throwaway key a dry run shows links with, and refusing one creates no key.
#[test]
fn before_any_mail_was_sent_every_token_is_refused_and_nothing_is_written() {
    let ws = Workspace::new("timezone: UTC\ndata_dir: .keel\n");
    let mut api = Api::start(&ws);
    let client = Client::new();
    let dry_run_key = b"a dry run's throwaway key".to_vec();
    let token = keel::decide::unsubscribe::Unsubscribe::new(dry_run_key, "x").token("pat@customer.example");
    let url = api.url(&format!("/unsubscribe?token={token}"));
    assert_eq!(client.get(&url).send().unwrap().status(), 400);
    assert_eq!(one_click(&client, &url).status(), 400);
    crate::run::terminate(&mut api.child);
    let store = ws.store();
    assert_eq!(store.existing_unsubscribe_key().unwrap(), None, "refusing a token writes no key");
    assert_eq!(store.suppressions().count(), 0);
}
