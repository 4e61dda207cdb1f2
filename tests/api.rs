//! The HTTP API of a running `keel run`, over real sockets: who may call what, and the
//! health check. Other API modules use [`Api`] to start a daemon and call it.

use std::process::Child;
use std::sync::mpsc::Receiver;

use crate::run::{spawn_with_env, wait_for};
use crate::util::{Workspace, NOW};

/// A running daemon and its API's address.
pub(crate) struct Api {
    pub child: Child,
    pub base: String,
    pub log: Vec<String>,
    pub rx: Receiver<String>,
}

impl Api {
    /// Starts `keel run` in `ws` on a free port and waits until its API listens.
    pub(crate) fn start(ws: &Workspace) -> Api {
        Api::start_with_env(ws, &[])
    }

    /// [`Api::start`] with environment variables for the daemon (`${VAR}`s its config reads).
    pub(crate) fn start_with_env(ws: &Workspace, env: &[(&str, &str)]) -> Api {
        let (child, rx) = spawn_with_env(ws, NOW, Some("info"), env);
        let mut log = Vec::new();
        wait_for(&rx, &mut log, "the API to listen", |l| l.contains("the API is listening"));
        let line = log.last().unwrap();
        let addr = line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
        Api { child, base: format!("http://{addr}"), log, rx }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn healthz_answers_without_a_token_and_the_api_stops_with_the_daemon() {
    let ws = Workspace::new("timezone: UTC\n");
    let mut api = Api::start(&ws);
    let client = reqwest::blocking::Client::new();
    let health = client.get(api.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().unwrap(), "ok\n");
    let (status, _) = crate::run::terminate(&mut api.child);
    assert_eq!(status.code(), Some(0));
    assert!(client.get(api.url("/healthz")).send().is_err(), "nothing listens after the daemon stopped");
}

#[test]
fn an_api_reachable_from_other_machines_without_a_token_is_refused_at_start() {
    let ws = Workspace::new("timezone: UTC\napi:\n  listen: 0.0.0.0:0\n");
    let run = ws.keel(&["run"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("the API would listen on 0.0.0.0:0, reachable from other machines, but no API token is set"),
        "{}",
        run.stderr()
    );
}
