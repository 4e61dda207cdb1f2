//! Health coverage: `keel health` says how many accounts each category had inputs for and
//! which inputs were missing, warns when a category had inputs for nobody or much of the
//! book was scored on one category alone; `keel accounts show` marks a category scored
//! without inputs; `keel check` warns, at the model's line, about an input no source feeds.

use crate::util::Workspace;

/// Three categories: `usage` (a rule function reading through an alias), `sentiment` (an
/// expression in the YAML), `adoption` (a metric no account has, and a field).
const MODEL: &str = "\
bands: {green: 80, yellow: 60}
categories:
  usage:
    weight: 60
    score: usage(account)
  sentiment:
    weight: 30
    score: \"account.metrics.nps * 10.0\"
  adoption:
    weight: 10
    score: adoption(account)
";

const RULES: &str = "\
fn usage(a) {
    let m = a.metrics;
    if m.logins_30d == () { return (); }
    if m.logins_30d > 100.0 { 100.0 } else { m.logins_30d }
}

fn adoption(a) {
    if a.fields.plan == () { return (); }
    a.metrics.features_used
}
";

/// `Logins` is mapped; `metrics.nps` maps itself; `plan` lands in `fields.plan`; nothing
/// feeds `metrics.features_used`. A1–A6 have usage and sentiment inputs, A7–A9 usage
/// only, A10 nothing.
const CONFIG: &str = "\
rules: rules
sync:
  accounts:
    file: accounts.csv
    columns:
      Logins: metrics.logins_30d
";

fn book(header_nps: bool) -> Workspace {
    let ws = Workspace::new(CONFIG);
    ws.write("rules/health.yaml", MODEL);
    ws.write("rules/coverage.rhai", RULES);
    let mut csv = String::from(if header_nps { "id,name,Logins,metrics.nps,plan\n" } else { "id,name,Logins,plan\n" });
    for i in 1..=10 {
        let logins = match i {
            1..=6 => "90",
            7..=9 => "50",
            _ => "",
        };
        let nps = if i <= 6 { "9" } else { "" };
        let plan = if i <= 9 { "pro" } else { "" };
        if header_nps {
            csv.push_str(&format!("A{i},Account {i},{logins},{nps},{plan}\n"));
        } else {
            csv.push_str(&format!("A{i},Account {i},{logins},{plan}\n"));
        }
    }
    ws.write("accounts.csv", &csv);
    ws.keel(&["sync"]).ok();
    ws
}

#[test]
fn keel_health_counts_inputs_per_category_and_warns_about_empty_and_lone_categories() {
    let ws = book(true);
    let run = ws.keel(&["health", "--at", "2026-11-01"]);
    let out = run.ok();
    // The first line carries the run's timing.
    let table: Vec<&str> = out.lines().skip(1).collect();
    insta::assert_snapshot!(table.join("\n"), @r"
    BAND      ACCOUNTS  ARR
    green            6   $0
    yellow           0   $0
    red              3   $0
    unscored         1    -
    No band changes since each account's previous point.
    Inputs per category, of 10 accounts:
    CATEGORY   WEIGHT  WITH INPUTS    %  ALONE  MISSING MOST
    adoption       10            0   0%      0  metrics.features_used (10), fields.plan (1)
    sentiment      30            6  60%      0  metrics.nps (4)
    usage          60            9  90%      3  metrics.logins_30d (1)
    ");
    insta::assert_snapshot!(run.stderr(), @r#"
    warning: category "adoption" had no inputs for any of 10 accounts (missing: metrics.features_used, fields.plan): it is left out of every score, and its weight (10 of 100) goes to the other categories
    warning: 3 of 10 accounts (30%) were scored on one category alone (usage 3): each one's health is that category's score, the others had no inputs
    "#);

    let json: serde_json::Value =
        serde_json::from_str(&ws.keel(&["health", "--at", "2026-11-01", "--format", "json"]).ok()).unwrap();
    let coverage = &json["coverage"];
    assert_eq!(coverage["accounts"], 10);
    let category = |name: &str| {
        coverage["categories"].as_array().unwrap().iter().find(|c| c["category"] == name).cloned().unwrap()
    };
    assert_eq!((category("usage")["with_inputs"].as_u64(), category("usage")["alone"].as_u64()), (Some(9), Some(3)));
    assert_eq!(category("sentiment")["with_inputs"], 6);
    assert_eq!(category("sentiment")["missing"], serde_json::json!([{ "input": "metrics.nps", "accounts": 4 }]));
    assert_eq!(category("adoption")["with_inputs"], 0);
    let kinds: Vec<(&str, &serde_json::Value)> = coverage["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["kind"].as_str().unwrap(), &w["category"]))
        .collect();
    assert_eq!(kinds, [("no_inputs", &serde_json::json!("adoption")), ("one_category", &serde_json::Value::Null)]);
}

#[test]
fn a_book_with_every_category_covered_gets_no_coverage_warning() {
    let ws = Workspace::new(CONFIG);
    ws.write(
        "rules/health.yaml",
        "bands: {green: 80, yellow: 60}\ncategories:\n  usage:\n    weight: 1\n    score: usage(account)\n",
    );
    ws.write("rules/coverage.rhai", RULES);
    ws.write("accounts.csv", "id,Logins\nA1,50\nA2,90\n");
    ws.keel(&["sync"]).ok();
    let run = ws.keel(&["health", "--at", "2026-11-01"]);
    assert!(run.ok().contains("usage          1            2  100%      0  -"), "{}", run.stdout());
    assert_eq!(run.stderr(), "", "one category for everyone is the model, not a gap");
}

#[test]
fn accounts_show_marks_each_category_scored_without_inputs_with_what_was_missing() {
    let ws = book(true);
    ws.keel(&["health", "--at", "2026-11-01"]).ok();
    let show = ws.keel_at("2026-11-01T12:00:00Z", &["accounts", "show", "A7"]).ok();
    let health: Vec<&str> = show.lines().skip_while(|l| !l.starts_with("Health")).take(4).collect();
    insta::assert_snapshot!(health.join("\n"), @r"
    Health 50.0 red (scored 2026-11-01)
      adoption      -  no data (no inputs: metrics.features_used)
      sentiment     -  no data (no inputs: metrics.nps)
      usage      50.0
    ");
    let json: serde_json::Value =
        serde_json::from_str(&ws.keel_at("2026-11-01T12:00:00Z", &["accounts", "show", "A7", "--format", "json"]).ok())
            .unwrap();
    assert_eq!(
        json["health_no_inputs"],
        serde_json::json!({ "adoption": ["metrics.features_used"], "sentiment": ["metrics.nps"] })
    );
    let full = ws.keel_at("2026-11-01T12:00:00Z", &["accounts", "show", "A1", "--format", "json"]).ok();
    let full: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(full["health_no_inputs"], serde_json::json!({ "adoption": ["metrics.features_used"] }));
}

#[test]
fn check_warns_at_the_model_line_that_reads_an_input_no_source_maps() {
    // metrics.nps maps itself (a column of that name), fields.plan is a column left
    // unmapped: only metrics.features_used is fed by nothing.
    let ws = book(true);
    let run = ws.keel(&["check"]);
    assert_eq!(run.code(), 0, "a warning, not an error: {}", run.stderr());
    assert!(run.stdout().contains("no errors, 1 warning(s)\n"), "{}", run.stdout());
    insta::assert_snapshot!(run.stderr(), @r#"
    warning: health input metrics.features_used (category "adoption") is mapped by no source: no sync.accounts.columns entry maps to it, and ./accounts.csv has no column that maps itself to it
     --> ./rules/coverage.rhai:9:5
      |
    9 |     a.metrics.features_used
      |     ^^^^^^^^^^^^^^^^^^^^^^^
      |
      = help: map the column that carries it in keel.yaml (e.g. "Column Name": metrics.features_used); until then the category scores without it for every account
    "#);

    // Without its self-mapping column, the YAML expression's input is named where the
    // model file reads it.
    let ws = book(false);
    let err = ws.keel(&["check"]).stderr();
    assert!(err.contains("health input metrics.nps (category \"sentiment\")"), "{err}");
    assert!(err.contains("--> ./rules/health.yaml:8:13"), "{err}");
}

#[test]
fn check_says_nothing_of_inputs_a_json_source_or_a_playbook_update_may_carry() {
    let ws = book(true);
    // A JSON source's rows may carry any metric, nested or by name.
    ws.write("accounts.ndjson", "{\"id\": \"A1\", \"metrics\": {\"features_used\": 3}}\n");
    ws.write("keel.yaml", &CONFIG.replace("accounts.csv", "accounts.ndjson"));
    assert!(ws.keel(&["check"]).ok().contains("no problems found"));

    // A playbook that sets the metric feeds it.
    ws.write("keel.yaml", &format!("{CONFIG}playbooks: playbooks\n"));
    ws.write(
        "playbooks/seed.yaml",
        "id: seed\nname: Seed\ntrigger:\n  condition: \"true\"\nactions:\n  - update: { field: metrics.features_used, value: 0 }\n",
    );
    let run = ws.keel(&["check"]);
    assert!(run.ok().contains("no problems found"), "{}", run.stderr());
}
