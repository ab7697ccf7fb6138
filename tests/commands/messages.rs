//! Messages to an agent: `tt send` and `tt inbox`.

use super::{event_kinds, json, shop};
use crate::support::key;

#[test]
fn send_appends_and_urgent_messages_go_to_the_head() {
    let town = shop();
    town.tt(["send", "backend", "first"])
        .success()
        .stdout_contains("(1 waiting)")
        .stdout_contains("no worker of `backend` is running");
    town.tt(["send", "backend", "second"]).success();
    town.tt(["send", "backend", "--urgent", "now!"])
        .success()
        .stdout_contains("at the head");
    let bodies: Vec<(String, String)> = town
        .list("inbox:backend")
        .iter()
        .map(|m| {
            let v = json(m);
            assert_eq!(v["kind"], "message");
            (
                v["from"].as_str().unwrap().to_string(),
                v["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [("ann", "now!"), ("ann", "first"), ("ann", "second")]
        .map(|(f, b)| (f.to_string(), b.to_string()));
    assert_eq!(bodies, want);
    let messages = event_kinds(&town)
        .iter()
        .filter(|(k, _)| k == "message")
        .count();
    assert_eq!(messages, 3);
    // The runner's own inbox.
    town.tt(["send", "supervisor", "deploying at 5"])
        .success()
        .stdout_lacks("no worker");
    assert_eq!(town.list("inbox:supervisor").len(), 1);
    town.tt(["send", "backend", ""]).code(2);
    town.tt(["send", "no/such", "x"]).code(2);
}

#[test]
fn inbox_lists_messages_and_tasks_with_their_status() {
    let town = shop();
    town.tt(["inbox", "backend"])
        .success()
        .stdout_contains("the inbox of `backend` is empty");
    town.redis_cmd(&[
        "HSET",
        &key("shop", "task:schema"),
        "status",
        "assigned",
        "attempt",
        "1",
        "assigned_to",
        "backend",
    ]);
    town.redis_cmd(&[
        "RPUSH",
        &key("shop", "inbox:backend"),
        r#"{"kind":"task","task":"schema","attempt":1}"#,
        r#"{"kind":"task","task":"logout","attempt":1}"#,
    ]);
    town.tt(["send", "backend", "hello"]).success();
    let out = town.tt(["inbox", "backend"]).success().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].contains("schema #1 (assigned)"), "{out}");
    assert!(lines[2].contains("logout #1 (pending, stale"), "{out}");
    assert!(lines[3].contains("from ann: hello"), "{out}");
    let v = json(&town.tt(["inbox", "backend", "--json"]).success().stdout);
    assert_eq!(v[0]["status"], "assigned");
    assert_eq!(v[0]["stale"], false);
    assert_eq!(v[1]["stale"], true);
    assert_eq!(v[2]["body"], "hello");
}
