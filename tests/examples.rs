//! The example a newcomer runs first: the committed sample book is exactly what the
//! generator makes, and the README's run command imports it cleanly, twice.

use std::fs;
use std::path::Path;

use chrono::NaiveDate;

use crate::util::run_keel;

#[allow(dead_code)] // the generator's file-writing half is used by its binary, not here
#[path = "../examples/gen_accounts/book.rs"]
mod book;

fn sample_spec() -> book::BookSpec {
    // The command in examples/data/README.md.
    book::BookSpec {
        accounts: 400,
        seed: 42,
        today: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        events_per_account: 6.0,
    }
}

#[test]
fn the_committed_sample_book_is_what_the_generator_writes() {
    let spec = sample_spec();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let mut accounts = Vec::new();
    book::write_accounts(&spec, &mut accounts).unwrap();
    let mut contacts = Vec::new();
    book::write_contacts(&spec, &mut contacts).unwrap();
    let mut events = Vec::new();
    book::write_events(&spec, &mut events).unwrap();
    for (name, made) in [("accounts.csv", accounts), ("contacts.csv", contacts), ("events.ndjson", events)] {
        let committed = fs::read(data.join(name)).unwrap();
        assert!(
            committed == made,
            "examples/data/{name} differs from the generator's output; regenerate it (examples/data/README.md)"
        );
    }
}

#[test]
fn the_generator_is_deterministic_and_seed_dependent() {
    let write = |seed| {
        let mut out = Vec::new();
        book::write_accounts(&book::BookSpec { seed, accounts: 50, ..sample_spec() }, &mut out).unwrap();
        out
    };
    assert_eq!(write(1), write(1));
    assert_ne!(write(1), write(2));
}

/// Copies the example config and data into a temp dir, as a fresh clone would have them.
fn example_workspace() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tempfile::tempdir().unwrap();
    fs::copy(root.join("keel.yaml"), dir.path().join("keel.yaml")).unwrap();
    fs::create_dir(dir.path().join("data")).unwrap();
    for name in ["accounts.csv", "contacts.csv", "events.ndjson"] {
        fs::copy(root.join("data").join(name), dir.path().join("data").join(name)).unwrap();
    }
    dir
}

#[test]
fn the_readme_run_command_imports_the_sample_book_and_shows_it() {
    let dir = example_workspace();
    let first = run_keel(Path::new("keel.yaml"), dir.path(), &["sync"]);
    let out = first.ok();
    assert!(out.contains("400 inserted, 0 updated, 0 unchanged, 0 rejected"), "{out}");
    assert!(out.contains("1253 inserted, 0 updated, 0 unchanged, 0 rejected"), "{out}");
    assert!(out.contains("2188 inserted, 0 updated, 0 unchanged, 0 rejected"), "{out}");
    for segment in ["enterprise", "mid_market", "smb"] {
        assert!(out.lines().any(|l| l.starts_with(segment)), "the book overview lists {segment}:\n{out}");
    }
    let total = out.lines().find(|l| l.starts_with("total")).expect("a total row");
    assert_eq!(total.split_whitespace().nth(1), Some("400"), "{total}");
    assert!(first.stderr().is_empty(), "a clean import prints nothing on stderr: {}", first.stderr());

    let again = run_keel(Path::new("keel.yaml"), dir.path(), &["sync"]).ok();
    assert!(again.contains("0 inserted, 0 updated, 400 unchanged, 0 rejected"), "{again}");
    assert!(again.contains("0 inserted, 0 updated, 2188 unchanged, 0 rejected"), "{again}");

    let list =
        run_keel(Path::new("keel.yaml"), dir.path(), &["accounts", "list", "--sort", "renewal", "--limit", "5"]).ok();
    assert_eq!(list.lines().count(), 1 + 5 + 1, "header, five accounts, total:\n{list}");
    let show = run_keel(Path::new("keel.yaml"), dir.path(), &["accounts", "show", "ACC-0000001"]).ok();
    for part in ["Acme Logistics", "licensed_users", "industry", "Contacts (", "Events in the last 30 days"] {
        assert!(show.contains(part), "accounts show has {part}:\n{show}");
    }
}
