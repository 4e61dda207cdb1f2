//! The config file as written: serde types with `deny_unknown_fields`, so a typo is an
//! error and never a silently ignored setting. Values that can be checked alone (time
//! zones, date formats, addresses, column targets) are checked *while* deserialising, so
//! serde_yaml reports them at their own line and column.

use std::fmt;
use std::net::SocketAddr;

use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::lang::duration::Span;
use crate::lang::env;
use crate::lang::schedule::CronSchedule;
use crate::sync::mapping::{AccountField, ColumnMap, ContactField, DateFormats, EventField, FieldSet};

/// `keel.yaml`. Relative paths are relative to the file's folder.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Default time zone for accounts and contacts without their own, and for schedules
    /// (default UTC).
    #[schemars(example = &"America/New_York")]
    pub timezone: Option<TzName>,
    /// Everything Keel writes: the store (`<data_dir>/store`) and, without SMTP, `.eml` files.
    #[schemars(example = &".keel")]
    pub data_dir: Option<Expanded>,
    /// The playbooks folder (`*.yaml`, templates in its `templates/`).
    #[schemars(example = &"playbooks")]
    pub playbooks: Option<Expanded>,
    /// The rules folder: `health.yaml` and `*.rhai`.
    #[schemars(example = &"rules")]
    pub rules: Option<Expanded>,
    /// How each source's columns (or JSON keys) map to Keel's fields.
    #[serde(default)]
    pub sync: RawSync,
    /// Email: the sender, SMTP, and the protections of customer-facing mail.
    #[serde(default)]
    pub email: RawEmail,
    /// The HTTP API `keel run` serves (docs/api.md).
    #[serde(default)]
    pub api: RawApi,
    /// When and how playbooks are evaluated.
    #[serde(default)]
    pub evaluation: RawEvaluation,
    /// The outbox: retries, concurrency, retention.
    #[serde(default)]
    pub delivery: RawDelivery,
    /// A pinned clock for a demo book; a real book leaves it out.
    pub clock: Option<RawClock>,
    /// The blast-radius guard: `off`, or the limits of a pass.
    pub guard: Option<RawGuardSetting>,
}

/// `guard:` in the config: `off`, or its settings.
#[derive(Debug)]
pub enum RawGuardSetting {
    Off,
    On(RawGuard),
}

impl<'de> Deserialize<'de> for RawGuardSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawGuardSetting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`off`, or settings like { max_firings: 500, max_share: \"10%\" }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::custom(
                        "`guard: true` says nothing: the guard is on by default; write its settings, or `off`",
                    ))
                } else {
                    Ok(RawGuardSetting::Off)
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v.trim() {
                    "off" => Ok(RawGuardSetting::Off),
                    other => Err(E::custom(format!("invalid guard {other:?}: expected `off`, or its settings"))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawGuard::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawGuardSetting::On)
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for RawGuardSetting {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GuardSetting".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let settings = generator.subschema_for::<RawGuard>();
        crate::lang::guard::off_or(
            settings,
            "The blast-radius guard: `off`, or the limits of a pass (on by default for playbooks that email customers).",
        )
    }
}

/// The guard's settings (each has a default).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// At most this many accounts fired by one playbook in one pass (default 500).
    pub max_firings: Option<crate::lang::guard::Limit>,
    /// At most this share of a playbook's audience fired in one pass (default "10%").
    pub max_share: Option<crate::lang::guard::Share>,
    /// Which playbooks are guarded without a `guard:` of their own: those that email
    /// customers (`customer_email`, the default) or every playbook (`all`).
    pub applies_to: Option<GuardScope>,
    /// Who is emailed, once per hold, when a playbook is held.
    pub notify: Option<Expanded>,
}

/// Which playbooks the config's guard covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardScope {
    #[default]
    CustomerEmail,
    All,
}

/// A pinned clock for a demo book (the sample config's); a real book has none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClock {
    /// "Now" the first time a command opens the store; the real time since is added after.
    pub start: Instant,
}

/// An RFC 3339 instant, checked while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Instant(pub chrono::DateTime<chrono::Utc>);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(raw.trim()).map(|t| Instant(t.to_utc())).map_err(|_| {
            de::Error::custom(format!(
                "invalid instant {raw:?}: expected RFC 3339 with a zone offset, like \"2026-11-23T08:30:00-05:00\""
            ))
        })
    }
}

/// How the outbox is worked off.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Attempts before an entry is dead (at least 1).
    pub max_attempts: Option<std::num::NonZeroU32>,
    /// The first retry's delay; each next one doubles, with jitter.
    pub backoff: Option<DelayText>,
    /// The longest delay between two attempts.
    pub max_backoff: Option<DelayText>,
    /// How long delivered, suppressed and dropped entries stay for the timeline.
    pub retention: Option<SpanText>,
    /// Emails sent at once (the SMTP connection pool's size).
    pub email_concurrency: Option<std::num::NonZeroUsize>,
    /// Webhook requests in flight at once.
    pub webhook_concurrency: Option<std::num::NonZeroUsize>,
    /// How long a stopping daemon waits for the sends in flight.
    pub shutdown_grace: Option<DelayText>,
}

/// A delay like `500ms`, `30s`, `5m`, `1h`, checked while parsing.
#[derive(Debug, Clone, Copy)]
pub struct DelayText(pub std::time::Duration);

impl<'de> Deserialize<'de> for DelayText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        crate::lang::duration::parse_delay(&raw).map(DelayText).map_err(de::Error::custom)
    }
}

/// A time of day `HH:MM`, checked while parsing.
#[derive(Debug, Clone, Copy)]
pub struct TimeOfDay(pub chrono::NaiveTime);

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        chrono::NaiveTime::parse_from_str(raw.trim(), "%H:%M")
            .map(TimeOfDay)
            .map_err(|_| de::Error::custom(format!("invalid time {raw:?}: expected HH:MM, like \"20:00\"")))
    }
}

/// A weekday as `mon` … `sun`.
#[derive(Debug, Clone, Copy)]
pub struct Day(pub chrono::Weekday);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        raw.trim().parse::<chrono::Weekday>().map(Day).map_err(|_| {
            de::Error::custom(format!("invalid day {raw:?}: expected mon, tue, wed, thu, fri, sat or sun"))
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCap {
    /// At least 1 (to send no customer mail at all, disable the playbooks).
    pub max: std::num::NonZeroU32,
    /// The window the cap counts in.
    pub per: SpanText,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawQuietHours {
    /// When quiet hours begin (HH:MM).
    pub start: TimeOfDay,
    /// When they end (HH:MM); before `start` means the next morning.
    pub end: TimeOfDay,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEvaluation {
    /// When playbooks without their own `schedule` are evaluated.
    pub schedule: Option<Cron>,
    /// Worker threads for Rhai evaluation (at least 1); default: the machine's cores.
    pub workers: Option<std::num::NonZeroUsize>,
    /// A pass taking longer than this is logged as slow.
    pub tick_limit: Option<SpanText>,
    /// Evaluate only the accounts that changed or came due (default); `false`
    /// evaluates every account at every pass.
    pub incremental: Option<bool>,
}

/// A crontab expression, checked while parsing so its error points at its line.
#[derive(Debug, Clone)]
pub struct Cron(pub CronSchedule);

impl<'de> Deserialize<'de> for Cron {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        CronSchedule::parse(&raw).map(Cron).map_err(de::Error::custom)
    }
}

/// A duration like `90s`, `5m`, `2h`, `7d`, checked while parsing.
#[derive(Debug, Clone, Copy)]
pub struct SpanText(pub Span);

impl<'de> Deserialize<'de> for SpanText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        match Span::parse(&raw) {
            Ok(s) if s.minutes() > 0 => Ok(SpanText(s)),
            Ok(_) => Err(de::Error::custom(format!("{raw:?} must be a positive duration"))),
            Err(e) => Err(de::Error::custom(e)),
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// The accounts source (CSV, JSON or NDJSON).
    pub accounts: Option<RawSource<AccountField>>,
    /// The contacts source.
    pub contacts: Option<RawSource<ContactField>>,
    /// The product events source (Segment-style track calls).
    pub events: Option<RawSource<EventField>>,
    /// How Segment messages (the API's `/v1/batch`, `/v1/identify`, …) map onto the book.
    pub segment: Option<RawSegment>,
}

/// `sync.segment`: traits map like CSV columns (same targets, same defaults).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSegment {
    /// `group` traits → account fields.
    pub group: Option<RawTraits<AccountField>>,
    /// `identify` traits → contact fields.
    pub identify: Option<RawTraits<ContactField>>,
    /// `track` calls → events.
    pub track: Option<RawTrack>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "F: FieldSet"))]
#[schemars(rename = "Traits_for_{F}")]
pub struct RawTraits<F: FieldSet> {
    /// Date formats tried for every date trait (ISO always).
    pub date_format: Option<DateFormats>,
    /// An unreadable optional value: `skip_value` (default) or `reject_row`.
    pub on_bad_value: Option<OnBadValue>,
    /// Trait name → field, as columns map.
    #[serde(default)]
    pub traits: ColumnMap<F>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTrack {
    /// The `properties` key naming a track's account when `context.groupId` does not.
    pub account_property: PropertyName,
}

/// A non-empty property name, checked while parsing.
#[derive(Debug, Clone)]
pub struct PropertyName(pub String);

impl<'de> Deserialize<'de> for PropertyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        match raw.trim() {
            "" => {
                Err(de::Error::custom("an empty property name; leave account_property out to use context.groupId only"))
            }
            name => Ok(PropertyName(name.to_string())),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "F: FieldSet"))]
#[schemars(rename = "Source_for_{F}")]
pub struct RawSource<F: FieldSet> {
    /// The file `keel sync` reads when no file is named on the command line.
    pub file: Option<Expanded>,
    /// One format or a list, tried in order for every date column without its own
    /// (`columns: {"Renewal Date": {field: renewal_date, date_format: …}}`); ISO always.
    pub date_format: Option<DateFormats>,
    /// An unreadable optional cell: store the row without it and warn (`skip_value`,
    /// default), or `reject_row`.
    pub on_bad_value: Option<OnBadValue>,
    /// Source column → field; unmapped columns land in `fields` (events: `properties`).
    #[serde(default)]
    pub columns: ColumnMap<F>,
}

/// `reject_row` or `skip_value` (see [`crate::sync::OnBadValue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnBadValue {
    /// Reject the whole row.
    RejectRow,
    /// Store the row without the value, and warn.
    SkipValue,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// The sender, `Name <address>` or an address.
    #[schemars(example = &"Keel CS Ops <cs-ops@example.com>")]
    pub from: Option<Expanded>,
    /// Where `.eml` files go when no SMTP server is configured.
    pub eml_dir: Option<Expanded>,
    /// The SMTP server; without one, emails are written as `.eml` files.
    pub smtp: Option<RawSmtp>,
    /// Where unsubscribe links point (the API's `/unsubscribe`).
    pub unsubscribe_url: Option<Expanded>,
    /// Signs unsubscribe tokens; without it Keel makes a key and keeps it in the store.
    pub unsubscribe_secret: Option<Secret>,
    /// Customer-facing emails per contact, across all playbooks.
    pub frequency_cap: Option<RawCap>,
    /// No customer-facing mail between `start` and `end`, in the recipient's zone.
    pub quiet_hours: Option<RawQuietHours>,
    /// Days customer-facing mail goes out on, in the recipient's zone.
    pub business_days: Option<Vec<Day>>,
    /// The currency templates' `money` filter prints (ISO 4217 code).
    pub currency: Option<CurrencyCode>,
    /// The format of templates' `date` filter (strftime).
    pub date_format: Option<EmailDateFormat>,
}

/// An ISO 4217 currency code (three letters), checked while parsing.
#[derive(Debug, Clone)]
pub struct CurrencyCode(pub String);

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        let code = raw.trim().to_ascii_uppercase();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(CurrencyCode(code))
        } else {
            Err(de::Error::custom(format!(
                "invalid currency {raw:?}: expected an ISO 4217 code, like \"USD\" or \"EUR\""
            )))
        }
    }
}

/// A strftime format that can print a date (templates' `date`), checked while parsing.
#[derive(Debug, Clone)]
pub struct EmailDateFormat(pub String);

impl<'de> Deserialize<'de> for EmailDateFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        match crate::lang::render::date_format_problem(&raw) {
            None => Ok(EmailDateFormat(raw)),
            Some(problem) => Err(de::Error::custom(problem)),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    /// Empty (e.g. `${KEEL_SMTP_HOST:-}` with the variable unset) means no SMTP: files.
    pub host: Expanded,
    /// Default: 587 (`starttls`), 465 (`implicit`), 25 (`none`).
    pub port: Option<u16>,
    /// How the connection is secured.
    pub tls: Option<TlsMode>,
    pub username: Option<Expanded>,
    /// Only from the environment (`${VAR}`).
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on localhost or a test server.
    None,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Address and port; another machine's reach (`0.0.0.0`) needs a token.
    pub listen: Option<Listen>,
    /// One token with every scope (the simple setup).
    pub token: Option<Secret>,
    /// Tokens with the scopes each may use.
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// Segment write keys: HTTP Basic usernames accepted on `/v1/*`.
    #[serde(default)]
    pub write_keys: Vec<Secret>,
    /// What one client may cost the API.
    #[serde(default)]
    pub limits: RawApiLimits,
}

/// What one client may cost the API.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiLimits {
    /// The largest request body, in KB (1024 bytes), after decompression too.
    pub max_body_kb: Option<Within<500, { 1 << 20 }>>,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Option<DelayText>,
    /// How long a request may take, body and answer included.
    pub request_timeout: Option<DelayText>,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: Option<Within<1, 1_000_000>>,
}

/// A whole number in `MIN..=MAX`, checked while parsing (so the error has its position).
#[derive(Debug, Clone, Copy)]
pub struct Within<const MIN: usize, const MAX: usize>(pub usize);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Within<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(Within(n)),
            _ => Err(de::Error::custom(format!("{n} is out of range: between {MIN} and {MAX}"))),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Only from the environment (`${VAR}`).
    pub token: Secret,
    /// What the token may do.
    pub scopes: Vec<super::Scope>,
}

/// A string with `${VAR}` references expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded(pub String);

impl<'de> Deserialize<'de> for Expanded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        env::expand(&raw, |name| std::env::var(name).ok()).map(Expanded).map_err(de::Error::custom)
    }
}

/// A credential. It must come from the environment (`${VAR}`): a password typed into a
/// file that lives in git is refused. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        if !raw.contains("${") {
            return Err(de::Error::custom(
                "secrets must come from environment variables, not the file: write it as ${KEEL_…} and export the variable",
            ));
        }
        env::expand(&raw, |name| std::env::var(name).ok()).map(Secret).map_err(de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TzName(pub Tz);

impl<'de> Deserialize<'de> for TzName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        raw.parse::<Tz>().map(TzName).map_err(|_| {
            de::Error::custom(format!("unknown time zone {raw:?}: expected an IANA name like America/New_York or UTC"))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Expanded(raw) = Expanded::deserialize(d)?;
        raw.parse::<SocketAddr>().map(Listen).map_err(|_| {
            de::Error::custom(format!("invalid listen address {raw:?}: expected IP:PORT like 127.0.0.1:7400"))
        })
    }
}
