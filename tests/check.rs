//! `keel check` and the playbook language's parsing: the shipped files pass; a folder of
//! broken files gets every error with file:line:column; each trigger kind parses into
//! what it says.

use std::path::Path;

use keel::lang::health::HealthModel;
use keel::lang::playbook::{Action, DateField, Fire, PlaybookSet, Recipients, Trigger};
use keel::lang::script::{Limits, ScriptEngine};

use crate::util::{run_keel, Workspace};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_shipped_playbooks_rules_and_templates_pass_check() {
    let out = run_keel(Path::new("examples/keel.yaml"), repo(), &["check"]).ok();
    insta::assert_snapshot!(out, @"ok: examples/keel.yaml, health model examples/../rules/health.yaml, 12 playbooks (12 enabled), 9 email templates: no problems found");
}

#[test]
fn check_reports_every_error_in_a_folder_of_broken_files() {
    let run = run_keel(Path::new("tests/fixtures/broken/keel.yaml"), repo(), &["check"]);
    assert_eq!(run.code(), 1);
    assert!(run.stdout().is_empty());
    insta::assert_snapshot!(run.stderr());
}

/// Loads playbooks written into a temp workspace, with the shipped rules.
fn load(files: &[(&str, &str)]) -> Result<PlaybookSet, Vec<String>> {
    let ws = Workspace::new("");
    for (name, text) in files {
        ws.write(&format!("playbooks/{name}"), text);
    }
    let mut engine = ScriptEngine::new(&Limits::default());
    HealthModel::load(&mut engine, &repo().join("rules")).unwrap();
    PlaybookSet::load(&engine, &ws.path("playbooks")).map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn each_trigger_kind_parses_into_what_it_says() {
    let set = load(&[
        ("edge.yaml", "id: edge\nname: e\ntrigger:\n  condition: account.arr > 1\nactions:\n  - update: { field: lifecycle_stage, value: at_risk }\n"),
        (
            "level.yaml",
            "id: level\nname: l\ntrigger:\n  condition: account.arr > 1\n  fire: while_true\n  every: 7d\nactions:\n  - update: { field: fields.flag, value: x }\n",
        ),
        (
            "date.yaml",
            "id: date\nname: d\ntrigger:\n  date: fields.go_live\n  offset: -90d\n  catch_up: 3d\nactions:\n  - email: { to: contacts, template: t }\n",
        ),
        ("event.yaml", "id: event\nname: v\ntrigger:\n  event: Support Ticket Opened\n  condition: 'event.properties.priority == \"high\"'\nactions:\n  - task: { title: t, owner: o }\n"),
        ("cron.yaml", "id: cron\nname: c\ntrigger:\n  schedule: \"0 8 * * 1-5\"\n  timezone: Europe/Berlin\nactions:\n  - webhook: { url: \"https://hooks.example/{{ account.id }}\" }\n"),
        ("templates/t.txt", "Subject: Hi {{ account.name }}\nBody {{ unsubscribe_url }}\n"),
    ])
    .unwrap();
    let get = |id: &str| set.get(id).unwrap();
    assert!(matches!(get("edge").trigger, Trigger::Condition { fire: Fire::OnEnter, .. }), "on_enter is the default");
    match &get("level").trigger {
        Trigger::Condition { fire: Fire::WhileTrue { every }, .. } => assert_eq!(every.to_string(), "7d"),
        other => panic!("{other:?}"),
    }
    match &get("date").trigger {
        Trigger::Date { field, offset, catch_up, .. } => {
            assert_eq!(*field, DateField::Field("go_live".into()));
            assert_eq!((offset.to_string(), catch_up.to_string()), ("-90d".into(), "3d".into()));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&get("date").steps[0].actions[0], Action::Email { to: Recipients::Contacts, .. }));
    match &get("event").trigger {
        Trigger::Event { name, condition } => {
            assert_eq!((name.as_str(), condition.is_some()), ("Support Ticket Opened", true))
        }
        other => panic!("{other:?}"),
    }
    match &get("cron").trigger {
        Trigger::Schedule { cron, timezone, .. } => {
            assert_eq!(*timezone, Some(chrono_tz::Europe::Berlin));
            let sunday: chrono::DateTime<chrono::Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
            assert_eq!(cron.next_after(&sunday).unwrap().to_rfc3339(), "2026-11-23T08:00:00+00:00");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sequences_keep_their_steps_delays_conditions_and_exit() {
    let set = load(&[
        ("smb.yaml", &std::fs::read_to_string(repo().join("playbooks/smb-onboarding.yaml")).unwrap()),
        ("templates/smb_welcome.txt", "Subject: a\nb\n"),
        ("templates/smb_nudge.txt", "Subject: a\nb\n"),
        ("templates/smb_webinar.txt", "Subject: a\nb\n"),
    ])
    .unwrap();
    let p = set.get("smb-onboarding").unwrap();
    let delays: Vec<String> = p.steps.iter().map(|s| s.after.to_string()).collect();
    assert_eq!(delays, ["0d", "3d", "14d"]);
    assert!(p.steps[1].when.is_some() && p.exit.is_some());
}

#[test]
fn trigger_mistakes_are_named() {
    let errors = load(&[
        ("a.yaml", "id: a\nname: a\ntrigger:\n  condition: x\n  every: 7d\nactions:\n  - task: { title: t, owner: o }\n"),
        ("b.yaml", "id: b\nname: b\ntrigger:\n  event: Logged In\n  offset: -3d\nactions:\n  - task: { title: t, owner: o }\n"),
        ("c.yaml", "id: c\nname: c\ntrigger: {}\nactions:\n  - task: { title: t, owner: o }\n"),
        ("d.yaml", "id: d\nname: d\ntrigger:\n  date: renewal\nactions:\n  - task: { title: t, owner: o }\n"),
        ("e.yaml", "id: e\nname: e\ntrigger:\n  condition: x\nactions:\n  - task: { title: t, owner: o }\n    email: { to: x, template: y }\n"),
    ])
    .unwrap_err();
    let all = errors.join("\n");
    for expected in [
        "`every` goes with `fire: while_true`",
        "`offset` belongs to date triggers, and this is a event trigger",
        "the trigger has no kind",
        "unknown date field \"renewal\"",
        "each action is exactly one of task, email, webhook, update",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

#[test]
fn delivery_mistakes_in_actions_are_named_at_their_line() {
    let errors = load(&[
        ("a.yaml", "id: a\nname: a\ntrigger:\n  condition: x\nactions:\n  - webhook: { url: \"http://x\", timeout: soon }\n"),
        ("b.yaml", "id: b\nname: b\ntrigger:\n  condition: x\nactions:\n  - task: { title: t, owner: o, escalate_to: boss }\n"),
        ("c.yaml", "id: c\nname: c\ntrigger:\n  condition: x\nactions:\n  - task: { title: t, owner: o, escalate_after: 2d }\n"),
        ("d.yaml", "id: d\nname: d\ntrigger:\n  condition: x\nactions:\n  - webhook: { url: \"http://x\", body: \"{{ account.nam }\" }\n"),
        ("e.yaml", "id: e\nname: e\ntrigger:\n  condition: x\nactions:\n  - email: { to: contacts, template: t, on_cap: maybe }\n"),
    ])
    .unwrap_err();
    let all = errors.join("\n");
    for expected in [
        "a.yaml:6:",
        "invalid delay \"soon\": expected a number and a unit, like 500ms, 30s, 5m or 1h",
        "b.yaml:6:",
        "`escalate_to` needs `escalate_after`",
        "c.yaml:6:",
        "a task escalates when overdue, so it needs a `due_in`",
        "d.yaml:6:",
        "template syntax error",
        "e.yaml:6:",
        "unknown variant `maybe`, expected `defer` or `drop`",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

/// A workspace whose playbooks folder holds `files`, with the shipped rules, for running
/// the real binary on it.
fn workspace(files: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::new(&format!("rules: {}\nplaybooks: playbooks\n", repo().join("rules").display()));
    for (name, text) in files {
        ws.write(&format!("playbooks/{name}"), text);
    }
    ws
}

#[test]
fn a_template_reading_an_unknown_field_fails_check_where_it_is_read() {
    let ws = workspace(&[
        (
            "red.yaml",
            "id: red\nname: r\ntrigger:\n  condition: account.arr > 1\nactions:\n  - task:\n      title: \"Save plan: {{ account.name }} / {{ account.nam }}\"\n      owner: \"{{ account.owner }}\"\n  - email:\n      to: \"{{ account.manager }}\"\n      template: red\n",
        ),
        ("templates/red.txt", "Subject: {{ account.name }} is red\n\nScore {{ account.health.scor }}, NPS {{ account.metrics.nps }}.\n"),
    ]);
    let run = ws.keel(&["check"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    insta::assert_snapshot!(run.stderr());
}

#[test]
fn open_maps_and_known_fields_pass_check() {
    let set = load(&[
        (
            "ok.yaml",
            "id: ok\nname: o\ntrigger:\n  event: Ticket\nactions:\n  - task:\n      title: \"{{ account.name | upper }} {{ account.metrics.anything }} {{ account.fields.go_live }} {{ event.properties.priority }}\"\n      owner: \"{{ account.owner }}\"\n      description: \"{{ health.change_7d }} {{ account.health.components.engagement }} {{ playbook.name }} {{ today }}\"\n",
        ),
    ]);
    assert!(set.is_ok(), "{:?}", set.err());
}

#[test]
fn a_negative_due_in_is_an_error() {
    let errors = load(&[(
        "a.yaml",
        "id: a\nname: a\ntrigger:\n  condition: account.arr > 1\nactions:\n  - task:\n      title: t\n      owner: o\n      due_in: -3d\n",
    )])
    .unwrap_err()
    .join("\n");
    assert!(errors.contains("`due_in` counts from when the task opens and cannot be negative"), "{errors}");
    assert!(errors.contains("a.yaml:9:15"), "{errors}");
}

#[test]
fn a_cron_that_never_fires_or_is_out_of_range_is_an_error_naming_the_field() {
    let errors = load(&[
        ("a.yaml", "id: a\nname: a\ntrigger:\n  schedule: \"0 0 31 2 *\"\nactions:\n  - task: { title: t, owner: o }\n"),
        ("b.yaml", "id: b\nname: b\ntrigger:\n  schedule: \"61 0 * * *\"\nactions:\n  - task: { title: t, owner: o }\n"),
        (
            "c.yaml",
            "id: c\nname: c\nschedule: \"0 25 * * *\"\ntrigger:\n  condition: account.arr > 1\nactions:\n  - task: { title: t, owner: o }\n",
        ),
    ])
    .unwrap_err()
    .join("\n");
    for expected in [
        "cron schedule \"0 0 31 2 *\" never fires",
        "a.yaml:4:13",
        "cron schedule \"61 0 * * *\": minute 61 is out of 0–59",
        "b.yaml:4:13",
        "cron schedule \"0 25 * * *\": hour 25 is out of 0–23",
        "c.yaml:3:11",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
}

/// The monthly syntax's mistakes at their file:line:column, in the schedule as written:
/// a seventh `#`, a weekday 8, `L` as a weekday, an offset from the last day, and a `#`
/// day beside a day of month (which croniter would silently read as the `#` day alone).
#[test]
fn monthly_cron_mistakes_are_shown_where_they_are_written() {
    let pb = |id: &str, schedule: &str| {
        format!("id: {id}\nname: {id}\ntrigger:\n  schedule: \"{schedule}\"\nactions:\n  - task: {{ title: t, owner: o }}\n")
    };
    let files = [
        ("a.yaml", pb("a", "0 9 * * 1#6")),
        ("b.yaml", pb("b", "0 9 * * 8#1")),
        ("c.yaml", pb("c", "0 9 * * L")),
        ("d.yaml", pb("d", "0 9 L-3 * *")),
        ("e.yaml", pb("e", "0 9 1 * 1#1")),
        ("ok.yaml", pb("ok", "30 8 * * 5#L")),
    ];
    let ws = workspace(&files.iter().map(|(name, text)| (*name, text.as_str())).collect::<Vec<_>>());
    let run = ws.keel(&["check"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    insta::assert_snapshot!(run.stderr());
}

#[test]
fn a_number_where_text_or_an_expression_belongs_is_an_error_at_its_key() {
    let errors = load(&[
        ("a.yaml", "id: a\nname: a\ntrigger:\n  condition: account.arr > 1\nactions:\n  - email:\n      to: 5\n      template: t\n"),
        ("b.yaml", "id: b\nname: b\ntrigger:\n  condition: 42\nactions:\n  - task: { title: t, owner: o }\n"),
        ("templates/t.txt", "Subject: s\nbody\n"),
    ])
    .unwrap_err()
    .join("\n");
    for expected in [
        "expected text, found the number 5: quote it (\"…\") if you mean it as text",
        "a.yaml:7:11",
        "expected a Rhai expression that is true or false (like `account.arr > 10000`), found the number 42",
        "b.yaml:4:14",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
    // What stays allowed: a boolean condition, a number stored by `update`.
    load(&[(
        "c.yaml",
        "id: c\nname: c\ntrigger:\n  condition: true\nactions:\n  - update: { field: fields.tier, value: 5 }\n",
    )])
    .unwrap();
}

#[test]
fn a_webhook_reading_an_unset_variable_warns_at_check_and_stops_run() {
    const VAR: &str = "KEEL_TEST_CHECK_UNSET_HOOK";
    assert!(std::env::var(VAR).is_err(), "{VAR} must not be set for this test");
    let ws = workspace(&[(
        "hook.yaml",
        "id: hook\nname: h\ntrigger:\n  condition: account.arr > 1\nactions:\n  - webhook:\n      url: \"${KEEL_TEST_CHECK_UNSET_HOOK}/deals\"\n",
    )]);
    let check = ws.keel(&["check"]);
    assert_eq!(check.code(), 0, "a warning is not an error:\n{}", check.stderr());
    assert!(check.stdout().contains("no errors, 1 warning(s)"), "{}", check.stdout());
    let warning = check.stderr();
    assert!(warning.starts_with("warning: environment variable KEEL_TEST_CHECK_UNSET_HOOK is not set"), "{warning}");
    assert!(warning.contains("playbooks/hook.yaml:7:12"), "{warning}");
    for args in [&["run", "--once"][..], &["run"][..]] {
        let run = ws.keel(args);
        assert_eq!(run.code(), 1, "{args:?}: {}", run.stdout());
        let err = run.stderr();
        assert!(err.contains("environment variable KEEL_TEST_CHECK_UNSET_HOOK is not set"), "{args:?}: {err}");
        assert!(err.contains("keel did not start"), "{args:?}: {err}");
    }
}

#[test]
fn an_oversized_action_text_is_refused_at_its_key() {
    let title = "x".repeat(10 * 1024 * 1024);
    let errors = load(&[(
        "big.yaml",
        &format!("id: big\nname: b\ntrigger:\n  condition: account.arr > 1\nactions:\n  - task:\n      title: \"{title}\"\n      owner: o\n"),
    )])
    .unwrap_err()
    .join("\n");
    assert!(
        errors.contains("this text is 10 MiB long; at most 8 KiB is allowed here"),
        "{}",
        &errors[..500.min(errors.len())]
    );
    assert!(errors.contains("big.yaml:7:14"), "{}", &errors[..500.min(errors.len())]);
}

/// A workspace whose config uses the shipped rules and playbooks and maps `accounts.csv`.
fn sync_workspace(columns: &str, header: &str) -> Workspace {
    let config = format!(
        "rules: {}\nplaybooks: {}\nsync:\n  accounts:\n    file: accounts.csv\n    columns:\n{columns}",
        repo().join("rules").display(),
        repo().join("playbooks").display()
    );
    let ws = Workspace::new(&config);
    ws.write("accounts.csv", &format!("{header}\nACC-1,Acme,2027-01-31\n"));
    ws
}

#[test]
fn check_reads_the_configured_files_header_and_points_at_a_mapping_typo() {
    let ws = sync_workspace(
        "      \"Account ID\": id\n      \"Acount Name\": name\n      \"Renewal\": renewal_date\n",
        "Account ID,Account Name,Renewal",
    );
    let run = ws.keel(&["check"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    insta::assert_snapshot!(run.stderr(), @r#"
    error: mapped column "Acount Name" is not in the header row of ./accounts.csv
     --> keel.yaml:8:7
      |
    8 |       "Acount Name": name
      |       ^^^^^^^^^^^^^
      |
      = key: sync.accounts.columns
      = help: did you mean "Account Name"? (the file has a column of that name that nothing maps)

    1 error(s) in 1 file(s)
    "#);
    // The same typo stops a sync before any row is stored, with the same suggestion.
    let sync = ws.keel(&["sync", "accounts", "accounts.csv"]);
    assert_eq!(sync.code(), 1);
    assert!(
        sync.stderr().contains(
            "accounts.csv: mapped column \"Acount Name\" (did you mean \"Account Name\"?) is not in the header row \
             (sync.accounts.columns); nothing was imported"
        ),
        "{}",
        sync.stderr()
    );
    assert_eq!(ws.store().account_count(), 0);
    // Fixed, both pass; a file that simply lacks a mapped column (a partial export) syncs,
    // and both say the file sets nothing for it.
    let ws = sync_workspace(
        "      \"Account ID\": id\n      \"Account Name\": name\n      \"Renewal\": renewal_date\n      \"NPS\": metrics.nps\n",
        "Account ID,Account Name,Renewal",
    );
    // (The built-in health model's other inputs are mapped by nothing here: warnings only.)
    let check = ws.keel(&["check"]);
    assert!(check.ok().contains("no errors"), "{}", check.stdout());
    let err = check.stderr();
    assert!(!err.contains("did you mean \"Account Name\""), "{err}");
    assert!(
        err.contains("warning: mapped column \"NPS\" is not in the header row of ./accounts.csv\n  --> keel.yaml:10:7"),
        "{err}"
    );
    let sync = ws.keel(&["sync", "accounts", "accounts.csv"]);
    assert!(sync.ok().contains("1 inserted"));
    assert!(
        sync.stderr()
            .contains("warning: mapped column(s) not in the header, so this file set nothing for them: \"NPS\""),
        "{}",
        sync.stderr()
    );
}

#[test]
fn a_date_format_that_cannot_read_dates_is_refused_where_it_is_written() {
    for (format, says) in [
        ("\"%m/%Q/%Y\"", "invalid date format \"%m/%Q/%Y\""),
        ("[\"%m/%d/%Y\", \"%m/%Y\"]", "date format \"%m/%Y\" does not give a whole date"),
    ] {
        let ws = sync_workspace(
            &format!("      \"Account ID\": id\n      \"Renewal\": {{ field: renewal_date, date_format: {format} }}\n"),
            "Account ID,Name,Renewal",
        );
        let run = ws.keel(&["check"]);
        assert_eq!(run.code(), 1);
        assert!(run.stderr().contains(says) && run.stderr().contains("keel.yaml:8:"), "{}", run.stderr());
    }
}
