//! What a worker does with each message in its inbox: runs what is its
//! own, drops what is stale, puts aside what it cannot read, logs what is
//! addressed to it.

use super::{agent_once, dispatch, dispatch_to, message, push, town};
use crate::support::key;

#[test]
fn stale_messages_are_dropped_and_never_run() {
    let town = town();
    // An old attempt: the task has moved on to attempt 2.
    town.redis_cmd(&[
        "HSET",
        &key("t", "task:a"),
        "status",
        "assigned",
        "attempt",
        "2",
        "assigned_to",
        "dev",
    ]);
    push(&town, &message("a", 1));
    // Cancelled while in the inbox.
    dispatch(&town, "b", 1);
    town.redis_cmd(&["HSET", &key("t", "task:b"), "status", "cancelled"]);
    // Reassigned to another agent while in this inbox.
    dispatch_to(&town, "c", 1, "other");
    town.redis_cmd(&["LREM", &key("t", "inbox:other"), "0", &message("c", 1)]);
    push(&town, &message("c", 1));
    // And one that is ours.
    dispatch(&town, "build", 1);

    let out = agent_once(&town, &["--command", "touch", "ran-{id}-{attempt}"]).success();
    assert!(town.exists("ran-build-1"), "{out}");
    for stale in ["ran-a-1", "ran-b-1", "ran-c-1"] {
        assert!(!town.exists(stale), "{stale} ran:\n{out}");
    }
    let dropped = town.events_of("dropped");
    let reasons: Vec<(&str, &str)> = dropped
        .iter()
        .map(|e| (e["task"].as_str(), e["reason"].as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("a", "attempt 1 is stale, the task is at attempt 2"),
            ("b", "the task is cancelled"),
            ("c", "the task is assigned to `other`"),
        ]
    );
    assert!(
        out.stdout
            .contains("dropped `b` attempt 1: the task is cancelled"),
        "{out}"
    );
    assert_eq!(town.status("a"), "assigned", "untouched");
    assert_eq!(town.status("b"), "cancelled");
    assert!(town.list("claimed:dev-1").is_empty());
}

#[test]
fn malformed_messages_go_to_the_deadletter_list_and_the_worker_goes_on() {
    let town = town();
    let bad = [
        "not json at all",
        r#"{"kind":"task"}"#,
        r#"{"kind":"task","task":"a","attempt":"one"}"#,
        r#"{"kind":"reboot"}"#,
        r#"[1,2]"#,
    ];
    for raw in bad {
        push(&town, raw);
    }
    dispatch(&town, "build", 1);
    agent_once(&town, &["--command", "true"]).success();
    assert_eq!(town.list("deadletter"), bad);
    assert_eq!(town.events_of("deadletter").len(), bad.len());
    assert_eq!(town.status("build"), "completed");
    assert!(town.list("claimed:dev-1").is_empty());
}

#[test]
fn a_direct_message_is_logged_not_run() {
    let town = town();
    let body = "rebase on main; $(touch pwned)";
    push(
        &town,
        &serde_json::json!({ "kind": "message", "from": "alice", "body": body }).to_string(),
    );
    dispatch(&town, "build", 1);
    let out = agent_once(&town, &["--command", "true"]).success();
    let line = format!("[message from alice] {body}");
    assert!(out.stdout.contains(&line), "{out}");
    let journal = town.read(".tt/logs/agents/dev-1.log");
    assert!(journal.contains(&line), "{journal}");
    assert!(!town.exists("pwned"));
    let recorded = town.events_of("message");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["from"], "alice");
    assert_eq!(recorded[0]["body"], body);
    assert_eq!(town.status("build"), "completed");
}
