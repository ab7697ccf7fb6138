//! The operator commands — `status`, `list`, `assign`, `send`, `inbox`,
//! `history`, `kill`, `prune`, `cancel`, `retry` — run as the real binary
//! against a private redis-server. The plan is pushed with `tt sync push`;
//! agents and the runner are simulated by writing their keys as
//! docs/PROTOCOL.md describes.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt};

const PLAN: &str = r#"[town]
name = "shop"

[meta]
default_agent = "backend"

[[tasks]]
id = "schema"
description = "Schema"

[[tasks]]
id = "auth"
description = "Auth"

[[tasks]]
id = "login"
description = "Login"
parent = "auth"
depends_on = ["schema"]

[[tasks]]
id = "logout"
description = "Logout"
parent = "auth"

[[tasks]]
id = "deploy"
description = "Deploy"
depends_on = ["auth"]
"#;

/// A project with PLAN pushed into `redis`.
fn town(redis: &RedisServer) -> Tt {
    let tt = Tt::new()
        .file("tasks.toml", PLAN)
        .redis(redis)
        .env("USER", "ann");
    tt.run_with(["sync", "push"]).success();
    tt
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lrange(redis: &RedisServer, key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut redis.conn())
        .unwrap()
}

fn set_status(redis: &RedisServer, id: &str, status: &str) {
    redis.cmd(&["HSET", &format!("tt:shop:task:{id}"), "status", status]);
}

/// A worker as `tt agent` registers it; `alive` sets its heartbeat key.
fn worker(redis: &RedisServer, id: &str, name: &str, state: &str, alive: bool) {
    let now = now_ms().to_string();
    redis.cmd(&[
        "HSET",
        &format!("tt:shop:agent:{id}"),
        "id",
        id,
        "name",
        name,
        "state",
        state,
        "pid",
        "4242",
        "host",
        "box",
        "started",
        &now,
        "heartbeat",
        &now,
    ]);
    redis.cmd(&["SADD", "tt:shop:agents", id]);
    if alive {
        redis.cmd(&["SET", &format!("tt:shop:alive:{id}"), "1", "PX", "60000"]);
    }
}

/// Event kinds in stream order.
fn event_kinds(redis: &RedisServer) -> Vec<(String, String)> {
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg("tt:shop:events")
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .unwrap();
    tinytown::store::parse_entries(reply)
        .into_iter()
        .map(|e| (e.kind, e.task))
        .collect()
}

#[test]
fn status_counts_tasks_shows_group_progress_and_why_tasks_wait() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    set_status(&redis, "schema", "failed");
    set_status(&redis, "logout", "completed");
    worker(&redis, "backend-1", "backend", "working", true);
    worker(&redis, "backend-2", "backend", "idle", false);
    redis.cmd(&[
        "SET",
        "tt:shop:runner",
        r#"{"id":"run-1","host":"box","pid":77,"since":1}"#,
        "PX",
        "60000",
    ]);

    let v = json(&tt.run_with(["status", "--json"]).success().stdout);
    assert_eq!(v["town"], "shop");
    assert_eq!(v["tasks"], 5);
    // auth is a group with a completed and a pending child, nothing
    // running: derived `pending` (its progress says 1/2).
    let counts = &v["counts"];
    assert_eq!(
        (
            &counts["pending"],
            &counts["running"],
            &counts["completed"],
            &counts["failed"]
        ),
        (&3.into(), &0.into(), &1.into(), &1.into()),
        "{v}"
    );
    let auth = &v["groups"][0];
    assert_eq!(
        (&auth["id"], &auth["completed"], &auth["total"]),
        (&"auth".into(), &1.into(), &2.into())
    );
    let waiting = v["waiting"].as_array().unwrap();
    assert!(
        waiting
            .iter()
            .any(|w| w["id"] == "login" && w["reason"] == "blocked: schema failed"),
        "{v}"
    );
    let states: Vec<(&str, &str)> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("backend-1", "working"), ("backend-2", "dead")]);
    assert_eq!(v["runner"]["id"], "run-1");

    tt.run_with(["status"])
        .success()
        .stdout_contains("town shop · 5 tasks")
        .stdout_contains("1/2 done")
        .stdout_contains("blocked: schema failed")
        .stdout_contains("runner  pid 77 on box, for ")
        .stdout_contains("dead");
}

#[test]
fn status_of_an_empty_town_says_how_to_load_one() {
    let redis = RedisServer::start();
    Tt::new()
        .file("tasks.toml", PLAN)
        .redis(&redis)
        .args(["status"])
        .run()
        .success()
        .stdout_contains("no tasks yet")
        .stdout_contains("runner  none");
}

#[test]
fn status_watch_redraws_when_an_event_arrives() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    let watch = Running::start(&tt, &["status", "--watch", "--json"]);
    watch.wait_output_until("the first drawing", |o| o.lines().count() >= 1);
    assert_eq!(watch.output().lines().count(), 1, "{}", watch.output());
    tt.run_with(["cancel", "deploy"]).success();
    watch.wait_output_until("a drawing with deploy cancelled", |o| {
        o.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["counts"]["cancelled"] == 1)
    });
}

#[test]
fn list_shows_workers_and_marks_expired_heartbeats_dead() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    tt.run_with(["list"])
        .success()
        .stdout_contains("no agents in town `shop`");
    worker(&redis, "backend-1", "backend", "working", true);
    redis.cmd(&[
        "HSET",
        "tt:shop:agent:backend-1",
        "task",
        "login",
        "attempt",
        "2",
    ]);
    worker(&redis, "backend-2", "backend", "idle", false);
    let out = tt.run_with(["list"]).success().stdout;
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
    let v = json(&tt.run_with(["list", "--json"]).success().stdout);
    assert_eq!(v[1]["state"], "dead");
    assert_eq!(v[1]["recorded_state"], "idle");
    assert_eq!(v[0]["alive"], true);
}

#[test]
fn assign_creates_a_pending_cli_task_that_survives_a_reload() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    tt.run_with(["assign", "backend", "Fix the flaky test"])
        .success()
        .stdout_contains("added adhoc-1 for `backend`");
    let t = redis.hgetall("tt:shop:task:adhoc-1");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["source"], "cli");
    assert_eq!(t["agent"], "backend");
    assert_eq!(t["attempt"], "0");
    // Ordered after every file task of the same priority.
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg("tt:shop:tasks")
        .arg(0)
        .arg(-1)
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(ids.last().map(String::as_str), Some("adhoc-1"), "{ids:?}");
    assert_eq!(
        event_kinds(&redis).last(),
        Some(&("added".to_string(), "adhoc-1".to_string()))
    );

    let v = json(
        &tt.run_with([
            "assign",
            "backend",
            "Rate limits",
            "--id",
            "rate",
            "--parent",
            "auth",
            "--tags",
            "api,P1",
            "--depends-on",
            "schema",
            "--priority",
            "0",
            "--json",
        ])
        .success()
        .stdout,
    );
    assert_eq!(v["id"], "rate");
    assert_eq!(v["source"], "cli");
    let rate = redis.hgetall("tt:shop:task:rate");
    assert_eq!(rate["tags"], r#"["api","P1"]"#);
    assert_eq!(rate["depends_on"], r#"["schema"]"#);
    assert_eq!(rate["parent"], "auth");
    assert_eq!(rate["priority"], "0");
    // P0 comes first despite being ad hoc.
    let first: Vec<String> = redis::cmd("ZRANGE")
        .arg("tt:shop:tasks")
        .arg(0)
        .arg(0)
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(first, ["rate"]);

    // A reload of a file that lacks them (and drops `deploy`) keeps them.
    tt.write(
        "tasks.toml",
        PLAN.replace(
            "[[tasks]]\nid = \"deploy\"\ndescription = \"Deploy\"\ndepends_on = [\"auth\"]\n",
            "",
        ),
    );
    tt.run_with(["sync", "push"])
        .success()
        .stdout_contains("-1 removed");
    assert_eq!(redis.hgetall("tt:shop:task:deploy")["status"], "cancelled");
    assert_eq!(redis.hgetall("tt:shop:task:adhoc-1")["status"], "pending");
    assert!(
        !redis
            .hgetall("tt:shop:task:adhoc-1")
            .contains_key("removed")
    );
    assert_eq!(redis.hgetall("tt:shop:task:rate")["status"], "pending");
}

#[test]
fn assign_refuses_taken_ids_bad_names_and_unknown_references() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    let before = redis.hgetall("tt:shop:task:login");
    tt.run_with(["assign", "backend", "x", "--id", "login"])
        .code(2)
        .stderr_contains("task `login` already exists in town `shop`");
    assert_eq!(redis.hgetall("tt:shop:task:login"), before, "untouched");
    tt.run_with(["assign", "backend", "x", "--parent", "auht"])
        .code(2)
        .stderr_contains("no task `auht`")
        .stderr_contains("did you mean `auth`?");
    tt.run_with(["assign", "backend", "x", "--depends-on", "schema,nope"])
        .code(2)
        .stderr_contains("no task `nope`");
    tt.run_with(["assign", "bad agent", "x"])
        .code(2)
        .stderr_contains("not a valid agent name");
    tt.run_with(["assign", "backend", "x", "--id", "a/b"])
        .code(2)
        .stderr_contains("not a valid task id");
    tt.run_with(["assign", "supervisor", "x"]).code(2);
    tt.run_with(["assign", "backend", "  "]).code(2);
    tt.run_with(["assign", "backend", "x", "--priority", "9"])
        .code(2);
    assert!(redis.keys("tt:shop:task:adhoc-*").is_empty());
    // Taken default ids are skipped.
    tt.run_with(["assign", "backend", "x", "--id", "adhoc-1"])
        .success();
    tt.run_with(["assign", "backend", "y"])
        .success()
        .stdout_contains("added adhoc-2");
}

#[test]
fn send_appends_and_urgent_messages_go_to_the_head() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    tt.run_with(["send", "backend", "first"])
        .success()
        .stdout_contains("(1 waiting)")
        .stdout_contains("no worker of `backend` is running");
    tt.run_with(["send", "backend", "second"]).success();
    tt.run_with(["send", "backend", "--urgent", "now!"])
        .success()
        .stdout_contains("at the head");
    let bodies: Vec<(String, String)> = lrange(&redis, "tt:shop:inbox:backend")
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
    let messages = event_kinds(&redis)
        .iter()
        .filter(|(k, _)| k == "message")
        .count();
    assert_eq!(messages, 3);
    // The runner's own inbox.
    tt.run_with(["send", "supervisor", "deploying at 5"])
        .success()
        .stdout_lacks("no worker");
    assert_eq!(lrange(&redis, "tt:shop:inbox:supervisor").len(), 1);
    tt.run_with(["send", "backend", ""]).code(2);
    tt.run_with(["send", "no/such", "x"]).code(2);
}

#[test]
fn inbox_lists_messages_and_tasks_with_their_status() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    tt.run_with(["inbox", "backend"])
        .success()
        .stdout_contains("the inbox of `backend` is empty");
    redis.cmd(&[
        "HSET",
        "tt:shop:task:schema",
        "status",
        "assigned",
        "attempt",
        "1",
        "assigned_to",
        "backend",
    ]);
    redis.cmd(&[
        "RPUSH",
        "tt:shop:inbox:backend",
        r#"{"kind":"task","task":"schema","attempt":1}"#,
        r#"{"kind":"task","task":"logout","attempt":1}"#,
    ]);
    tt.run_with(["send", "backend", "hello"]).success();
    let out = tt.run_with(["inbox", "backend"]).success().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].contains("schema #1 (assigned)"), "{out}");
    assert!(lines[2].contains("logout #1 (pending, stale"), "{out}");
    assert!(lines[3].contains("from ann: hello"), "{out}");
    let v = json(&tt.run_with(["inbox", "backend", "--json"]).success().stdout);
    assert_eq!(v[0]["status"], "assigned");
    assert_eq!(v[0]["stale"], false);
    assert_eq!(v[1]["stale"], true);
    assert_eq!(v[2]["body"], "hello");
}

#[test]
fn cancel_of_a_running_task_tells_its_worker_to_stop() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    redis.cmd(&[
        "HSET",
        "tt:shop:task:schema",
        "status",
        "running",
        "worker",
        "backend-1",
        "attempt",
        "2",
    ]);
    tt.run_with(["cancel", "schema"])
        .success()
        .stdout_contains("cancelled schema (was running; told `backend-1` to stop it)");
    let t = redis.hgetall("tt:shop:task:schema");
    assert_eq!(t["status"], "cancelled");
    assert_eq!(t["reason"], "cancelled from the command line");
    let control = lrange(&redis, "tt:shop:control:backend-1");
    assert_eq!(control.len(), 1);
    assert_eq!(
        json(&control[0]),
        serde_json::json!({"kind": "stop", "task": "schema", "attempt": 2})
    );
    assert_eq!(
        event_kinds(&redis).last(),
        Some(&("cancelled".to_string(), "schema".to_string()))
    );
    // Final statuses are refused.
    tt.run_with(["cancel", "schema"])
        .code(2)
        .stderr_contains("task `schema` is already cancelled");
    set_status(&redis, "deploy", "completed");
    tt.run_with(["cancel", "deploy"])
        .code(2)
        .stderr_contains("already completed");
    tt.run_with(["cancel", "logn"])
        .code(2)
        .stderr_contains("no task `logn` in town `shop`")
        .stderr_contains("did you mean `login`?");
}

#[test]
fn cancel_of_an_assigned_task_takes_it_out_of_the_inbox() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    redis.cmd(&[
        "HSET",
        "tt:shop:task:schema",
        "status",
        "assigned",
        "attempt",
        "1",
        "assigned_to",
        "backend",
    ]);
    redis.cmd(&[
        "RPUSH",
        "tt:shop:inbox:backend",
        r#"{"kind":"task","task":"schema","attempt":1}"#,
    ]);
    tt.run_with(["send", "backend", "keep me"]).success();
    tt.run_with(["cancel", "schema", "--reason", "not needed"])
        .success();
    assert_eq!(redis.hgetall("tt:shop:task:schema")["reason"], "not needed");
    let inbox = lrange(&redis, "tt:shop:inbox:backend");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].contains("keep me"));
}

#[test]
fn cancel_of_a_group_cascades_and_retry_brings_it_back() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    set_status(&redis, "logout", "completed");
    let out = tt.run_with(["cancel", "auth"]).success().stdout;
    assert!(
        out.contains("cancelled auth") && out.contains("cancelled login"),
        "{out}"
    );
    assert_eq!(redis.hgetall("tt:shop:task:auth")["status"], "cancelled");
    let login = redis.hgetall("tt:shop:task:login");
    assert_eq!(login["status"], "cancelled");
    assert_eq!(login["reason"], "cancelled with group auth");
    assert_eq!(redis.hgetall("tt:shop:task:logout")["status"], "completed");
    // deploy depends on the cancelled group: it says why it waits.
    tt.run_with(["task", "deploy"])
        .success()
        .stdout_contains("blocked: auth cancelled");

    tt.run_with(["retry", "auth"])
        .success()
        .stdout_contains("auth: cancelled → pending")
        .stdout_contains("login: cancelled → pending");
    assert_eq!(redis.hgetall("tt:shop:task:auth")["status"], "pending");
    assert_eq!(redis.hgetall("tt:shop:task:login")["status"], "pending");
    assert_eq!(redis.hgetall("tt:shop:task:logout")["status"], "completed");
}

#[test]
fn retry_makes_a_failed_task_pending_and_keeps_its_attempt() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    redis.cmd(&[
        "HSET",
        "tt:shop:task:schema",
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
    tt.run_with(["task", "login"])
        .success()
        .stdout_contains("blocked: schema failed");
    tt.run_with(["retry", "schema"])
        .success()
        .stdout_contains("schema: failed → pending");
    let t = redis.hgetall("tt:shop:task:schema");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["attempt"], "3");
    for gone in ["error", "exit_code", "retry_at"] {
        assert!(!t.contains_key(gone), "{gone} still set: {t:?}");
    }
    assert_eq!(
        event_kinds(&redis).last(),
        Some(&("retry".to_string(), "schema".to_string()))
    );
    // Anything not failed or cancelled is refused, with why.
    tt.run_with(["retry", "schema"])
        .code(2)
        .stderr_contains("task `schema` is pending");
    set_status(&redis, "deploy", "running");
    tt.run_with(["retry", "deploy"])
        .code(2)
        .stderr_contains("is running")
        .stderr_contains("tt cancel deploy");
    set_status(&redis, "logout", "completed");
    tt.run_with(["retry", "logout"])
        .code(2)
        .stderr_contains("is completed");
    tt.run_with(["retry", "nope"])
        .code(2)
        .stderr_contains("no task `nope`");
}

#[test]
fn retry_of_a_task_removed_from_the_file_is_refused() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    tt.write(
        "tasks.toml",
        PLAN.replace(
            "[[tasks]]\nid = \"deploy\"\ndescription = \"Deploy\"\ndepends_on = [\"auth\"]\n",
            "",
        ),
    );
    tt.run_with(["sync", "push"]).success();
    tt.run_with(["retry", "deploy"])
        .code(2)
        .stderr_contains("removed from tasks.toml");
    assert_eq!(redis.hgetall("tt:shop:task:deploy")["status"], "cancelled");
}

#[test]
fn history_prints_events_in_order_and_filters_by_task() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    tt.run_with(["cancel", "login"]).success();
    tt.run_with(["send", "backend", "hi there"]).success();
    let out = tt.run_with(["history"]).success().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "5 added, cancelled, message:\n{out}");
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{out}"))
    };
    assert!(pos("added       schema") < pos("added       deploy"));
    assert!(pos("added       deploy") < pos("cancelled   login"));
    assert!(
        lines[5].contains("reason=\"cancelled from the command line\""),
        "{out}"
    );
    assert!(lines[6].contains("from ann: hi there"), "{out}");
    assert!(
        lines[0].starts_with("20") && lines[0].contains('T'),
        "{out}"
    );

    let login = tt.run_with(["history", "--task", "login"]).success().stdout;
    assert_eq!(login.lines().count(), 2, "{login}");
    assert!(login.lines().all(|l| l.contains(" login ")), "{login}");

    let last = tt.run_with(["history", "--limit", "2"]).success().stdout;
    assert_eq!(last.lines().count(), 2);
    assert!(
        last.lines().next().is_some_and(|l| l.contains("cancelled")),
        "{last}"
    );

    let json_lines = tt.run_with(["history", "--json"]).success().stdout;
    let first = json(json_lines.lines().next().unwrap());
    assert_eq!(
        (&first["kind"], &first["task"]),
        (&"added".into(), &"schema".into())
    );
    tt.run_with(["history", "--task", "lgin"])
        .code(2)
        .stderr_contains("did you mean `login`?");
}

#[test]
fn history_follow_prints_new_events_as_they_happen() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    let follow = Running::start(&tt, &["history", "--follow"]);
    follow.wait_output_until("the past events", |o| o.contains("added       deploy"));
    tt.run_with(["send", "backend", "hello follower"]).success();
    follow.wait_output_until("the new message", |o| {
        o.contains("from ann: hello follower")
    });
    // Only once: the past is not printed again.
    assert_eq!(follow.output().matches("added       deploy").count(), 1);
}

#[test]
fn kill_tells_live_workers_to_shut_down() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    worker(&redis, "backend-1", "backend", "working", true);
    worker(&redis, "backend-2", "backend", "idle", true);
    worker(&redis, "backend-3", "backend", "idle", false);
    tt.run_with(["kill", "backend-1"])
        .success()
        .stdout_contains("backend-1: told to shut down");
    assert_eq!(
        lrange(&redis, "tt:shop:control:backend-1"),
        [r#"{"kind":"shutdown"}"#]
    );
    assert_eq!(
        redis.hgetall("tt:shop:agent:backend-1")["state"],
        "stopping"
    );
    assert!(lrange(&redis, "tt:shop:control:backend-2").is_empty());
    assert_eq!(
        event_kinds(&redis).last().map(|(k, _)| k.as_str()),
        Some("killed")
    );
    // By agent name: every live worker of it; the dead one gets nothing.
    let out = tt.run_with(["kill", "backend"]).success().stdout;
    assert!(out.contains("backend-2: told to shut down"), "{out}");
    assert!(out.contains("backend-3: dead"), "{out}");
    assert_eq!(lrange(&redis, "tt:shop:control:backend-2").len(), 1);
    assert!(lrange(&redis, "tt:shop:control:backend-3").is_empty());
    tt.run_with(["kill", "frontend"])
        .code(2)
        .stderr_contains("no agent or worker `frontend`");
}

#[test]
fn prune_removes_dead_and_stopped_workers_but_never_live_ones() {
    let redis = RedisServer::start();
    let tt = town(&redis);
    worker(&redis, "backend-1", "backend", "working", true);
    worker(&redis, "backend-2", "backend", "idle", false);
    worker(&redis, "backend-3", "backend", "stopped", false);
    worker(&redis, "review-1", "review", "working", false);
    redis.cmd(&[
        "RPUSH",
        "tt:shop:claimed:review-1",
        r#"{"kind":"task","task":"login","attempt":1}"#,
    ]);
    worker(&redis, "docs-1", "docs", "idle", false);
    tt.run_with(["send", "docs", "nobody reads this"]).success();

    let out = tt.run_with(["prune"]).success().stdout;
    assert!(out.contains("removed backend-2 (dead)"), "{out}");
    assert!(out.contains("removed backend-3 (stopped)"), "{out}");
    assert!(
        out.contains("removed docs-1 (dead), and the inbox of `docs`"),
        "{out}"
    );
    assert!(out.contains("kept review-1 (dead): 1 claimed"), "{out}");
    assert!(!out.contains("backend-1"), "{out}");

    let mut members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("tt:shop:agents")
        .query(&mut redis.conn())
        .unwrap();
    members.sort();
    assert_eq!(members, ["backend-1", "review-1"]);
    assert!(redis.keys("tt:shop:agent:backend-2").is_empty());
    assert!(redis.keys("tt:shop:inbox:docs").is_empty());
    assert_eq!(redis.hgetall("tt:shop:agent:backend-1")["state"], "working");
    assert_eq!(lrange(&redis, "tt:shop:claimed:review-1").len(), 1);

    tt.run_with(["prune"])
        .success()
        .stdout_contains("kept review-1")
        .stdout_lacks("removed");
}

#[test]
fn status_lists_what_would_be_dispatched_next_in_order() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"n\"\n[[tasks]]\nid = \"late\"\npriority = 3\n[[tasks]]\nid = \"first\"\npriority = 0\n[[tasks]]\nid = \"dep\"\ndepends_on = [\"first\"]\n[[tasks]]\nid = \"mid\"\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    tt.run_with(["status"])
        .success()
        .stdout_contains("3 ready to dispatch, in order: first, mid, late");
}

#[test]
fn cancelling_a_task_queued_in_the_backlog_takes_it_out() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file(
            "tasks.toml",
            "[town]\nname = \"b\"\n[[tasks]]\nid = \"x\"\n",
        )
        .redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // Dispatched to the backlog, as the runner does for a task with no agent.
    redis.cmd(&[
        "HSET",
        "tt:b:task:x",
        "status",
        "assigned",
        "attempt",
        "1",
        "assigned_to",
        "",
    ]);
    redis.cmd(&[
        "RPUSH",
        "tt:b:backlog",
        r#"{"kind":"task","task":"x","attempt":1}"#,
    ]);
    tt.run_with(["cancel", "x"]).success();
    let left: Vec<String> = redis::cmd("LRANGE")
        .arg("tt:b:backlog")
        .arg(0)
        .arg(-1)
        .query(&mut redis.conn())
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
