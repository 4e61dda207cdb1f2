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
    assert!(out.ends_with("11 passed, 0 failed\n"), "{out}");
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
