//! Shared test helpers: a temp workspace with a config, files, the store, and the real
//! `keel` binary run against them with a pinned clock.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use keel::config::Config;
use keel::store::Store;
use keel::sync::{sync_file, Kind, SyncReport};

/// "Now" for every test: pinned, so nothing depends on the day the suite runs.
pub const NOW: &str = "2026-12-01T09:00:00Z";

pub fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// A workspace whose `keel.yaml` holds `config`.
    pub fn new(config: &str) -> Workspace {
        let ws = Workspace { dir: tempfile::tempdir().unwrap() };
        ws.write("keel.yaml", config);
        ws
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, content).unwrap();
        path
    }

    pub fn config(&self) -> Config {
        Config::load(&self.path("keel.yaml")).unwrap()
    }

    /// Opens the workspace's store (only while no `keel` process holds it).
    pub fn store(&self) -> Store {
        Store::open(&self.config().store_dir()).unwrap()
    }

    /// Syncs `file` as records of kind `K` through the library, with the config's mapping.
    pub fn sync<K: Kind>(
        &self,
        store: &Store,
        file: &str,
        source: impl Fn(&Config) -> &keel::config::Source<K>,
    ) -> SyncReport {
        let config = self.config();
        sync_file(store, &self.path(file), &source(&config).spec, now(), &()).unwrap()
    }

    /// Runs the real binary in the workspace, as `keel --config keel.yaml ARGS`, with the
    /// pinned clock; output names files relative to the workspace, as a user sees them.
    pub fn keel(&self, args: &[&str]) -> Run {
        run_keel(Path::new("keel.yaml"), self.dir.path(), args)
    }

    /// [`Self::keel`] with the clock pinned at `now` (RFC 3339).
    pub fn keel_at(&self, now: &str, args: &[&str]) -> Run {
        run_keel_at(Path::new("keel.yaml"), self.dir.path(), args, now)
    }

    /// Every file under `dir` (relative to the workspace) with its bytes: to show a
    /// command wrote nothing there.
    pub fn files_under(&self, dir: &str) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), fs::read(&path).unwrap());
                }
            }
        }
        let mut out = std::collections::BTreeMap::new();
        walk(&self.path(dir), &mut out);
        out
    }
}

pub fn run_keel(config: &Path, cwd: &Path, args: &[&str]) -> Run {
    run_keel_at(config, cwd, args, NOW)
}

/// [`run_keel`] with the clock pinned at `now`.
pub fn run_keel_at(config: &Path, cwd: &Path, args: &[&str], now: &str) -> Run {
    keel_command(config, cwd, args, Some(now))
}

/// [`run_keel`] without `KEEL_NOW`, as a user runs it: the config's `clock` (or the
/// machine's clock) says what time it is.
pub fn run_keel_on_its_clock(config: &Path, cwd: &Path, args: &[&str]) -> Run {
    keel_command(config, cwd, args, None)
}

fn keel_command(config: &Path, cwd: &Path, args: &[&str], now: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(cwd)
        .env_remove("KEEL_NOW")
        .env_remove("RUST_LOG")
        .env_remove("KEEL_CONFIG");
    if let Some(now) = now {
        command.env("KEEL_NOW", now);
    }
    Run(command.output().expect("the keel binary runs"))
}

/// Copies a folder and everything under it.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            fs::copy(&p, &target).unwrap();
        }
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("keel exited normally, not by a signal")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8(self.0.stdout.clone()).unwrap()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8(self.0.stderr.clone()).unwrap()
    }
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(self.code(), 0, "keel failed.\nstdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self.stdout()
    }
}

/// The account mapping of a typical CRM export, used by several tests.
pub const CRM_CONFIG: &str = r#"
timezone: Europe/Berlin
sync:
  accounts:
    columns:
      "Account ID": id
      "Account Name": name
      "Segment": segment
      "ARR": arr
      "CSM": owner
      "Manager": manager
      "Renewal Date": renewal_date
      "Start": start_date
      "Stage": lifecycle_stage
      "TZ": timezone
      "Logins (30d)": metrics.logins_30d
      "NPS": metrics.nps
      "Legacy Column": ignore
  contacts:
    columns:
      "Contact ID": id
      "Account": account_id
      "Opt Out": unsubscribed
  events:
    columns:
      messageId: id
      accountId: account_id
      userId: contact_id
      event: name
"#;
