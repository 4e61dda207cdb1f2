//! `keel schema`: the committed `schema/` folder is what Keel generates (`keel schema
//! --check`, as CI runs it), every shipped YAML file names its schema on its first line
//! and validates against it with an independent validator (Python's `jsonschema`, run by
//! tests/util/validate_schema.py; without python3 or the module this fails, it never
//! skips), and files with a typo'd key do not validate, the validator naming the key —
//! as Keel's own loader refuses them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{run_keel, Workspace};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `keel schema ARGS` in `cwd`, with no config anywhere near.
fn keel_schema(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("schema")
        .args(args)
        .current_dir(cwd)
        .env_remove("KEEL_CONFIG")
        .output()
        .expect("the keel binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the validator over `files` (with `schema`, else each file's own header line).
fn validate(schema: Option<&Path>, files: &[PathBuf]) -> (i32, String) {
    let mut command = Command::new("python3");
    command.arg(repo().join("tests/util/validate_schema.py"));
    if let Some(schema) = schema {
        command.arg("--schema").arg(schema);
    }
    let out = command.args(files).current_dir(repo()).output().unwrap_or_else(|e| {
        panic!("python3 is needed to validate against the schemas ({e}): run the tests with scripts/test")
    });
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let code = out.status.code().expect("python exited normally");
    assert!(
        code == 0 || code == 1,
        "the validator could not run (exit {code}); scripts/test installs PyYAML and jsonschema:\n{stdout}{stderr}"
    );
    (code, stdout)
}

/// Every YAML file Keel ships, with the schema its first line must name.
fn shipped() -> Vec<(PathBuf, &'static str)> {
    let mut files = vec![
        (PathBuf::from("examples/keel.yaml"), "../schema/keel.schema.json"),
        (PathBuf::from("rules/health.yaml"), "../schema/health.schema.json"),
    ];
    for (dir, schema) in [
        ("playbooks", "../schema/playbook.schema.json"),
        ("playbooks/tests", "../../schema/playbook-test.schema.json"),
        ("examples/playbooks", "../../schema/playbook.schema.json"),
    ] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .map(|p| p.strip_prefix(repo()).unwrap().to_path_buf())
            .collect();
        found.sort();
        assert!(!found.is_empty(), "{dir} has YAML files");
        files.extend(found.into_iter().map(|f| (f, schema)));
    }
    files
}

#[test]
fn the_committed_schemas_are_the_generated_ones() {
    let out = keel_schema(repo(), &["--check"]);
    assert!(out.status.success(), "schema/ is stale: run `cargo run -- schema` and commit it\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok: 4 schema files in schema are up to date\n");
}

#[test]
fn check_fails_naming_a_stale_or_missing_file_and_writing_fixes_it() {
    let ws = Workspace::new("");
    let dir = ws.path("out");
    let out = keel_schema(&ws.path(""), &["--out", "out"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("wrote out/playbook.schema.json (playbooks/*.yaml)"), "{}", text(&out.stdout));
    for name in ["keel", "playbook", "playbook-test", "health"] {
        let written = std::fs::read_to_string(dir.join(format!("{name}.schema.json"))).unwrap();
        let committed = std::fs::read_to_string(repo().join(format!("schema/{name}.schema.json"))).unwrap();
        assert_eq!(written, committed, "{name}: --out writes what is committed");
    }
    std::fs::write(dir.join("keel.schema.json"), "{}\n").unwrap();
    std::fs::remove_file(dir.join("health.schema.json")).unwrap();
    let out = keel_schema(&ws.path(""), &["--out", "out", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: the schema files are stale: out/keel.schema.json, out/health.schema.json differ from what this Keel \
         generates; run `keel schema --out out` and commit the result\n"
    );
    assert!(keel_schema(&ws.path(""), &["--out", "out"]).status.success());
    assert!(keel_schema(&ws.path(""), &["--out", "out", "--check"]).status.success());
}

#[test]
fn every_shipped_file_names_its_schema_and_validates() {
    let files = shipped();
    for (file, schema) in &files {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(first, format!("# yaml-language-server: $schema={schema}"), "{}'s first line", file.display());
    }
    let paths: Vec<PathBuf> = files.into_iter().map(|(f, _)| f).collect();
    let (code, out) = validate(None, &paths);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), paths.len(), "{out}");
}

#[test]
fn the_shipped_files_with_their_schema_line_still_load() {
    // The schema line is a YAML comment: the loaders, `keel check` and `keel test` read on.
    let run = run_keel(Path::new("examples/keel.yaml"), repo(), &["check"]);
    assert!(run.ok().contains("12 playbooks (12 enabled)"), "{}", run.stdout());
}

#[test]
fn a_mistyped_key_does_not_validate_and_the_validator_names_it() {
    let cases = [
        ("tests/fixtures/schema/keel.yaml", "schema/keel.schema.json", "/delivery", "retension"),
        ("tests/fixtures/broken/playbooks/a-typo.yaml", "schema/playbook.schema.json", "/", "tigger"),
        ("tests/fixtures/schema/tests.yaml", "schema/playbook-test.schema.json", "/tests/0/accounts/0", "renewal_dat"),
    ];
    for (file, schema, at, key) in cases {
        let (code, out) = validate(Some(&repo().join(schema)), &[PathBuf::from(file)]);
        assert_eq!(code, 1, "{file} must not validate:\n{out}");
        let says = format!("invalid {file} at {at}: Additional properties are not allowed ('{key}' was unexpected)");
        assert!(out.lines().any(|l| l == says), "expected `{says}` in:\n{out}");
    }
}

#[test]
fn malformed_values_do_not_validate_at_their_path() {
    let cases = [
        ("tests/fixtures/schema/keel-values.yaml", "keel", &["/api/token", "/delivery/backoff", "/timezone"][..]),
        ("tests/fixtures/broken/playbooks/b-values.yaml", "playbook", &["/actions/0/task/due_in"]),
        ("tests/fixtures/broken/playbooks/d-schedule.yaml", "playbook", &["/trigger/schedule"]),
    ];
    for (file, schema, paths) in cases {
        let (code, out) = validate(Some(&repo().join(format!("schema/{schema}.schema.json"))), &[PathBuf::from(file)]);
        assert_eq!(code, 1, "{file} must not validate:\n{out}");
        let found: Vec<&str> =
            out.lines().filter_map(|l| l.strip_prefix(&format!("invalid {file} at "))?.split(':').next()).collect();
        assert_eq!(found, paths, "{out}");
    }
    // Keel refuses the config's values too (the first, as serde stops there).
    let run = run_keel(&repo().join("tests/fixtures/schema/keel-values.yaml"), repo(), &["check"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("unknown time zone \"Mars/Base\""), "{}", run.stderr());
}

#[test]
fn keel_refuses_the_typo_fixtures_too() {
    // The fixtures stay honest: what the schema refuses, the loaders refuse.
    let run = run_keel(&repo().join("tests/fixtures/schema/keel.yaml"), repo(), &["check"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("retension"), "{}", run.stderr());
    let ws = Workspace::new(&format!(
        "timezone: UTC\nrules: {}\nplaybooks: {}\n",
        repo().join("rules").display(),
        repo().join("playbooks").display()
    ));
    let run = ws.keel(&["test", repo().join("tests/fixtures/schema/tests.yaml").to_str().unwrap()]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("unknown account field `renewal_dat`"), "{}", run.stderr());
}

#[test]
fn guard_settings_validate_and_a_share_without_its_percent_sign_does_not() {
    let ok = ["tests/fixtures/schema/guard-ok.yaml", "tests/fixtures/schema/keel-guard.yaml"].map(PathBuf::from);
    let (code, out) = validate(None, &ok);
    assert_eq!(code, 0, "{out}");
    let bad = PathBuf::from("tests/fixtures/schema/guard-bad.yaml");
    let (code, out) = validate(None, std::slice::from_ref(&bad));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/guard"), "{out}");
    // Keel says the same, where it is written.
    let ws = Workspace::new("timezone: UTC\n");
    ws.write("playbooks/guarded.yaml", &std::fs::read_to_string(repo().join(&bad)).unwrap());
    ws.write("playbooks/templates/nudge.txt", "Subject: Hi\n\nHello.\n");
    let run = ws.keel(&["check"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("like \"10%\""), "{}", run.stderr());
    assert!(run.stderr().contains("guarded.yaml:8:"), "{}", run.stderr());
}
