//! Decided actions in words: a playbook action with its templates rendered for one
//! account. `simulate` shows these; the ledger records them with each firing, so the
//! account timeline says what was decided, not only that something was.
//!
//! Also the filters every template may use to print figures as people read them
//! ([`register_filters`]): `money`, `number`, `date` and `plural`. Invariant: a filter
//! never panics on what account data holds; a value it cannot print (a word where a
//! number belongs, NaN, an undefined name) is a render error that names the filter and
//! the value, and `none` (a field the account lacks) prints as `-`.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use minijinja::value::{Rest, ValueKind};
use minijinja::{context, Environment, ErrorKind, State, Value};

use super::playbook::{Action, Playbook, PlaybookSet, Recipients};
use super::view::AccountView;
use crate::model::Event;

/// What every template sees for one account (`recipient`, `unsubscribe_url` and
/// `accounts` are empty here; [`for_recipient`] and digests fill them in).
pub fn context(view: &AccountView, playbook: &Playbook, event: Option<&Event>, date: NaiveDate) -> Value {
    context! {
        account => Value::from_serialize(view),
        health => Value::from_serialize(&view.health),
        contacts => Value::from_serialize(view.contacts),
        playbook => context! { id => playbook.id.clone(), name => playbook.name.clone() },
        today => date.to_string(),
        event => Value::from_serialize(event),
        accounts => Value::from(Vec::<Value>::new()),
        recipient => Value::from(()),
        unsubscribe_url => "",
    }
}

/// The context for one recipient of an email.
pub fn for_recipient(base: &Value, recipient: Value, unsubscribe_url: Option<&str>) -> Value {
    context! { recipient => recipient, unsubscribe_url => unsubscribe_url.unwrap_or(""), ..base.clone() }
}

/// Why a template did not render. minijinja's reason is part of the message, so it is not
/// also given as `source()`.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The playbooks name an email template that is not loaded.
    #[error("no email template {0:?} in the loaded playbooks")]
    NoEmail(String),
    /// One part of an email (subject, text, HTML), named by its template.
    #[error("template {template}: {reason}")]
    Part { template: String, reason: minijinja::Error },
    /// An inline template of a playbook.
    #[error("{0}")]
    Inline(minijinja::Error),
}

/// An email's parts, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// On one line: a value with a line break can never start a new header.
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Renders the email template `name` (subject, text, optional HTML) with `ctx`.
pub fn render_email(set: &PlaybookSet, name: &str, ctx: &Value) -> Result<RenderedEmail, RenderError> {
    let t = set.emails.get(name).ok_or_else(|| RenderError::NoEmail(name.to_string()))?;
    let render = |tname: &str| {
        set.templates
            .get_template(tname)
            .and_then(|t| t.render(ctx))
            .map_err(|reason| RenderError::Part { template: tname.to_string(), reason })
    };
    Ok(RenderedEmail {
        subject: one_line(&render(&t.subject)?),
        text: render(&t.text)?,
        html: t.html.as_deref().map(render).transpose()?,
    })
}

/// Renders one inline template of a playbook.
pub fn render_one(set: &PlaybookSet, name: &str, ctx: &Value) -> Result<String, RenderError> {
    set.templates.get_template(name).and_then(|t| t.render(ctx)).map_err(RenderError::Inline)
}

/// One action in words, its templates rendered for this account. A template that fails
/// to render says so in place (the firing is still recorded).
pub fn describe(
    set: &PlaybookSet,
    action: &Action,
    playbook: &Playbook,
    view: &AccountView,
    event: Option<&Event>,
    date: NaiveDate,
) -> String {
    describe_in(set, action, view, &context(view, playbook, event, date))
}

/// [`describe`] with the template context already built ([`context`]).
pub fn describe_in(set: &PlaybookSet, action: &Action, view: &AccountView, ctx: &Value) -> String {
    let render = |name: &str| match set.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(text) => one_line(&text),
        Err(e) => format!("<cannot render: {e}>"),
    };
    match action {
        Action::Task { title, owner, due_in, priority, .. } => {
            let due = due_in.map(|d| format!(", due in {d}")).unwrap_or_default();
            format!("task {:?} for {} ({}{due})", render(title), render(owner), priority.as_str())
        }
        Action::Email { to, template, digest, .. } => {
            let to = match to {
                Recipients::Contacts => {
                    let n = view.contacts.iter().filter(|c| !c.unsubscribed && c.email.is_some()).count();
                    format!("{n} subscribed contact(s)")
                }
                Recipients::Address(t) => render(t),
            };
            format!("email {template} to {to}{}", if *digest { " (in a digest)" } else { "" })
        }
        Action::Webhook { url, method, .. } => format!("webhook {} {}", method.as_str(), render(url)),
        // The value before is the account's as this pass read it: the timeline then
        // says what the update changed, not only what it set.
        Action::Update { field, value } => {
            let before = crate::model::field_text(&view.account.field(field));
            let after = match crate::model::update_value(field, &render(value)) {
                Ok(v) => crate::model::field_text(&v),
                Err(e) => format!("<cannot set: {e}>"),
            };
            format!("set {field}: {before} → {after}")
        }
    }
}

/// Text on one line, runs of whitespace as one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How the filters print money and dates: from the config's `email` section (USD and
/// `%b %-d, %Y` unless it says otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats {
    /// An ISO 4217 code, upper case (`USD`).
    pub currency: String,
    /// A strftime format for `date` without an argument.
    pub date_format: String,
    /// The zone a moment prints in when neither the recipient nor the account names one.
    pub timezone: Tz,
}

/// The date format of `date` when the config names none: `Feb 1, 2027`.
pub const DEFAULT_DATE_FORMAT: &str = "%b %-d, %Y";

impl Default for Formats {
    fn default() -> Formats {
        Formats { currency: "USD".into(), date_format: DEFAULT_DATE_FORMAT.into(), timezone: Tz::UTC }
    }
}

/// The symbol printed before an amount in `currency`, or the code and a space for a
/// currency without a well-known symbol (`SEK 1,200`).
pub fn currency_prefix(currency: &str) -> String {
    let symbol = match currency {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        "CNY" => "CN¥",
        "INR" => "₹",
        "KRW" => "₩",
        "CAD" => "CA$",
        "AUD" => "A$",
        "NZD" => "NZ$",
        "BRL" => "R$",
        "MXN" => "MX$",
        "ILS" => "₪",
        _ => return format!("{currency} "),
    };
    symbol.to_string()
}

/// Why a strftime format cannot be used: `None` when it can.
pub fn date_format_problem(format: &str) -> Option<String> {
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Some(format!("invalid date format {format:?} (strftime, like \"{DEFAULT_DATE_FORMAT}\")"));
    }
    // A date has no time of day or zone: a format asking for one cannot print a date.
    let probe = NaiveDate::from_ymd_opt(2026, 1, 2).expect("a valid date");
    let mut out = String::new();
    if write!(out, "{}", probe.format(format)).is_err() {
        return Some(format!("date format {format:?} asks for a time or zone; a date has neither"));
    }
    None
}

/// Adds the `money`, `number`, `date` and `plural` filters to `env`, printing as `formats`
/// says (registering again replaces them).
pub fn register_filters(env: &mut Environment<'static>, formats: &Formats) {
    let prefix = currency_prefix(&formats.currency);
    env.add_filter("money", move |value: Value, decimals: Option<Value>| -> Result<String, minijinja::Error> {
        let Some(x) = number_of("money", &value)? else { return Ok("-".into()) };
        let decimals = decimals_of("money", decimals, x)?;
        let digits = grouped(x.abs(), decimals);
        Ok(format!(
            "{}{prefix}{digits}",
            if x < 0.0 && digits.bytes().any(|b| b.is_ascii_digit() && b != b'0') { "-" } else { "" }
        ))
    });
    env.add_filter("number", |value: Value, decimals: Option<Value>| -> Result<String, minijinja::Error> {
        let Some(x) = number_of("number", &value)? else { return Ok("-".into()) };
        let decimals = decimals_of("number", decimals, x)?;
        let digits = grouped(x.abs(), decimals);
        Ok(format!(
            "{}{digits}",
            if x < 0.0 && digits.bytes().any(|b| b.is_ascii_digit() && b != b'0') { "-" } else { "" }
        ))
    });
    let default_format = formats.date_format.clone();
    let default_zone = formats.timezone;
    env.add_filter(
        "date",
        move |state: &State, value: Value, format: Option<String>| -> Result<String, minijinja::Error> {
            date(state, &value, format.as_deref().unwrap_or(&default_format), default_zone)
        },
    );
    env.add_filter("plural", |value: Value, forms: Rest<String>| -> Result<String, minijinja::Error> {
        let Some(n) = number_of("plural", &value)? else {
            return Err(invalid("plural", "needs a number, found none".into()));
        };
        let one = n == 1.0 || n == -1.0;
        match forms.as_slice() {
            [] => Ok(if one { "" } else { "s" }.into()),
            [singular, plural] => Ok(if one { singular } else { plural }.clone()),
            other => {
                Err(invalid("plural", format!("takes no argument or two (singular, plural), got {}", other.len())))
            }
        }
    });
}

fn invalid(filter: &str, what: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, format!("filter {filter}: {what}"))
}

/// The number `value` holds; `None` for none (a field the account lacks).
fn number_of(filter: &str, value: &Value) -> Result<Option<f64>, minijinja::Error> {
    match value.kind() {
        ValueKind::Undefined => {
            Err(invalid(filter, "the value is undefined (a name the context does not have)".into()))
        }
        ValueKind::None => Ok(None),
        ValueKind::Number => {
            let x = f64::try_from(value.clone())
                .map_err(|_| invalid(filter, format!("cannot read {value} as a number")))?;
            if x.is_finite() {
                Ok(Some(x))
            } else {
                Err(invalid(filter, format!("{value} is not a finite number")))
            }
        }
        kind => Err(invalid(filter, format!("needs a number, found {kind} {value:?}"))),
    }
}

/// Decimals asked for (0–6), else none for a whole number and two otherwise.
fn decimals_of(filter: &str, asked: Option<Value>, x: f64) -> Result<usize, minijinja::Error> {
    match asked {
        None => Ok(if x.fract() == 0.0 { 0 } else { 2 }),
        Some(d) => match d.as_i64() {
            Some(n @ 0..=6) => Ok(n as usize),
            _ => Err(invalid(filter, format!("decimals must be a whole number from 0 to 6, got {d}"))),
        },
    }
}

/// `x` (not negative) with `decimals` decimals and a comma between thousands.
fn grouped(x: f64, decimals: usize) -> String {
    let fixed = format!("{x:.decimals$}");
    let (whole, fraction) = fixed.split_once('.').map_or((fixed.as_str(), None), |(w, f)| (w, Some(f)));
    let mut out = String::with_capacity(fixed.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// A day (`2027-02-01`) prints as it is; a moment (RFC 3339) prints in the recipient's
/// zone, else the account's, else `zone`.
fn date(state: &State, value: &Value, format: &str, zone: Tz) -> Result<String, minijinja::Error> {
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(invalid(
            "date",
            format!("invalid date format {format:?} (strftime, like \"{DEFAULT_DATE_FORMAT}\")"),
        ));
    }
    let text = match value.kind() {
        ValueKind::Undefined => {
            return Err(invalid("date", "the value is undefined (a name the context does not have)".into()))
        }
        ValueKind::None => return Ok("-".into()),
        ValueKind::String => value.as_str().unwrap_or_default(),
        kind => return Err(invalid("date", format!("needs a date like \"2027-02-01\", found {kind} {value}"))),
    };
    let mut out = String::new();
    let written = if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        write!(out, "{}", day.format(format))
    } else if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        let zone = zone_of(state, "recipient").or_else(|| zone_of(state, "account")).unwrap_or(zone);
        write!(out, "{}", moment.with_timezone(&zone).format(format))
    } else {
        return Err(invalid("date", format!("cannot read {text:?} as a date (YYYY-MM-DD or RFC 3339)")));
    };
    written.map_err(|_| invalid("date", format!("format {format:?} asks for something {text:?} does not have")))?;
    Ok(out)
}

/// The zone `name.timezone` names in the template's context, if any.
fn zone_of(state: &State, name: &str) -> Option<Tz> {
    let tz = state.lookup(name)?.get_attr("timezone").ok()?;
    tz.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(formats: &Formats) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        register_filters(&mut env, formats);
        env
    }

    fn render(source: &str, ctx: Value) -> Result<String, String> {
        env(&Formats::default()).render_str(source, ctx).map_err(|e| format!("{e:#}"))
    }

    fn one(source: &str, x: impl serde::Serialize) -> Result<String, String> {
        render(source, context! { x => Value::from_serialize(x) })
    }

    #[test]
    fn money_prints_the_currency_and_thousands() {
        assert_eq!(one("{{ x | money }}", 109_900.0).unwrap(), "$109,900");
        assert_eq!(one("{{ x | money }}", 999).unwrap(), "$999");
        assert_eq!(one("{{ x | money }}", 1234.5).unwrap(), "$1,234.50", "cents when there are some");
        assert_eq!(one("{{ x | money(0) }}", 1234.5).unwrap(), "$1,234");
        assert_eq!(one("{{ x | money }}", -2_500_000).unwrap(), "-$2,500,000");
        assert_eq!(one("{{ x | money(0) }}", -0.2).unwrap(), "$0", "no minus on a zero");
        assert_eq!(one("{{ x | money }}", 0).unwrap(), "$0");
        assert_eq!(one("{{ x | money }}", 1e18).unwrap(), "$1,000,000,000,000,000,000", "huge, no panic");
        assert_eq!(one("{{ x | money }}", ()).unwrap(), "-", "a missing ARR");
        let eur = Formats { currency: "EUR".into(), ..Formats::default() };
        assert_eq!(env(&eur).render_str("{{ 5400 | money }}", ()).unwrap(), "€5,400");
        let sek = Formats { currency: "SEK".into(), ..Formats::default() };
        assert_eq!(env(&sek).render_str("{{ 5400 | money }}", ()).unwrap(), "SEK 5,400", "the code without a symbol");
    }

    #[test]
    fn money_and_number_refuse_what_is_not_a_number_in_words() {
        for source in ["{{ x | money }}", "{{ x | number }}"] {
            let word = one(source, "109900").unwrap_err();
            assert!(word.contains("needs a number, found string"), "{word}");
            let list = one(source, [1, 2]).unwrap_err();
            assert!(list.contains("needs a number"), "{list}");
            let undefined = render(source.replace('x', "nothing_here").as_str(), context! {}).unwrap_err();
            assert!(undefined.contains("undefined"), "{undefined}");
            let nan = one(source, f64::NAN).unwrap_err();
            assert!(nan.contains("not a finite number"), "NaN never prints as a figure: {nan}");
            let bad = one(&source.replace(" }}", "(9) }}"), 1).unwrap_err();
            assert!(bad.contains("decimals must be a whole number from 0 to 6"), "{bad}");
        }
        let inf = render("{{ x | money }}", context! { x => f64::INFINITY }).unwrap_err();
        assert!(inf.contains("not a finite number"), "{inf}");
    }

    #[test]
    fn number_groups_thousands_with_optional_decimals() {
        assert_eq!(one("{{ x | number }}", 7043).unwrap(), "7,043");
        assert_eq!(one("{{ x | number(1) }}", 1_234_567.891).unwrap(), "1,234,567.9");
        assert_eq!(one("{{ x | number }}", -12).unwrap(), "-12");
        assert_eq!(one("{{ x | number(2) }}", 0.5).unwrap(), "0.50");
        assert_eq!(one("{{ x | number }}", i64::MIN).unwrap(), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn date_prints_days_as_they_are_and_moments_in_the_recipients_zone() {
        assert_eq!(one("{{ x | date }}", "2027-02-01").unwrap(), "Feb 1, 2027");
        assert_eq!(one("{{ x | date(\"%d/%m/%Y\") }}", "2027-02-01").unwrap(), "01/02/2027");
        let moment = "2026-12-01T02:00:00Z";
        assert_eq!(one("{{ x | date }}", moment).unwrap(), "Dec 1, 2026", "the default zone: UTC");
        let ctx = |recipient: Value| {
            context! { x => moment, recipient => recipient, account => context! { timezone => "Asia/Tokyo" } }
        };
        let la = ctx(context! { timezone => "America/Los_Angeles" });
        assert_eq!(render("{{ x | date(\"%b %-d %H:%M\") }}", la).unwrap(), "Nov 30 18:00", "the recipient's zone");
        assert_eq!(render("{{ x | date(\"%H:%M\") }}", ctx(Value::from(()))).unwrap(), "11:00", "else the account's");
        let configured = Formats { date_format: "%Y/%m/%d".into(), ..Formats::default() };
        assert_eq!(env(&configured).render_str("{{ '2027-02-01' | date }}", ()).unwrap(), "2027/02/01");
        assert_eq!(one("{{ x | date }}", ()).unwrap(), "-");
    }

    #[test]
    fn date_refuses_what_is_not_a_date_in_words() {
        let word = one("{{ x | date }}", "soon").unwrap_err();
        assert!(word.contains("cannot read \"soon\" as a date"), "{word}");
        let number = one("{{ x | date }}", 20270201).unwrap_err();
        assert!(number.contains("needs a date"), "{number}");
        let undefined = render("{{ nope | date }}", context! {}).unwrap_err();
        assert!(undefined.contains("undefined"), "{undefined}");
        let bad_format = one("{{ x | date(\"%Q\") }}", "2027-02-01").unwrap_err();
        assert!(bad_format.contains("invalid date format"), "{bad_format}");
        let hour = one("{{ x | date(\"%H:%M\") }}", "2027-02-01").unwrap_err();
        assert!(hour.contains("asks for something"), "a day has no hour, and it does not panic: {hour}");
        assert!(date_format_problem("%H").is_some() && date_format_problem("%Q").is_some());
        assert!(date_format_problem(DEFAULT_DATE_FORMAT).is_none());
    }

    #[test]
    fn plural_picks_the_form_for_the_count() {
        assert_eq!(one("{{ x }} day{{ x | plural }}", 1).unwrap(), "1 day");
        assert_eq!(one("{{ x }} day{{ x | plural }}", 0).unwrap(), "0 days");
        assert_eq!(one("{{ x }} day{{ x | plural }}", 12).unwrap(), "12 days");
        assert_eq!(one("{{ x }} {{ x | plural('account', 'accounts') }}", 1).unwrap(), "1 account");
        assert_eq!(one("{{ x }} {{ x | plural('entry', 'entries') }}", 2.5).unwrap(), "2.5 entries");
        assert_eq!(one("{{ x | plural('y', 'ies') }}", -1).unwrap(), "y");
        let one_form = one("{{ x | plural('day') }}", 2).unwrap_err();
        assert!(one_form.contains("no argument or two"), "{one_form}");
        let word = one("{{ x | plural }}", "two").unwrap_err();
        assert!(word.contains("needs a number"), "{word}");
        assert!(one("{{ x | plural }}", ()).unwrap_err().contains("found none"));
    }
}
