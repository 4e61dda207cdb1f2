//! The example a newcomer runs first: the committed sample book is exactly what the
//! generator makes, `keel sync` imports it cleanly, twice, and the README's first command
//! — `run --once` — imports, evaluates, writes emails a person can open and opens tasks.

use std::fs;
use std::path::Path;

use chrono::NaiveDate;

use crate::util::{copy_tree, run_keel, run_keel_on_its_clock};

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

/// A fresh clone's layout in a temp dir: `examples/keel.yaml` and its data, the shipped
/// `playbooks/` and `rules/`. Commands run from `examples/`, where the config is.
fn example_workspace() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    fs::create_dir_all(examples.join("data")).unwrap();
    fs::copy(repo.join("examples/keel.yaml"), examples.join("keel.yaml")).unwrap();
    for name in ["accounts.csv", "contacts.csv", "events.ndjson"] {
        fs::copy(repo.join("examples/data").join(name), examples.join("data").join(name)).unwrap();
    }
    copy_tree(&repo.join("playbooks"), &dir.path().join("playbooks"));
    copy_tree(&repo.join("rules"), &dir.path().join("rules"));
    dir
}

#[test]
fn keel_sync_imports_the_sample_book_and_shows_it_and_again_changes_nothing() {
    let dir = example_workspace();
    let first = run_keel(Path::new("keel.yaml"), &dir.path().join("examples"), &["sync"]);
    let out = first.ok();
    assert!(out.contains("400 inserted, 0 updated, 0 unchanged, 0 rejected"), "{out}");
    assert!(out.contains("1,253 inserted, 0 updated, 0 unchanged, 0 rejected"), "{out}");
    assert!(out.contains("2,188 inserted, 0 updated, 0 unchanged, 0 rejected"), "{out}");
    for segment in ["enterprise", "mid_market", "smb"] {
        assert!(out.lines().any(|l| l.starts_with(segment)), "the book overview lists {segment}:\n{out}");
    }
    let total = out.lines().find(|l| l.starts_with("total")).expect("a total row");
    assert_eq!(total.split_whitespace().nth(1), Some("400"), "{total}");
    assert!(first.stderr().is_empty(), "a clean import prints nothing on stderr: {}", first.stderr());

    let again = run_keel(Path::new("keel.yaml"), &dir.path().join("examples"), &["sync"]).ok();
    assert!(again.contains("0 inserted, 0 updated, 400 unchanged, 0 rejected"), "{again}");
    assert!(again.contains("0 inserted, 0 updated, 2,188 unchanged, 0 rejected"), "{again}");

    let list = run_keel(
        Path::new("keel.yaml"),
        &dir.path().join("examples"),
        &["accounts", "list", "--sort", "renewal", "--limit", "5"],
    )
    .ok();
    assert_eq!(list.lines().count(), 1 + 5 + 1, "header, five accounts, total:\n{list}");
    let show =
        run_keel(Path::new("keel.yaml"), &dir.path().join("examples"), &["accounts", "show", "ACC-0000001"]).ok();
    for part in ["Acme Logistics", "licensed_users", "industry", "Contacts (", "Events in the last 30 days"] {
        assert!(show.contains(part), "accounts show has {part}:\n{show}");
    }
}

/// The README's first command on a fresh clone, on any date: no `KEEL_NOW`, so the
/// example config's `clock.start` says what time it is — Monday 2026-11-23 08:30 in New
/// York, the morning after the sample book's export — and the first run shows every kind
/// of delivery a newcomer should see.
#[test]
fn the_readme_first_command_runs_the_main_job_emails_as_eml_files_and_tasks() {
    let dir = example_workspace();
    let keel = |args: &[&str]| run_keel_on_its_clock(Path::new("keel.yaml"), &dir.path().join("examples"), args);
    let out = keel(&["run", "--once"]).ok();
    assert!(out.contains("400 inserted, 0 updated, 0 unchanged, 0 rejected"), "imports the sample book:\n{out}");
    assert!(out.contains("Evaluated 11 playbook(s) over 400 accounts at 2026-11-23 08:30 EST"), "{out}");
    let delivery = out.lines().find(|l| l.starts_with("Delivery (.eml files in ")).expect("a delivery line");
    // "317 delivered in 40 message(s), 3 deferred, …": the internal mail goes out as
    // digests; a count is the number before its word.
    let count = |word: &str| -> usize {
        let at = delivery.find(word).unwrap_or_else(|| panic!("{word:?} in {delivery}"));
        delivery[..at].trim_end().rsplit(' ').next().unwrap().replace(',', "").parse().unwrap()
    };
    let (delivered, messages, deferred) = (count(" delivered"), count(" message(s)"), count(" deferred"));
    assert!(delivered > 100, "{delivery}");
    assert!(messages * 3 < delivered, "digests: far fewer emails than accounts: {delivery}");
    assert!(delivery.contains(" 0 dead"), "{delivery}");
    // Customer mail to contacts whose zone is still in quiet hours (Chicago, 07:30) waits.
    assert!(deferred >= 1, "customer mail deferred by quiet hours: {delivery}");

    // Each email is an .eml file a mail program opens: headers, then a readable body.
    let mail_dir = dir.path().join("examples/.keel/mail");
    let read_mail = || -> std::collections::BTreeMap<std::path::PathBuf, String> {
        fs::read_dir(&mail_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), fs::read_to_string(p).unwrap()))
            .collect()
    };
    let mails = read_mail();
    assert_eq!(mails.len(), messages, "one file per email delivered");
    let header = |m: &str, name: &str| m.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().to_string();
    let from = |playbook: &str| -> Vec<&String> {
        mails.values().filter(|m| m.contains(&format!("X-Keel-Playbook: {playbook}\r\n"))).collect()
    };
    // Internal mail, to managers and CSMs: no unsubscribe headers, and no one gets more
    // than one email per playbook from the first pass.
    let internal: Vec<&String> = mails.values().filter(|m| !m.contains("X-Keel-Playbook: smb-onboarding")).collect();
    assert!(internal.iter().all(|m| !m.contains("List-Unsubscribe")), "internal mail has no unsubscribe");
    let mut per_recipient = std::collections::BTreeMap::<(String, String), usize>::new();
    for m in &internal {
        *per_recipient.entry((header(m, "To: "), header(m, "X-Keel-Playbook: "))).or_default() += 1;
    }
    assert!(per_recipient.values().all(|&n| n == 1), "{per_recipient:?}");
    assert!(!from("renewal-30").is_empty(), "renewal mail to the owner");
    // A digest: one manager's red save plans in one email, several accounts listed.
    let red = *from("red-save-plan")
        .iter()
        .find(|m| m.matches("(ACC-").count() > 1)
        .expect("a red save plan digest listing several accounts");
    assert!(header(red, "Subject: ").starts_with("Save plans needed: "), "{red}");
    for header in [
        "From: \"Keel CS Ops\" <cs-ops@keel-demo.example>",
        "\r\nTo: ",
        "\r\nSubject: ",
        "\r\nMessage-ID: <",
        // The book's clock, not the machine's: 08:30 EST.
        "\r\nDate: Mon, 23 Nov 2026 13:30:",
    ] {
        assert!(red.contains(header), "{header:?} in\n{red}");
    }
    assert!(red.contains("Content-Type: text/plain; charset=utf-8"), "{red}");
    // Customer mail: the SMB welcome to a contact, with one-click unsubscribe.
    let welcome = from("smb-onboarding");
    assert!(!welcome.is_empty(), "customer mail went out at 08:30 in New York, London, São Paulo");
    for m in &welcome {
        assert!(m.contains("Subject: Welcome aboard, "), "{m}");
        assert!(m.contains("\r\nList-Unsubscribe: <http://127.0.0.1:7400/unsubscribe?token="), "{m}");
        assert!(m.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{m}");
    }
    // The deferred ones wait in the outbox for their window.
    let outbox = keel(&["outbox", "list"]).ok();
    let waiting: Vec<_> = outbox.lines().filter(|l| l.contains(" deferred ")).collect();
    assert_eq!(waiting.len(), deferred, "{outbox}");
    assert!(waiting.iter().all(|l| l.contains("smb-onboarding") && l.contains("next 2026-11-23 09:00")), "{outbox}");

    // The account's timeline shows what was sent for each firing, and its tasks.
    let account =
        red.lines().find_map(|l| l.strip_prefix("X-Keel-Account: ")).expect("the account header").trim().to_string();
    let show = keel(&["accounts", "show", &account]).ok();
    let timeline = &show[show.find("Timeline: playbook decisions").unwrap()..];
    assert!(timeline.contains("2026-11-23 08:30 EST  red-save-plan  fired (episode:1)"), "{timeline}");
    assert!(
        timeline.lines().any(|l| l.trim_start().starts_with("✉ email \"") && l.contains(": sent 2026-11-23")),
        "{timeline}"
    );
    assert!(timeline.contains("\nTasks (") && timeline.contains("[open] Save plan:"), "{timeline}");

    // Tasks show in `keel tasks list`.
    let tasks = keel(&["tasks", "list"]).ok();
    assert!(tasks.trim_start().starts_with("ID") && tasks.contains("Save plan:"), "{tasks}");
    let summary = tasks.lines().last().unwrap();
    assert!(summary.ends_with("`keel tasks done ID` closes one."), "{summary}");
    let open: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(open > 100, "{summary}");
    let owner = "noah.fischer@keel-demo.example";
    let mine = keel(&["tasks", "list", "--owner", owner]).ok();
    assert!(mine.lines().skip(1).take_while(|l| !l.contains("task(s)")).all(|l| l.contains(owner)), "{mine}");
    let first_id = tasks.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(keel(&["tasks", "done", &first_id]).ok().contains("is done"));
    let snooze = keel(&[
        "tasks",
        "snooze",
        tasks.lines().nth(2).unwrap().split_whitespace().next().unwrap(),
        "--until",
        "2026-12-10",
    ])
    .ok();
    assert!(snooze.contains("is snoozed until 2026-12-10"), "{snooze}");
    let after = keel(&["tasks", "list"]).ok();
    assert!(after.lines().last().unwrap().starts_with(&format!("{} task(s)", open - 2)), "{after}");

    // A second run moments later: the book's clock ran on by those moments only; nothing
    // is decided or sent again, and the deferred mail still waits.
    let again = keel(&["run", "--once"]).ok();
    assert!(again.contains("Nothing is due at 2026-11-23 08:3"), "{again}");
    assert!(again.contains("Delivery (.eml files in ./.keel/mail): 0 delivered"), "{again}");
    assert_eq!(read_mail(), mails);

    // An hour later (the clock's start record set back an hour): 09:30 in New York, 08:30
    // in Chicago. The deferred mail goes out, and nothing sent before is sent again.
    let record = dir.path().join("examples/.keel/clock-started");
    let started: chrono::DateTime<chrono::Utc> = fs::read_to_string(&record).unwrap().trim().parse().unwrap();
    fs::write(&record, format!("{}\n", (started - chrono::Duration::hours(1)).to_rfc3339())).unwrap();
    let later = keel(&["run", "--once"]).ok();
    assert!(later.contains(" at 2026-11-23 09:3"), "{later}");
    assert!(
        later.contains(&format!("Delivery (.eml files in ./.keel/mail): {deferred} delivered, 0 deferred")),
        "{later}"
    );
    let now = read_mail();
    assert_eq!(now.len(), messages + deferred);
    assert!(
        mails.iter().all(|(path, mail)| now.get(path) == Some(mail)),
        "an email already delivered was written again"
    );
    assert_eq!(
        now.values().filter(|m| m.contains("X-Keel-Playbook: smb-onboarding\r\n")).count(),
        welcome.len() + deferred
    );

    // A new store starts the book's clock over: the README's first run again.
    fs::remove_dir_all(dir.path().join("examples/.keel/store")).unwrap();
    let fresh = keel(&["run", "--once"]).ok();
    assert!(fresh.contains("Evaluated 11 playbook(s) over 400 accounts at 2026-11-23 08:30 EST"), "{fresh}");
}

#[test]
fn preview_renders_a_template_for_an_account_and_its_unsubscribe_token_works_from_the_cli() {
    let dir = example_workspace();
    let keel = |args: &[&str]| run_keel(Path::new("keel.yaml"), &dir.path().join("examples"), args);
    keel(&["sync"]).ok();
    let smb: serde_json::Value =
        serde_json::from_str(&keel(&["accounts", "list", "--segment", "smb", "--format", "json"]).ok()).unwrap();
    let id = smb[0]["id"].as_str().unwrap().to_string();
    let shown: serde_json::Value =
        serde_json::from_str(&keel(&["accounts", "show", &id, "--format", "json"]).ok()).unwrap();
    let contact = shown["contacts"].as_array().unwrap().iter().find_map(|c| c["email"].as_str()).unwrap().to_string();
    let name = shown["account"]["name"].as_str().unwrap().to_string();

    // Customer mail: the recipient, the account's data, the unsubscribe link and header.
    let out = keel(&["preview", "smb_welcome", "--account", &id, "--contact", &contact]).ok();
    assert!(out.contains(&format!("To: {contact}")), "{out}");
    assert!(out.contains(&format!("Subject: Welcome aboard, {name}!")), "{out}");
    let header = out.lines().find_map(|l| l.strip_prefix("List-Unsubscribe: <")).expect("a List-Unsubscribe header");
    let url = header.trim_end_matches('>');
    assert!(url.starts_with("http://127.0.0.1:7400/unsubscribe?token="), "{url}");
    assert!(out.contains(&format!("Unsubscribe: {url}")), "the template prints the link: {out}");

    // As a file a mail program opens.
    let written =
        keel(&["preview", "smb_welcome", "--account", &id, "--contact", &contact, "--out", "welcome.eml"]).ok();
    assert!(written.contains("wrote welcome.eml"), "{written}");
    let eml = fs::read_to_string(dir.path().join("examples/welcome.eml")).unwrap();
    assert!(eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{eml}");

    // The link's token unsubscribes that address; a forged one is refused.
    let token = url.split("token=").nth(1).unwrap();
    let done = keel(&["contacts", "unsubscribe", "--token", token]).ok();
    assert!(done.starts_with(&format!("{} unsubscribed", contact.to_lowercase())), "{done}");
    let listed = keel(&["contacts", "suppressed"]).ok();
    assert!(listed.contains(&contact.to_lowercase()) && listed.contains("unsubscribe link"), "{listed}");
    // The right address with someone else's signature (16 zero bytes).
    let forged = format!("{}.AAAAAAAAAAAAAAAAAAAAAA", token.split('.').next().unwrap());
    let refused = keel(&["contacts", "unsubscribe", "--token", &forged]);
    assert_eq!(refused.code(), 1);
    assert!(refused.stderr().contains("not issued by this Keel"), "{}", refused.stderr());
    // And by hand.
    assert!(keel(&["contacts", "unsubscribe", "Someone@Example.com"])
        .ok()
        .starts_with("someone@example.com unsubscribed"));

    // Unknown template or account: a clear error.
    let bad = keel(&["preview", "smb_welcom", "--account", &id]);
    assert_eq!(bad.code(), 1);
    assert!(bad.stderr().contains("no email template \"smb_welcom\""), "{}", bad.stderr());
}
