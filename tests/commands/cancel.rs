//! `tt cancel` and `tt retry`: stopping a task, a group, a queued
//! message, and bringing them back.

use super::{PLAN, event_kinds, json, set_status, shop};
use crate::support::{Scenario, key};

#[test]
fn cancel_of_a_running_task_tells_its_worker_to_stop() {
    let town = shop();
    town.redis_cmd(&[
        "HSET",
        &key("shop", "task:schema"),
        "status",
        "running",
        "worker",
        "backend-1",
        "attempt",
        "2",
    ]);
    town.tt(["cancel", "schema"])
        .success()
        .stdout_contains("cancelled schema (was running; told `backend-1` to stop it)");
    let t = town.task("schema");
    assert_eq!(t["status"], "cancelled");
    assert_eq!(t["reason"], "cancelled from the command line");
    let control = town.list("control:backend-1");
    assert_eq!(control.len(), 1);
    assert_eq!(
        json(&control[0]),
        serde_json::json!({"kind": "stop", "task": "schema", "attempt": 2})
    );
    assert_eq!(
        event_kinds(&town).last(),
        Some(&("cancelled".to_string(), "schema".to_string()))
    );
    // Final statuses are refused.
    town.tt(["cancel", "schema"])
        .code(2)
        .stderr_contains("task `schema` is already cancelled");
    set_status(&town, "deploy", "completed");
    town.tt(["cancel", "deploy"])
        .code(2)
        .stderr_contains("already completed");
    town.tt(["cancel", "logn"])
        .code(2)
        .stderr_contains("no task `logn` in town `shop`")
        .stderr_contains("did you mean `login`?");
}

#[test]
fn cancel_of_an_assigned_task_takes_it_out_of_the_inbox() {
    let town = shop();
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
    ]);
    town.tt(["send", "backend", "keep me"]).success();
    town.tt(["cancel", "schema", "--reason", "not needed"])
        .success();
    assert_eq!(town.task("schema")["reason"], "not needed");
    let inbox = town.list("inbox:backend");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].contains("keep me"));
}

#[test]
fn cancel_of_a_group_cascades_and_retry_brings_it_back() {
    let town = shop();
    set_status(&town, "logout", "completed");
    let out = town.tt(["cancel", "auth"]).success().stdout;
    assert!(
        out.contains("cancelled auth") && out.contains("cancelled login"),
        "{out}"
    );
    assert_eq!(town.task("auth")["status"], "cancelled");
    let login = town.task("login");
    assert_eq!(login["status"], "cancelled");
    assert_eq!(login["reason"], "cancelled with group auth");
    assert_eq!(town.task("logout")["status"], "completed");
    // deploy depends on the cancelled group: it says why it waits.
    town.tt(["task", "deploy"])
        .success()
        .stdout_contains("blocked: auth cancelled");

    town.tt(["retry", "auth"])
        .success()
        .stdout_contains("auth: cancelled → pending")
        .stdout_contains("login: cancelled → pending");
    assert_eq!(town.task("auth")["status"], "pending");
    assert_eq!(town.task("login")["status"], "pending");
    assert_eq!(town.task("logout")["status"], "completed");
}

#[test]
fn cancelling_a_task_queued_in_the_backlog_takes_it_out() {
    let town = Scenario::new()
        .plan("[town]\nname = \"b\"\n[[tasks]]\nid = \"x\"\n")
        .pushed()
        .build();
    // Dispatched to the backlog, as the runner does for a task with no agent.
    town.redis_cmd(&[
        "HSET",
        &key("b", "task:x"),
        "status",
        "assigned",
        "attempt",
        "1",
        "assigned_to",
        "",
    ]);
    town.redis_cmd(&[
        "RPUSH",
        &key("b", "backlog"),
        r#"{"kind":"task","task":"x","attempt":1}"#,
    ]);
    town.tt(["cancel", "x"]).success();
    let left = town.list("backlog");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn retry_makes_a_failed_task_pending_and_keeps_its_attempt() {
    let town = shop();
    town.redis_cmd(&[
        "HSET",
        &key("shop", "task:schema"),
        "status",
        "failed",
        "attempt",
        "3",
        "error",
        "exit 1",
        "exit_code",
        "1",
        "retry_at",
        "123",
    ]);
    town.tt(["task", "login"])
        .success()
        .stdout_contains("blocked: schema failed");
    town.tt(["retry", "schema"])
        .success()
        .stdout_contains("schema: failed → pending");
    let t = town.task("schema");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["attempt"], "3");
    for gone in ["error", "exit_code", "retry_at"] {
        assert!(!t.contains_key(gone), "{gone} still set: {t:?}");
    }
    assert_eq!(
        event_kinds(&town).last(),
        Some(&("retry".to_string(), "schema".to_string()))
    );
    // Anything not failed or cancelled is refused, with why.
    town.tt(["retry", "schema"])
        .code(2)
        .stderr_contains("task `schema` is pending");
    set_status(&town, "deploy", "running");
    town.tt(["retry", "deploy"])
        .code(2)
        .stderr_contains("is running")
        .stderr_contains("tt cancel deploy");
    set_status(&town, "logout", "completed");
    town.tt(["retry", "logout"])
        .code(2)
        .stderr_contains("is completed");
    town.tt(["retry", "nope"])
        .code(2)
        .stderr_contains("no task `nope`");
}

#[test]
fn retry_of_a_task_removed_from_the_file_is_refused() {
    let town = shop();
    town.write(
        "tasks.toml",
        PLAN.replace(
            "[[tasks]]\nid = \"deploy\"\ndescription = \"Deploy\"\ndepends_on = [\"auth\"]\n",
            "",
        ),
    );
    town.tt(["sync", "push"]).success();
    town.tt(["retry", "deploy"])
        .code(2)
        .stderr_contains("removed from tasks.toml");
    assert_eq!(town.task("deploy")["status"], "cancelled");
}
