//! The HTTP API of a running `keel run`, over real sockets: who may call what, and the
//! health check. Other API modules use [`Api`] to start a daemon and call it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::run::{spawn_with_args, spawn_with_env, wait_for};
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
        Api::started(spawn_with_env(ws, NOW, Some("info"), env))
    }

    /// [`Api::start`] on the config's own `api.listen` (no `--listen` override), for a test
    /// whose emails' unsubscribe links must point at this daemon.
    pub(crate) fn start_on_config_listen(ws: &Workspace) -> Api {
        Api::started(spawn_with_args(ws, Some(NOW), Some("info"), &[], &[]))
    }

    fn started((child, rx): (Child, Receiver<String>)) -> Api {
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

/// A daemon whose API limits are small enough to reach in a test.
fn limited(limits: &str) -> (Workspace, Api) {
    let ws = Workspace::new(&format!(
        "timezone: UTC\napi:\n  write_keys: [\"${{KEEL_T_WK}}\"]\n  limits:\n{limits}\nsync:\n  segment: {{}}\n"
    ));
    let api = Api::start_with_env(&ws, &[("KEEL_T_WK", "wk-limits")]);
    (ws, api)
}

fn connect(api: &Api) -> TcpStream {
    let stream = TcpStream::connect(api.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Reads until the server closes the connection (or the read timeout); what it said.
fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor closed the connection: {e}"),
        }
    }
    (String::from_utf8_lossy(&said).into_owned(), started.elapsed())
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_and_others_are_served_meanwhile() {
    let (_ws, api) = limited("    header_timeout: 1s");
    let mut slow = connect(&api);
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: keel\r\n").unwrap();
    // One header byte every 300 ms: never a complete request.
    let mut trickle = slow.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..40 {
            if trickle.write_all(b"X").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    // Meanwhile the API serves others.
    let health = reqwest::blocking::get(api.url("/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    let (said, _) = read_to_close(&mut slow);
    let cut_after = started.elapsed();
    assert!(!said.contains("200 OK"), "the trickled request was never complete: {said}");
    assert!(cut_after < Duration::from_secs(6), "cut off after {cut_after:?}, header_timeout is 1 s");
    writer.join().unwrap();
}

#[test]
fn a_request_whose_body_trickles_past_the_request_timeout_gets_408() {
    let (_ws, api) = limited("    request_timeout: 1s");
    let mut slow = connect(&api);
    let body = br#"{"batch":[{"type":"track","userId":"u1","event":"Logged In"}]}"#;
    write!(
        slow,
        "POST /v1/batch HTTP/1.1\r\nHost: keel\r\nContent-Type: application/json\r\nAuthorization: Basic {}\r\nContent-Length: {}\r\n\r\n",
        base64_encode(b"wk-limits:"),
        body.len()
    )
    .unwrap();
    slow.write_all(&body[..5]).unwrap();
    let (said, took) = read_to_close_or_answer(&mut slow);
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
}

#[test]
fn connections_beyond_max_connections_wait_until_one_closes() {
    let (_ws, api) = limited("    max_connections: 2\n    header_timeout: 30s");
    // Two connections that say nothing hold both slots.
    let idle: Vec<TcpStream> = (0..2).map(|_| connect(&api)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(&api);
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n").unwrap();
    third.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
    let mut buf = [0u8; 64];
    let early = third.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "a third connection was served while two held the slots: {early:?}"
    );
    drop(idle);
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (said, _) = read_to_close(&mut third);
    assert!(said.starts_with("HTTP/1.1 200"), "once a slot freed, the waiting request was served: {said}");
}

/// Reads one answer's head (or until close).
fn read_to_close_or_answer(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    while !said.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}"),
        }
    }
    (String::from_utf8_lossy(&said).into_owned(), started.elapsed())
}

fn base64_encode(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(raw)
}
