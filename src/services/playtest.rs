//! Playbook tests (`keel test`), like promtool's rule tests: accounts, a frozen clock,
//! and which playbooks must fire (and must not) for which accounts — on one day, or day by
//! day. CS Ops keep them next to their playbooks (`playbooks/tests/*.yaml`) and run them
//! in their own CI.
//!
//! ```yaml
//! tests:
//!   - name: renewal −90 fires on its day
//!     at: 2026-11-22                    # the frozen "today" (day 0)
//!     accounts:
//!       - { id: A, name: Acme, owner: ana@x.example, renewal_date: 2027-02-20 }
//!       - { id: B, segment: enterprise, health: 55, health_yesterday: 70 }
//!     expect:
//!       - { playbook: renewal-90, fires: [A], not: [B] }
//!   - name: the SMB sequence nudges on day 3 and stops once activated
//!     at: 2026-11-22
//!     accounts:
//!       - { id: S, segment: smb, start_date: 2026-11-22, metrics: { logins_30d: 0 } }
//!     contacts:
//!       - { id: C, account_id: S, email: sam@s.example }
//!     days:
//!       - { day: 0, expect: [ { playbook: smb-onboarding, fires: [S] } ] }
//!       - { day: 3, expect: [ { playbook: smb-onboarding, fires: [S] } ] }
//!       - day: 5
//!         accounts: [ { id: S, metrics: { active_users: 3 } } ]
//!         expect: [ { playbook: smb-onboarding, not: [S] } ]
//!       - { day: 14, expect: [ { playbook: smb-onboarding, exits: [S] } ] }
//! ```
//!
//! Each case runs the daemon's own pass ([`crate::decide::tick`], committed) on a fresh
//! store in a temporary folder, once per day from `at` to the last day listed, at the end
//! of each day in the configured zone, as if the daemon had been running since the day
//! before: schedule triggers fire at their ticks, edge state, `every` windows and
//! sequences carry from day to day, and the ledger keeps anything from firing twice.
//! Every account is evaluated at every pass (the incremental selection is proven to
//! decide the same by Keel's own tests). A day's `accounts` are partial records merged
//! into the case's by id (`metrics` and `fields` key by key); its `health` sets scores
//! from that day on. `health` on an account states its score instead of scoring metrics
//! (band from the model's thresholds); `health_yesterday` runs a pass the day before, for
//! those accounts only, so `on_enter` sees the edge. `fires`, `not` and `exits` are
//! checked against the decisions of that day's pass: a firing or a sequence step fired,
//! none, or a sequence stopped by `exit`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use chrono::{Duration, NaiveDate};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Config;
use crate::decide::tick::{self, Context, Mode, Options};
use crate::decide::time::{end_of_day, start_of_day};
use crate::diagnostic::parse_yaml;
use crate::diagnostic::{did_you_mean, yaml_path_position, Diagnostic, Seg};
use crate::lang::playbook::PlaybookSet;
use crate::lang::Loaded;
use crate::model::schema::TimeZone;
use crate::model::{Account, Contact, Decision, Event};
use crate::store::{Store, StoreError};

/// A playbook test file: cases, each with accounts, a frozen day and what must fire.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// The cases, run in order, each on a fresh store.
    tests: Vec<RawCase>,
}

/// One case: `expect` (checked on its day) or `days`, not both.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["expect"] }, { "required": ["days"] }]))]
struct RawCase {
    /// What the case shows; `keel test` prints it.
    name: String,
    /// The frozen "today" (day 0), YYYY-MM-DD.
    #[schemars(example = &"2026-11-22")]
    at: NaiveDate,
    /// The case's accounts: partial records (what a sync would carry), with `health`.
    #[schemars(with = "Vec<SchemaAccount>")]
    accounts: Vec<serde_yaml::Mapping>,
    /// Contacts of the case's accounts.
    #[serde(default)]
    contacts: Vec<Contact>,
    /// Product events of the case's accounts.
    #[serde(default)]
    events: Vec<Event>,
    /// What must (and must not) fire on day 0; or `days`, not both.
    expect: Option<Vec<RawExpect>>,
    /// Day by day from `at`: changes and expectations; or `expect`, not both.
    days: Option<Vec<RawDay>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDay {
    /// Days after the case's `at` (0: that day).
    #[schemars(range(max = 3660))]
    day: u32,
    /// Changes to the case's accounts from this day on, merged by `id`.
    #[serde(default)]
    #[schemars(with = "Vec<SchemaDayAccount>")]
    accounts: Vec<serde_yaml::Mapping>,
    /// Health scores from this day on, by account id.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Score>")]
    health: BTreeMap<String, f64>,
    /// Events arriving on this day.
    #[serde(default)]
    events: Vec<Event>,
    /// What must (and must not) fire in this day's pass.
    #[serde(default)]
    expect: Vec<RawExpect>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    /// The playbook's `id`.
    playbook: String,
    /// Accounts the playbook fires for (a firing or a sequence step).
    #[serde(default)]
    fires: Vec<String>,
    /// Accounts it does not fire for.
    #[serde(default)]
    not: Vec<String>,
    /// Accounts whose sequence its `exit` stops.
    #[serde(default)]
    exits: Vec<String>,
}

/// An account of a test case, for the schema only: the loader reads it as a mapping and
/// checks its keys against [`ACCOUNT_KEYS`] (a unit test keeps the two the same).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct SchemaAccount {
    /// The account id `fires`, `not` and `exits` name.
    id: String,
    #[serde(default)]
    name: String,
    /// enterprise, mid_market, smb, or a plain name of your own.
    segment: Option<String>,
    /// Annual recurring revenue.
    arr: Option<f64>,
    /// The CSM who owns the account (email).
    owner: Option<String>,
    /// The CSM's manager (email).
    manager: Option<String>,
    renewal_date: Option<NaiveDate>,
    start_date: Option<NaiveDate>,
    lifecycle_stage: Option<String>,
    #[schemars(with = "Option<TimeZone>")]
    timezone: Option<String>,
    /// Other CRM columns.
    #[serde(default)]
    fields: BTreeMap<String, serde_json::Value>,
    /// Usage numbers (`logins_30d`, `active_users`, …).
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    /// The account's health score (0–100), stated instead of scored from metrics.
    health: Option<Score>,
    /// The score the day before, so `on_enter` sees the account cross into its band.
    health_yesterday: Option<Score>,
}

/// A day's change to a test account: [`SchemaAccount`] without the health keys (a day
/// sets scores in its own `health`), `id` naming the account.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct SchemaDayAccount {
    /// The account changed (one of the case's).
    id: String,
    name: Option<String>,
    segment: Option<String>,
    arr: Option<f64>,
    owner: Option<String>,
    manager: Option<String>,
    renewal_date: Option<NaiveDate>,
    start_date: Option<NaiveDate>,
    lifecycle_stage: Option<String>,
    #[schemars(with = "Option<TimeZone>")]
    timezone: Option<String>,
    /// Merged key by key into the account's.
    fields: Option<BTreeMap<String, serde_json::Value>>,
    /// Merged key by key into the account's.
    metrics: Option<BTreeMap<String, f64>>,
}

/// A health score, 0 to 100.
struct Score;

impl JsonSchema for Score {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Score".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "number", "minimum": 0, "maximum": 100 })
    }
}

/// The schema of a playbook test file (`keel schema`).
pub fn file_schema() -> schemars::Schema {
    crate::model::schema::root::<RawFile>(
        "Keel playbook tests",
        "Playbook tests (`keel test`): accounts, a frozen day, and which playbooks must fire for which accounts.",
    )
}

/// The longest a case may run, in days after `at` (a pass per day).
const MAX_DAYS: u32 = 3660;

const ACCOUNT_KEYS: &[&str] = &[
    "id",
    "name",
    "segment",
    "arr",
    "owner",
    "manager",
    "renewal_date",
    "start_date",
    "lifecycle_stage",
    "timezone",
    "fields",
    "metrics",
    "health",
    "health_yesterday",
];

/// Borrowed path segments from owned ones.
fn segs(owned: &[(Option<String>, usize)]) -> Vec<Seg<'_>> {
    owned
        .iter()
        .map(|(k, i)| match k {
            Some(k) => Seg::Key(k),
            None => Seg::Index(*i),
        })
        .collect()
}

/// Owned path segments.
fn owned(path: &[Seg]) -> Vec<(Option<String>, usize)> {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => (Some(k.to_string()), 0),
            Seg::Index(n) => (None, *n),
        })
        .collect()
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
}

/// An account of a case: its record as YAML (merged with each day's changes), and the
/// health stated for the day and the day before.
struct TestAccount {
    record: serde_yaml::Mapping,
    health: Option<f64>,
    yesterday: Option<f64>,
}

struct Day {
    day: u32,
    accounts: Vec<serde_yaml::Mapping>,
    health: BTreeMap<String, f64>,
    events: Vec<Event>,
    expect: Vec<RawExpect>,
}

struct Case {
    name: String,
    at: NaiveDate,
    accounts: Vec<TestAccount>,
    contacts: Vec<Contact>,
    events: Vec<Event>,
    /// Day by day, or only day 0 (the `expect:` form).
    days: Vec<Day>,
    /// Written with `days:` (failures then name the day).
    multi_day: bool,
}

/// Where `load` reports an error: the path in the file, the message, a help line.
type ReportError<'a> = dyn FnMut(&[Seg], String, Option<String>) + 'a;

/// Reads and checks a test file against the playbook set: unknown keys, unknown
/// playbooks and accounts are errors with file:line:column, like `keel check`'s.
fn load(file: &Path, set: &PlaybookSet) -> Result<Vec<Case>, Vec<Diagnostic>> {
    let text = crate::diagnostic::read_source(file).map_err(|e| {
        vec![Diagnostic {
            file: file.into(),
            position: None,
            key: None,
            message: format!("cannot read: {e}"),
            snippet: None,
            help: None,
        }]
    })?;
    let raw: RawFile = parse_yaml(file, &text).map_err(|d| vec![*d])?;
    let mut errors = Vec::new();
    // An error about an unknown key points at the key; any other at the value.
    let mut err = |path: &[Seg], message: String, help: Option<String>| {
        let on_key = message.starts_with("unknown");
        let position = (1..=path.len()).rev().find_map(|n| {
            yaml_path_position(&text, &path[..n]).map(|(l, k, v)| (l, if on_key { k } else { v.unwrap_or(k) }))
        });
        errors.push(
            Diagnostic { file: file.into(), position, key: None, message, snippet: None, help }.with_source(&text),
        );
    };
    let mut cases = Vec::new();
    for (i, case) in raw.tests.into_iter().enumerate() {
        let case_at = |rest: &[Seg]| {
            let mut path = vec![Seg::Key("tests"), Seg::Index(i)];
            path.extend_from_slice(rest);
            owned(&path)
        };
        // Every id the test names, even for accounts rejected below, so that a typo in
        // one account does not cascade into "not among this test's accounts" errors.
        let all_ids: BTreeSet<String> =
            case.accounts.iter().filter_map(|m| m.get("id").and_then(|v| v.as_str()).map(str::to_string)).collect();
        let mut accounts = Vec::new();
        for (j, mut map) in case.accounts.into_iter().enumerate() {
            let at = |key: &str| case_at(&[Seg::Key("accounts"), Seg::Index(j), Seg::Key(key)]);
            let known = check_keys(&map, ACCOUNT_KEYS, &mut |key, help| {
                err(&segs(&at(key)), format!("unknown account field `{key}`"), help)
            });
            let mut score = |key: &'static str, map: &mut serde_yaml::Mapping| match map.remove(key) {
                None => None,
                Some(v) => match v.as_f64() {
                    Some(s) if (0.0..=100.0).contains(&s) => Some(s),
                    _ => {
                        err(&segs(&at(key)), format!("`{key}` is a health score from 0 to 100"), None);
                        None
                    }
                },
            };
            let (health, yesterday) = (score("health", &mut map), score("health_yesterday", &mut map));
            match serde_yaml::from_value::<Account>(serde_yaml::Value::Mapping(map.clone())) {
                Ok(_) if known => accounts.push(TestAccount { record: map, health, yesterday }),
                Ok(_) => {}
                Err(e) => err(&segs(&at("id")), format!("invalid test account: {e}"), None),
            }
        }
        let check_expect = |expect: &[RawExpect], base: &[Seg], err: &mut ReportError| {
            for (k, e) in expect.iter().enumerate() {
                let at = |key: &'static str| {
                    let mut path = base.to_vec();
                    path.extend([Seg::Key("expect"), Seg::Index(k), Seg::Key(key)]);
                    owned(&path)
                };
                if set.get(&e.playbook).is_none() {
                    let help = did_you_mean(&e.playbook, set.playbooks.iter().map(|p| p.id.as_str()))
                        .map(|n| format!("did you mean `{n}`?"));
                    err(&segs(&at("playbook")), format!("no playbook {:?}", e.playbook), help);
                }
                for (key, ids) in [("fires", &e.fires), ("not", &e.not), ("exits", &e.exits)] {
                    for id in ids.iter().filter(|id| !all_ids.contains(*id)) {
                        err(&segs(&at(key)), format!("account {id:?} is not among this test's accounts"), None);
                    }
                }
            }
        };
        let case_path = [Seg::Key("tests"), Seg::Index(i)];
        let last_day = case.days.as_ref().and_then(|d| d.iter().map(|d| d.day).max()).unwrap_or(0);
        let span =
            case.at.pred_opt().zip(case.at.checked_add_days(chrono::Days::new(u64::from(last_day.min(MAX_DAYS)))));
        if let Err(e) = span.ok_or_else(|| "out of range".to_string()).and_then(|(from, to)| {
            crate::decide::time::check_moment(end_of_day(chrono_tz::UTC, from))?;
            crate::decide::time::check_moment(end_of_day(chrono_tz::UTC, to))
        }) {
            err(
                &segs(&case_at(&[Seg::Key("at")])),
                format!("the case's days must lie in the years Keel runs passes for: {e}"),
                None,
            );
        }
        for (key, ids) in [
            ("contacts", case.contacts.iter().map(|c| c.account_id.as_str()).collect::<Vec<_>>()),
            ("events", case.events.iter().map(|e| e.account_id.as_str()).collect()),
        ] {
            for (j, id) in ids.into_iter().enumerate() {
                if !all_ids.contains(id) {
                    err(
                        &segs(&case_at(&[Seg::Key(key), Seg::Index(j), Seg::Key("account_id")])),
                        format!("account {id:?} is not among this test's accounts"),
                        None,
                    );
                }
            }
        }
        let (days, multi_day) = match (case.expect, case.days) {
            (Some(expect), None) => {
                if expect.is_empty() {
                    err(
                        &segs(&case_at(&[Seg::Key("expect")])),
                        "`expect` is empty: the case would check nothing".into(),
                        None,
                    );
                }
                check_expect(&expect, &case_path, &mut err);
                let day = Day { day: 0, accounts: Vec::new(), health: BTreeMap::new(), events: Vec::new(), expect };
                (vec![day], false)
            }
            (None, Some(raw_days)) => {
                if raw_days.iter().all(|d| d.expect.is_empty()) {
                    err(
                        &segs(&case_at(&[Seg::Key("days")])),
                        "no day has an `expect`: the case would check nothing".into(),
                        None,
                    );
                }
                let mut days = Vec::new();
                let mut last: Option<u32> = None;
                for (d, raw) in raw_days.into_iter().enumerate() {
                    let base = [Seg::Key("tests"), Seg::Index(i), Seg::Key("days"), Seg::Index(d)];
                    let here = |rest: &[Seg]| {
                        let mut path = base.to_vec();
                        path.extend_from_slice(rest);
                        owned(&path)
                    };
                    if raw.day > MAX_DAYS {
                        err(&segs(&here(&[Seg::Key("day")])), format!("a case spans at most {MAX_DAYS} days"), None);
                    }
                    if last.is_some_and(|l| raw.day <= l) {
                        err(&segs(&here(&[Seg::Key("day")])), "days must be listed in order, each once".into(), None);
                    }
                    last = Some(raw.day);
                    for (j, map) in raw.accounts.iter().enumerate() {
                        let at = |key: &str| here(&[Seg::Key("accounts"), Seg::Index(j), Seg::Key(key)]);
                        check_keys(map, &ACCOUNT_KEYS[..ACCOUNT_KEYS.len() - 2], &mut |key, help| {
                            err(&segs(&at(key)), format!("unknown account field `{key}`"), help)
                        });
                        match map.get("id").and_then(|v| v.as_str()) {
                            Some(id) if all_ids.contains(id) => {}
                            Some(id) => {
                                err(&segs(&at("id")), format!("account {id:?} is not among this test's accounts"), None)
                            }
                            None => err(
                                &segs(&here(&[Seg::Key("accounts"), Seg::Index(j)])),
                                "a day's account change names the account's `id`".into(),
                                None,
                            ),
                        }
                    }
                    for (id, score) in &raw.health {
                        let at = here(&[Seg::Key("health"), Seg::Key(id)]);
                        if !all_ids.contains(id) {
                            err(&segs(&at), format!("account {id:?} is not among this test's accounts"), None);
                        } else if !(0.0..=100.0).contains(score) {
                            err(&segs(&at), "`health` is a health score from 0 to 100".into(), None);
                        }
                    }
                    check_expect(&raw.expect, &base, &mut err);
                    days.push(Day {
                        day: raw.day,
                        accounts: raw.accounts,
                        health: raw.health,
                        events: raw.events,
                        expect: raw.expect,
                    });
                }
                (days, true)
            }
            (Some(_), Some(_)) => {
                err(
                    &segs(&case_at(&[Seg::Key("days")])),
                    "a case has `expect:` (one day) or `days:`, not both".into(),
                    None,
                );
                continue;
            }
            (None, None) => {
                err(
                    &segs(&case_at(&[Seg::Key("name")])),
                    "a case needs `expect:` (checked on its day) or `days:`".into(),
                    None,
                );
                continue;
            }
        };
        cases.push(Case {
            name: case.name,
            at: case.at,
            accounts,
            contacts: case.contacts,
            events: case.events,
            days,
            multi_day,
        });
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// Reports every key of `map` not in `keys` (with a "did you mean"); true when none.
fn check_keys(map: &serde_yaml::Mapping, keys: &[&str], report: &mut dyn FnMut(&str, Option<String>)) -> bool {
    let mut known = true;
    for key in map.keys().filter_map(|k| k.as_str()).filter(|k| !keys.contains(k)) {
        known = false;
        report(key, did_you_mean(key, keys.iter().copied()).map(|n| format!("did you mean `{n}`?")));
    }
    known
}

/// The test files of a folder (`*.yaml`, `*.yml`), in name order.
pub fn test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and checks `file` without running its cases: how many it holds, or every error.
pub fn check_file(file: &Path, set: &PlaybookSet) -> Result<usize, Vec<Diagnostic>> {
    load(file, set).map(|cases| cases.len())
}

/// Runs every case of `file` on the playbooks `loaded`, with `config`'s zone and
/// schedules. Errors in the file itself come back as diagnostics.
pub fn run_file(file: &Path, loaded: &Loaded, config: &Config) -> Result<Vec<CaseResult>, Vec<Diagnostic>> {
    let cases = load(file, &loaded.set)?;
    let mut config = config.clone();
    // Every account at every pass: a test states its accounts' data directly, so no
    // change log stands behind a stated health score.
    config.evaluation.incremental = false;
    config.evaluation.workers = 1;
    let mut results = Vec::new();
    for case in cases {
        let failures = run_case(&case, loaded, &config).unwrap_or_else(|e| vec![format!("could not run: {e}")]);
        results.push(CaseResult { file: file.to_path_buf(), name: case.name, failures });
    }
    Ok(results)
}

#[derive(Debug, thiserror::Error)]
enum CaseError {
    #[error("cannot make a temporary store: {0}")]
    Temp(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid test account: {0}")]
    Account(#[from] serde_yaml::Error),
}

/// Merges a day's partial record into an account's: `metrics` and `fields` key by key.
fn merge(record: &mut serde_yaml::Mapping, change: &serde_yaml::Mapping) {
    for (k, v) in change {
        match (record.get_mut(k), v) {
            (Some(serde_yaml::Value::Mapping(old)), serde_yaml::Value::Mapping(new))
                if matches!(k.as_str(), Some("metrics" | "fields")) =>
            {
                for (nk, nv) in new {
                    old.insert(nk.clone(), nv.clone());
                }
            }
            _ => {
                record.insert(k.clone(), v.clone());
            }
        }
    }
}

fn run_case(case: &Case, loaded: &Loaded, config: &Config) -> Result<Vec<String>, CaseError> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let tz = config.timezone;
    let ctx = Context { store: &store, loaded, config };
    let never = AtomicBool::new(false);
    let mut records: Vec<serde_yaml::Mapping> = case.accounts.iter().map(|a| a.record.clone()).collect();
    let parse = |m: &serde_yaml::Mapping| serde_yaml::from_value::<Account>(serde_yaml::Value::Mapping(m.clone()));
    let ids: Vec<String> = records.iter().map(parse).map(|a| a.map(|a| a.id)).collect::<Result<_, _>>()?;
    let yesterday: BTreeMap<String, f64> =
        case.accounts.iter().zip(&ids).filter_map(|(a, id)| a.yesterday.map(|s| (id.clone(), s))).collect();
    let mut health: BTreeMap<String, f64> =
        case.accounts.iter().zip(&ids).filter_map(|(a, id)| a.health.map(|s| (id.clone(), s))).collect();
    let last = case.days.last().map_or(0, |d| d.day);
    let (Some(first), Some(_)) = (case.at.pred_opt(), case.at.checked_add_days(chrono::Days::new(u64::from(last) + 1)))
    else {
        return Ok(vec![format!("{} is too close to the end of the calendar to run", case.at)]);
    };
    let first = if yesterday.is_empty() { case.at } else { first };
    let loaded_at = start_of_day(tz, first) - Duration::seconds(1);
    let accounts = records.iter().map(parse).collect::<Result<Vec<Account>, _>>()?;
    store.upsert_accounts(accounts.into_iter().map(Into::into).collect(), loaded_at)?;
    store.upsert_contacts(case.contacts.iter().cloned().map(Into::into).collect(), loaded_at)?;
    store.upsert_events(case.events.clone())?;
    // As if the daemon had been running until the day before: a schedule trigger's first
    // run is not its baseline here, it fires at its ticks.
    for pb in loaded.set.playbooks.iter().filter(|p| p.enabled) {
        store.set_last_tick(&pb.id, loaded_at)?;
    }
    let mut failures = Vec::new();
    if !yesterday.is_empty() {
        let ids: Vec<String> = yesterday.keys().cloned().collect();
        let options =
            Options { accounts: Some(&ids), given_health: Some(&yesterday), unguarded: true, ..Options::default() };
        let done = tick::tick(ctx, end_of_day(tz, first), Mode::Commit, options, &never)?;
        for f in done.report.iter().flat_map(|r| &r.failures) {
            failures
                .push(format!("the day before: playbook {} failed for account {}: {}", f.playbook, f.account, f.error));
        }
    }
    for n in 0..=last {
        let date = case.at + Duration::days(i64::from(n));
        let start = start_of_day(tz, date);
        let today = case.days.iter().find(|d| d.day == n);
        if let Some(day) = today {
            let mut changed = Vec::new();
            for change in &day.accounts {
                let id = change.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                if let Some(i) = ids.iter().position(|x| x == id) {
                    merge(&mut records[i], change);
                    changed.push(parse(&records[i])?.into());
                }
            }
            store.upsert_accounts(changed, start)?;
            store.upsert_events(day.events.clone())?;
            health.extend(day.health.iter().map(|(k, v)| (k.clone(), *v)));
        }
        let at = end_of_day(tz, date);
        let options = Options { given_health: Some(&health), unguarded: true, ..Options::default() };
        let done = tick::tick(ctx, at, Mode::Commit, options, &never)?;
        let prefix = if case.multi_day { format!("day {n} ({date}): ") } else { String::new() };
        // A failure fails the case whichever day it happens on, listed or not.
        for f in done.report.iter().flat_map(|r| &r.failures) {
            failures.push(format!("{prefix}playbook {} failed for account {}: {}", f.playbook, f.account, f.error));
        }
        let Some(day) = today else { continue };
        // The day's decisions, by playbook and account.
        let mut decided: BTreeMap<(String, String), Vec<(Decision, String)>> = BTreeMap::new();
        for id in &ids {
            for e in store.ledger_of(id)?.into_iter().filter(|e| e.at == at) {
                decided.entry((e.playbook, e.account)).or_default().push((e.decision, e.why));
            }
        }
        let find = |pb: &str, id: &str, d: Decision| {
            decided.get(&(pb.to_string(), id.to_string())).and_then(|v| v.iter().find(|(x, _)| *x == d)).map(|(_, w)| w)
        };
        for expect in &day.expect {
            let pb = expect.playbook.as_str();
            for id in &expect.fires {
                if find(pb, id, Decision::Fired).is_none() {
                    failures.push(format!("{prefix}expected {pb} to fire for {id}; it did not"));
                }
            }
            for id in &expect.not {
                if let Some(why) = find(pb, id, Decision::Fired) {
                    failures.push(format!("{prefix}expected {pb} not to fire for {id}; it fired: {why}"));
                }
            }
            for id in &expect.exits {
                if find(pb, id, Decision::Exited).is_none() {
                    failures.push(format!("{prefix}expected {pb}'s sequence to stop for {id}; it did not"));
                }
            }
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's test accounts have the keys the loader accepts, no more, no fewer.
    #[test]
    fn the_schemas_test_account_keys_are_the_loaders() {
        let keys = |schema: schemars::Schema| -> Vec<String> {
            let mut keys: Vec<String> =
                schema.get("properties").and_then(|p| p.as_object()).unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        let mut expected: Vec<String> = ACCOUNT_KEYS.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(keys(schemars::schema_for!(SchemaAccount)), expected);
        let mut day: Vec<String> = ACCOUNT_KEYS[..ACCOUNT_KEYS.len() - 2].iter().map(|k| k.to_string()).collect();
        day.sort();
        assert_eq!(keys(schemars::schema_for!(SchemaDayAccount)), day);
    }
}
