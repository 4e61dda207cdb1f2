//! The JSON API's read and action endpoints (`/api/v1/…`) of a running `keel run`, over
//! real sockets with real tokens: paging the accounts list by cursor, an account's detail,
//! closing and snoozing tasks (and the refusals a client relies on: 404, 409, 400 naming
//! the field, 401, 403), the outbox and its retry, unsubscribing — and each body read back
//! into the service's own Rust type, as the CLI will when the daemon holds the store.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use keel::model::{OutboxEntry, Task, TaskStatus};
use keel::services::accounts::{AccountDetail, AccountList};
use keel::services::contacts::Unsubscribed;
use keel::services::tasks::TaskList;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

use crate::api::Api;
use crate::run::wait_for;
use crate::util::Workspace;

const READ: &str = "t-read-v1";
const CSM: &str = "t-csm-v1";
const ADMIN: &str = "t-admin-v1";

const CONFIG: &str = r#"timezone: UTC
data_dir: .keel
evaluation:
  schedule: "*/2 * * * * *"
api:
  tokens:
    - { token: "${KEEL_T_READ}", scopes: [read] }
    - { token: "${KEEL_T_CSM}", scopes: [read, tasks] }
    - { token: "${KEEL_T_ADMIN}", scopes: [admin] }
sync:
  accounts: { file: accounts.csv }
"#;

/// Seven accounts, five SMB; A-3 and A-5 tie on ARR (the id breaks the tie).
const ACCOUNTS: &str = "\
id,name,segment,arr,owner,renewal_date
A-1,Acme,enterprise,480000,ana@keel.example,2027-02-01
A-2,Bluepeak,smb,9000,ben@keel.example,2026-12-20
A-3,Cobalt,smb,5400,ben@keel.example,2027-09-30
A-4,Delta,smb,7100,ana@keel.example,
A-5,Echo,smb,5400,ben@keel.example,2027-01-15
A-6,Foxtrot,mid_market,62000,ana@keel.example,2027-03-01
A-7,Golf,smb,,ben@keel.example,
";

const FOLLOW_UP: &str = "id: follow-up\nname: Follow up\ntrigger:\n  condition: account.id != \"\"\nactions:\n  - task: { title: \"Follow up with {{ account.name }}\", owner: \"{{ account.owner }}\", due_in: 3d }\n";

/// Two webhooks for A-1: one the receiver takes (delivered), one it refuses for good (dead).
fn hooks(port: u16) -> String {
    format!(
        "id: hooks\nname: Hooks\ntrigger:\n  condition: account.id == \"A-1\"\nactions:\n  - webhook: {{ url: \"http://127.0.0.1:{port}/ok\" }}\n  - webhook: {{ url: \"http://127.0.0.1:{port}/refuse\" }}\n"
    )
}

/// A webhook receiver: 200 on `/ok`, 400 (a permanent refusal) on anything else.
pub(crate) fn receiver() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let _ = reader.by_ref().take(length).read_to_end(&mut Vec::new());
            let status = if first.contains(" /ok ") { "200 OK" } else { "400 Bad Request" };
            let _ = write!(reader.get_mut(), "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    port
}

fn start() -> (Workspace, Api) {
    let ws = Workspace::new(CONFIG);
    ws.write("accounts.csv", ACCOUNTS);
    ws.write("playbooks/follow-up.yaml", FOLLOW_UP);
    ws.write("playbooks/hooks.yaml", &hooks(receiver()));
    let mut api = Api::start_with_env(&ws, &[("KEEL_T_READ", READ), ("KEEL_T_CSM", CSM), ("KEEL_T_ADMIN", ADMIN)]);
    wait_for(&api.rx, &mut api.log, "the first pass", |l| l.contains("pass done"));
    (ws, api)
}

struct Caller<'a> {
    api: &'a Api,
    client: Client,
}

impl Caller<'_> {
    fn get(&self, token: &str, path: &str) -> RequestBuilder {
        self.client.get(self.api.url(path)).bearer_auth(token)
    }

    fn post(&self, token: &str, path: &str) -> RequestBuilder {
        self.client.post(self.api.url(path)).bearer_auth(token)
    }
}

/// The status and the body as JSON.
fn answer(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// The body read back into the service's type: what a client of the API gets.
fn read_back<T: serde::de::DeserializeOwned>(body: &Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("the body reads back into its type: {e}\n{body}"))
}

fn ids(list: &AccountList) -> Vec<String> {
    list.accounts.iter().map(|a| a.id.clone()).collect()
}

#[test]
fn accounts_page_by_cursor_in_the_same_order_as_one_page_and_show_one() {
    let (_ws, api) = start();
    let c = Caller { api: &api, client: Client::new() };

    let (status, body) = answer(c.get(READ, "/api/v1/accounts?segment=smb&limit=1000").send().unwrap());
    assert_eq!(status, 200, "{body}");
    let whole: AccountList = read_back(&body);
    assert_eq!(ids(&whole), ["A-2", "A-4", "A-3", "A-5", "A-7"], "largest ARR first, ties by id, no ARR last");
    assert_eq!(whole.next_cursor, None, "one page holds them all");
    assert_eq!(body["next_cursor"], Value::Null);
    assert_eq!(body["arr"], json!(26900.0));
    assert_eq!(body["accounts"][0]["name"], "Bluepeak", "an account's fields sit at the top of its row");

    let mut paged = Vec::new();
    let mut path = "/api/v1/accounts?segment=smb&limit=2".to_string();
    let mut pages = 0;
    loop {
        let (status, body) = answer(c.get(READ, &path).send().unwrap());
        assert_eq!(status, 200, "{body}");
        let page: AccountList = read_back(&body);
        assert!(page.accounts.len() <= 2, "{body}");
        paged.extend(ids(&page));
        pages += 1;
        match page.next_cursor {
            Some(cursor) => path = format!("/api/v1/accounts?segment=smb&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, ids(&whole), "every account once, in the one-page order");

    let (status, body) =
        answer(c.get(READ, "/api/v1/accounts?sort=name&reverse=true&owner=ANA@keel.example").send().unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&read_back(&body)), ["A-6", "A-4", "A-1"]);

    // A cursor continues its own order only.
    let (_, first) = answer(c.get(READ, "/api/v1/accounts?limit=1").send().unwrap());
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (status, body) = answer(c.get(READ, &format!("/api/v1/accounts?sort=name&cursor={cursor}")).send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("cursor")), "{body}");
    let (status, body) = answer(c.get(READ, "/api/v1/accounts?cursor=garbage").send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("cursor")), "{body}");

    // Bad values name the field, and the choices.
    let (status, body) = answer(c.get(READ, "/api/v1/accounts?sort=size").send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("sort")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("arr, renewal, name, id, health"), "{body}");
    let (status, body) = answer(c.get(READ, "/api/v1/accounts?limit=1001").send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("limit")), "{body}");
    let (status, body) = answer(c.get(READ, "/api/v1/accounts?band=purple").send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("band")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("red, yellow, green"), "{body}");
    let (status, body) = answer(c.get(READ, "/api/v1/accounts?segmnt=smb").send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("segmnt")), "an unknown parameter is named: {body}");

    let (status, body) = answer(c.get(READ, "/api/v1/accounts/A-1").send().unwrap());
    assert_eq!(status, 200, "{body}");
    let detail: AccountDetail = read_back(&body);
    assert_eq!((detail.account.id.as_str(), detail.account.name.as_str()), ("A-1", "Acme"));
    assert_eq!(detail.today.to_string(), "2026-12-01", "the account's today travels with it");
    assert!(detail.timeline.iter().any(|e| e.playbook == "follow-up"), "the timeline: {body}");
    assert_eq!(detail.tasks.len(), 1, "{body}");
    assert_eq!(detail.tasks[0].title, "Follow up with Acme");
    for key in ["health", "health_30_days_before", "health_no_inputs", "contacts", "events", "deliveries"] {
        assert!(body.get(key).is_some(), "{key} is in the detail: {body}");
    }

    let (status, body) = answer(c.get(READ, "/api/v1/accounts/NOPE-9").send().unwrap());
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("NOPE-9"), "the 404 names the id: {body}");
}

#[test]
fn tasks_close_once_snooze_to_a_later_day_and_refusals_say_why() {
    let (_ws, api) = start();
    let c = Caller { api: &api, client: Client::new() };

    let (status, body) = answer(c.get(READ, "/api/v1/tasks?owner=ben@keel.example").send().unwrap());
    assert_eq!(status, 200, "{body}");
    let list: TaskList = read_back(&body);
    assert_eq!(list.tasks.len(), 4, "{body}");
    assert!(list.tasks.iter().all(|t| t.owner == "ben@keel.example" && t.status == TaskStatus::Open));
    let (_, body) = answer(c.get(READ, "/api/v1/tasks?limit=2").send().unwrap());
    let two: TaskList = read_back(&body);
    assert_eq!((two.tasks.len(), two.matched), (2, 7), "{body}");

    let id = list.tasks[0].id;
    let done = |token: &str| c.post(token, &format!("/api/v1/tasks/{id}/done")).send().unwrap();
    assert_eq!(done("").status(), 401, "no token");
    let (status, body) = answer(c.client.post(api.url(&format!("/api/v1/tasks/{id}/done"))).send().unwrap());
    assert_eq!(status, 401, "{body}");
    let (status, body) = answer(done(READ));
    assert_eq!(status, 403, "a read token may not close a task: {body}");
    assert!(body["error"].as_str().unwrap().contains("`tasks` scope"), "{body}");

    let (status, body) = answer(done(CSM));
    assert_eq!(status, 200, "{body}");
    let task: Task = read_back(&body);
    assert_eq!((task.id, task.status), (id, TaskStatus::Done));
    let (status, body) = answer(done(CSM));
    assert_eq!(status, 409, "done twice is a conflict: {body}");
    assert!(body["error"].as_str().unwrap().contains("is done already"), "{body}");
    let (status, body) = answer(c.post(CSM, "/api/v1/tasks/999999/done").send().unwrap());
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("999999"), "{body}");

    let (_, body) = answer(c.get(READ, "/api/v1/tasks?status=done").send().unwrap());
    let closed: TaskList = read_back(&body);
    assert_eq!(closed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), [id]);
    let (status, body) = answer(c.get(READ, "/api/v1/tasks?status=closed").send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("status")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("open, snoozed, done, cancelled, all"), "{body}");

    let other = list.tasks[1].id;
    let snooze = |body: &str| {
        c.post(CSM, &format!("/api/v1/tasks/{other}/snooze"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let (status, body) = answer(snooze(r#"{"until": "2026-11-01"}"#));
    assert_eq!((status, body["field"].as_str()), (400, Some("until")), "a past day: {body}");
    let (status, body) = answer(snooze(r#"{"until": "next week"}"#));
    assert_eq!((status, body["field"].as_str()), (400, Some("until")), "not a date: {body}");
    let (status, body) = answer(snooze(r#"{"until": "2026-12-10", "reason": "holiday"}"#));
    assert_eq!((status, body["field"].as_str()), (400, Some("reason")), "an unknown field is named: {body}");
    let (status, body) = answer(snooze("{\"until\": \"2026-12-10\",\n}"));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 2 column 1"), "a syntax error says where: {body}");
    let (status, body) = answer(snooze(r#"{"until": "2026-12-10"}"#));
    assert_eq!(status, 200, "{body}");
    let task: Task = read_back(&body);
    assert_eq!(
        (task.status, task.snoozed_until.map(|d| d.to_string())),
        (TaskStatus::Snoozed, Some("2026-12-10".into()))
    );
    let (_, body) = answer(c.get(READ, "/api/v1/tasks?status=snoozed").send().unwrap());
    assert_eq!(read_back::<TaskList>(&body).tasks.iter().map(|t| t.id).collect::<Vec<_>>(), [other]);

    let (status, body) = answer(c.post(CSM, &format!("/api/v1/tasks/{other}/cancel")).send().unwrap());
    assert_eq!(status, 200, "a snoozed task can be cancelled: {body}");
    assert_eq!(read_back::<Task>(&body).status, TaskStatus::Cancelled);
    let (status, body) = answer(c.post(CSM, &format!("/api/v1/tasks/{other}/cancel?force=1")).send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("force")), "{body}");

    let (status, body) = answer(
        c.post(CSM, "/api/v1/contacts/unsubscribe").json(&json!({"email": " Pat@Customer.example "})).send().unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(read_back::<Unsubscribed>(&body), Unsubscribed { email: "pat@customer.example".into(), added: true });
    let (_, body) = answer(
        c.post(CSM, "/api/v1/contacts/unsubscribe").json(&json!({"email": "pat@customer.example"})).send().unwrap(),
    );
    assert_eq!(body["added"], false, "already on the list: {body}");
    let (status, body) =
        answer(c.post(CSM, "/api/v1/contacts/unsubscribe").json(&json!({"email": "not-an-address"})).send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("email")), "{body}");
    let (status, body) =
        answer(c.post(CSM, "/api/v1/contacts/unsubscribe").json(&json!({"mail": "a@b.example"})).send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("mail")), "{body}");
}

#[test]
fn the_outbox_lists_by_state_and_only_an_admin_puts_a_dead_entry_back() {
    let (_ws, api) = start();
    let c = Caller { api: &api, client: Client::new() };

    // The receiver takes one webhook and refuses the other for good.
    let deadline = Instant::now() + Duration::from_secs(30);
    let entries = loop {
        let (status, body) = answer(c.get(READ, "/api/v1/outbox?state=all").send().unwrap());
        assert_eq!(status, 200, "{body}");
        let entries: Vec<OutboxEntry> = read_back(&body);
        if entries.len() == 2 && entries.iter().all(|e| e.state() != "pending") {
            break entries;
        }
        assert!(Instant::now() < deadline, "both webhooks were tried: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let states: Vec<&str> = entries.iter().map(OutboxEntry::state).collect();
    assert_eq!(states, ["delivered", "dead"], "{entries:?}");
    let (delivered, dead) = (entries[0].id, entries[1].id);

    let (_, body) = answer(c.get(READ, "/api/v1/outbox?state=dead").send().unwrap());
    assert_eq!(read_back::<Vec<OutboxEntry>>(&body).iter().map(|e| e.id).collect::<Vec<_>>(), [dead]);
    let (_, body) = answer(c.get(READ, "/api/v1/outbox").send().unwrap());
    assert_eq!(body, json!([]), "pending ones by default, and none is");
    let (status, body) = answer(c.get(READ, "/api/v1/outbox?state=failed").send().unwrap());
    assert_eq!((status, body["field"].as_str()), (400, Some("state")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("pending, dead, all"), "{body}");

    let retry = |token: &str, id: u64| c.post(token, &format!("/api/v1/outbox/{id}/retry")).send().unwrap();
    assert_eq!(retry(CSM, dead).status(), 403, "retrying needs the admin scope");
    let (status, body) = answer(retry(ADMIN, delivered));
    assert_eq!(status, 409, "a delivered entry is not put back: {body}");
    assert!(body["error"].as_str().unwrap().contains("not dead"), "{body}");
    let (status, body) = answer(retry(ADMIN, 424242));
    assert_eq!(status, 404, "{body}");
    let (status, body) = answer(retry(ADMIN, dead));
    assert_eq!(status, 200, "{body}");
    let back: Vec<OutboxEntry> = read_back(&body);
    assert_eq!((back.len(), back[0].id, back[0].state(), back[0].attempts), (1, dead, "pending", 0), "{body}");
}
