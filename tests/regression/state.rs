//! Regressions in records missing, corrupt or claimed by another project.

use std::time::Duration;

use crate::RedisExt;
use crate::support::{RedisServer, Tt, key, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// Three tasks, `b` after `a`, run by an agent that records each id in
/// `ran.log`.
const PLAN: &str = r#"
[town]
name = "app"
[meta]
default_agent = "dev"
[agents.dev]
command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> ran.log"]
[[tasks]]
id = "a"
[[tasks]]
id = "b"
depends_on = ["a"]
[[tasks]]
id = "c"
"#;

fn ran(tt: &Tt) -> Vec<String> {
    std::fs::read_to_string(tt.dir().join("ran.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// `tt run --until-done` of [`PLAN`] whose commands wait for a file `go`
/// before they end, once `a` runs.
fn run_until_a_waits(redis: &RedisServer) -> (Tt, crate::support::Running) {
    let plan = PLAN.replace(
        r#"command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> ran.log"]"#,
        r#"command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> ran.log; while [ ! -e go ]; do sleep 0.05; done"]"#,
    );
    let tt = Tt::new().file("tasks.toml", plan).redis(redis);
    let run = crate::support::Running::start(&tt, &["run", "--until-done"]);
    wait_until(DEADLINE, "a runs", || {
        redis.task_field("app", "a", "status") == "running"
    });
    (tt, run)
}

#[test]
fn sync_push_restores_a_deleted_task_record() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["DEL", &key("app", "task:b")]);
    let out = tt.run_with(["sync", "push"]).success();
    assert!(!out.stdout.contains("=3 unchanged"), "{out}");
    assert!(out.stdout.contains("1 restored"), "{out}");
    assert_eq!(redis.task_field("app", "b", "status"), "pending");
    assert_eq!(redis.task_field("app", "b", "depends_on"), r#"["a"]"#);
    // And the next push is a no-op again.
    tt.run_with(["sync", "push"])
        .success()
        .stdout_contains("=3 unchanged");
}

#[test]
fn until_done_runs_a_task_whose_record_was_deleted() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["DEL", &key("app", "task:c")]);
    let out = tt.run_with(["run", "--until-done"]).success();
    let mut got = ran(&tt);
    got.sort();
    assert_eq!(got, ["a", "b", "c"], "{out}");
    assert_eq!(redis.task_field("app", "c", "status"), "completed");
}

#[test]
fn until_done_restores_a_record_deleted_while_it_runs() {
    let redis = RedisServer::start();
    // `a` waits for `go` before it finishes, so `b` can be deleted while
    // the runner holds it as pending.
    let (tt, mut run) = run_until_a_waits(&redis);
    redis.cmd(&["DEL", &key("app", "task:b")]);
    std::fs::write(tt.dir().join("go"), "").unwrap();
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    assert!(ran(&tt).contains(&"b".to_string()), "b never ran: {out}");
    assert_eq!(redis.task_field("app", "b", "status"), "completed", "{out}");
}

#[test]
fn a_second_project_with_the_same_town_name_does_not_replace_the_first() {
    let redis = RedisServer::start();
    let p1 = Tt::new().file("app/tasks.toml", PLAN).redis(&redis);
    let p2 = Tt::new()
        .file(
            "app/tasks.toml",
            PLAN.replace("id = \"c\"", "id = \"other\""),
        )
        .redis(&redis);
    let p1 = p1.current_dir("app");
    let p2 = p2.current_dir("app");
    p1.run_with(["sync", "push"]).success();
    let refused = p2.run_with(["sync", "push"]).code(1);
    let p1_file = std::fs::canonicalize(p1.dir().join("app/tasks.toml")).unwrap();
    let p2_file = std::fs::canonicalize(p2.dir().join("app/tasks.toml")).unwrap();
    refused
        .stderr_contains(&p1_file.display().to_string())
        .stderr_contains(&p2_file.display().to_string())
        .stderr_contains("--take-over")
        .stderr_contains("[town] name");
    assert_eq!(redis.task_field("app", "c", "status"), "pending", "c kept");
    assert!(redis.hgetall(&key("app", "task:other")).is_empty());
    // `tt run` from the second project is refused the same way.
    p2.run_with(["run", "--until-done", "--no-agents"])
        .code(1)
        .stderr_contains(&p1_file.display().to_string());
    assert_eq!(redis.task_field("app", "c", "status"), "pending");
    // The same file again is fine; an explicit take-over moves the town.
    p1.run_with(["sync", "push"])
        .success()
        .stdout_contains("=3 unchanged");
    p2.run_with(["sync", "push", "--take-over"]).success();
    assert_eq!(redis.task_field("app", "c", "status"), "cancelled");
    assert_eq!(redis.task_field("app", "other", "status"), "pending");
    p2.run_with(["sync", "push"])
        .success()
        .stdout_contains("=3 unchanged");
    p1.run_with(["sync", "push"]).code(1);
}

/// Runs `tt run --until-done` and returns (exit code, stdout + stderr).
fn run_until_done(tt: &Tt) -> (i32, String) {
    let out = tt.run_with(["run", "--until-done"]);
    (out.code, format!("{}{}", out.stdout, out.stderr))
}

#[test]
fn a_task_with_corrupt_tags_fails_at_claim_instead_of_running_forever() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["HSET", &key("app", "task:c"), "tags", "not json"]);
    let (code, out) = run_until_done(&tt);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&key("app", "task:c")) && out.contains("tags"),
        "{out}"
    );
    assert_ne!(redis.task_field("app", "c", "status"), "running", "{out}");
    assert!(
        !ran(&tt).contains(&"c".to_string()),
        "c must not run: {out}"
    );
    assert_eq!(redis.task_field("app", "b", "status"), "completed", "{out}");
}

#[test]
fn corrupt_fields_leave_status_tasks_and_towns_working() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // Another town on the same Redis, intact.
    Tt::new()
        .file(
            "tasks.toml",
            PLAN.replace("name = \"app\"", "name = \"web\""),
        )
        .redis(&redis)
        .run_with(["sync", "push"])
        .success();
    redis.cmd(&["HSET", &key("app", "task:a"), "status", "bogus"]);
    redis.cmd(&["HSET", &key("app", "task:c"), "depends_on", "[oops"]);
    let status = tt.run_with(["status"]).success();
    assert!(
        status.stdout.contains(&key("app", "task:a")) && status.stdout.contains("`status`"),
        "{status}"
    );
    assert!(status.stdout.contains(&key("app", "task:c")), "{status}");
    // `b` waits for the corrupt `a`, and says so.
    assert!(
        status.stdout.contains("b  blocked: a has a corrupt record"),
        "{status}"
    );
    let tasks = tt.run_with(["tasks"]).success();
    assert!(tasks.stdout.contains("corrupt"), "{tasks}");
    let json = tt.run_with(["tasks", "--json"]).success();
    assert!(json.stdout.contains(&key("app", "task:a")), "{json}");
    let towns = tt.run_with(["towns"]).success();
    assert!(
        towns.stdout.contains("web") && towns.stdout.contains("app"),
        "{towns}"
    );
}

#[test]
fn a_non_numeric_attempt_is_named_not_blamed_on_memory() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["HSET", &key("app", "task:c"), "attempt", "x"]);
    let (code, out) = run_until_done(&tt);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&key("app", "task:c")) && out.contains("attempt"),
        "{out}"
    );
    assert!(!out.contains("out of memory"), "{out}");
    assert_eq!(redis.task_field("app", "b", "status"), "completed", "{out}");
}

#[test]
fn a_task_key_of_the_wrong_type_is_named_and_the_rest_runs() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["DEL", &key("app", "task:c")]);
    redis.cmd(&["SET", &key("app", "task:c"), "garbage"]);
    tt.run_with(["status"])
        .success()
        .stdout_contains(&key("app", "task:c"));
    let (code, out) = run_until_done(&tt);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&key("app", "task:c")), "{out}");
    assert_eq!(redis.task_field("app", "b", "status"), "completed", "{out}");
}

#[test]
fn a_garbage_lease_without_expiry_does_not_lock_the_town() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    redis.cmd(&["SET", &key("app", "runner"), "garbage"]);
    let (code, out) = run_until_done(&tt);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("garbage"),
        "the reclaimed lease is named: {out}"
    );
    // A lease that parses but was set without an expiry gets one, so it
    // cannot hold the town for ever.
    redis.cmd(&[
        "SET",
        &key("app", "runner"),
        r#"{"id":"elsewhere:1","host":"elsewhere","pid":1,"since":0}"#,
    ]);
    let (code, out) = run_until_done(&tt);
    assert_ne!(code, 0, "{out}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(key("app", "runner"))
        .query(&mut redis.conn())
        .unwrap();
    assert!(ttl > 0, "the lease got an expiry: {ttl}");
}

/// Appends `n` events to the town's stream as the scripts do (`MAXLEN ~
/// 100000`), in one pipeline.
fn flood(redis: &RedisServer, town: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD")
            .arg(key(town, "events"))
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("kind")
            .arg("noise")
            .arg("task")
            .arg("")
            .arg("at")
            .arg(i)
            .ignore();
    }
    let () = pipe.query(&mut redis.conn()).unwrap();
}

fn xlen(redis: &RedisServer, key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(key)
        .query(&mut redis.conn())
        .unwrap()
}

#[test]
fn history_keeps_the_events_the_stream_cap_trims_while_a_runner_runs() {
    let redis = RedisServer::start();
    let plan = PLAN.replace(
        r#"command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> ran.log"]"#,
        r#"command = ["sh", "-c", "[ \"$TT_TASK_ID\" != c ] || while [ ! -e go ]; do sleep 0.05; done"]"#,
    );
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let mut run = crate::support::Running::start(&tt, &["run", "--until-done"]);
    wait_until(DEADLINE, "a completes and c runs", || {
        redis.task_field("app", "a", "status") == "completed"
            && redis.task_field("app", "c", "status") == "running"
    });
    // 120k events from elsewhere: more than the stream keeps.
    for _ in 0..12 {
        flood(&redis, "app", 10_000);
        wait_until(DEADLINE, "the runner archives", || {
            xlen(&redis, &key("app", "events")) <= 20_000
        });
    }
    std::fs::write(tt.dir().join("go"), "").unwrap();
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    let a = tt.run_with(["history", "--task", "a"]).success();
    assert!(a.stdout.contains("completed"), "{a}");
    tt.run_with(["history", "--export", "all.jsonl"]).success();
    let all = tt.read("all.jsonl");
    assert!(all.lines().count() > 120_000, "{}", all.lines().count());
    assert!(
        all.lines()
            .any(|l| l.contains(r#""kind":"completed""#) && l.contains(r#""task":"a""#)),
        "a's completion is in the export"
    );
}

#[test]
fn history_says_exactly_how_many_events_the_cap_trimmed_unarchived() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // No runner archives: the cap trims the oldest, the push's `synced`
    // among them.
    flood(&redis, "app", 110_000);
    let kept = xlen(&redis, &key("app", "events"));
    let gone = 110_000 + 1 - kept;
    let export = tt.run_with(["history", "--export", "all.jsonl"]).success();
    assert!(
        export.stderr.contains(&format!("{gone} older events")),
        "{export}"
    );
    let a = tt.run_with(["history", "--task", "a"]).success();
    assert!(a.stdout.contains(&format!("{gone} older events")), "{a}");
}

#[test]
fn until_done_reruns_the_plan_after_redis_restarts_empty() {
    let mut redis = RedisServer::start();
    let (tt, mut run) = run_until_a_waits(&redis);
    // No persistence: the server comes back with nothing.
    redis.kill();
    redis.start_again();
    std::fs::write(tt.dir().join("go"), "").unwrap();
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    for id in ["a", "b", "c"] {
        assert_eq!(
            redis.task_field("app", id, "status"),
            "completed",
            "{id}: {out}"
        );
    }
}

#[test]
fn a_task_key_turned_into_another_type_under_a_runner_does_not_stop_it() {
    let redis = RedisServer::start();
    let (tt, mut run) = run_until_a_waits(&redis);
    // `b` waits for `a` in the runner's view; its key becomes a string.
    redis.cmd(&["DEL", &key("app", "task:b")]);
    redis.cmd(&["SET", &key("app", "task:b"), "garbage"]);
    std::fs::write(tt.dir().join("go"), "").unwrap();
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&key("app", "task:b")), "{out}");
    assert_eq!(redis.task_field("app", "c", "status"), "completed", "{out}");
}

/// Sets one field of a task hash to raw bytes, which need not be UTF-8.
fn hset_bytes(redis: &RedisServer, key: &str, field: &str, value: &[u8]) {
    let () = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(value)
        .query(&mut redis.conn())
        .unwrap();
}

/// One field of a hash as bytes, read lossily: the harness's `hgetall`
/// wants UTF-8.
fn hget_lossy(redis: &RedisServer, key: &str, field: &str) -> String {
    let v: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query(&mut redis.conn())
        .unwrap();
    String::from_utf8_lossy(&v.unwrap_or_default()).into_owned()
}

#[test]
fn non_utf8_bytes_in_a_task_field_do_not_stop_the_run_or_status() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // `priority` is read by dispatch and by every view.
    hset_bytes(&redis, &key("app", "task:c"), "priority", b"\xff\xfe");
    let status = tt.run_with(["status"]).success();
    assert!(
        status.stdout.contains(&key("app", "task:c")) && status.stdout.contains("`priority`"),
        "{status}"
    );
    tt.run_with(["tasks"]).success().stdout_contains("corrupt");
    tt.run_with(["towns"]).success().stdout_contains("app");
    let mut run = crate::support::Running::start(&tt, &["run", "--until-done"]);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&key("app", "task:c")), "{out}");
    assert_eq!(redis.task_field("app", "b", "status"), "completed", "{out}");
    assert!(
        !ran(&tt).contains(&"c".to_string()),
        "c must not run: {out}"
    );
}

#[test]
fn a_non_utf8_description_fails_the_attempt_instead_of_running_forever() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // Not read by dispatch: the worker meets it in its claim.
    hset_bytes(&redis, &key("app", "task:c"), "description", b"caf\xc3");
    let mut run = crate::support::Running::start(&tt, &["run", "--until-done"]);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        hget_lossy(&redis, &key("app", "task:c"), "status"),
        "failed",
        "{out}"
    );
    assert!(
        hget_lossy(&redis, &key("app", "task:c"), "error").contains("description"),
        "{out}"
    );
    assert!(
        !ran(&tt).contains(&"c".to_string()),
        "c must not run: {out}"
    );
    assert_eq!(redis.task_field("app", "b", "status"), "completed", "{out}");
}

#[test]
fn tags_lua_accepts_but_serde_rejects_fail_the_attempt_instead_of_running_forever() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // A raw tab inside a string: cjson takes it, serde_json refuses it.
    redis.cmd(&["HSET", &key("app", "task:c"), "tags", "[\"a\tb\"]"]);
    let mut run = crate::support::Running::start(&tt, &["run", "--until-done"]);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 1, "{out}");
    assert_eq!(redis.task_field("app", "c", "status"), "failed", "{out}");
    assert!(
        redis.task_field("app", "c", "error").contains("tags"),
        "{out}"
    );
    assert!(
        !ran(&tt).contains(&"c".to_string()),
        "c must not run: {out}"
    );
    assert_eq!(redis.task_field("app", "b", "status"), "completed", "{out}");
}

#[test]
fn an_edited_task_whose_key_is_not_a_hash_is_skipped_not_fatal_to_the_push() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["DEL", &key("app", "task:c")]);
    redis.cmd(&["SET", &key("app", "task:c"), "garbage"]);
    // Both `a` and `c` change.
    tt.write(
        "tasks.toml",
        PLAN.replace("id = \"a\"", "id = \"a\"\ndescription = \"new a\"")
            .replace("id = \"c\"", "id = \"c\"\ndescription = \"new c\""),
    );
    tt.run_with(["sync", "push"])
        .success()
        .stdout_contains("1 skipped");
    tt.run_with(["status"])
        .success()
        .stdout_contains(&key("app", "task:c"));
    assert_eq!(redis.task_field("app", "a", "description"), "new a");
    let kind: String = redis::cmd("TYPE")
        .arg(key("app", "task:c"))
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(kind, "string", "c's key is left alone");
}

#[test]
fn a_worker_hash_with_a_non_numeric_pid_does_not_stop_the_runner() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // A dead worker of agent `dev` that held `c`, its hash edited by hand.
    redis.cmd(&[
        "HSET",
        &key("app", "agent:dev-9"),
        "name",
        "dev",
        "host",
        "elsewhere",
        "pid",
        "x",
        "command_pgid",
        "y",
        "state",
        "working",
        "task",
        "c",
        "attempt",
        "1",
    ]);
    redis.cmd(&["SADD", &key("app", "agents"), "dev-9"]);
    redis.cmd(&[
        "RPUSH",
        &key("app", "claimed:dev-9"),
        r#"{"kind":"task","task":"c","attempt":1}"#,
    ]);
    redis.cmd(&[
        "HSET",
        &key("app", "task:c"),
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-9",
        "assigned_to",
        "dev",
    ]);
    let mut run = crate::support::Running::start(&tt, &["run", "--until-done"]);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    assert_eq!(redis.task_field("app", "c", "status"), "completed", "{out}");
}

#[test]
fn a_task_hash_without_an_id_is_reported_by_the_runner_not_ignored() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["HDEL", &key("app", "task:c"), "id"]);
    let mut run = crate::support::Running::start(&tt, &["run", "--until-done"]);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&key("app", "task:c")) && out.contains("`id`"),
        "{out}"
    );
}

#[test]
fn until_done_does_not_succeed_when_redis_restarts_empty_and_the_plan_cannot_load() {
    let mut redis = RedisServer::start();
    let (tt, mut run) = run_until_a_waits(&redis);
    let plan = tt.read("tasks.toml");
    // A save that does not load, then the server comes back with nothing.
    tt.write("tasks.toml", "[[tasks");
    run.wait_output("tasks.toml");
    redis.kill();
    redis.start_again();
    tt.write("go", "");
    // The runner is back on the new server (it renews its lease there)...
    wait_until(DEADLINE, "the runner holds its lease again", || {
        !redis.keys(&key("app", "runner")).is_empty()
    });
    // ...and once the plan loads again, it runs it all.
    tt.write("tasks.toml", &plan);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    for id in ["a", "b", "c"] {
        assert_eq!(
            redis.task_field("app", id, "status"),
            "completed",
            "{id}: {out}"
        );
    }
}

#[test]
fn an_unreadable_archive_is_a_warning_not_a_failed_push() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // The archive path is a directory: it cannot be read or appended to.
    std::fs::create_dir_all(tt.dir().join(".tt/events/app.jsonl")).unwrap();
    tt.write(
        "tasks.toml",
        PLAN.replace("id = \"c\"", "id = \"c\"\ndescription = \"1\""),
    );
    tt.run_with(["sync", "push"]).success();
    assert_eq!(redis.task_field("app", "c", "description"), "1");
    // With a stream full enough that the push must archive first.
    flood(&redis, "app", 99_000);
    tt.write(
        "tasks.toml",
        PLAN.replace("id = \"c\"", "id = \"c\"\ndescription = \"2\""),
    );
    tt.run_with(["sync", "push"])
        .success()
        .stderr_contains("app.jsonl");
    assert_eq!(redis.task_field("app", "c", "description"), "2");
}

#[test]
fn a_partial_last_line_in_the_archive_is_not_glued_to_the_next_event() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // A write cut short, in the middle of a two-byte character.
    tt.write(
        ".tt/events/app.jsonl",
        b"{\"id\":\"1-1\",\"kind\":\"noise\",\"task\":\"caf\xc3".as_slice(),
    );
    // 99,002 + the push's one `synced` event: full enough that the next
    // push must archive first.
    flood(&redis, "app", 99_002);
    tt.write(
        "tasks.toml",
        PLAN.replace("id = \"c\"", "id = \"c\"\ndescription = \"2\""),
    );
    tt.run_with(["sync", "push"]).success();
    let bytes = std::fs::read(tt.dir().join(".tt/events/app.jsonl")).unwrap();
    let text = String::from_utf8(bytes).expect("the archive is UTF-8 again");
    assert!(text.lines().count() >= 5, "events were archived: {text}");
    for line in text.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not one event per line: {line}"
        );
    }
    tt.run_with(["history", "--export", "all.jsonl"]).success();
}

#[test]
fn an_outage_does_not_reread_the_plan_every_second() {
    let mut redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    let run = crate::support::Running::start(&tt, &["run", "--no-agents"]);
    run.wait_output("agent(s) declared");
    let reads = crate::support::FileReads::watch(&tt.dir().join("tasks.toml"));
    reads.take();
    redis.kill();
    // Several failed reads of the event stream.
    wait_until(DEADLINE, "the event reader fails a few times", || {
        run.output().matches("reading events failed").count() >= 4
    });
    let during = reads.take();
    assert!(
        during <= 1,
        "the plan was read {during} times while Redis was away"
    );
    redis.start_again();
    run.stop();
}

#[test]
fn an_archiver_waits_for_the_one_that_holds_the_archive() {
    use std::os::fd::AsRawFd;
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    std::fs::create_dir_all(tt.dir().join(".tt/events")).unwrap();
    let held = std::fs::File::create(tt.dir().join(".tt/events/app.jsonl")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) },
        0,
        "{}",
        std::io::Error::last_os_error()
    );
    flood(&redis, "app", 99_000);
    tt.write(
        "tasks.toml",
        PLAN.replace("id = \"c\"", "id = \"c\"\ndescription = \"2\""),
    );
    // Another archiver holds the file for longer than a push waits: the
    // push goes on without archiving, and says so.
    tt.run_with(["sync", "push"])
        .success()
        .stderr_contains("another process archives");
    assert_eq!(
        std::fs::metadata(tt.dir().join(".tt/events/app.jsonl"))
            .unwrap()
            .len(),
        0,
        "nothing was appended while another archiver held the file"
    );
    assert_eq!(redis.task_field("app", "c", "description"), "2");
    drop(held);
}
