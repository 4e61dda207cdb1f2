//! Email: an outbox entry becomes an RFC 5322 message (lettre) and goes out over SMTP or,
//! with no SMTP server configured, into an `.eml` file.
//!
//! Invariants:
//! - Headers are built by lettre from values Keel has already put on one line (the
//!   subject) or parsed (addresses): account data can never start a header of its own.
//! - `Message-ID` is `<key@domain>` with the entry's stable key, so a repeat after a crash
//!   mid-send is recognisable; an `.eml` file is named by the key, so a repeat overwrites
//!   the same file instead of adding one.
//! - Customer-facing mail carries `List-Unsubscribe` (the signed link) and
//!   `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

use super::retry::Failure;
use super::smtp::{SmtpError, SmtpPool};
use crate::config::{EmailConfig, EmailTransport};

/// How long opening a connection (TCP, TLS, EHLO, AUTH), and then sending one message on
/// it, may each take before the attempt counts as timed out (and is retried later).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An email ready to go.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub key: &'a str,
    pub unsubscribe_url: Option<&'a str>,
    pub account: &'a str,
    pub playbook: &'a str,
    /// The `Date:` header: the deliverer's clock (a pinned demo clock too), never the
    /// machine's behind its back.
    pub date: chrono::DateTime<chrono::Utc>,
}

pub enum Mailer {
    Files { dir: PathBuf },
    Smtp { pool: SmtpPool, server: String },
}

impl Mailer {
    /// The transport the config asks for. SMTP credentials come from the environment
    /// (the config only accepts them as `${VAR}`).
    pub fn new(config: &EmailConfig, pool_size: usize) -> anyhow::Result<Mailer> {
        match &config.transport {
            EmailTransport::Files { dir } => Ok(Mailer::Files { dir: dir.clone() }),
            EmailTransport::Smtp(smtp) => Ok(Mailer::Smtp {
                pool: SmtpPool::new(smtp, pool_size, SMTP_TIMEOUT)?,
                server: format!("{}:{}", smtp.host, smtp.port),
            }),
        }
    }

    /// Where mail goes, for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Mailer::Files { dir } => format!(".eml files in {}", dir.display()),
            Mailer::Smtp { server, .. } => format!("SMTP {server}"),
        }
    }

    /// Sends one message; returns what the server said (or the file written).
    pub async fn send(&self, from: &Mailbox, m: &Outgoing<'_>) -> Result<String, Failure> {
        let message = build(from, m)?;
        match self {
            Mailer::Files { dir } => {
                let dir = dir.clone();
                let name = format!("{}.eml", m.key);
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_eml(&dir, &name, &bytes))
                    .await
                    .map_err(|e| Failure::transient(format!("writing the .eml file: {e}")))?
            }
            Mailer::Smtp { pool, server } => {
                let bytes = message.formatted();
                match pool.send(message.envelope(), &bytes).await {
                    Ok(r) => Ok(format!("{server} answered {}", r.code())),
                    Err(e) => Err(classify(&e, server)),
                }
            }
        }
    }
}

/// SMTP 4xx: try again later; 5xx: refused for good (550/551/553 on an address: a bounce);
/// no reply at all (connection refused, timeout, TLS): try again later.
fn classify(e: &SmtpError, server: &str) -> Failure {
    let text = format!("SMTP {server}: {e}");
    let SmtpError::Smtp(e) = e else { return Failure::transient(text) };
    match e.status() {
        Some(code) if e.is_permanent() => {
            let c = code.to_string();
            Failure::Permanent { error: text, bounce: matches!(c.as_str(), "550" | "551" | "553") }
        }
        Some(_) => Failure::transient(text),
        None => Failure::transient(text),
    }
}

/// Writes via a temporary file and a rename, so a reader never sees half a message.
fn write_eml(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<String, Failure> {
    let fail = |e: std::io::Error| Failure::transient(format!("writing {}: {e}", dir.join(name).display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, dir.join(name)).map_err(fail)?;
    Ok(format!("written to {}", dir.join(name).display()))
}

/// The message as sent. A bad address is a permanent failure (it will not get better).
pub fn build(from: &Mailbox, m: &Outgoing<'_>) -> Result<Message, Failure> {
    let to: Mailbox =
        m.to.parse().map_err(|e| Failure::permanent(format!("invalid recipient address {:?}: {e}", m.to)))?;
    let domain = from.email.domain().to_string();
    let mut b = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(m.subject)
        .message_id(Some(format!("<{}@{domain}>", m.key)))
        .date(SystemTime::from(m.date))
        .raw_header(raw("X-Keel-Account", m.account))
        .raw_header(raw("X-Keel-Playbook", m.playbook));
    if let Some(url) = m.unsubscribe_url {
        b = b
            .raw_header(raw("List-Unsubscribe", &format!("<{url}>")))
            .raw_header(raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"));
    }
    let built = match m.html {
        Some(html) => b.multipart(MultiPart::alternative_plain_html(m.text.to_string(), html.to_string())),
        None => b.singlepart(SinglePart::plain(m.text.to_string())),
    };
    built.map_err(|e| Failure::permanent(format!("cannot build the message: {e}")))
}

/// The configured From: address.
pub fn from_mailbox(config: &EmailConfig) -> anyhow::Result<Mailbox> {
    config.from.parse().map_err(|e| anyhow::anyhow!("email.from {:?} is not an address: {e}", config.from))
}

/// A header lettre has no type for, its value on one line (lettre encodes the rest): a
/// line break must never reach the header block.
fn raw(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.replace(['\r', '\n'], " "))
}
