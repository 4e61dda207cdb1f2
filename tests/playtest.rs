//! `keel test`: the shipped playbook tests pass (so they run in this suite too), a wrong
//! expectation fails naming the case and what happened, and a broken test file is
//! reported with file:line:column.

use std::path::Path;

use crate::util::{run_keel, Workspace};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_shipped_playbook_tests_pass() {
    let run = run_keel(Path::new("examples/keel.yaml"), repo(), &["test"]);
    let out = run.ok();
    assert!(out.ends_with("16 passed, 0 failed\n"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

/// The shipped playbooks with an extra test file.
fn with_test(test: &str) -> Workspace {
    let ws = Workspace::new(&format!(
        "timezone: UTC\nrules: {}\nplaybooks: {}\n",
        repo().join("rules").display(),
        repo().join("playbooks").display()
    ));
    ws.write("case.yaml", test);
    ws
}

#[test]
fn a_wrong_expectation_fails_and_names_the_case() {
    let ws = with_test(
        "tests:\n  - name: renewal on the wrong day\n    at: 2026-11-22\n    accounts:\n      - { id: A, owner: a@x.example, renewal_date: 2027-02-21 }\n      - { id: B, owner: a@x.example, renewal_date: 2027-02-20 }\n    expect:\n      - { playbook: renewal-90, fires: [A], not: [B] }\n",
    );
    let run = ws.keel(&["test", "case.yaml"]);
    assert_eq!(run.code(), 1);
    insta::assert_snapshot!(run.stdout(), @r"
    case.yaml
      FAIL  renewal on the wrong day
            expected renewal-90 to fire for A; it did not
            expected renewal-90 not to fire for B; it fired: renewal_date 2027-02-20 -90d = 2026-11-22, due today
    0 passed, 1 failed
    ");
}

#[test]
fn a_broken_test_file_is_reported_with_positions() {
    let ws = with_test(
        "tests:\n  - name: typos\n    at: 2026-11-22\n    accounts:\n      - id: A\n        renewal_dat: 2027-02-20\n    expect:\n      - { playbook: renewal-9, fires: [A] }\n      - { playbook: renewal-90, fires: [Z] }\n",
    );
    let run = ws.keel(&["test", "case.yaml"]);
    assert_eq!(run.code(), 1);
    insta::assert_snapshot!(run.stderr());
    assert!(run.stdout().contains("1 test file(s) could not be read"), "{}", run.stdout());
}

#[test]
fn a_wrong_expectation_on_a_later_day_fails_naming_the_case_and_the_day() {
    // The shipped 14-day recovery task: expecting it on day 7 is wrong (the `every`
    // window is still closed), and so is expecting no webinar step on day 14.
    let ws = with_test(
        "tests:
  - name: recovery every week, wrongly
    at: 2026-11-22
    accounts:
      - { id: IDLE, segment: mid_market, owner: csm@x.example,
          metrics: { active_users: 5, licensed_users: 100, logins_30d: 20, avg_session_minutes: 3, open_tickets: 6 } }
    days:
      - { day: 0, expect: [ { playbook: low-engagement-recovery, fires: [IDLE] } ] }
      - { day: 7, expect: [ { playbook: low-engagement-recovery, fires: [IDLE] } ] }
      - { day: 14, expect: [ { playbook: low-engagement-recovery, not: [IDLE] } ] }
",
    );
    let run = ws.keel(&["test", "case.yaml"]);
    assert_eq!(run.code(), 1);
    insta::assert_snapshot!(run.stdout(), @r"
    case.yaml
      FAIL  recovery every week, wrongly
            day 7 (2026-11-29): expected low-engagement-recovery to fire for IDLE; it did not
            day 14 (2026-12-06): expected low-engagement-recovery not to fire for IDLE; it fired: `account.health.components.engagement < 50` is true; fires at most every 14d
    0 passed, 1 failed
    ");
}

#[test]
fn a_days_case_is_checked_like_the_rest_of_the_file() {
    let ws = with_test(
        "tests:
  - name: typos in days
    at: 2026-11-22
    accounts:
      - { id: A, segment: smb }
    days:
      - day: 3
        accounts: [ { id: B, metrics: { logins_30d: 1 } } ]
        health: { A: 140 }
      - day: 2
        expect: [ { playbook: smb-onboardin, exits: [Z] } ]
",
    );
    let run = ws.keel(&["test", "case.yaml"]);
    assert_eq!(run.code(), 1);
    insta::assert_snapshot!(run.stderr(), @r#"
    error: account "B" is not among this test's accounts
     --> case.yaml:8:19
      |
    8 |         accounts: [ { id: B, metrics: { logins_30d: 1 } } ]
      |                   ^^^^^^

    error: `health` is a health score from 0 to 100
     --> case.yaml:9:17
      |
    9 |         health: { A: 140 }
      |                 ^^^

    error: days must be listed in order, each once
      --> case.yaml:10:14
       |
    10 |       - day: 2
       |              ^

    error: no playbook "smb-onboardin"
      --> case.yaml:11:17
       |
    11 |         expect: [ { playbook: smb-onboardin, exits: [Z] } ]
       |                 ^^^^^^^^^^^^
       |
       = help: did you mean `smb-onboarding`?

    error: account "Z" is not among this test's accounts
      --> case.yaml:11:17
       |
    11 |         expect: [ { playbook: smb-onboardin, exits: [Z] } ]
       |                 ^^^^^^^^^^^^
    "#);
}

#[test]
fn a_playbook_that_fails_on_a_day_no_expectation_names_still_fails_the_case() {
    let ws = with_test(
        "tests:
  - name: quiet days are checked too
    at: 2026-11-22
    accounts:
      - { id: A, segment: smb, metrics: { step: 0 } }
    days:
      - { day: 0, expect: [ { playbook: boom, not: [A] } ] }
      - { day: 2, accounts: [ { id: A, metrics: { step: 2 } } ] }
      - { day: 3, accounts: [ { id: A, metrics: { step: 3 } } ] }
      - { day: 4, expect: [ { playbook: boom, not: [A] } ] }
  - name: nothing to check
    at: 2026-11-22
    accounts:
      - { id: A }
    expect: []
",
    );
    ws.write(
        "pb/boom.yaml",
        "id: boom\nname: Throws on day 2\ntrigger:\n  condition: |\n    if account.metrics.step == 2 { throw \"boom on day 2\" } else { false }\nactions:\n  - task: { title: t, owner: o@x.example }\n",
    );
    ws.write("keel.yaml", &format!("timezone: UTC\nrules: {}\nplaybooks: pb\n", repo().join("rules").display()));
    let run = ws.keel(&["test", "case.yaml"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("`expect` is empty: the case would check nothing"), "{}", run.stderr());
    // Without the empty case, the failing day fails the other.
    let text = std::fs::read_to_string(ws.path("case.yaml")).unwrap();
    ws.write("case.yaml", &text[..text.find("  - name: nothing to check").unwrap()]);
    let run = ws.keel(&["test", "case.yaml"]);
    assert_eq!(run.code(), 1);
    assert!(run.stdout().contains("FAIL  quiet days are checked too"), "{}", run.stdout());
    assert!(run.stdout().contains("day 2 (2026-11-24): playbook boom failed for account A"), "{}", run.stdout());
}
