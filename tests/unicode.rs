//! Non-ASCII text in every kind of file Keel reads: the config, playbooks, rules, the
//! health model, email templates and playbook test files. Accents, CJK, emoji, combining
//! marks, tabs, CRLF, a BOM, NUL: loading never panics, an error names a line of the file
//! and shows it, and the column is the character column an editor shows. A running
//! `keel run` survives such a file saved under it.
//!
//! The properties use proptest (shrinking turns a failing file into a minimal one) with
//! a small case count per file kind, so the module runs in seconds.

use std::path::{Path, PathBuf};

use keel::config::{Config, ConfigError};
use keel::diagnostic::{read_source, Diagnostic};
use keel::lang::playbook::PlaybookSet;
use keel::lang::Loaded;
use keel::services::playtest;
use proptest::prelude::*;

use crate::run::{example_workspace, spawn, terminate, wait_for};
use crate::util::Workspace;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Text that is valid inside a quoted YAML scalar, a Rhai string and a template.
const TEXT: &[&str] = &[
    "é",
    "e\u{301}",
    "ß",
    "İ",
    "Ω",
    "日本語",
    "한국어",
    "😀",
    "👩\u{200d}👩\u{200d}👧",
    "→→→→",
    "\t",
    "\u{200b}",
    "\u{a0}",
    "x",
    " ",
];

/// Anything at all, including what breaks the file's syntax.
const ANY: &[&str] = &[
    "\r\n", "\r", "\n", "\u{feff}", "\0", "\u{2028}", "\u{85}", ":", "\"", "'", "#", "{{", "}}", "{%", "- ", "\\", "[",
    "  ",
];

fn pieces(pool: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(pool), 0..max).prop_map(|p| p.concat())
}

/// Up to four insertions of `TEXT` or `ANY` pieces, each at a fraction of the file.
fn edits() -> impl Strategy<Value = Vec<(f64, String)>> {
    let piece = prop::sample::select([TEXT, ANY].concat());
    prop::collection::vec((0.0..=1.0f64, prop::collection::vec(piece, 1..4).prop_map(|p| p.concat())), 1..5)
}

/// `text` with each edit inserted at its fraction of the characters.
fn edited(text: &str, edits: &[(f64, String)]) -> String {
    let mut chars: Vec<String> = text.chars().map(String::from).collect();
    for (at, piece) in edits {
        let i = ((chars.len() as f64) * at) as usize;
        chars.insert(i.min(chars.len()), piece.clone());
    }
    chars.concat()
}

/// Every diagnostic names a line of its file (as Keel read it) and a column within that
/// line, and shows that line.
fn assert_placed(errors: &[Diagnostic]) -> Result<(), TestCaseError> {
    for d in errors {
        let rendered = d.to_string();
        let Some((line, column)) = d.position else { continue };
        let text = read_source(&d.file).unwrap_or_else(|e| panic!("{}: {e}", d.file.display()));
        let lines: Vec<&str> = text.lines().collect();
        prop_assert!(line >= 1 && line <= lines.len().max(1), "line {line} of {} lines:\n{rendered}", lines.len());
        let shown = lines.get(line - 1).copied().unwrap_or("");
        prop_assert!(column >= 1 && column <= shown.chars().count() + 1, "column {column} of {shown:?}:\n{rendered}");
        let shown = annotate_snippets::normalize_untrusted_str(shown);
        prop_assert!(rendered.contains(shown.trim_end()), "the line {shown:?} is shown:\n{rendered}");
        prop_assert!(rendered.contains(&format!(":{line}:{column}\n")), "{rendered}");
    }
    Ok(())
}

/// A folder with a copy of the shipped rules, playbooks and templates.
fn shipped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["rules", "playbooks", "playbooks/templates", "playbooks/tests"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(repo().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    dir
}

fn files(sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

fn load(dir: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    Loaded::load(&dir.join("rules"), &dir.join("playbooks"))
}

/// `n` cases a run, each new (no regression file): a loading case takes 10–40 ms.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn any_text_in_a_playbook_loads_or_is_placed(which in any::<prop::sample::Index>(), edits in edits()) {
        let dir = shipped();
        let file = which.get(&files("playbooks", "yaml")).file_name().unwrap().to_owned();
        let path = dir.path().join("playbooks").join(file);
        std::fs::write(&path, edited(&std::fs::read_to_string(&path).unwrap(), &edits)).unwrap();
        if let Err(errors) = load(dir.path()) {
            assert_placed(&errors)?;
        }
    }

    #[test]
    fn any_text_in_the_rules_loads_or_is_placed(rhai in edits(), yaml in edits()) {
        let dir = shipped();
        for (name, edits) in [("health.rhai", rhai), ("health.yaml", yaml)] {
            let path = dir.path().join("rules").join(name);
            std::fs::write(&path, edited(&std::fs::read_to_string(&path).unwrap(), &edits)).unwrap();
        }
        if let Err(errors) = load(dir.path()) {
            assert_placed(&errors)?;
        }
    }

    #[test]
    fn any_text_in_a_template_loads_or_is_placed(which in any::<prop::sample::Index>(), edits in edits()) {
        let dir = shipped();
        let file = which.get(&files("playbooks/templates", "txt")).file_name().unwrap().to_owned();
        let path = dir.path().join("playbooks/templates").join(file);
        std::fs::write(&path, edited(&std::fs::read_to_string(&path).unwrap(), &edits)).unwrap();
        if let Err(errors) = load(dir.path()) {
            assert_placed(&errors)?;
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_text_in_the_config_loads_or_is_placed(edits in edits()) {
        let ws = Workspace::new(&edited(&std::fs::read_to_string(repo().join("examples/keel.yaml")).unwrap(), &edits));
        if let Err(ConfigError::Invalid(d)) = Config::load(&ws.path("keel.yaml")) {
            assert_placed(&[*d])?;
        }
    }

    #[test]
    fn any_text_in_a_playbook_test_file_loads_or_is_placed(which in any::<prop::sample::Index>(), edits in edits()) {
        let set = shipped_set();
        let dir = tempfile::tempdir().unwrap();
        let source = which.get(&files("playbooks/tests", "yaml")).clone();
        let path = dir.path().join("case.yaml");
        std::fs::write(&path, edited(&std::fs::read_to_string(source).unwrap(), &edits)).unwrap();
        if let Err(errors) = playtest::check_file(&path, set) {
            assert_placed(&errors)?;
        }
    }
}

/// The shipped playbooks, loaded once for the test-file property.
fn shipped_set() -> &'static PlaybookSet {
    static SET: std::sync::OnceLock<PlaybookSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| load(repo()).unwrap_or_else(|e| panic!("{e:?}")).set)
}

/// Where `needle` starts in `text`: 1-based line, and character column.
fn find(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap_or_else(|| panic!("{needle:?} in {text:?}"));
    let line = text[..at].matches('\n').count() + 1;
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (line, text[start..at].chars().count() + 1)
}

/// The file as an editor on Windows may save it: a BOM, CRLF line ends.
fn windows(text: &str) -> String {
    format!("\u{feff}{}", text.replace('\n', "\r\n"))
}

/// The one error of a load, as (line, column) and its rendering.
fn only(errors: Vec<Diagnostic>) -> ((usize, usize), String) {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    (errors[0].position.expect("a position"), errors[0].to_string())
}

proptest! {
    #![proptest_config(cases(24))]

    /// Non-ASCII text before a mistake, on its line and the lines above, in each kind of
    /// file: the error is at the mistake's exact line and character column.
    #[test]
    fn an_error_after_non_ascii_text_is_at_its_character_column(
        a in pieces(TEXT, 6), b in pieces(TEXT, 6), c in pieces(TEXT, 6), crlf in any::<bool>(),
    ) {
        let save = |text: String| if crlf { windows(&text) } else { text };
        let dir = shipped();
        let path = dir.path().join("playbooks/p.yaml");
        let playbook = format!(
            "id: p\nname: \"{a}\"\n# {b}\ntrigger:\n  condition: account.name == \"{c}\" && enagement(account) < 50\nactions:\n  - task: {{ title: \"{a}\", owner: x }}\n"
        );
        std::fs::write(&path, save(playbook.clone())).unwrap();
        let (at, shown) = only(load(dir.path()).err().expect("an unknown function"));
        prop_assert_eq!(at, find(&playbook, "enagement"), "{}", shown);
        std::fs::remove_file(&path).unwrap();

        let rules = dir.path().join("rules/extra.rhai");
        let rule = format!("// {a}\nfn extra(x) {{\n    let s = \"{b}\"; s + \"{c}\" +\n}}\n");
        std::fs::write(&rules, save(rule.clone())).unwrap();
        let (at, shown) = only(load(dir.path()).err().expect("a syntax error"));
        prop_assert_eq!(at, find(&rule, "}\n"), "{}", shown);
        std::fs::remove_file(&rules).unwrap();

        let model = dir.path().join("rules/health.yaml");
        let health = format!(
            "# {a}\nbands: {{ green: 80, yellow: 60 }}\ncategories:\n  all:\n    weight: 1\n    score: 'account.name == \"{b}{c}\" && account.metrics.x >'\n"
        );
        std::fs::write(&model, save(health.clone())).unwrap();
        let (at, shown) = only(load(dir.path()).err().expect("an incomplete score"));
        let (line, column) = find(&health, ">'");
        prop_assert_eq!(at, (line, column + 1), "just after the `>`: {}", shown);
        std::fs::write(&model, std::fs::read(repo().join("rules/health.yaml")).unwrap()).unwrap();

        let template = dir.path().join("playbooks/templates/red_save_plan.txt");
        let text = format!("Subject: {a}\n{b}\n\n{c} {{% if %}}\n");
        std::fs::write(&template, save(text.clone())).unwrap();
        let (at, shown) = only(load(dir.path()).err().expect("a template syntax error"));
        prop_assert_eq!(at.0, find(&text, "{% if").0, "{}", shown);

        let ws = Workspace::new(&save(format!(
            "timezone: UTC\n# {a}\nsync:\n  accounts:\n    columns:\n      \"A{b}\": id\n      \"B{c}→\": nam\n"
        )));
        let Err(ConfigError::Invalid(d)) = Config::load(&ws.path("keel.yaml")) else { panic!("a bad column target") };
        let config = std::fs::read_to_string(ws.path("keel.yaml")).unwrap().replace("\r\n", "\n");
        prop_assert_eq!(d.position, Some(find(config.trim_start_matches('\u{feff}'), "nam\n")), "{}", d);
    }
}

#[test]
fn a_typo_on_a_line_of_arrows_and_an_accent_before_a_rhai_error_are_at_their_columns() {
    let ws = Workspace::new("timezone: UTC\n");
    ws.write(
        "playbooks/arrows.yaml",
        "id: arrows\nname: Arrows\ntrigger:\n  condition: \"true\"\nactions:\n  - task: { title: \"→→→→\", owner: x, tittle: \"→→→→\" }\n",
    );
    ws.write(
        "playbooks/accents.yaml",
        "id: accents\nname: Accents\ntrigger:\n  condition: account.segment == \"Entreprisé\" && account.arr >\nactions:\n  - task: { title: t, owner: x }\n",
    );
    let run = ws.keel(&["check"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    insta::assert_snapshot!(run.stderr(), @r#"
    error: Rhai: Script is incomplete
     --> ./playbooks/accents.yaml:4:62
      |
    4 |   condition: account.segment == "Entreprisé" && account.arr >
      |                                                              ^

    error: unknown field `tittle`, expected one of `title`, `description`, `owner`, `due_in`, `priority`, `escalate_after`, `escalate_to`
     --> ./playbooks/arrows.yaml:6:38
      |
    6 |   - task: { title: "→→→→", owner: x, tittle: "→→→→" }
      |                                      ^^^^^^
      |
      = key: actions[0].task.tittle
      = help: did you mean `title`?

    2 error(s) in 2 file(s)
    "#);
}

#[test]
fn files_saved_with_a_bom_and_crlf_load_like_the_others() {
    let dir = shipped();
    let all: Vec<PathBuf> = [
        files("rules", "rhai"),
        files("rules", "yaml"),
        files("playbooks", "yaml"),
        files("playbooks/templates", "txt"),
        files("playbooks/tests", "yaml"),
    ]
    .concat();
    for source in &all {
        let target = dir.path().join(source.strip_prefix(repo()).unwrap());
        std::fs::write(target, windows(&std::fs::read_to_string(source).unwrap())).unwrap();
    }
    let config = std::fs::read_to_string(repo().join("examples/keel.yaml")).unwrap();
    std::fs::write(dir.path().join("keel.yaml"), windows(&config.replace("../", ""))).unwrap();
    let config = Config::load(&dir.path().join("keel.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.playbooks_dir, dir.path().join("playbooks"));
    let loaded = Loaded::load(&config.rules_dir, &config.playbooks_dir).unwrap_or_else(|e| panic!("{e:?}"));
    let shipped = shipped_set();
    assert_eq!(loaded.set.playbooks.len(), shipped.playbooks.len());
    let subject = |set: &PlaybookSet| {
        let t = &set.emails["red_save_plan"];
        set.templates.get_template(&t.subject).unwrap().source().to_string()
    };
    assert_eq!(subject(&loaded.set), subject(shipped), "the subject line, without the BOM");
    for file in files("playbooks/tests", "yaml") {
        let copy = dir.path().join(file.strip_prefix(repo()).unwrap());
        assert!(playtest::check_file(&copy, &loaded.set).unwrap_or_else(|e| panic!("{e:?}")) > 0);
    }
}

/// A running daemon, handed a playbook edited into a non-ASCII typo (which used to panic
/// the renderer), logs the rejected reload and goes on with the playbooks it had; then a
/// fixed file saved with a BOM and CRLF is applied.
#[test]
fn a_running_daemon_survives_a_non_ascii_typo_and_takes_a_bom_file() {
    let ws = example_workspace();
    let (mut child, rx) = spawn(&ws, "2026-11-23T13:00:00Z");
    let mut log = Vec::new();
    let tick = |l: &str| l.contains("tick evaluated") && l.contains("playbook=red-save-plan");
    wait_for(&rx, &mut log, "the first pass", tick);

    let original = std::fs::read_to_string(ws.path("playbooks/red-save-plan.yaml")).unwrap();
    let condition = "  condition: account.health.band == \"red\"\n";
    assert!(original.contains(condition));
    let broken = original.replace(condition, "  condition: account.name != \"Montréal →→→→\" &&\n");
    ws.write("playbooks/red-save-plan.yaml", &broken);
    wait_for(&rx, &mut log, "the rejected reload", |l| l.contains("fails `keel check`"));
    let (line, column) = find(&broken, " &&\n");
    let at = format!("--> ./playbooks/red-save-plan.yaml:{line}:{}", column + 3);
    wait_for(&rx, &mut log, "the diagnostic at the character column", |l| l.contains(&at));
    wait_for(&rx, &mut log, "a pass of the old set after the rejected change", |l| l.contains("pass done"));

    // Fixed, and saved by an editor that writes a BOM and CRLF: applied.
    let fixed = original.replace("name: Red health → manager save plan", "name: Santé rouge → plan (é, 日本)");
    ws.write("playbooks/red-save-plan.yaml", &windows(&fixed));
    wait_for(&rx, &mut log, "the applied reload", |l| l.contains("reloaded the config, rules and playbooks"));
    wait_for(&rx, &mut log, "a pass after the reload", |l| l.contains("pass done"));

    let (status, _) = terminate(&mut child);
    assert_eq!(status.code(), Some(0), "still running, and a clean stop exits 0:\n{}", log.join("\n"));
    assert!(!log.iter().any(|l| l.contains("panicked")), "{}", log.join("\n"));
}

/// serde_yaml's own lines also break at U+2028 and a lone `\r` (inside a quoted scalar
/// they are folded like any line break): a syntax error after them is still at Keel's
/// line and character column.
#[test]
fn a_yaml_syntax_error_after_non_ascii_text_is_at_its_character_column() {
    for text in [
        "data_dir: \"→→→→\" [\n",
        "# é\r\ndata_dir: \"日本語\u{2028}😀\" [\r\n",
        "\u{feff}# e\u{301}\ndata_dir: \"\tß\rx\" [\n",
    ] {
        let ws = Workspace::new(text);
        let Err(ConfigError::Invalid(d)) = Config::load(&ws.path("keel.yaml")) else { panic!("{text:?} is invalid") };
        assert_eq!(d.position, Some(find(text.trim_start_matches('\u{feff}'), "[")), "{text:?}:\n{d}");
        assert!(!d.to_string().contains("= key"), "no key to name:\n{d}");
    }
}
