//! The town's workers: `tt list`, `tt kill`, `tt prune`.

use super::{event_kinds, json, shop, worker};
use crate::support::key;

#[test]
fn list_shows_workers_and_marks_expired_heartbeats_dead() {
    let town = shop();
    town.tt(["list"])
        .success()
        .stdout_contains("no agents in town `shop`");
    worker(&town, "backend-1", "backend", "working", true);
    town.redis_cmd(&[
        "HSET",
        &key("shop", "agent:backend-1"),
        "task",
        "login",
        "attempt",
        "2",
    ]);
    worker(&town, "backend-2", "backend", "idle", false);
    let out = town.tt(["list"]).success().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID"), "{out}");
    assert!(
        lines[1].contains("backend-1")
            && lines[1].contains("working")
            && lines[1].contains("login #2")
            && lines[1].contains("ago")
            && lines[1].contains("4242"),
        "{out}"
    );
    assert!(
        lines[2].contains("backend-2") && lines[2].contains("dead"),
        "{out}"
    );
    let v = json(&town.tt(["list", "--json"]).success().stdout);
    assert_eq!(v[1]["state"], "dead");
    assert_eq!(v[1]["recorded_state"], "idle");
    assert_eq!(v[0]["alive"], true);
}

#[test]
fn kill_tells_live_workers_to_shut_down() {
    let town = shop();
    worker(&town, "backend-1", "backend", "working", true);
    worker(&town, "backend-2", "backend", "idle", true);
    worker(&town, "backend-3", "backend", "idle", false);
    town.tt(["kill", "backend-1"])
        .success()
        .stdout_contains("backend-1: told to shut down");
    assert_eq!(town.list("control:backend-1"), [r#"{"kind":"shutdown"}"#]);
    assert_eq!(town.worker("backend-1")["state"], "stopping");
    assert!(town.list("control:backend-2").is_empty());
    assert_eq!(
        event_kinds(&town).last().map(|(k, _)| k.as_str()),
        Some("killed")
    );
    // By agent name: every live worker of it; the dead one gets nothing.
    let out = town.tt(["kill", "backend"]).success().stdout;
    assert!(out.contains("backend-2: told to shut down"), "{out}");
    assert!(out.contains("backend-3: dead"), "{out}");
    assert_eq!(town.list("control:backend-2").len(), 1);
    assert!(town.list("control:backend-3").is_empty());
    town.tt(["kill", "frontend"])
        .code(2)
        .stderr_contains("no agent or worker `frontend`");
}

#[test]
fn prune_removes_dead_and_stopped_workers_but_never_live_ones() {
    let town = shop();
    worker(&town, "backend-1", "backend", "working", true);
    worker(&town, "backend-2", "backend", "idle", false);
    worker(&town, "backend-3", "backend", "stopped", false);
    worker(&town, "review-1", "review", "working", false);
    town.redis_cmd(&[
        "RPUSH",
        &key("shop", "claimed:review-1"),
        r#"{"kind":"task","task":"login","attempt":1}"#,
    ]);
    worker(&town, "docs-1", "docs", "idle", false);
    town.tt(["send", "docs", "nobody reads this"]).success();

    let out = town.tt(["prune"]).success().stdout;
    assert!(out.contains("removed backend-2 (dead)"), "{out}");
    assert!(out.contains("removed backend-3 (stopped)"), "{out}");
    assert!(
        out.contains("removed docs-1 (dead), and the inbox of `docs`"),
        "{out}"
    );
    assert!(out.contains("kept review-1 (dead): 1 claimed"), "{out}");
    assert!(!out.contains("backend-1"), "{out}");

    let mut members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(key("shop", "agents"))
        .query(&mut town.redis().conn())
        .unwrap();
    members.sort();
    assert_eq!(members, ["backend-1", "review-1"]);
    assert!(
        town.redis()
            .keys(&key("shop", "agent:backend-2"))
            .is_empty()
    );
    assert!(town.redis().keys(&key("shop", "inbox:docs")).is_empty());
    assert_eq!(town.worker("backend-1")["state"], "working");
    assert_eq!(town.list("claimed:review-1").len(), 1);

    town.tt(["prune"])
        .success()
        .stdout_contains("kept review-1")
        .stdout_lacks("removed");
}
