//! The command line while `keel run` holds the store: `keel tasks`, `keel accounts`,
//! `keel outbox` and `keel contacts unsubscribe` reach the book through the daemon's API
//! (address and token from the same config) and print what they print when they open the
//! store themselves — instead of "store in use".

use std::process::{Child, Command};

use crate::run::{spawn_with_args, terminate, wait_for};
use crate::util::{Workspace, NOW};
use crate::v1::{hooks, receiver, ACCOUNTS, FOLLOW_UP};

const TOKEN: &str = "t-through-daemon";

/// `keel ARGS` in the workspace, on the config's clock (as the daemon is), with (or
/// without) the API token.
fn keel(ws: &Workspace, args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command
        .args(["--config", "keel.yaml"])
        .args(args)
        .current_dir(ws.dir.path())
        .env_remove("KEEL_NOW")
        .env_remove("RUST_LOG")
        .env_remove("KEEL_CONFIG")
        .env_remove("KEEL_API_TOKEN");
    if let Some(t) = token {
        command.env("KEEL_API_TOKEN", t);
    }
    let out = command.output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `keel run` on its config's clock, listening on `listen` (any port: the command line
/// finds it through what the daemon announces in data_dir).
fn daemon(ws: &Workspace, listen: &str) -> Child {
    let (child, rx) = spawn_with_args(ws, None, Some("info"), &[("KEEL_API_TOKEN", TOKEN)], &["--listen", listen]);
    let mut log = Vec::new();
    wait_for(&rx, &mut log, "the API to listen", |l| l.contains("the API is listening"));
    // Keep draining, so the daemon never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    child
}

/// What people look at, as text and as JSON.
const READS: &[&[&str]] = &[
    &["tasks", "list"],
    &["tasks", "list", "--owner", "ben@keel.example", "--format", "json"],
    &["tasks", "list", "--all", "--limit", "3"],
    &["accounts", "list"],
    &["accounts", "list", "--segment", "smb", "--sort", "renewal", "--format", "json"],
    &["accounts", "list", "--sort", "name", "--reverse", "--limit", "2"],
    &["accounts", "show", "A-1"],
    &["accounts", "show", "A-1", "--format", "json"],
    &["accounts", "show", "NOPE"],
    &["outbox", "list", "--all"],
    &["outbox", "list", "--dead", "--format", "json"],
];

#[test]
fn the_cli_says_the_same_through_a_running_daemon_and_its_changes_land_in_the_store() {
    // The book's clock (config `clock.start`), which the daemon and every command read
    // alike: a command pinned with KEEL_NOW cannot go through a daemon on its own clock.
    let ws = Workspace::new(&format!(
        "timezone: UTC\ndata_dir: .keel\nclock:\n  start: \"{NOW}\"\napi:\n  token: ${{KEEL_API_TOKEN:-}}\nsync:\n  accounts: {{ file: accounts.csv }}\n"
    ));
    ws.write("accounts.csv", ACCOUNTS);
    ws.write("playbooks/follow-up.yaml", FOLLOW_UP);
    ws.write("playbooks/hooks.yaml", &hooks(receiver()));
    let (code, _, err) = keel(&ws, &["run", "--once"], None);
    assert!(code == 0 || code == 3, "keel run --once: {err}");

    let local: Vec<_> = READS.iter().map(|args| keel(&ws, args, None)).collect();
    assert!(local[0].1.contains("Follow up with Acme"), "the pass opened tasks:\n{}", local[0].1);
    assert!(local[10].1.contains("\"dead\""), "a refused webhook is dead:\n{}", local[10].1);

    let mut child = daemon(&ws, "127.0.0.1:0");
    let announced: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path(".keel/api.json")).unwrap()).unwrap();
    let port = announced["addr"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    // The store is the daemon's now: a command that opens it directly says so…
    let (code, _, err) = keel(&ws, &["contacts", "suppressed"], Some(TOKEN));
    assert_eq!(code, 1);
    assert!(err.contains("in use by another keel process"), "{err}");
    // …and those that go through the API say exactly what they said before.
    for (args, before) in READS.iter().zip(&local) {
        let mut through = keel(&ws, args, Some(TOKEN));
        // An error names where it looked; nothing else may differ.
        through.2 = through.2.replace(&format!("keel run at http://127.0.0.1:{port}"), "the store at ./.keel/store");
        assert_eq!(&through, before, "`keel {}` through the daemon", args.join(" "));
    }

    let tasks: serde_json::Value =
        serde_json::from_str(&keel(&ws, &["tasks", "list", "--format", "json"], Some(TOKEN)).1).unwrap();
    let first = tasks[0]["id"].as_u64().unwrap().to_string();
    let second = tasks[1]["id"].as_u64().unwrap().to_string();

    // Another book whose daemon's announcement is stale (say it was killed and this one's
    // port was taken since) names the first daemon: nothing there is changed for it.
    let other = Workspace::new("timezone: UTC\ndata_dir: .keel\napi:\n  token: ${KEEL_API_TOKEN:-}\n");
    let mut other_daemon = daemon(&other, "127.0.0.1:0");
    std::fs::copy(ws.path(".keel/api.json"), other.path(".keel/api.json")).unwrap();
    let (code, _, err) = keel(&other, &["tasks", "done", &first], Some(TOKEN));
    assert_eq!(code, 1);
    assert!(err.contains("is not the keel run holding this store") && err.contains("nothing was changed"), "{err}");
    // A store held by a process that announced no API (here: the file is gone).
    std::fs::remove_file(other.path(".keel/api.json")).unwrap();
    let (code, _, err) = keel(&other, &["tasks", "list"], Some(TOKEN));
    assert_eq!(code, 1);
    assert!(err.contains("in use by another keel process that serves no API"), "{err}");
    terminate(&mut other_daemon);

    // Changes go through too, with the same words.
    let (code, out, err) = keel(&ws, &["tasks", "done", &first], Some(TOKEN));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("task {first} is done: Follow up with")), "{out}");
    let (code, _, err) = keel(&ws, &["tasks", "done", &first], Some(TOKEN));
    assert_eq!((code, err.trim()), (1, format!("error: task {first} is done already").as_str()));
    let (code, _, err) = keel(&ws, &["tasks", "done", "999999"], Some(TOKEN));
    assert_eq!((code, err.trim()), (1, "error: no task 999999; `keel tasks list` lists them"));
    let (code, out, err) = keel(&ws, &["tasks", "snooze", &second, "--until", "2026-12-05"], Some(TOKEN));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("task {second} is snoozed until 2026-12-05")), "{out}");
    let dead: serde_json::Value = serde_json::from_str(&local[10].1).unwrap();
    let dead = dead[0]["id"].as_u64().unwrap().to_string();
    let (code, out, err) = keel(&ws, &["outbox", "retry", &dead], Some(TOKEN));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1 entry is back in the queue"), "{out}");
    let (code, out, err) = keel(&ws, &["contacts", "unsubscribe", "Pat@Example.com"], Some(TOKEN));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("pat@example.com unsubscribed"), "{out}");

    // Without a token the daemon refuses, and the command says what to do.
    let (code, _, err) = keel(&ws, &["tasks", "list"], None);
    assert_eq!(code, 1);
    assert!(err.contains("refused") && err.contains("KEEL_API_TOKEN"), "{err}");

    // A command pinned to another instant is refused rather than answered as of the
    // daemon's clock.
    let mut pinned = Command::new(env!("CARGO_BIN_EXE_keel"));
    pinned.args(["--config", "keel.yaml", "tasks", "list"]).current_dir(ws.dir.path()).env("KEEL_NOW", NOW);
    let pinned = pinned.env("KEEL_API_TOKEN", TOKEN).output().unwrap();
    assert_eq!(pinned.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&pinned.stderr).contains("not --now / KEEL_NOW"), "{pinned:?}");

    let through_daemon = keel(&ws, &["tasks", "list", "--all", "--format", "json"], Some(TOKEN));
    let (status, _) = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
    assert!(!ws.path(".keel/api.json").exists(), "the announcement goes with the daemon");
    // What the daemon said is what its store holds.
    let tasks_now = keel(&ws, &["tasks", "list", "--all", "--format", "json"], None);
    assert_eq!(through_daemon, tasks_now);
    let all: serde_json::Value = serde_json::from_str(&tasks_now.1).unwrap();
    let status_of = |id: &str| {
        all.as_array().unwrap().iter().find(|t| t["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id)).unwrap()
            ["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status_of(&first), "done");
    assert_eq!(status_of(&second), "snoozed");
    let suppressed = keel(&ws, &["contacts", "suppressed"], None).1;
    assert!(suppressed.contains("pat@example.com"), "{suppressed}");
}
