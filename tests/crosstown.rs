//! Cross-town dependencies (`depends_on = ["a:schema"]`): two projects,
//! two towns on one private Redis, a `tt run` in each; every wait is for a
//! condition with a deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use tinytown::store::Keys;

use crate::support::{RedisServer, Running, Tt, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

/// Town `a`: task `schema`, run by an agent that finishes a
/// task once `go-<id>` exists, and fails it unless `ok-<id>` exists too.
fn town_a() -> String {
    r#"[town]
name = "a"
[meta]
default_agent = "w"
[agents.w]
command = ["sh", "-c", "while [ ! -e \"go-$TT_TASK_ID\" ]; do sleep 0.02; done; [ -e \"ok-$TT_TASK_ID\" ]"]
[[tasks]]
id = "schema"
"#
    .into()
}

/// Town `b`: `login` waits for `a:schema`; `docs` waits for nothing.
fn town_b() -> String {
    r#"[town]
name = "b"
[meta]
default_agent = "w"
[agents.w]
command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> order.log"]
[[tasks]]
id = "login"
depends_on = ["a:schema"]
[[tasks]]
id = "docs"
"#
    .into()
}

fn project(redis: &RedisServer, plan: String) -> Tt {
    Tt::new().redis(redis).file("tasks.toml", plan)
}

/// Every key of `town` with its `DUMP`, to compare before and after.
fn dumps(redis: &RedisServer, town: &str) -> BTreeMap<String, Vec<u8>> {
    let pattern = format!("{}*", Keys::new(town).prefix());
    redis
        .keys(&pattern)
        .into_iter()
        .map(|k| {
            let d: Vec<u8> = redis::cmd("DUMP").arg(&k).query(&mut redis.conn()).unwrap();
            (k, d)
        })
        .collect()
}

fn field(redis: &RedisServer, town: &str, task: &str, name: &str) -> String {
    let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(Keys::new(town).task(task))
        .query(&mut redis.conn())
        .unwrap();
    h.get(name).cloned().unwrap_or_default()
}

/// `at` of the first event of `kind` for `task` in `town`'s stream.
fn event_at(redis: &RedisServer, town: &str, kind: &str, task: &str) -> Option<u64> {
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(Keys::new(town).events())
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .unwrap();
    entries
        .into_iter()
        .map(|(_, f)| f)
        .find(|f| {
            f.get("kind").is_some_and(|k| k == kind) && f.get("task").is_some_and(|t| t == task)
        })
        .and_then(|f| f.get("at")?.parse().ok())
}

fn status_says(b: &Tt, needle: &str) -> bool {
    b.run_bounded(["status"]).stdout.contains(needle)
}

#[test]
fn a_dependency_across_towns_is_honoured_in_order_shown_while_waiting_and_writes_nothing_there() {
    let redis = RedisServer::start();
    let a = project(&redis, town_a());
    let b = project(&redis, town_b());
    a.run_bounded(["sync", "push"]).success();

    // `--until-done`: work that waits for another town keeps it running.
    let mut run_b = Running::start(&b, &["run", "--until-done"]);
    run_b.wait_output("login waiting for a:schema (pending)");
    // What does not wait runs; what waits for town a does not.
    wait_until(DEADLINE, "docs ran in town b", || {
        field(&redis, "b", "docs", "status") == "completed"
    });
    let before = dumps(&redis, "a");
    assert!(!before.is_empty(), "town a has keys");
    let status = b.run_bounded(["status"]).success();
    assert!(
        status.stdout.contains("login") && status.stdout.contains("waiting for a:schema (pending)"),
        "{status}"
    );
    let json = b.run_bounded(["tasks", "--json"]).success();
    let tasks: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let login = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "login")
        .unwrap();
    assert_eq!(
        login["waiting"], "waiting for a:schema (pending)",
        "{login}"
    );
    b.run_bounded(["task", "login"])
        .success()
        .stdout_contains("waiting for a:schema (pending)");
    assert_eq!(field(&redis, "b", "login", "status"), "pending");
    assert_eq!(
        dumps(&redis, "a"),
        before,
        "town b's runner and commands wrote to town a"
    );

    // Town a runs its task: b follows it, and dispatches once it completes.
    a.write("ok-schema", "");
    let run_a = Running::start(&a, &["run"]);
    wait_until(DEADLINE, "schema runs in town a", || {
        field(&redis, "a", "schema", "status") == "running"
    });
    wait_until(DEADLINE, "town b sees schema running", || {
        status_says(&b, "waiting for a:schema (running)")
    });
    assert_eq!(field(&redis, "b", "login", "status"), "pending");
    a.write("go-schema", "");
    wait_until(DEADLINE, "login completed in town b", || {
        field(&redis, "b", "login", "status") == "completed"
    });
    run_b.wait_output("a:schema completed: login may run");
    let completed = event_at(&redis, "a", "completed", "schema").expect("schema completed");
    let dispatched = event_at(&redis, "b", "dispatched", "login").expect("login dispatched");
    assert!(
        dispatched >= completed,
        "login dispatched at {dispatched}, before schema completed at {completed}"
    );
    assert_eq!(
        b.read("order.log").lines().collect::<Vec<_>>(),
        ["docs", "login"]
    );

    assert_eq!(run_b.wait_exit(), 0, "{}", run_b.output());

    // With town a quiet, b's runner and commands read it and write nothing.
    assert_eq!(run_a.stop(), 0);
    let before = dumps(&redis, "a");
    b.run_bounded(["run", "--until-done"]).success();
    b.run_bounded(["status"]).success();
    b.run_bounded(["plan"]).success();
    assert_eq!(dumps(&redis, "a"), before, "town b wrote to town a");
}

#[test]
fn a_remote_failure_blocks_the_dependent_until_it_is_retried_and_completes() {
    let redis = RedisServer::start();
    let a = project(&redis, town_a());
    let b = project(&redis, town_b());
    a.write("go-schema", "");
    let run_a = Running::start(&a, &["run"]);
    wait_until(DEADLINE, "schema failed in town a", || {
        field(&redis, "a", "schema", "status") == "failed"
    });
    // Blocked is stuck, as for a local dependency: `--until-done` ends.
    let out = b.run_bounded(["run", "--until-done"]);
    assert!(out.stdout.contains("blocked: a:schema failed"), "{out}");
    let run_b = Running::start(&b, &["run"]);
    run_b.wait_output("a:schema failed: login blocked");
    b.run_bounded(["status"])
        .success()
        .stdout_contains("blocked: a:schema failed");
    assert_eq!(field(&redis, "b", "login", "status"), "pending");

    a.write("ok-schema", "");
    a.run_bounded(["retry", "schema"]).success();
    wait_until(DEADLINE, "login completed in town b", || {
        field(&redis, "b", "login", "status") == "completed"
    });
    assert_eq!(field(&redis, "a", "schema", "status"), "completed");
    assert_eq!(run_b.stop(), 0);
    assert_eq!(run_a.stop(), 0);
}

#[test]
fn plan_shows_other_towns_and_warns_when_a_town_or_task_is_missing() {
    let redis = RedisServer::start();
    let a = project(&redis, town_a());
    a.run_bounded(["sync", "push"]).success();
    let plan = r#"[town]
name = "b"
[[tasks]]
id = "login"
depends_on = ["a:schema", "a:nope", "ghost:x", "b:docs"]
[[tasks]]
id = "docs"
"#;
    let b = project(&redis, plan.into());
    let out = b.run_bounded(["plan"]).success();
    assert!(out.stderr.contains("town `a` has no task `nope`"), "{out}");
    assert!(out.stderr.contains("town `ghost` does not exist"), "{out}");
    assert!(!out.stderr.contains("`schema`"), "a:schema exists: {out}");
    assert!(out.stdout.contains("Other towns"), "{out}");
    assert!(out.stdout.contains("a:schema  ← login (pending)"), "{out}");
    // The own town's name is the local task.
    assert!(!out.stdout.contains("b:docs"), "{out}");

    let json = b.run_bounded(["plan", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let others = v["other_towns"].as_array().unwrap();
    assert_eq!(others.len(), 3, "{v}");
    assert_eq!(others[0]["id"], "a:schema");
    assert_eq!(others[0]["status"], "pending");
    assert_eq!(others[2]["town_exists"], false);
    let codes: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        ["tt::plan::unknown-remote", "tt::plan::unknown-remote"]
    );

    b.run_bounded(["plan", "--format", "mermaid"])
        .success()
        .stdout_contains("r0([\"a:schema · pending\"])")
        .stdout_contains("r0 -.-> t0");
    let dot = b
        .run_bounded(["plan", "--format", "dot"])
        .success()
        .stdout_contains("r0 -> t0 [style=dashed]")
        .stdout;
    b.write("plan.dot", &dot);
    let svg = crate::support::command("dot")
        .arg("-Tsvg")
        .arg(b.dir().join("plan.dot"))
        .output()
        .unwrap_or_else(|e| {
            panic!("`dot` (Graphviz) is needed for this test: apt-get install graphviz ({e})")
        });
    assert!(
        svg.status.success()
            && String::from_utf8_lossy(&svg.stdout).contains(">a:schema · pending<"),
        "dot did not draw it: {}\n{dot}",
        String::from_utf8_lossy(&svg.stderr)
    );

    // No Redis to ask: the plan is still valid, and says what it could not check.
    let gone = b.dir().join("no-such.sock");
    let out = Tt::new()
        .env("REDIS_URL", format!("redis+unix://{}", gone.display()))
        .file("tasks.toml", plan)
        .run_bounded(["plan"])
        .success();
    assert!(
        out.stderr
            .contains("could not check whether towns `a`, `ghost`"),
        "{out}"
    );
}

#[test]
fn a_bad_remote_dependency_or_an_unknown_local_one_is_an_error() {
    let plan = |deps: &str| {
        format!("[town]\nname = \"b\"\n[[tasks]]\nid = \"login\"\ndepends_on = [{deps}]\n")
    };
    let tt = Tt::new().file("tasks.toml", plan(r#""a:b:c""#));
    tt.run_bounded(["plan"])
        .code(2)
        .stderr_contains("`depends_on` entry `a:b:c` is not `<task>` or `<town>:<task>`");
    tt.write("tasks.toml", plan(r#"":schema""#));
    tt.run_bounded(["plan"])
        .code(2)
        .stderr_contains("the town part is empty");
    // `b:` is this town: the task must exist here.
    tt.write("tasks.toml", plan(r#""b:nope""#));
    tt.run_bounded(["plan"])
        .code(2)
        .stderr_contains("`depends_on` names unknown task `nope`");
}

#[test]
fn a_town_that_may_only_read_the_other_still_follows_it_to_the_end() {
    // Town b's runner, worker and commands log in as a Redis user that
    // may read town a's keys and write none: any write to town a fails
    // with NOPERM instead of going unnoticed.
    let redis = RedisServer::start();
    let a_keys = format!("%R~{}*", Keys::new("a").prefix());
    let b_keys = format!("~{}*", Keys::new("b").prefix());
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "townb",
            "on",
            ">pw",
            &b_keys,
            "~tt:b:*",
            "~tt:towns",
            &a_keys,
            "&*",
            "+@all",
        ])
        .query::<()>(&mut redis.conn())
        .unwrap();
    let mut as_b = redis.conn();
    redis::cmd("AUTH")
        .arg("townb")
        .arg("pw")
        .query::<()>(&mut as_b)
        .unwrap();
    let denied = redis::cmd("HSET")
        .arg(Keys::new("a").task("schema"))
        .arg("status")
        .arg("completed")
        .query::<()>(&mut as_b)
        .unwrap_err();
    assert_eq!(denied.code(), Some("NOPERM"), "{denied}");

    let a = project(&redis, town_a());
    let b = Tt::new()
        .env(
            "REDIS_URL",
            format!(
                "redis+unix://{}?user=townb&pass=pw",
                redis.socket().display()
            ),
        )
        .file("tasks.toml", town_b());
    a.run_bounded(["sync", "push"]).success();
    let mut run_b = Running::start(&b, &["run", "--until-done"]);
    run_b.wait_output("login waiting for a:schema (pending)");
    a.write("ok-schema", "");
    a.write("go-schema", "");
    let run_a = Running::start(&a, &["run"]);
    assert_eq!(run_b.wait_exit(), 0, "{}", run_b.output());
    let said = run_b.output().to_lowercase();
    assert!(!said.contains("noperm"), "{said}");
    assert_eq!(field(&redis, "b", "login", "status"), "completed");
    b.run_bounded(["status"]).success();
    // The user is the one b's `tt` logs in as: writing town a is refused.
    let refused = b.run_bounded(["--town", "a", "send", "w", "hello"]);
    assert!(
        refused.code != 0 && refused.stderr.to_lowercase().contains("noperm"),
        "{refused}"
    );
    assert_eq!(run_a.stop(), 0);
}

#[test]
fn an_adhoc_task_may_wait_for_another_towns_task_and_a_running_runner_follows_that_town() {
    let redis = RedisServer::start();
    let a = project(&redis, town_a());
    a.run_bounded(["sync", "push"]).success();
    // Town b's file names no other town: its runner follows none at first.
    let b = project(
        &redis,
        r#"[town]
name = "b"
[meta]
default_agent = "w"
[agents.w]
command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> order.log"]
[[tasks]]
id = "docs"
"#
        .into(),
    );
    let run_b = Running::start(&b, &["run"]);
    wait_until(DEADLINE, "docs ran in town b", || {
        field(&redis, "b", "docs", "status") == "completed"
    });

    // Checked like the file's entries.
    b.run_bounded(["assign", "w", "x", "--depends-on", "a:b:c"])
        .code(2)
        .stderr_contains("`--depends-on` entry `a:b:c` is not `<task>` or `<town>:<task>`");
    b.run_bounded(["assign", "w", "x", "--depends-on", "b:nope"])
        .code(2)
        .stderr_contains("nope");
    b.run_bounded([
        "assign",
        "w",
        "x",
        "--id",
        "ghostly",
        "--depends-on",
        "ghost:x",
    ])
    .success()
    .stderr_contains("town `ghost` does not exist in this Redis (yet)");
    b.run_bounded(["assign", "w", "x", "--id", "typo", "--depends-on", "a:nope"])
        .success()
        .stderr_contains("town `a` has no task `nope` (yet)");
    // The own town's name is the local task.
    let out = b
        .run_bounded([
            "assign",
            "w",
            "after schema",
            "--id",
            "login",
            "--depends-on",
            "a:schema,b:docs",
        ])
        .success();
    assert!(!out.stderr.contains("warning"), "{out}");
    assert_eq!(
        field(&redis, "b", "login", "depends_on"),
        r#"["a:schema","docs"]"#
    );

    // The runner follows town a from here on, without a restart.
    run_b.wait_output("login waiting for a:schema (pending)");
    b.run_bounded(["status"])
        .success()
        .stdout_contains("waiting for a:schema (pending)");
    assert_eq!(field(&redis, "b", "login", "status"), "pending");
    a.write("ok-schema", "");
    a.write("go-schema", "");
    let run_a = Running::start(&a, &["run"]);
    wait_until(DEADLINE, "login completed in town b", || {
        field(&redis, "b", "login", "status") == "completed"
    });
    let completed = event_at(&redis, "a", "completed", "schema").expect("schema completed");
    let dispatched = event_at(&redis, "b", "dispatched", "login").expect("login dispatched");
    assert!(
        dispatched >= completed,
        "login dispatched at {dispatched}, before schema completed at {completed}"
    );
    assert_eq!(field(&redis, "b", "typo", "status"), "pending");
    assert_eq!(run_b.stop(), 0);
    assert_eq!(run_a.stop(), 0);
}

#[test]
fn status_watch_redraws_when_a_task_of_another_town_it_waits_on_changes() {
    let redis = RedisServer::start();
    let a = project(&redis, town_a());
    let b = project(&redis, town_b());
    a.run_bounded(["sync", "push"]).success();
    b.run_bounded(["sync", "push"]).success();
    // No runner in town b: nothing happens there, so only town a's events
    // can redraw before the watch's own periodic redraw (10 s).
    let watch = Running::start(&b, &["status", "--watch"]);
    watch.wait_output("waiting for a:schema (pending)");
    a.write("ok-schema", "");
    a.write("go-schema", "");
    let run_a = Running::start(&a, &["run"]);
    wait_until(DEADLINE, "schema completed in town a", || {
        field(&redis, "a", "schema", "status") == "completed"
    });
    wait_until(
        Duration::from_secs(5),
        "the watch redrew with login ready",
        || {
            watch
                .output()
                .contains("2 ready to dispatch, in order: login, docs")
        },
    );
    assert_eq!(field(&redis, "b", "login", "status"), "pending");
    drop(watch);
    assert_eq!(run_a.stop(), 0);
}

#[test]
fn a_dependency_cycle_across_towns_is_a_warning_naming_it_in_plan_and_status() {
    let redis = RedisServer::start();
    let town = |name: &str, task: &str, dep: &str| {
        format!("[town]\nname = \"{name}\"\n[[tasks]]\nid = \"{task}\"\ndepends_on = [\"{dep}\"]\n")
    };
    let a = project(&redis, town("a", "x", "b:y"));
    let b = project(&redis, town("b", "y", "a:x"));
    a.run_bounded(["sync", "push"]).success();
    b.run_bounded(["sync", "push"]).success();

    let cycle = "a:x → b:y → a:x";
    a.run_bounded(["plan"])
        .success()
        .stderr_contains(&format!("dependency cycle across towns: {cycle}"));
    let json = a.run_bounded(["plan", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let codes: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(codes, ["tt::plan::remote-cycle"], "{v}");
    b.run_bounded(["status"])
        .success()
        .stdout_contains("dependency cycle across towns")
        .stdout_contains(cycle);
    let json = b.run_bounded(["status", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["cycles"], serde_json::json!([["a:x", "b:y"]]), "{v}");

    // Through three towns: town a reads town c, which b depends on.
    let c = project(&redis, town("c", "z", "a:x"));
    c.run_bounded(["sync", "push"]).success();
    b.write("tasks.toml", town("b", "y", "c:z"));
    b.run_bounded(["sync", "push"]).success();
    a.run_bounded(["status"])
        .success()
        .stdout_contains("a:x → b:y → c:z → a:x");
    a.run_bounded(["plan"])
        .success()
        .stderr_contains("a:x → b:y → c:z → a:x");

    // Broken: no warning.
    c.write(
        "tasks.toml",
        "[town]\nname = \"c\"\n[[tasks]]\nid = \"z\"\n",
    );
    c.run_bounded(["sync", "push"]).success();
    a.run_bounded(["plan"]).success().stderr_lacks("cycle");
    a.run_bounded(["status"]).success().stdout_lacks("cycle");
}
