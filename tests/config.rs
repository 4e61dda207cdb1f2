//! The config file: mistakes are reported with file, line, column and key, rendered as
//! the user sees them (snapshots), and `${VAR}` keeps secrets out of the file.

use crate::util::Workspace;

/// What `keel sync` prints for a config, from the real binary.
fn config_error(config: &str) -> String {
    let ws = Workspace::new(config);
    let run = ws.keel(&["sync"]);
    assert_eq!(run.code(), 1, "a bad config fails the command\n{}", run.stderr());
    assert!(run.stdout().is_empty());
    run.stderr()
}

#[test]
fn a_misspelt_key_is_named_with_line_column_and_suggestion() {
    insta::assert_snapshot!(config_error("timezone: UTC\ndata_dir: .keel\nsync:\n  acounts:\n    file: a.csv\n"), @r"
    error: unknown field `acounts`, expected one of `accounts`, `contacts`, `events`, `segment`
     --> keel.yaml:4:3
      |
    4 |   acounts:
      |   ^^^^^^^
      |
      = key: sync.acounts
      = help: did you mean `accounts`?
    ");
}

#[test]
fn a_bad_value_points_at_the_value() {
    insta::assert_snapshot!(config_error("# Keel\ntimezone: Europe/Berlinn\n"), @r#"
    error: unknown time zone "Europe/Berlinn": expected an IANA name like America/New_York or UTC
     --> keel.yaml:2:11
      |
    2 | timezone: Europe/Berlinn
      |           ^^^^^^^^^^^^^^
      |
      = key: timezone
    "#);
}

#[test]
fn a_bad_column_target_lists_what_is_expected() {
    let config = "sync:\n  accounts:\n    columns:\n      \"Account ID\": id\n      \"Renewal\": renewal_dat\n";
    insta::assert_snapshot!(config_error(config), @r#"
    error: unknown account field "renewal_dat"; expected id, name, segment, arr, owner, manager, renewal_date, start_date, lifecycle_stage, timezone, metrics.<name>, fields.<name>, ignore (did you mean `renewal_date`?)
     --> keel.yaml:5:18
      |
    5 |       "Renewal": renewal_dat
      |                  ^^^^^^^^^^^
      |
      = key: sync.accounts.columns.Renewal
    "#);
}

#[test]
fn a_segment_trait_mapping_is_checked_like_a_column_mapping() {
    let config = "sync:\n  segment:\n    group:\n      traits:\n        employees: metrics.Employees\n";
    insta::assert_snapshot!(config_error(config), @r#"
    error: metric name "Employees" must be lower-case letters, digits and '_', starting with a letter (e.g. logins_30d)
     --> keel.yaml:5:20
      |
    5 |         employees: metrics.Employees
      |                    ^^^^^^^^^^^^^^^^^
      |
      = key: sync.segment.group.traits.employees
    "#);
    let config = "sync:\n  segment:\n    identify:\n      traits:\n        title: rol\n    track:\n      account_property: accountId\n";
    insta::assert_snapshot!(config_error(config), @r#"
    error: unknown contact field "rol"; expected id, account_id, email, name, role, timezone, unsubscribed, fields.<name>, ignore (did you mean `role`?)
     --> keel.yaml:5:16
      |
    5 |         title: rol
      |                ^^^
      |
      = key: sync.segment.identify.traits.title
    "#);
    let config = "sync:\n  segment:\n    track:\n      acount_property: accountId\n";
    insta::assert_snapshot!(config_error(config), @r#"
    error: unknown field `acount_property`, expected `account_property`
     --> keel.yaml:4:7
      |
    4 |       acount_property: accountId
      |       ^^^^^^^^^^^^^^^
      |
      = key: sync.segment.track.acount_property
      = help: did you mean `account_property`?
    "#);
}

#[test]
fn a_literal_password_is_refused_and_an_unset_variable_named() {
    let literal = config_error("email:\n  smtp:\n    host: smtp.example.com\n    password: hunter2\n");
    insta::assert_snapshot!(literal, @r"
    error: secrets must come from environment variables, not the file: write it as ${KEEL_…} and export the variable
     --> keel.yaml:4:15
      |
    4 |     password: hunter2
      |               ^^^^^^^
      |
      = key: email.smtp.password
    ");
    let unset = config_error("api:\n  token: ${KEEL_TEST_SURELY_UNSET_TOKEN}\n");
    assert!(unset.contains("environment variable KEEL_TEST_SURELY_UNSET_TOKEN is not set"), "{unset}");
    assert!(unset.contains("keel.yaml:2:10"), "{unset}");
}

#[test]
fn invalid_yaml_syntax_gets_a_position() {
    let err = config_error("sync:\n  accounts:\n    columns: [unclosed\n");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("--> keel.yaml:"), "{err}");
}

#[test]
fn a_missing_config_says_how_to_point_at_one() {
    let ws = Workspace::new("");
    std::fs::remove_file(ws.path("keel.yaml")).unwrap();
    let run = ws.keel(&["accounts", "list"]);
    assert_eq!(run.code(), 1);
    insta::assert_snapshot!(run.stderr(), @"error: no config file at keel.yaml; pass --config PATH (the example config is examples/keel.yaml)");
}

#[test]
fn environment_variables_expand_and_paths_are_relative_to_the_config() {
    let ws = Workspace::new("data_dir: ${KEEL_TEST_DATA_DIR}\nsync:\n  accounts:\n    file: in/a.csv\n");
    ws.write("in/a.csv", "id,name\nA,Acme\n");
    let cwd = tempfile::tempdir().unwrap();
    let config = ws.path("keel.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["--config", config.to_str().unwrap(), "sync"])
        .current_dir(cwd.path())
        .env("KEEL_TEST_DATA_DIR", "state")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(ws.path("state/store").is_dir(), "data_dir is resolved against the config's folder");
    assert!(!cwd.path().join("state").exists());
}
