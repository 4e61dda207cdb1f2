//! The health model: the shipped reference model bands the sample book; a team's own
//! model (data + Rhai) is used when present; scores are explained, damped and kept as
//! daily history; a broken model reports every error; a runaway script fails alone.

use std::path::Path;

use keel::model::Band;

use crate::util::{run_keel, Workspace};

/// A model whose score is one metric, so tests can steer it exactly.
const STEERABLE: &str = "\
bands:
  green: 80
  yellow: 60
damping:
  margin: 3
categories:
  usage:
    weight: 3
    score: usage_score(account)
  sentiment:
    weight: 1
    score: \"account.metrics.nps * 10.0\"
";
const RULES: &str = "fn usage_score(a) { a.metrics.usage }\n";

fn steerable() -> Workspace {
    let ws = Workspace::new("rules: rules\n");
    ws.write("rules/health.yaml", STEERABLE);
    ws.write("rules/usage.rhai", RULES);
    ws
}

fn set_usage(ws: &Workspace, usage: f64) {
    ws.write("a.csv", &format!("id,name,arr,metrics.usage,metrics.nps\nA,Acme,1000,{usage},8\nB,Beta,500,,\n"));
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
}

#[test]
fn a_teams_own_model_scores_weighted_components_and_skips_missing_inputs() {
    let ws = steerable();
    set_usage(&ws, 90.0);
    let out = ws.keel(&["health", "--at", "2026-11-01"]).ok();
    assert!(out.contains("with ./rules/health.yaml"), "{out}");
    assert!(out.contains("unscored         1"), "B has no inputs at all: {out}");
    let store = ws.store();
    let point = store.health_on_or_before("A", "2026-11-01".parse().unwrap()).unwrap().unwrap();
    assert!((point.score - (90.0 * 3.0 + 80.0) / 4.0).abs() < 1e-9, "{point:?}");
    assert_eq!(point.band, Band::Green);
    assert_eq!(point.components["usage"], Some(90.0));
    assert_eq!(point.components["sentiment"], Some(80.0));
}

#[test]
fn band_changes_are_damped_and_history_gives_the_trend() {
    let ws = steerable();
    // Score = (3u + 80) / 4. Day by day: 81.5 green, 79.25 (damped: still green),
    // 77.75 (still within 3), 76.25 (past the margin: yellow), 81.5 (yellow until 83).
    let days = [
        (81.5, "2026-10-01"),
        (79.25, "2026-10-02"),
        (77.75, "2026-10-03"),
        (76.25, "2026-10-04"),
        (81.5, "2026-11-03"),
    ];
    let mut bands = Vec::new();
    for (score, day) in days {
        set_usage(&ws, (score * 4.0 - 80.0) / 3.0);
        ws.keel(&["health", "--at", day]).ok();
        let store = ws.store();
        bands.push(store.health_on_or_before("A", day.parse().unwrap()).unwrap().unwrap().band);
    }
    assert_eq!(bands, [Band::Green, Band::Green, Band::Green, Band::Yellow, Band::Yellow]);

    let history = ws.store().health_history("A", "2026-10-01".parse().unwrap(), "2026-11-30".parse().unwrap()).unwrap();
    assert_eq!(history.len(), 5, "one point per scored day");

    let show =
        run_keel(Path::new("keel.yaml"), ws.dir.path(), &["--now", "2026-11-03T12:00:00Z", "accounts", "show", "A"])
            .ok();
    // 30 days before 2026-11-03 the latest point is 2026-10-04's 76.25.
    assert!(
        show.contains("Health 81.5 yellow (scored 2026-11-03, +5.2 over 30 days (was 76.2 on 2026-10-04))"),
        "{show}"
    );
    assert!(show.contains("  usage "), "{show}");
}

#[test]
fn re_scoring_a_day_is_idempotent() {
    let ws = steerable();
    set_usage(&ws, 79.0 * 4.0 / 3.0 - 80.0 / 3.0);
    ws.keel(&["health", "--at", "2026-10-01"]).ok();
    set_usage(&ws, 40.0); // score (3·40 + 80) / 4 = 50: past the margin, red
    let first = ws.keel(&["health", "--at", "2026-10-02"]).ok();
    let again = ws.keel(&["health", "--at", "2026-10-02"]).ok();
    assert!(first.contains("1 yellow → red"), "{first}");
    assert!(
        again.contains("1 yellow → red"),
        "the day's change is measured against the day before, every time: {again}"
    );
    let store = ws.store();
    assert_eq!(
        store.health_history("A", "2026-10-01".parse().unwrap(), "2026-10-31".parse().unwrap()).unwrap().len(),
        2
    );
}

#[test]
fn the_reference_model_puts_the_sample_book_in_all_three_bands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The example config, scoring with the repo's shipped rules/ (not the built-in copy).
    let config = std::fs::read_to_string(root.join("examples/keel.yaml")).unwrap();
    let rules = root.join("rules");
    let ws = Workspace::new(&config.replace("rules: ../rules", &format!("rules: {}", rules.display())));
    std::fs::create_dir_all(ws.path("data")).unwrap();
    for name in ["accounts.csv", "contacts.csv", "events.ndjson"] {
        std::fs::copy(root.join("examples/data").join(name), ws.path("data").join(name)).unwrap();
    }
    ws.keel(&["sync"]).ok();
    let out = ws.keel(&["health", "--format", "json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["model"], rules.join("health.yaml").to_str().unwrap());
    let count = |band: &str| doc["bands"][band]["accounts"].as_u64().unwrap_or(0);
    assert_eq!(count("green") + count("yellow") + count("red"), 400, "{doc}");
    for band in ["green", "yellow", "red"] {
        assert!(count(band) >= 40, "at least a tenth of the book is {band}: {doc}");
    }
}

#[test]
fn a_runaway_category_fails_only_its_account() {
    let ws = Workspace::new("rules: rules\n");
    ws.write(
        "rules/health.yaml",
        "bands: {green: 80, yellow: 60}\ncategories:\n  usage:\n    weight: 1\n    score: spin(account)\n",
    );
    ws.write("rules/spin.rhai", "fn spin(a) {\n    if a.id == \"LOOP\" { loop { } }\n    a.metrics.usage\n}\n");
    ws.write("a.csv", "id,metrics.usage\nA,90\nLOOP,90\nC,50\n");
    ws.keel(&["sync", "accounts", "a.csv"]).ok();
    let run = ws.keel(&["health", "--at", "2026-11-01"]);
    assert_eq!(run.code(), 1);
    assert!(run.stdout().contains("Scored 2 accounts"), "{}", run.stdout());
    insta::assert_snapshot!(run.stderr(), @r"
      account LOOP: health category usage: ./rules/health.yaml:5:12: stopped: exceeded the limit of 100000 operations (a loop that never ends?)
    error: 1 account(s) could not be scored; the others were
    ");
}

#[test]
fn a_broken_model_reports_every_error_with_its_position() {
    let ws = Workspace::new("rules: rules\n");
    ws.write(
        "rules/health.yaml",
        "\
bands:
  green: 70
  yellow: 75
damping:
  margin: 50
categories:
  usage:
    weight: 0
    score: \"account.metrics.usage >\"
  product:
    weight: 1
    score: product(account)
",
    );
    ws.write("rules/bad.rhai", "fn product(a) {\n    a.metrics.x +\n}\n");
    let run = ws.keel(&["health"]);
    assert_eq!(run.code(), 1);
    insta::assert_snapshot!(run.stderr());
}

#[test]
fn a_category_calling_a_missing_rule_function_is_caught_at_load() {
    let ws = Workspace::new("rules: rules\n");
    ws.write(
        "rules/health.yaml",
        "bands: {green: 80, yellow: 60}\ncategories:\n  usage:\n    weight: 1\n    score: usage_scroe(account)\n",
    );
    ws.write("rules/usage.rhai", RULES);
    let run = ws.keel(&["health"]);
    assert_eq!(run.code(), 1);
    let err = run.stderr();
    assert!(err.contains("unknown function `usage_scroe`") && err.contains("./rules/health.yaml:5:12"), "{err}");
}
