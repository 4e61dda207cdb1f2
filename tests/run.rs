//! The real `keel run` binary on the example data: it evaluates the shipped playbooks on
//! schedule, rejects a broken playbook saved while it runs (keeping the running set),
//! stops cleanly on SIGTERM, and a restart fires nothing already fired.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::util::Workspace;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example config with its own copy of the shipped playbooks (so the test can break
/// one), the repo's rules and data, and a schedule of every 2 seconds.
pub(crate) fn example_workspace() -> Workspace {
    let config = std::fs::read_to_string(repo().join("examples/keel.yaml")).unwrap();
    let config = config
        .replace("playbooks: ../playbooks", "playbooks: playbooks")
        .replace("rules: ../rules", &format!("rules: {}", repo().join("rules").display()))
        .replace("file: data/", &format!("file: {}/", repo().join("examples/data").display()));
    assert!(config.contains("schedule: \"0 * * * *\""), "the example config sets the evaluation schedule");
    let config = config.replace("schedule: \"0 * * * *\"", "schedule: \"*/2 * * * * *\"");
    let ws = Workspace::new(&config);
    for entry in walk(&repo().join("playbooks")) {
        let rel = entry.strip_prefix(repo()).unwrap();
        ws.write(rel.to_str().unwrap(), &std::fs::read_to_string(&entry).unwrap());
    }
    ws.keel(&["sync"]).ok();
    ws
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `keel run` in the workspace, its stderr lines arriving on a channel.
pub(crate) fn spawn(ws: &Workspace, now: &str) -> (Child, Receiver<String>) {
    spawn_logging(ws, now, None)
}

/// [`spawn`], with `RUST_LOG` set to `filter` (more log lines to wait for).
pub(crate) fn spawn_logging(ws: &Workspace, now: &str, filter: Option<&str>) -> (Child, Receiver<String>) {
    spawn_with_env(ws, now, filter, &[])
}

/// [`spawn_logging`] with environment variables set for the daemon alone (API tokens,
/// write keys): the test process's own environment is shared by tests running side by side.
pub(crate) fn spawn_with_env(
    ws: &Workspace,
    now: &str,
    filter: Option<&str>,
    env: &[(&str, &str)],
) -> (Child, Receiver<String>) {
    // Any free port: tests run daemons side by side.
    spawn_with_args(ws, Some(now), filter, env, &["--listen", "127.0.0.1:0"])
}

/// [`spawn_with_env`] with `run_args` after `keel run` in place of `--listen 127.0.0.1:0`:
/// `&[]` listens on the config's `api.listen` (a test that needs the address its emails'
/// links name).
pub(crate) fn spawn_with_args(
    ws: &Workspace,
    now: Option<&str>,
    filter: Option<&str>,
    env: &[(&str, &str)],
    run_args: &[&str],
) -> (Child, Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command.envs(env.iter().copied());
    match filter {
        Some(f) => command.env("RUST_LOG", f),
        None => command.env_remove("RUST_LOG"),
    };
    command.args(["--config", "keel.yaml", "run"]).args(run_args).current_dir(ws.dir.path()).env_remove("KEEL_NOW");
    // None: the config's clock (or the machine's), as the daemon reads it unpinned.
    if let Some(now) = now {
        command.env("KEEL_NOW", now);
    }
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one satisfies `want`; everything read is appended to `log`.
pub(crate) fn wait_for(rx: &Receiver<String>, log: &mut Vec<String>, what: &str, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let hit = want(&line);
                log.push(line);
                if hit {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the daemon exited while the test waited for {what}; it said:\n{}", log.join("\n"))
            }
        }
    }
    panic!("waited 60 s for {what}; the daemon said:\n{}", log.join("\n"));
}

pub(crate) fn terminate(child: &mut Child) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -TERM");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, sent.elapsed());
        }
        assert!(sent.elapsed() < Duration::from_secs(20), "keel run did not stop within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keel_run_evaluates_on_schedule_rejects_a_broken_playbook_and_stops_on_sigterm() {
    let ws = example_workspace();
    let (mut child, rx) = spawn(&ws, "2026-11-23T13:00:00Z");
    let mut log = Vec::new();
    let tick = |l: &str| l.contains("tick evaluated") && l.contains("playbook=red-save-plan");
    wait_for(&rx, &mut log, "the first pass", tick);
    let first = log.last().unwrap().clone();
    assert!(first.contains("accounts=400") && !first.contains("fired=0 "), "{first}");

    // A broken playbook saved while the daemon runs: rejected with file:line:column, and
    // the running set keeps being evaluated on its schedule.
    ws.write(
        "playbooks/broken.yaml",
        "id: broken\nname: Broken\ntrigger:\n  condition: true\n  fire: sometimes\nactions: []\n",
    );
    wait_for(&rx, &mut log, "the rejected reload", |l| l.contains("fails `keel check`"));
    wait_for(&rx, &mut log, "the diagnostic", |l| l.contains("--> ./playbooks/broken.yaml:5:9"));
    let seen = log.len();
    // A quiet pass logs one line (per-playbook lines are for passes that decide something).
    wait_for(&rx, &mut log, "a pass after the rejected change", |l| l.contains("pass done"));
    let later = log[seen..].join("\n");
    assert!(later.contains("pass done") && later.contains("fired=0 "), "{later}");
    assert!(!later.contains("tick evaluated"), "an idle pass is one line at info: {later}");
    assert!(!log.iter().any(|l| l.contains("playbook=broken")), "the broken playbook never ran");

    let (status, took) = terminate(&mut child);
    assert_eq!(status.code(), Some(0), "a clean stop exits 0");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped cleanly")), "{rest:?}");
    eprintln!("keel run stopped {took:?} after SIGTERM");

    // A restart fires nothing already fired: the same book, a minute later.
    std::fs::remove_file(ws.path("playbooks/broken.yaml")).unwrap();
    let before = ws.store().ledger_count();
    assert!(before > 300, "the first pass recorded the sample book's firings ({before})");
    let (mut child, rx) = spawn(&ws, "2026-11-23T13:01:00Z");
    let mut log = Vec::new();
    wait_for(&rx, &mut log, "the pass after the restart", |l| l.contains("pass done"));
    assert!(log.last().unwrap().contains("fired=0 "), "{}", log.join("\n"));
    let (status, _) = terminate(&mut child);
    assert_eq!(status.code(), Some(0));
    assert_eq!(ws.store().ledger_count(), before, "a restart recorded nothing new");

    // The account view lists what fired for the account, when and why.
    let show = ws.keel(&["accounts", "show", "ACC-0000003"]).ok();
    let timeline = &show[show.find("Timeline: playbook decisions").expect("a timeline section")..];
    assert!(timeline.contains("red-save-plan  fired (episode:1)"), "{timeline}");
    assert!(timeline.contains("read: health.band = \"red\""), "{timeline}");
    assert!(timeline.contains("→ task \"Save plan: Nimbus Health entered red\""), "{timeline}");
}

/// A template can pass `keel check` and still fail for an account (a CRM column the
/// account lacks): `run --once` then counts what went dead, pass and delivery both, says
/// so, and exits non-zero; later runs mention the old ones but do not fail on them.
#[test]
fn run_once_counts_what_went_dead_and_exits_non_zero() {
    let ws = example_workspace();
    let red = std::fs::read_to_string(ws.path("playbooks/red-save-plan.yaml")).unwrap();
    assert!(red.contains("title: \"Save plan: {{ account.name }} entered red\""), "{red}");
    ws.write("playbooks/red-save-plan.yaml", &red.replace("{{ account.name }}", "{{ account.fields.no_such_column }}"));
    let template = std::fs::read_to_string(ws.path("playbooks/templates/red_save_plan.txt")).unwrap();
    ws.write(
        "playbooks/templates/red_save_plan.txt",
        // The single-account and the digest form of the email.
        &template
            .replace("{{ account.name }}", "{{ account.fields.no_such_column }}")
            .replace("{{ a.account.name }}", "{{ a.account.fields.no_such_column }}"),
    );
    ws.keel(&["check"]).ok();

    let run = ws.keel(&["run", "--once", "--format", "json"]);
    assert_eq!(run.code(), 3, "dead entries exit 3:\n{}", run.stderr());
    let doc: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let dead: serde_json::Value =
        serde_json::from_str(&ws.keel(&["outbox", "list", "--dead", "--format", "json"]).ok()).unwrap();
    let n = dead.as_array().unwrap().len() as u64;
    assert!(n > 0, "the red save plan emails are dead");
    assert_eq!(doc["dead"], serde_json::json!({ "new": n, "total": n }));
    assert_eq!(doc["failed_tasks"], serde_json::json!(n), "one save-plan task per dead email");
    let err = run.stderr();
    assert!(err.contains(&format!("error: {n} dead: `keel outbox list --dead` shows why")), "{err}");
    assert!(err.contains(&format!("error: {n} task(s) opened with a template that failed")), "{err}");

    let tasks: serde_json::Value = serde_json::from_str(&ws.keel(&["tasks", "list", "--format", "json"]).ok()).unwrap();
    let failed: Vec<&serde_json::Value> =
        tasks.as_array().unwrap().iter().filter(|t| t["playbook"] == "red-save-plan").collect();
    assert_eq!(failed.len() as u64, n);
    for t in failed {
        assert_eq!(t["title"], "Save plan: {{ account.fields.no_such_column }} entered red", "{t}");
        let why = t["description"].as_str().unwrap();
        assert!(
            why.starts_with(
                "Keel could not render this task for its account: the title template failed: undefined value"
            ),
            "{why}"
        );
    }

    // Nothing new went dead: exit 0, and the earlier ones are still mentioned.
    let again = ws.keel(&["run", "--once"]);
    assert_eq!(again.code(), 0, "{}", again.stderr());
    assert!(again.stdout().contains(&format!("{n} dead outbox entries from earlier runs")), "{}", again.stdout());
}
