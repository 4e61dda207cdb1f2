//! `keel plan`: what a change to the playbooks, templates or rules would do before it goes
//! live — like `terraform plan` — by comparing a working set of files with the running
//! set the daemon recorded in the store (`store::running`).
//!
//! It reports, per playbook, whether it was added, removed, changed or left unchanged,
//! with a unified diff of its YAML and of the templates it sends; a change to the rules
//! (the health model, the Rhai rule files) as its own item, with how many accounts would
//! change band; and the **effect at the next pass**: the real pass in dry-run mode
//! ([`crate::decide::tick`] with [`Mode::DryRun`], as `simulate` runs it) once with the
//! running set and once with the working set, at the same moment, over the same store.
//! Per playbook that is how many accounts would fire with each, the emails (to contacts,
//! to an address), tasks and webhooks they would queue, and a sample of the accounts that
//! newly fire or no longer fire, each with the values its trigger read.
//!
//! The moment: [`Request::at`], else the next pass — now when something is due now (a
//! playbook that never ran, missed ticks), else the earliest next tick of the working
//! set's playbooks. A playbook not due then is reported as such, with its next tick: a
//! change to an hourly playbook shows at the next hour, not "nothing would change".
//!
//! Both sets are loaded the same way: their texts are written to a temporary folder and
//! read by `Config::load_playbooks`, the loader the daemon uses, with the config's
//! currency and date formats; paths in their messages are said relative to it
//! (`playbooks/x.yaml:3:5`). The config itself (zone, schedules) is the caller's, for
//! both sets: `keel.yaml` is not part of a set.
//!
//! Invariants: nothing is written (two dry runs and a scoring of every account without
//! recording a point); without a recorded running set the comparison is with an empty
//! set (every playbook added) and says so; `changed` is true exactly when the two sets'
//! fingerprints differ (the exit status of `keel plan`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::config::Config;
use crate::decide::tick::{self, Context, Mode, Options, Plan};
use crate::diagnostic::Diagnostic;
use crate::lang::playbook::Action;
use crate::lang::sources::Sources;
use crate::lang::view::AccountView;
use crate::lang::Loaded;
use crate::model::{Audience, Band, Decision, Payload};
use crate::store::Store;

/// The most accounts a sample may list per playbook and direction.
pub const MAX_SAMPLE: usize = 1000;

/// The most text a working set sent for a plan may hold.
pub const MAX_SET_BYTES: usize = crate::store::RUNNING_SET_MAX_BYTES;

/// What to plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The moment of the pass to compare; `None`: the next pass.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// How many accounts to list per playbook that newly fire, and that no longer fire.
    #[serde(default = "default_sample")]
    pub sample: usize,
    /// The working set's texts, by key (`playbooks/x.yaml`, `rules/health.rhai`; see
    /// [`crate::lang::sources`]).
    pub files: BTreeMap<String, String>,
}

/// `keel plan --sample`'s default.
pub const DEFAULT_SAMPLE: usize = 10;

fn default_sample() -> usize {
    DEFAULT_SAMPLE
}

/// Whether a playbook (or a file) is new, gone, different or the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// A file whose text differs between the sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Its key (`playbooks/templates/renewal_90.txt`).
    pub file: String,
    pub change: Change,
    /// A unified diff, running set (`-`) to working set (`+`).
    pub diff: String,
}

/// Where a playbook stands on the clock at the plan's moment, in one set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Due {
    /// Not in this set.
    Absent,
    /// `enabled: false`.
    Disabled,
    /// Due: the pass evaluates it, for this tick.
    Due { tick: DateTime<Utc> },
    /// Not due at the moment; its next tick.
    NotDue { next: Option<DateTime<Utc>> },
    /// A schedule trigger's first run: it starts counting and fires from its next tick.
    FirstRun { next: Option<DateTime<Utc>> },
    /// Its missed ticks are all older than the catch-up window: skipped.
    TooLate,
    /// Due, but the blast-radius guard would hold the pass: it decides nothing
    /// (`held by guard: would fire …`).
    Held { reason: String },
}

/// What one set's pass would do with one playbook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Accounts it would fire for (a firing, or a sequence's step).
    pub fired: u64,
    pub skipped: u64,
    pub exited: u64,
    pub errors: u64,
    /// Emails to the account's contacts (customer-facing), one per contact.
    pub customer_emails: u64,
    /// Emails to an address (a CSM, a manager), digest parts included.
    pub internal_emails: u64,
    /// Tasks opened, or open ones updated.
    pub tasks: u64,
    pub webhooks: u64,
    /// Of those emails and webhooks, the ones decided dead: a template failed for the
    /// account (`keel outbox list --dead` would list them).
    pub dead: u64,
    /// Account fields set by `update` actions.
    pub updates: u64,
}

/// An account that fires with one set and not with the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub account: String,
    pub account_name: String,
    pub occurrence: String,
    /// The values its audience and trigger read (the ledger entry's `values`).
    pub values: BTreeMap<String, serde_json::Value>,
}

/// One set's side of a playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub due: Due,
    pub counts: Counts,
}

/// One playbook, in both sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookPlan {
    pub id: String,
    pub change: Change,
    /// Its file's key in the working set (the running set's when removed).
    pub file: String,
    /// The playbook's own YAML, running → working, when it differs (a renamed file too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Changed templates this playbook sends (their diffs are in [`Report::templates`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
    pub running: Side,
    pub working: Side,
    /// Accounts that fire with the working set and not with the running one, by id.
    pub newly_firing: u64,
    pub no_longer_firing: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newly_firing_sample: Vec<Sample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_longer_firing_sample: Vec<Sample>,
}

/// Accounts whose band differs between the two health models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandMove {
    /// `green`, `yellow`, `red`, or `unscored` (no category had inputs) or `failed`.
    pub from: String,
    pub to: String,
    pub accounts: u64,
}

/// The rules (health model and rule files), when they changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesPlan {
    pub files: Vec<FileChange>,
    /// The accounts scored (every account in the store), and the day.
    pub accounts: u64,
    pub date: chrono::NaiveDate,
    /// `from → to` counts, largest first. Empty when no running set is recorded.
    pub moves: Vec<BandMove>,
}

/// The recorded running set, as far as the plan used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// `None`: no daemon ever recorded one here; the plan compared with an empty set.
    pub recorded: Option<DateTime<Utc>>,
    pub fingerprint: Option<String>,
}

/// A playbook that failed for an account in one of the dry runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// `running` or `working`.
    pub set: String,
    pub playbook: String,
    pub account: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The moment of the compared pass, and whether it was asked for or is the next pass.
    pub at: DateTime<Utc>,
    pub at_given: bool,
    pub timezone: String,
    pub running: Running,
    pub working_fingerprint: String,
    /// The sets differ (some file was added, removed or changed).
    pub changed: bool,
    /// Every playbook of either set, in id order.
    pub playbooks: Vec<PlaybookPlan>,
    /// Templates that differ, with the playbooks that send them.
    pub templates: Vec<FileChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RulesPlan>,
    /// Accounts the working set's dry run evaluated, and why those.
    pub accounts: u64,
    pub selection: String,
    /// A schedule trigger's first run, skipped ticks (from the working set's pass).
    pub notes: Vec<String>,
    pub failures: Vec<Failure>,
    /// How long the plan took, in milliseconds.
    pub elapsed_ms: u64,
}

/// Plans `request` against `store` as of `now` (the caller's clock), with `config`'s zone,
/// schedules and formats.
pub fn plan(store: &Store, config: &Config, request: &Request, now: DateTime<Utc>) -> Result<Report, ServiceError> {
    let started = Instant::now();
    if request.sample > MAX_SAMPLE {
        return Err(ServiceError::InvalidArgument(format!(
            "a sample lists at most {MAX_SAMPLE} accounts, not {}",
            request.sample
        )));
    }
    let working_sources = Sources { files: request.files.clone(), skipped: Vec::new() };
    if working_sources.total_bytes() > MAX_SET_BYTES {
        return Err(ServiceError::InvalidArgument(format!(
            "the working set holds {} bytes of text, over the {MAX_SET_BYTES}-byte limit",
            working_sources.total_bytes()
        )));
    }
    let working = load_set(config, &working_sources, "working")?;
    let recorded = store.running_set()?;
    let running_sources =
        Sources { files: recorded.as_ref().map(|r| r.files.clone()).unwrap_or_default(), skipped: Vec::new() };
    let running = load_set(config, &running_sources, "running")?;

    let wctx = Context { store, loaded: &working, config };
    let rctx = Context { store, loaded: &running, config };
    let at = match request.at {
        Some(at) => at,
        None => tick::next_wakeup(wctx, now)?.map_or(now, |t| t.max(now)),
    };
    crate::decide::time::check_moment(at).map_err(ServiceError::InvalidArgument)?;

    let never = AtomicBool::new(false);
    let rtick = tick::tick(rctx, at, Mode::DryRun, Options::default(), &never)?;
    let wtick = tick::tick(wctx, at, Mode::DryRun, Options::default(), &never)?;
    let rdone = Decided::of(&rtick);
    let wdone = Decided::of(&wtick);

    // Files.
    let diffs = file_changes(&running_sources, &working_sources);
    let changed_files: BTreeSet<&str> = diffs.iter().map(|d| d.file.as_str()).collect();
    let templates: Vec<FileChange> =
        diffs.iter().filter(|d| d.file.starts_with("playbooks/templates/")).cloned().collect();
    let rule_files: Vec<FileChange> = diffs.iter().filter(|d| d.file.starts_with("rules/")).cloned().collect();

    // Playbooks, by id: the ledger's key, whatever file holds them.
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    ids.extend(running.set.playbooks.iter().map(|p| p.id.as_str()));
    ids.extend(working.set.playbooks.iter().map(|p| p.id.as_str()));
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut playbooks = Vec::new();
    for id in ids {
        let (r, w) = (running.set.get(id), working.set.get(id));
        let rkey = r.map(|p| key_of(&p.file));
        let wkey = w.map(|p| key_of(&p.file));
        let rtext = rkey.as_ref().and_then(|k| running_sources.files.get(k));
        let wtext = wkey.as_ref().and_then(|k| working_sources.files.get(k));
        let sends: BTreeSet<String> = [r, w].into_iter().flatten().flat_map(templates_of).collect();
        let changed_templates: Vec<String> = sends.into_iter().filter(|t| changed_files.contains(t.as_str())).collect();
        let diff = match (r, w) {
            (Some(_), Some(_)) if rtext != wtext || rkey != wkey => Some(unified(
                rtext.map_or("", String::as_str),
                wtext.map_or("", String::as_str),
                rkey.as_deref().unwrap_or(""),
                wkey.as_deref().unwrap_or(""),
            )),
            (None, Some(_)) => {
                Some(unified("", wtext.map_or("", String::as_str), "/dev/null", wkey.as_deref().unwrap_or("")))
            }
            (Some(_), None) => {
                Some(unified(rtext.map_or("", String::as_str), "", rkey.as_deref().unwrap_or(""), "/dev/null"))
            }
            _ => None,
        };
        let change = match (r, w) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            _ if diff.is_some() || !changed_templates.is_empty() => Change::Changed,
            _ => Change::Unchanged,
        };
        let running_side = Side { due: due_of(rctx, &rtick, id, at)?, counts: rdone.counts(id) };
        let working_side = Side { due: due_of(wctx, &wtick, id, at)?, counts: wdone.counts(id) };
        let (rfired, wfired) = (rdone.firing(id), wdone.firing(id));
        let newly: Vec<&str> = wfired.keys().filter(|a| !rfired.contains_key(*a)).map(|a| a.as_str()).collect();
        let gone: Vec<&str> = rfired.keys().filter(|a| !wfired.contains_key(*a)).map(|a| a.as_str()).collect();
        let mut sample = |list: &[&str], from: &BTreeMap<String, Sample>| -> Result<Vec<Sample>, ServiceError> {
            let mut out = Vec::new();
            for account in list.iter().take(request.sample) {
                let mut s = from[*account].clone();
                s.account_name = name_of(store, &mut names, account)?;
                out.push(s);
            }
            Ok(out)
        };
        let newly_firing_sample = sample(&newly, &wfired)?;
        let no_longer_firing_sample = sample(&gone, &rfired)?;
        playbooks.push(PlaybookPlan {
            id: id.to_string(),
            change,
            file: wkey.or(rkey).unwrap_or_default(),
            diff,
            templates: changed_templates,
            running: running_side,
            working: working_side,
            newly_firing: newly.len() as u64,
            no_longer_firing: gone.len() as u64,
            newly_firing_sample,
            no_longer_firing_sample,
        });
    }

    let date = at.with_timezone(&config.timezone).date_naive();
    let rules = if rule_files.is_empty() {
        None
    } else {
        let (accounts, moves) = if recorded.is_some() {
            band_moves(store, &running, &working, date)?
        } else {
            (store.account_count() as u64, Vec::new())
        };
        Some(RulesPlan { files: rule_files, accounts, date, moves })
    };

    let mut failures = Vec::new();
    for (set, t) in [("running", &rtick), ("working", &wtick)] {
        for f in t.report.iter().flat_map(|r| &r.failures) {
            failures.push(Failure {
                set: set.into(),
                playbook: f.playbook.clone(),
                account: f.account.clone(),
                error: f.error.clone(),
            });
        }
    }
    let report = wtick.report.as_ref().or(rtick.report.as_ref());
    let working_fingerprint = working_sources.fingerprint();
    Ok(Report {
        at,
        at_given: request.at.is_some(),
        timezone: config.timezone.to_string(),
        changed: recorded.as_ref().map_or(!working_sources.files.is_empty(), |r| r.fingerprint != working_fingerprint),
        running: Running {
            recorded: recorded.as_ref().map(|r| r.recorded),
            fingerprint: recorded.as_ref().map(|r| r.fingerprint.clone()),
        },
        working_fingerprint,
        playbooks,
        templates,
        rules,
        accounts: report.map_or(0, |r| r.accounts),
        selection: report.map(|r| r.selection.clone()).unwrap_or_default(),
        notes: wtick.notes.clone(),
        failures,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Loads a set from its texts: written to a temporary folder, read by the daemon's own
/// loader. A set that does not load is an error with every problem, its paths relative to
/// the set (`playbooks/x.yaml`).
fn load_set(config: &Config, sources: &Sources, which: &'static str) -> Result<Loaded, ServiceError> {
    let dir = tempfile::tempdir().map_err(|e| ServiceError::Config(format!("cannot make a temporary folder: {e}")))?;
    let (rules_dir, playbooks_dir) = sources.materialise(dir.path()).map_err(|e| match which {
        "working" => ServiceError::InvalidArgument(e),
        _ => ServiceError::Config(e),
    })?;
    let scoped = Config { rules_dir, playbooks_dir, ..config.clone() };
    scoped.load_playbooks().map_err(|errors| {
        let root = dir.path();
        let errors = errors
            .into_iter()
            .map(|d| {
                let file = d.file.strip_prefix(root).map(Path::to_path_buf).unwrap_or(d.file.clone());
                let snippet = d.snippet.map(|s| s.replace(&format!("{}/", root.display()), ""));
                Diagnostic { file, snippet, ..d }
            })
            .collect();
        ServiceError::SetDoesNotLoad { which, errors }
    })
}

/// A loaded file's key: its path relative to the temporary root (`playbooks/x.yaml`).
fn key_of(file: &Path) -> String {
    let parts: Vec<String> = file.components().rev().take(3).map(|c| c.as_os_str().to_string_lossy().into()).collect();
    // …/playbooks/x.yaml, or …/playbooks/templates/x.txt (a playbook is always the former).
    match parts.as_slice() {
        [name, folder, ..] => format!("{folder}/{name}"),
        [name] => name.clone(),
        [] => String::new(),
    }
}

/// The template files a playbook's email actions send (both parts).
fn templates_of(pb: &crate::lang::playbook::Playbook) -> Vec<String> {
    let mut out = Vec::new();
    for step in &pb.steps {
        for action in &step.actions {
            if let Action::Email { template, .. } = action {
                out.push(format!("playbooks/templates/{template}.txt"));
                out.push(format!("playbooks/templates/{template}.html"));
            }
        }
    }
    out
}

/// Every file whose text differs between the sets, in key order.
fn file_changes(running: &Sources, working: &Sources) -> Vec<FileChange> {
    let keys: BTreeSet<&String> = running.files.keys().chain(working.files.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (r, w) = (running.files.get(key), working.files.get(key));
        let change = match (r, w) {
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (Some(a), Some(b)) if a != b => Change::Changed,
            _ => continue,
        };
        let (from, to) = match change {
            Change::Added => ("/dev/null", key.as_str()),
            Change::Removed => (key.as_str(), "/dev/null"),
            _ => (key.as_str(), key.as_str()),
        };
        let diff = unified(r.map_or("", String::as_str), w.map_or("", String::as_str), from, to);
        out.push(FileChange { file: key.clone(), change, diff });
    }
    out
}

/// A unified diff with three lines of context, `running/…` to `working/…`.
fn unified(old: &str, new: &str, from: &str, to: &str) -> String {
    let name = |side: &str, f: &str| if f == "/dev/null" { f.to_string() } else { format!("{side}/{f}") };
    let diff = similar::TextDiff::from_lines(old, new);
    let mut text =
        diff.unified_diff().context_radius(3).header(&name("running", from), &name("working", to)).to_string();
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    text
}

/// Where playbook `id` stands at `at` in the set of `ctx`, as the dry run `t` saw it.
fn due_of(ctx: Context, t: &tick::Tick, id: &str, at: DateTime<Utc>) -> Result<Due, ServiceError> {
    let Some(pb) = ctx.loaded.set.get(id) else { return Ok(Due::Absent) };
    if !pb.enabled {
        return Ok(Due::Disabled);
    }
    if let Some(h) = t.held.iter().find(|h| h.playbook == id) {
        return Ok(Due::Held { reason: h.hold.describe() });
    }
    if let Some((_, tick)) = t.due.iter().find(|(d, _)| d == id) {
        return Ok(Due::Due { tick: *tick });
    }
    let last = ctx.store.last_tick(id)?;
    let (cron, tz) = tick::schedule_of(ctx.config, pb);
    Ok(match tick::plan(ctx.config, pb, last, at) {
        Plan::Baseline => Due::FirstRun { next: cron.next_in(tz, at) },
        Plan::TooLate { .. } => Due::TooLate,
        // Not due at `at`: no tick since its last pass, so its next one is after `at`.
        _ => Due::NotDue { next: cron.next_in(tz, last.unwrap_or(at)) },
    })
}

/// A dry run's decisions, per playbook.
struct Decided {
    counts: BTreeMap<String, Counts>,
    /// Per playbook, the accounts it fired for (the first firing of each).
    fired: BTreeMap<String, BTreeMap<String, Sample>>,
}

impl Decided {
    fn of(t: &tick::Tick) -> Decided {
        let mut d = Decided { counts: BTreeMap::new(), fired: BTreeMap::new() };
        if let Some(report) = &t.report {
            for (id, s) in &report.playbooks {
                let c = d.counts.entry(id.clone()).or_default();
                c.errors = s.errors;
                c.dead = s.dead;
            }
        }
        for chunk in &t.decided {
            for (i, entry) in chunk.entries.iter().enumerate() {
                let c = d.counts.entry(entry.playbook.clone()).or_default();
                match entry.decision {
                    Decision::Skipped => c.skipped += 1,
                    Decision::Exited => c.exited += 1,
                    Decision::Fired => {
                        c.fired += 1;
                        for (_, o) in chunk.outbox.iter().filter(|(f, _)| *f == i) {
                            match &o.payload {
                                Payload::Email(e) if matches!(e.audience, Audience::Customer { .. }) => {
                                    c.customer_emails += 1
                                }
                                Payload::Email(_) => c.internal_emails += 1,
                                Payload::Webhook(_) => c.webhooks += 1,
                            }
                        }
                        c.tasks += chunk.tasks.iter().filter(|(f, _)| *f == i).count() as u64;
                        c.updates += chunk.updates.iter().filter(|(f, _)| *f == i).count() as u64;
                        d.fired.entry(entry.playbook.clone()).or_default().entry(entry.account.clone()).or_insert_with(
                            || Sample {
                                account: entry.account.clone(),
                                account_name: String::new(),
                                occurrence: entry.occurrence.clone(),
                                values: entry.values.clone(),
                            },
                        );
                    }
                }
            }
        }
        d
    }

    fn counts(&self, id: &str) -> Counts {
        self.counts.get(id).cloned().unwrap_or_default()
    }

    fn firing(&self, id: &str) -> BTreeMap<String, Sample> {
        self.fired.get(id).cloned().unwrap_or_default()
    }
}

/// An account's display name, read once.
fn name_of(store: &Store, names: &mut BTreeMap<String, String>, id: &str) -> Result<String, ServiceError> {
    if let Some(n) = names.get(id) {
        return Ok(n.clone());
    }
    let name = store.account(id)?.map(|a| a.display_name().to_string()).unwrap_or_default();
    names.insert(id.to_string(), name.clone());
    Ok(name)
}

/// Every account scored for `date` with both health models, as a pass scores it (the
/// account and its contacts in scope, damping from the latest point before the day); the
/// accounts whose band differs, counted `from → to`. Nothing is recorded.
fn band_moves(
    store: &Store,
    running: &Loaded,
    working: &Loaded,
    date: chrono::NaiveDate,
) -> Result<(u64, Vec<BandMove>), ServiceError> {
    running.engine.set_today(date);
    working.engine.set_today(date);
    let (mut rscope, mut wscope) = (running.engine.scope(), working.engine.scope());
    let mut moves: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut accounts = 0;
    let band = |loaded: &Loaded, scope: &mut crate::lang::script::AccountScope, view: &AccountView, previous| {
        if scope.set_account(view).is_err() {
            return "failed".to_string();
        }
        match loaded.model.score(&loaded.engine, scope, date, previous) {
            Ok(Some(point)) => point.band.as_str().to_string(),
            Ok(None) => "unscored".to_string(),
            Err(_) => "failed".to_string(),
        }
    };
    for account in store.accounts() {
        let account = account?;
        accounts += 1;
        let contacts = store.contacts_of(&account.id)?;
        let view = AccountView { account: &account, health: None, contacts: &contacts };
        let previous: Option<Band> = crate::decide::health::previous_band(store, &account.id, date)?;
        let (from, to) = (band(running, &mut rscope, &view, previous), band(working, &mut wscope, &view, previous));
        if from != to {
            *moves.entry((from, to)).or_default() += 1;
        }
    }
    let mut moves: Vec<BandMove> =
        moves.into_iter().map(|((from, to), accounts)| BandMove { from, to, accounts }).collect();
    moves.sort_by(|a, b| b.accounts.cmp(&a.accounts).then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to))));
    Ok((accounts, moves))
}
