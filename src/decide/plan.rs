//! From decided actions to work: a firing's actions rendered for its account into outbox
//! entries (emails, webhooks), task requests and field updates, which [`crate::store::Store::commit`]
//! writes in the same transaction as the firing's ledger entry.
//!
//! Everything is rendered *now*, at decision time, so what is delivered is what was
//! decided — a later playbook edit does not change mail already in the outbox. Digests
//! are the exception: each account's part is kept, and the one email is rendered when it
//! is sent, from all of them.
//!
//! A template that fails, a missing address, a body that is not JSON: the entry is still
//! written, as dead, with the reason (a task opens with the failed part as written and
//! the reason in its description, starting [`RENDER_FAILED`]) — the decision is never silently lost, and
//! `keel outbox list --dead` shows what to fix.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::Value;

use crate::decide::unsubscribe::Unsubscribe;
use crate::lang::playbook::{Action, Playbook, PlaybookSet, Recipients};
use crate::lang::render::{for_recipient, one_line, render_email, render_one};
use crate::lang::view::AccountView;
use crate::model::{
    delivery_key, update_value, Audience, DigestItem, Email, Escalation, Event, FieldUpdate, OutboxEntry, Payload,
    Status, TaskRequest, Webhook,
};

/// How the description of a task whose templates failed for its account starts: the
/// task opens with the failed parts as written, and `keel run --once` counts these.
pub const RENDER_FAILED: &str = "Keel could not render this task for its account: ";

/// What planning needs besides the playbooks.
pub struct Planner<'a> {
    pub set: &'a PlaybookSet,
    pub unsubscribe: &'a Unsubscribe,
    /// The zone of recipients whose contact and account name none.
    pub timezone: Tz,
}

/// One firing's work.
#[derive(Debug, Default)]
pub struct Work {
    pub outbox: Vec<OutboxEntry>,
    pub tasks: Vec<TaskRequest>,
    /// Tasks opened with a part whose template failed ([`RENDER_FAILED`]).
    pub failed_tasks: u64,
    /// Field updates, applied with the firing's ledger entry.
    pub updates: Vec<FieldUpdate>,
    /// Why the firing cannot be planned: an update whose value does not fit its field
    /// (a metric that rendered to text). Unlike a task or an email, a half-right field
    /// write cannot be marked dead for someone to fix, so the whole firing is an
    /// evaluation failure for the account and nothing of it is applied.
    pub failure: Option<String>,
}

impl Work {
    /// Outbox entries decided dead: a template that failed for the account.
    pub fn dead(&self) -> u64 {
        self.outbox.iter().filter(|e| matches!(e.status, Status::Dead { .. })).count() as u64
    }
}

/// The firing an action belongs to.
pub struct Firing<'a> {
    pub playbook: &'a Playbook,
    pub view: &'a AccountView<'a>,
    pub event: Option<&'a Event>,
    pub occurrence: &'a str,
    pub now: DateTime<Utc>,
    pub date: NaiveDate,
    /// The pass's tick: a digest groups the accounts of one tick.
    pub tick: DateTime<Utc>,
}

/// One recipient of an email action, as planning resolves it.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The address (may be empty: a `to` template that rendered empty).
    pub to: String,
    pub audience: Audience,
    /// What the template sees as `recipient`: the contact, or `{ email }` for internal mail.
    pub context: Value,
    /// Customer mail only: the address's unsubscribe link.
    pub unsubscribe_url: Option<String>,
}

impl Planner<'_> {
    /// Who an email action's `to` sends to for this account: each contact with an address
    /// (customer mail, with its zone and unsubscribe link; the protections drop the
    /// unsubscribed ones later), or the rendered address (internal mail). This is the one
    /// implementation: planning and `keel preview` both call it. `Err`: the `to` template
    /// failed, in words.
    pub fn recipients(&self, to: &Recipients, view: &AccountView, ctx: &Value) -> Result<Vec<Recipient>, String> {
        Ok(match to {
            Recipients::Contacts => view
                .contacts
                .iter()
                .filter_map(|c| {
                    let email = c.email.as_deref()?.trim();
                    let tz = c.timezone.or(view.account.timezone).unwrap_or(self.timezone).name().to_string();
                    Some(Recipient {
                        to: email.to_string(),
                        audience: Audience::Customer { contact: c.id.clone(), timezone: tz },
                        context: Value::from_serialize(c),
                        unsubscribe_url: Some(self.unsubscribe.url(email)),
                    })
                })
                .collect(),
            Recipients::Address(t) => {
                let to = one_line(&render_one(self.set, t, ctx).map_err(|e| format!("the `to` template failed: {e}"))?);
                let context = Value::from_serialize(serde_json::json!({ "email": to }));
                vec![Recipient { to, audience: Audience::Internal, context, unsubscribe_url: None }]
            }
        })
    }

    /// The work of a step's actions for one firing.
    /// `ctx` is the firing's template context ([`crate::lang::render::context`]), built once per firing.
    pub fn plan(&self, actions: &[Action], f: &Firing, ctx: &Value) -> Work {
        let mut work = Work::default();
        for (i, action) in actions.iter().enumerate() {
            self.action(i, action, f, ctx, &mut work);
        }
        work
    }

    fn action(&self, index: usize, action: &Action, f: &Firing, ctx: &Value, work: &mut Work) {
        let account = &f.view.account.id;
        let index_s = index.to_string();
        let entry = |recipient: &str, payload: Payload, status: Status| OutboxEntry {
            id: 0,
            account: account.clone(),
            playbook: f.playbook.id.clone(),
            occurrence: f.occurrence.to_string(),
            key: delivery_key(&[account, &f.playbook.id, f.occurrence, &index_s, recipient]),
            created: f.now,
            payload,
            status,
            next_at: f.now,
            attempts: 0,
            history: Vec::new(),
        };
        let dead = |error: String| Status::Dead { at: f.now, error };
        match action {
            Action::Task { title, description, owner, due_in, priority, escalate } => {
                // A part that fails keeps its template's own text (the task still opens:
                // someone has to act), and the description says what failed and why.
                let mut failed = Vec::new();
                let mut text = |name: &str, what: &str| {
                    render_one(self.set, name, ctx).unwrap_or_else(|e| {
                        failed.push(format!("the {what} template failed: {e}"));
                        self.set.templates.get_template(name).map(|t| t.source().to_string()).unwrap_or_default()
                    })
                };
                let title_text = one_line(&text(title, "title"));
                let owner_text = one_line(&text(owner, "owner"));
                let escalate_to = escalate.as_ref().map(|e| one_line(&text(&e.to, "escalate_to")));
                let mut description = description.as_deref().map(|d| text(d, "description"));
                if !failed.is_empty() {
                    work.failed_tasks += 1;
                    let note = format!("{RENDER_FAILED}{}", failed.join("; "));
                    description = Some(match description {
                        Some(d) => format!("{note}\n\n{d}"),
                        None => note,
                    });
                }
                work.tasks.push(TaskRequest {
                    account: account.clone(),
                    playbook: f.playbook.id.clone(),
                    occurrence: f.occurrence.to_string(),
                    title: title_text,
                    description,
                    owner: owner_text,
                    due: due_in.and_then(|d| f.now.checked_add_signed(d.to_chrono())),
                    priority: priority.as_str().to_string(),
                    escalation: escalate.as_ref().zip(escalate_to).map(|(e, to)| Escalation {
                        after_minutes: e.after.minutes(),
                        to,
                        sent: None,
                    }),
                });
            }
            Action::Email { to, template, digest, on_cap } => {
                let recipients = match self.recipients(to, f.view, ctx) {
                    Ok(r) => r,
                    Err(e) => {
                        let payload = Payload::Email(empty_email(String::new(), template, *on_cap));
                        work.outbox.push(entry("", payload, dead(e)));
                        return;
                    }
                };
                for Recipient { to, audience, context: who, unsubscribe_url } in recipients {
                    if to.is_empty() {
                        let payload = Payload::Email(empty_email(to, template, *on_cap));
                        work.outbox.push(entry(
                            "",
                            payload,
                            dead("no recipient address (the `to` template rendered empty)".into()),
                        ));
                        continue;
                    }
                    if *digest {
                        let group = format!("{}|{}|{}", f.playbook.id, f.tick.to_rfc3339(), to.to_lowercase());
                        let item = serde_json::json!({ "account": f.view, "health": f.view.health });
                        let mut email = empty_email(to.clone(), template, *on_cap);
                        email.audience = audience;
                        email.unsubscribe_url = unsubscribe_url;
                        email.digest = Some(DigestItem { group, tick: f.tick, item });
                        work.outbox.push(entry(&to, Payload::Email(email), Status::Pending));
                        continue;
                    }
                    let rctx = for_recipient(ctx, who, unsubscribe_url.as_deref());
                    let mut email = empty_email(to.clone(), template, *on_cap);
                    email.audience = audience;
                    let status = match render_email(self.set, template, &rctx) {
                        Ok(r) => {
                            email.subject = r.subject;
                            email.text = r.text;
                            email.html = r.html;
                            Status::Pending
                        }
                        Err(e) => dead(e.to_string()),
                    };
                    if let Some(url) = unsubscribe_url {
                        with_unsubscribe_link(&mut email, &url);
                        email.unsubscribe_url = Some(url);
                    }
                    work.outbox.push(entry(&to, Payload::Email(email), status));
                }
            }
            Action::Webhook { url, method, headers, body, secret_env, timeout } => {
                let mut problems = Vec::new();
                let mut text = |name: &str, what: &str| {
                    render_one(self.set, name, ctx).unwrap_or_else(|e| {
                        problems.push(format!("the {what} template failed: {e}"));
                        String::new()
                    })
                };
                let url = one_line(&text(url, "url"));
                let headers = headers.iter().map(|(k, v)| (k.clone(), one_line(&text(v, k)))).collect();
                let body = body.as_deref().map(|b| text(b, "body"));
                if let Some(b) = &body {
                    if problems.is_empty() {
                        if let Err(e) = serde_json::from_str::<serde_json::Value>(b) {
                            problems.push(format!("the body is not valid JSON ({e}): {}", one_line(b)));
                        }
                    }
                }
                let hook = Webhook {
                    method: method.as_str().to_string(),
                    url,
                    headers,
                    body,
                    secret_env: secret_env.clone(),
                    timeout_ms: timeout.as_millis() as u64,
                };
                let status = if problems.is_empty() { Status::Pending } else { dead(problems.join("; ")) };
                work.outbox.push(entry("", Payload::Webhook(hook), status));
            }
            Action::Update { field, value } => {
                let typed = render_one(self.set, value, ctx)
                    .map_err(|e| format!("the value template failed: {e}"))
                    .and_then(|text| update_value(field, &one_line(&text)).map_err(|e| e.to_string()));
                match typed {
                    Ok(value) => {
                        work.updates.push(FieldUpdate { account: account.clone(), field: field.clone(), value })
                    }
                    Err(e) => {
                        let e = format!("update {field}: {e}");
                        work.failure = Some(work.failure.take().map_or(e.clone(), |f| format!("{f}; {e}")));
                    }
                }
            }
        }
    }
}

fn empty_email(to: String, template: &str, on_cap: crate::model::CapPolicy) -> Email {
    Email {
        to,
        audience: Audience::Internal,
        template: template.to_string(),
        subject: String::new(),
        text: String::new(),
        html: None,
        unsubscribe_url: None,
        digest: None,
        on_cap,
    }
}

/// Customer-facing mail always carries its unsubscribe link: a template that does not
/// print `unsubscribe_url` gets it added at the end of each part.
pub fn with_unsubscribe_link(email: &mut Email, url: &str) {
    if !email.text.contains(url) {
        email.text.push_str(&format!("\n\n--\nUnsubscribe: {url}\n"));
    }
    if let Some(html) = &mut email.html {
        let escaped = url.replace('&', "&amp;");
        if !html.contains(&escaped) && !html.contains(url) {
            let link = format!("<p style=\"font-size:12px;color:#666\"><a href=\"{escaped}\">Unsubscribe</a></p>");
            match html.rfind("</body>") {
                Some(at) => html.insert_str(at, &link),
                None => html.push_str(&link),
            }
        }
    }
}
