//! `keel.yaml`: where the store lives, where playbooks and rules are, the default time
//! zone, how source files' columns map to fields, and the email and API settings.
//!
//! Loading is two steps, kept apart on purpose:
//! 1. parse ([`raw`]): YAML → raw serde types; unknown keys and values that are wrong on
//!    their own fail here, with file, line, column and the key's path;
//! 2. validate ([`Config::from_raw`]): pure, no I/O; fills defaults and resolves every
//!    relative path against the config file's folder (so `--config examples/keel.yaml`
//!    works from any working directory).
//!
//! `${VAR}` and `${VAR:-default}` expand environment variables in values; secrets
//! (`smtp.password`, `api.token`) are *only* accepted that way.

mod raw;
mod schema;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;

pub use raw::{GuardScope, Secret, TlsMode};
pub use schema::file_schema;

use crate::diagnostic::{self, parse_yaml, Diagnostic};
use crate::lang::schedule::CronSchedule;
use crate::sync::mapping::{AccountField, ContactField, EventField, FieldSet};
use crate::sync::segment::SegmentSpec;
use crate::sync::{OnBadValue, SourceSpec};
use raw::{RawConfig, RawSource};

/// The config file a command reads when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "keel.yaml";
/// Port of the HTTP API when the config does not say.
pub const DEFAULT_API_PORT: u16 = 7400;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this config was read from.
    pub file: PathBuf,
    /// Default time zone for accounts and contacts that do not name their own, and for
    /// schedules.
    pub timezone: Tz,
    /// Everything Keel writes: the store (`store/`) and, without SMTP, `.eml` files.
    pub data_dir: PathBuf,
    pub playbooks_dir: PathBuf,
    pub rules_dir: PathBuf,
    pub sync: SyncConfig,
    pub email: EmailConfig,
    pub api: ApiConfig,
    pub evaluation: EvaluationConfig,
    pub delivery: DeliveryConfig,
    /// `clock.start`: the instant the book's clock reads when it is first started over
    /// `data_dir`, for a demo book whose data is fixed files (the sample config's). `None`:
    /// the machine's clock.
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
    pub guard: GuardConfig,
}

/// The blast-radius guard (`guard:`): which playbooks a pass may hold, by what limits,
/// and whom it tells.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// `guard: off` turns it off for playbooks without a `guard:` of their own.
    pub enabled: bool,
    pub limits: crate::lang::guard::Limits,
    pub applies_to: raw::GuardScope,
    /// Emailed once when a playbook is held.
    pub notify: Option<String>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            limits: crate::lang::guard::Limits {
                max_firings: Some(crate::lang::guard::DEFAULT_MAX_FIRINGS),
                max_share: Some(crate::lang::guard::DEFAULT_MAX_SHARE),
            },
            applies_to: raw::GuardScope::CustomerEmail,
            notify: None,
        }
    }
}

/// How the outbox is worked off.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts before an entry is dead.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles (with jitter) up to `max_backoff`.
    pub backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
    /// Delivered, suppressed and dropped entries are kept this long for the timeline.
    pub retention: chrono::Duration,
    pub email_concurrency: usize,
    pub webhook_concurrency: usize,
    /// How long `keel run` waits on SIGTERM for the sends in flight before it exits; an
    /// attempt cut off is tried again at the next start (its cap place is reclaimed).
    pub shutdown_grace: std::time::Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 8,
            backoff: std::time::Duration::from_secs(30),
            max_backoff: std::time::Duration::from_secs(3600),
            retention: chrono::Duration::days(90),
            email_concurrency: 4,
            webhook_concurrency: 16,
            // An SMTP timeout is 30 s: a send that started is normally let finish.
            shutdown_grace: std::time::Duration::from_secs(40),
        }
    }
}

/// What protects customers' inboxes (customer-facing mail only; internal mail to CSMs
/// and managers is exempt).
#[derive(Debug, Clone)]
pub struct Protections {
    /// At most `max` emails per contact per `per`, across all playbooks.
    pub cap: Option<FrequencyCap>,
    /// No sends from `start` to `end` (wrapping midnight when `start > end`), in the
    /// recipient's zone. `None` (or equal times) means any hour.
    pub quiet_hours: Option<(chrono::NaiveTime, chrono::NaiveTime)>,
    /// The days sends go out on, in the recipient's zone.
    pub business_days: Vec<chrono::Weekday>,
}

#[derive(Debug, Clone, Copy)]
pub struct FrequencyCap {
    pub max: u32,
    pub per: chrono::Duration,
}

impl Default for Protections {
    fn default() -> Self {
        use chrono::Weekday::*;
        Protections {
            cap: Some(FrequencyCap { max: 2, per: chrono::Duration::days(7) }),
            quiet_hours: Some((
                chrono::NaiveTime::from_hms_opt(20, 0, 0).expect("valid"),
                chrono::NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
            )),
            business_days: vec![Mon, Tue, Wed, Thu, Fri],
        }
    }
}

/// How the daemon evaluates playbooks.
#[derive(Debug, Clone)]
pub struct EvaluationConfig {
    /// When playbooks without their own `schedule` are evaluated, in the config's zone.
    pub schedule: CronSchedule,
    /// Worker threads for Rhai evaluation.
    pub workers: usize,
    /// A pass taking longer than this is logged as slow.
    pub tick_limit: std::time::Duration,
    /// Evaluate only accounts whose data changed, whose dates or timers came due, or
    /// whose time-dependent expressions crossed a day (see `Daemon::tick`); `false`
    /// evaluates every account at every pass.
    pub incremental: bool,
}

/// Evaluation schedule when the config does not set one: hourly, on the hour.
pub const DEFAULT_SCHEDULE: &str = "0 * * * *";
/// A pass slower than this is logged, when the config does not say.
pub const DEFAULT_TICK_LIMIT_MINUTES: i64 = 5;

impl Config {
    /// Where a pinned clock ([`Self::clock_start`]) keeps the real instant it was started.
    pub fn clock_file(&self) -> PathBuf {
        self.data_dir.join("clock-started")
    }

    /// Where the embedded (sled) store lives.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncConfig {
    pub accounts: Source<AccountField>,
    pub contacts: Source<ContactField>,
    pub events: Source<EventField>,
    /// `sync.segment`: how the API's Segment-compatible ingest maps messages.
    pub segment: SegmentSpec,
}

/// One kind's source: an optional default file and how to read it.
#[derive(Debug, Clone)]
pub struct Source<F: FieldSet> {
    pub file: Option<PathBuf>,
    pub spec: SourceSpec<F>,
}

impl<F: FieldSet> Default for Source<F> {
    fn default() -> Self {
        Source { file: None, spec: SourceSpec::default() }
    }
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The From: of every email Keel sends.
    pub from: String,
    pub transport: EmailTransport,
    /// Where unsubscribe links point: the API's `/unsubscribe` unless configured.
    pub unsubscribe_url: String,
    /// Signs unsubscribe tokens; `None`: a key Keel keeps in the store.
    pub unsubscribe_secret: Option<Secret>,
    pub protections: Protections,
    /// `email.currency`: what templates' `money` filter prints (ISO code, default USD).
    pub currency: String,
    /// `email.date_format`: templates' `date` filter without an argument.
    pub date_format: String,
}

#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// No SMTP server configured: each email is written as an `.eml` file in `dir`.
    Files {
        dir: PathBuf,
    },
    Smtp(SmtpConfig),
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Bearer tokens and what each may do. A token whose variable is unset or empty is
    /// kept here with `secret: None`: it never authenticates, and `keel run` says so.
    pub tokens: Vec<ApiToken>,
    /// Segment write keys (HTTP Basic usernames on `/v1/*`); empty ones are left out
    /// and counted in `empty_write_keys`.
    pub write_keys: Vec<Secret>,
    pub empty_write_keys: usize,
    pub limits: ApiLimits,
}

/// What one client may cost the API (`api.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Bytes of a request body, read and (for gzip bodies) inflated. Segment's routes keep
    /// Segment's own, smaller limits.
    pub max_body: usize,
    /// A client that has not sent its headers by then is disconnected (slow-loris).
    pub header_timeout: std::time::Duration,
    /// A request not answered by then gets 408 (a body trickled in counts).
    pub request_timeout: std::time::Duration,
    pub max_connections: usize,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            max_body: 1024 * 1024,
            header_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

impl ApiConfig {
    /// Tokens that can authenticate (set and not empty).
    pub fn usable_tokens(&self) -> impl Iterator<Item = (&Secret, &[Scope])> {
        self.tokens.iter().filter_map(|t| t.secret.as_ref().map(|s| (s, t.scopes.as_slice())))
    }
}

/// One API token: where the config names it (`api.tokens[1]`), its secret, its scopes.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub name: String,
    pub secret: Option<Secret>,
    pub scopes: Vec<Scope>,
}

/// What an API token may do. `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Push accounts, contacts and events (`POST /api/v1/accounts|contacts|events`).
    Ingest,
    /// Read accounts, tasks and the outbox.
    Read,
    /// Close, snooze and cancel tasks; unsubscribe a contact who asked (a CSM's work).
    Tasks,
    /// Everything, including retrying the outbox.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Tasks => "tasks",
            Scope::Admin => "admin",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config file at {}; pass --config PATH (the example config is examples/keel.yaml)", path.display())]
    Missing { path: PathBuf },
    #[error("could not read the config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl Config {
    /// How templates print money and dates (`email.currency`, `email.date_format`, and
    /// the config's zone for moments whose recipient and account name none).
    pub fn formats(&self) -> crate::lang::render::Formats {
        crate::lang::render::Formats {
            currency: self.email.currency.clone(),
            date_format: self.email.date_format.clone(),
            timezone: self.timezone,
        }
    }

    /// Loads the rules and playbooks this config names, templates printing figures as
    /// [`Config::formats`] says.
    pub fn load_playbooks(&self) -> Result<crate::lang::Loaded, Vec<Diagnostic>> {
        let mut loaded = crate::lang::Loaded::load(&self.rules_dir, &self.playbooks_dir)?;
        crate::lang::render::register_filters(&mut loaded.set.templates, &self.formats());
        Ok(loaded)
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = diagnostic::read_source(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ConfigError::Missing { path: path.to_path_buf() },
            _ => ConfigError::Read { path: path.to_path_buf(), source },
        })?;
        let raw = parse(path, &text)?;
        Ok(Config::from_raw(path, raw))
    }

    /// Validation and defaults: pure, so it is tested without files.
    fn from_raw(path: &Path, raw: RawConfig) -> Config {
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let dir =
            |value: Option<raw::Expanded>, default: &str| resolve(value.as_ref().map_or(default, |e| e.0.as_str()));
        let data_dir = dir(raw.data_dir, ".keel");
        let email_transport = match raw.email.smtp {
            Some(smtp) if !smtp.host.0.trim().is_empty() => {
                let tls = smtp.tls.unwrap_or(TlsMode::Starttls);
                EmailTransport::Smtp(SmtpConfig {
                    host: smtp.host.0.trim().to_string(),
                    port: smtp.port.unwrap_or(match tls {
                        TlsMode::Starttls => 587,
                        TlsMode::Implicit => 465,
                        TlsMode::None => 25,
                    }),
                    tls,
                    username: smtp.username.map(|u| u.0).filter(|u| !u.is_empty()),
                    password: smtp.password.filter(|p| !p.expose().is_empty()),
                })
            }
            _ => EmailTransport::Files {
                dir: raw.email.eml_dir.map(|d| resolve(&d.0)).unwrap_or_else(|| data_dir.join("mail")),
            },
        };
        let listen = raw.api.listen.map_or(SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_API_PORT)), |l| l.0);
        Config {
            file: path.to_path_buf(),
            timezone: raw.timezone.map_or(Tz::UTC, |t| t.0),
            playbooks_dir: dir(raw.playbooks, "playbooks"),
            rules_dir: dir(raw.rules, "rules"),
            sync: SyncConfig {
                accounts: source_of(raw.sync.accounts, &resolve),
                contacts: source_of(raw.sync.contacts, &resolve),
                events: source_of(raw.sync.events, &resolve),
                segment: segment_of(raw.sync.segment),
            },
            email: EmailConfig {
                from: raw.email.from.map_or_else(|| "Keel <keel@localhost>".to_string(), |f| f.0),
                transport: email_transport,
                unsubscribe_url: raw
                    .email
                    .unsubscribe_url
                    .map(|u| u.0)
                    .filter(|u| !u.trim().is_empty())
                    .unwrap_or_else(|| format!("http://{listen}/unsubscribe")),
                unsubscribe_secret: raw.email.unsubscribe_secret.filter(|s| !s.expose().is_empty()),
                currency: raw.email.currency.map_or_else(|| "USD".to_string(), |c| c.0),
                date_format: raw
                    .email
                    .date_format
                    .map_or_else(|| crate::lang::render::DEFAULT_DATE_FORMAT.to_string(), |f| f.0),
                protections: {
                    let default = Protections::default();
                    Protections {
                        cap: raw
                            .email
                            .frequency_cap
                            .map_or(default.cap, |c| Some(FrequencyCap { max: c.max.get(), per: c.per.0.to_chrono() })),
                        quiet_hours: raw
                            .email
                            .quiet_hours
                            .map_or(default.quiet_hours, |q| (q.start.0 != q.end.0).then_some((q.start.0, q.end.0))),
                        business_days: raw
                            .email
                            .business_days
                            .map_or(default.business_days, |d| d.into_iter().map(|d| d.0).collect()),
                    }
                },
            },
            api: {
                let all = vec![Scope::Admin];
                let tokens = raw
                    .api
                    .token
                    .map(|t| ("api.token".to_string(), t, all))
                    .into_iter()
                    .chain(
                        raw.api
                            .tokens
                            .into_iter()
                            .enumerate()
                            .map(|(i, t)| (format!("api.tokens[{i}]"), t.token, t.scopes)),
                    )
                    .map(|(name, secret, scopes)| ApiToken {
                        name,
                        secret: (!secret.expose().is_empty()).then_some(secret),
                        scopes,
                    })
                    .collect();
                let (write_keys, empty): (Vec<Secret>, Vec<Secret>) =
                    raw.api.write_keys.into_iter().partition(|k| !k.expose().is_empty());
                let d = ApiLimits::default();
                let l = raw.api.limits;
                let limits = ApiLimits {
                    max_body: l.max_body_kb.map_or(d.max_body, |k| k.0 * 1024),
                    header_timeout: l.header_timeout.map_or(d.header_timeout, |t| t.0),
                    request_timeout: l.request_timeout.map_or(d.request_timeout, |t| t.0),
                    max_connections: l.max_connections.map_or(d.max_connections, |n| n.0),
                };
                ApiConfig { listen, tokens, write_keys, empty_write_keys: empty.len(), limits }
            },
            delivery: {
                let d = DeliveryConfig::default();
                let r = raw.delivery;
                DeliveryConfig {
                    max_attempts: r.max_attempts.map_or(d.max_attempts, |n| n.get()),
                    backoff: r.backoff.map_or(d.backoff, |b| b.0),
                    max_backoff: r.max_backoff.map_or(d.max_backoff, |b| b.0),
                    retention: r.retention.map_or(d.retention, |s| s.0.to_chrono()),
                    email_concurrency: r.email_concurrency.map_or(d.email_concurrency, |n| n.get()),
                    webhook_concurrency: r.webhook_concurrency.map_or(d.webhook_concurrency, |n| n.get()),
                    shutdown_grace: r.shutdown_grace.map_or(d.shutdown_grace, |g| g.0),
                }
            },
            evaluation: EvaluationConfig {
                schedule: raw.evaluation.schedule.map_or_else(
                    || CronSchedule::parse(DEFAULT_SCHEDULE).expect("the default schedule is valid"),
                    |c| c.0,
                ),
                workers: raw
                    .evaluation
                    .workers
                    .or_else(|| std::thread::available_parallelism().ok())
                    .map_or(2, |n| n.get()),
                tick_limit: std::time::Duration::from_secs(
                    60 * raw.evaluation.tick_limit.map_or(DEFAULT_TICK_LIMIT_MINUTES, |s| s.0.minutes()) as u64,
                ),
                incremental: raw.evaluation.incremental.unwrap_or(true),
            },
            clock_start: raw.clock.map(|c| c.start.0),
            guard: {
                let d = GuardConfig::default();
                match raw.guard {
                    None => d,
                    Some(raw::RawGuardSetting::Off) => GuardConfig { enabled: false, ..d },
                    Some(raw::RawGuardSetting::On(g)) => GuardConfig {
                        enabled: true,
                        limits: crate::lang::guard::Limits {
                            max_firings: g.max_firings.map(|n| n.get()).or(d.limits.max_firings),
                            max_share: g.max_share.or(d.limits.max_share),
                        },
                        applies_to: g.applies_to.unwrap_or_default(),
                        notify: g.notify.map(|n| n.0.trim().to_string()).filter(|n| !n.is_empty()),
                    },
                }
            },
            data_dir,
        }
    }
}

fn source_of<F: FieldSet>(raw: Option<RawSource<F>>, resolve: &dyn Fn(&str) -> PathBuf) -> Source<F> {
    match raw {
        None => Source::default(),
        Some(raw) => Source {
            file: raw.file.map(|f| resolve(&f.0)),
            spec: SourceSpec {
                columns: raw.columns,
                date_formats: raw.date_format.map(|d| d.0).unwrap_or_default(),
                on_bad_value: bad_value(raw.on_bad_value),
            },
        },
    }
}

fn segment_of(raw: Option<raw::RawSegment>) -> SegmentSpec {
    fn traits<F: FieldSet>(raw: Option<raw::RawTraits<F>>) -> SourceSpec<F> {
        match raw {
            None => SourceSpec::default(),
            Some(raw) => SourceSpec {
                columns: raw.traits,
                date_formats: raw.date_format.map(|d| d.0).unwrap_or_default(),
                on_bad_value: bad_value(raw.on_bad_value),
            },
        }
    }
    let raw = raw.unwrap_or_default();
    SegmentSpec {
        group: traits(raw.group),
        identify: traits(raw.identify),
        account_property: raw.track.map(|t| t.account_property.0),
    }
}

fn bad_value(raw: Option<raw::OnBadValue>) -> OnBadValue {
    match raw {
        Some(raw::OnBadValue::RejectRow) => OnBadValue::RejectRow,
        Some(raw::OnBadValue::SkipValue) | None => OnBadValue::SkipValue,
    }
}

/// YAML → [`RawConfig`], with errors as [`ConfigError::Invalid`].
fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    parse_yaml(path, text).map_err(ConfigError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let path = Path::new("conf/keel.yaml");
        parse(path, text).map(|raw| Config::from_raw(path, raw))
    }

    #[test]
    fn api_limits_have_defaults_and_read_as_written() {
        assert_eq!(load_str("timezone: UTC\n").unwrap().api.limits, ApiLimits::default());
        let c = load_str(
            "api:\n  limits:\n    max_body_kb: 640\n    header_timeout: 2s\n    request_timeout: 1m\n    max_connections: 8\n",
        )
        .unwrap();
        assert_eq!(
            c.api.limits,
            ApiLimits {
                max_body: 640 * 1024,
                header_timeout: std::time::Duration::from_secs(2),
                request_timeout: std::time::Duration::from_secs(60),
                max_connections: 8,
            }
        );
        for (bad, says) in [
            ("max_body_kb: 64", "64 is out of range: between 500 and 1048576"),
            ("max_connections: 99999999999999", "out of range"),
            ("header_timeout: 0s", "0s"),
            ("max_connection: 8", "unknown field `max_connection`"),
        ] {
            let e = load_str(&format!("api:\n  limits:\n    {bad}\n")).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn email_currency_and_date_format_default_and_are_checked() {
        let c = load_str("").unwrap();
        assert_eq!((c.email.currency.as_str(), c.email.date_format.as_str()), ("USD", "%b %-d, %Y"));
        let c = load_str("timezone: Europe/Paris\nemail:\n  currency: eur\n  date_format: \"%d/%m/%Y\"\n").unwrap();
        let f = c.formats();
        assert_eq!(
            (f.currency.as_str(), f.date_format.as_str(), f.timezone),
            ("EUR", "%d/%m/%Y", chrono_tz::Europe::Paris)
        );
        let bad = load_str("email:\n  currency: dollars\n").unwrap_err().to_string();
        assert!(bad.contains("invalid currency \"dollars\": expected an ISO 4217 code"), "{bad}");
        let bad = load_str("email:\n  date_format: \"%H:%M\"\n").unwrap_err().to_string();
        assert!(bad.contains("asks for a time or zone"), "{bad}");
        let bad = load_str("email:\n  date_format: \"%Q\"\n").unwrap_err().to_string();
        assert!(bad.contains("invalid date format"), "{bad}");
    }

    #[test]
    fn an_empty_config_gets_defaults_relative_to_its_folder() {
        let c = load_str("").unwrap();
        assert_eq!(c.timezone, Tz::UTC);
        assert_eq!(c.store_dir(), Path::new("conf/.keel/store"));
        assert_eq!(c.playbooks_dir, Path::new("conf/playbooks"));
        assert!(matches!(c.email.transport, EmailTransport::Files { ref dir } if dir == Path::new("conf/.keel/mail")));
        assert_eq!(c.api.listen.port(), DEFAULT_API_PORT);
    }

    #[test]
    fn an_empty_smtp_host_means_eml_files() {
        let c = load_str("email:\n  smtp:\n    host: ${KEEL_TEST_UNSET_HOST:-}\n").unwrap();
        assert!(matches!(c.email.transport, EmailTransport::Files { .. }));
    }

    #[test]
    fn evaluation_settings_are_checked_where_they_are_written() {
        let c = load_str("evaluation:\n  schedule: \"0 8 * * Mon-Fri\"\n  workers: 3\n  tick_limit: 2m\n").unwrap();
        assert_eq!(c.evaluation.schedule.source, "0 8 * * Mon-Fri");
        assert_eq!((c.evaluation.workers, c.evaluation.tick_limit.as_secs()), (3, 120));
        let err = load_str("evaluation:\n  schedule: \"0 25 * * *\"\n").unwrap_err().to_string();
        assert!(err.contains("conf/keel.yaml:2:13") && err.contains("cron schedule"), "{err}");
        let err = load_str("evaluation:\n  workers: 0\n").unwrap_err().to_string();
        assert!(err.contains("conf/keel.yaml:2:12") && err.contains("nonzero"), "{err}");
        let err = load_str("evaluation:\n  tick_limit: soon\n").unwrap_err().to_string();
        assert!(err.contains("conf/keel.yaml:2:15") && err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn delivery_and_inbox_settings_are_read_and_checked_where_written() {
        let c = load_str("email:\n  frequency_cap: { max: 3, per: 14d }\n  quiet_hours: { start: \"21:30\", end: \"07:00\" }\n  business_days: [mon, wed]\ndelivery:\n  backoff: 500ms\n  max_attempts: 3\n").unwrap();
        let p = &c.email.protections;
        assert_eq!((p.cap.unwrap().max, p.cap.unwrap().per.num_days()), (3, 14));
        assert_eq!(p.quiet_hours.unwrap().0.to_string(), "21:30:00");
        assert_eq!(p.business_days, vec![chrono::Weekday::Mon, chrono::Weekday::Wed]);
        assert_eq!((c.delivery.backoff.as_millis(), c.delivery.max_attempts), (500, 3));
        assert_eq!(c.email.unsubscribe_url, "http://127.0.0.1:7400/unsubscribe");
        // Equal start and end: no quiet hours.
        let c = load_str("email:\n  quiet_hours: { start: \"00:00\", end: \"00:00\" }\n").unwrap();
        assert!(c.email.protections.quiet_hours.is_none());
        for (text, at, says) in [
            ("email:\n  quiet_hours: { start: \"9pm\", end: \"07:00\" }\n", "conf/keel.yaml:2:", "expected HH:MM"),
            ("email:\n  business_days: [someday]\n", "conf/keel.yaml:2:", "expected mon, tue"),
            ("email:\n  frequency_cap: { max: 0, per: 7d }\n", "conf/keel.yaml:2:", "nonzero"),
            ("delivery:\n  backoff: 0s\n", "conf/keel.yaml:2:12", "must be a positive delay"),
            (
                "email:\n  unsubscribe_secret: hunter2\n",
                "conf/keel.yaml:2:",
                "secrets must come from environment variables",
            ),
        ] {
            let err = load_str(text).unwrap_err().to_string();
            assert!(err.contains(at) && err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_pinned_clock_is_an_rfc3339_instant_checked_where_written() {
        assert_eq!(load_str("").unwrap().clock_start, None);
        let c = load_str("clock:\n  start: \"2026-11-23T08:30:00-05:00\"\n").unwrap();
        assert_eq!(c.clock_start.unwrap().to_rfc3339(), "2026-11-23T13:30:00+00:00");
        let err = load_str("clock:\n  start: 2026-11-23\n").unwrap_err().to_string();
        assert!(err.contains("conf/keel.yaml:2:10") && err.contains("expected RFC 3339"), "{err}");
        let err = load_str("clock:\n  begin: \"2026-11-23T08:30:00Z\"\n").unwrap_err().to_string();
        assert!(err.contains("conf/keel.yaml:2:3") && err.contains("unknown field `begin`"), "{err}");
    }

    #[test]
    fn a_literal_secret_is_refused() {
        let err = load_str("api:\n  token: hunter2\n").unwrap_err().to_string();
        assert!(err.contains("secrets must come from environment variables"), "{err}");
        assert!(!err.contains("hunter2\n  = "), "{err}");
    }
}
