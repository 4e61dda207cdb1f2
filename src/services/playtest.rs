//! Playbook tests (`keel test`), like promtool's rule tests: accounts, a frozen day, and
//! which playbooks must fire (and must not) for which accounts. CS Ops keep them next to
//! their playbooks (`playbooks/tests/*.yaml`) and run them in their own CI.
//!
//! ```yaml
//! tests:
//!   - name: renewal −90 fires on its day
//!     at: 2026-11-22                    # the frozen "today"
//!     accounts:
//!       - { id: A, name: Acme, owner: ana@x.example, renewal_date: 2027-02-20 }
//!       - { id: B, segment: enterprise, health: 55, health_yesterday: 70 }
//!     expect:
//!       - { playbook: renewal-90, fires: [A], not: [B] }
//! ```
//!
//! Each case runs in a fresh store in a temporary folder, through the same simulator as
//! `keel simulate`. `health` sets the day's health score (band from the model's
//! thresholds) instead of scoring metrics; `health_yesterday` stores the day before's
//! point, which `on_enter` triggers compare with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::decide::simulate::{Filter, Simulator};
use crate::diagnostic::parse_yaml;
use crate::diagnostic::{did_you_mean, yaml_path_position, Diagnostic, Seg};
use crate::lang::health::HealthModel;
use crate::lang::playbook::PlaybookSet;
use crate::lang::script::ScriptEngine;
use crate::model::{Account, Contact, Event, HealthPoint};
use crate::store::Store;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tests: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    at: NaiveDate,
    accounts: Vec<serde_yaml::Mapping>,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    events: Vec<Event>,
    expect: Vec<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    playbook: String,
    #[serde(default)]
    fires: Vec<String>,
    #[serde(default)]
    not: Vec<String>,
}

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

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
}

struct Case {
    name: String,
    at: NaiveDate,
    accounts: Vec<(Account, Option<f64>, Option<f64>)>,
    contacts: Vec<Contact>,
    events: Vec<Event>,
    expect: Vec<RawExpect>,
}

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
        // Every id the test names, even for accounts rejected below, so that a typo in
        // one account does not cascade into "not among this test's accounts" errors.
        let all_ids: BTreeSet<String> =
            case.accounts.iter().filter_map(|m| m.get("id").and_then(|v| v.as_str()).map(str::to_string)).collect();
        let mut accounts = Vec::new();
        for (j, mut map) in case.accounts.into_iter().enumerate() {
            let at = |key: &str| {
                [Seg::Key("tests"), Seg::Index(i), Seg::Key("accounts"), Seg::Index(j), Seg::Key(key)].map(
                    |s| match s {
                        Seg::Key(k) => (Some(k.to_string()), 0),
                        Seg::Index(n) => (None, n),
                    },
                )
            };
            let unknown: Vec<String> = map
                .keys()
                .filter_map(|k| k.as_str())
                .filter(|k| !ACCOUNT_KEYS.contains(k))
                .map(str::to_string)
                .collect();
            let known = unknown.is_empty();
            for key in &unknown {
                let help = did_you_mean(key, ACCOUNT_KEYS.iter().copied()).map(|n| format!("did you mean `{n}`?"));
                err(&segs(&at(key)), format!("unknown account field `{key}`"), help);
            }
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
            let (today, yesterday) = (score("health", &mut map), score("health_yesterday", &mut map));
            match serde_yaml::from_value::<Account>(serde_yaml::Value::Mapping(map)) {
                Ok(account) if known => accounts.push((account, today, yesterday)),
                Ok(_) => {}
                Err(e) => err(&segs(&at("id")), format!("invalid test account: {e}"), None),
            }
        }
        for (k, expect) in case.expect.iter().enumerate() {
            let at = |key| [Seg::Key("tests"), Seg::Index(i), Seg::Key("expect"), Seg::Index(k), Seg::Key(key)];
            if set.get(&expect.playbook).is_none() {
                let help = did_you_mean(&expect.playbook, set.playbooks.iter().map(|p| p.id.as_str()))
                    .map(|n| format!("did you mean `{n}`?"));
                err(&at("playbook"), format!("no playbook {:?}", expect.playbook), help);
            }
            for id in expect.fires.iter().chain(&expect.not) {
                if !all_ids.contains(id) {
                    err(
                        &at(if expect.fires.contains(id) { "fires" } else { "not" }),
                        format!("account {id:?} is not among this test's accounts"),
                        None,
                    );
                }
            }
        }
        cases.push(Case {
            name: case.name,
            at: case.at,
            accounts,
            contacts: case.contacts,
            events: case.events,
            expect: case.expect,
        });
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// Reads and checks `file` without running its cases: how many it holds, or every error.
pub fn check_file(file: &Path, set: &PlaybookSet) -> Result<usize, Vec<Diagnostic>> {
    load(file, set).map(|cases| cases.len())
}

/// Runs every case of `file`. Errors in the file itself come back as diagnostics.
pub fn run_file(
    file: &Path,
    set: &PlaybookSet,
    model: &HealthModel,
    engine: &ScriptEngine,
    timezone: Tz,
) -> Result<Vec<CaseResult>, Vec<Diagnostic>> {
    let cases = load(file, set)?;
    let mut results = Vec::new();
    for case in cases {
        let failures =
            run_case(&case, set, model, engine, timezone).unwrap_or_else(|e| vec![format!("could not run: {e}")]);
        results.push(CaseResult { file: file.to_path_buf(), name: case.name, failures });
    }
    Ok(results)
}

fn run_case(
    case: &Case,
    set: &PlaybookSet,
    model: &HealthModel,
    engine: &ScriptEngine,
    timezone: Tz,
) -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let epoch = chrono::DateTime::UNIX_EPOCH;
    store.upsert_accounts(case.accounts.iter().map(|(a, _, _)| a.clone().into()).collect(), epoch)?;
    store.upsert_contacts(case.contacts.iter().cloned().map(Into::into).collect(), epoch)?;
    store.upsert_events(case.events.clone())?;
    let point = |score: f64, date: NaiveDate| HealthPoint {
        date,
        score,
        band: model.bands.raw(score),
        components: BTreeMap::new(),
    };
    let yesterday: Vec<(String, HealthPoint)> = case
        .accounts
        .iter()
        .filter_map(|(a, _, y)| y.map(|s| (a.id.clone(), point(s, case.at - Duration::days(1)))))
        .collect();
    store.record_health(&yesterday.iter().map(|(id, p)| (id.as_str(), p)).collect::<Vec<_>>())?;
    let given: BTreeMap<String, HealthPoint> =
        case.accounts.iter().filter_map(|(a, t, _)| t.map(|s| (a.id.clone(), point(s, case.at)))).collect();

    let simulator = Simulator { set, model, engine, store: &store, timezone, given_health: Some(&given) };
    let report = simulator.run(case.at, &Filter::default())?;
    let fired: BTreeMap<(&str, &str), &str> =
        report.firings.iter().map(|f| ((f.playbook.as_str(), f.account.as_str()), f.why.as_str())).collect();
    let mut failures: Vec<String> = report
        .failures
        .iter()
        .map(|f| format!("playbook {} failed for account {}: {}", f.playbook, f.account, f.error))
        .collect();
    for expect in &case.expect {
        for id in &expect.fires {
            if !fired.contains_key(&(expect.playbook.as_str(), id.as_str())) {
                failures.push(format!("expected {} to fire for {id}; it did not", expect.playbook));
            }
        }
        for id in &expect.not {
            if let Some(why) = fired.get(&(expect.playbook.as_str(), id.as_str())) {
                failures.push(format!("expected {} not to fire for {id}; it fired: {why}", expect.playbook));
            }
        }
    }
    Ok(failures)
}
