//! Failure and recovery (README "Failure and recovery"): dead agents, long
//! tasks, retries, a Redis that goes away. Real processes, real Redis,
//! deadlines instead of sleeps.

use std::time::Duration;

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

fn field(redis: &RedisServer, town: &str, id: &str, f: &str) -> String {
    redis.task_field(town, id, f)
}

/// Events of the town as (kind, task, attempt, agent).
fn events(redis: &RedisServer, town: &str) -> Vec<(String, String, String, String)> {
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(format!("tt:{town}:events"))
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .unwrap();
    tinytown::store::parse_entries(reply)
        .into_iter()
        .map(|e| (e.kind, e.task, e.attempt, e.agent))
        .collect()
}

/// Whether a process exists and is not a zombie.
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn a_long_task_is_never_requeued() {
    let redis = RedisServer::start();
    // 20 s: more than three heartbeat TTLs (6 s).
    let plan = r#"[town]
name = "f"
[agents.w]
command = ["sleep", "20"]
[[tasks]]
id = "long"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("1 completed"), "{out}");
    assert_eq!(field(&redis, "f", "long", "attempt"), "1");
    let evs = events(&redis, "f");
    assert!(
        !evs.iter().any(|e| e.0 == "requeued" || e.0 == "agent_dead"),
        "{evs:?}"
    );
}

#[test]
fn retries_then_failed_blocks_dependants_until_retry() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "f"
[meta]
default_agent = "w"
[agents.w]
command = ["sh", "-c", "echo \"$TT_TASK_ID $TT_ATTEMPT\" >> runs.log; test \"$TT_TASK_ID\" != schema || test -e fixed"]
retries = 2
[[tasks]]
id = "schema"
[[tasks]]
id = "api"
depends_on = ["schema"]
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).code(1);
    assert!(out.stdout.contains("failed: schema"), "{out}");
    assert!(out.stdout.contains("api — blocked: schema failed"), "{out}");
    let runs = tt.read("runs.log");
    assert_eq!(
        runs, "schema 1\nschema 2\nschema 3\n",
        "1 attempt + 2 retries"
    );
    // Retries waited for their backoff.
    let evs = events(&redis, "f");
    assert_eq!(
        evs.iter().filter(|e| e.0 == "retried").count(),
        2,
        "{evs:?}"
    );
    tt.run_with(["task", "api"])
        .success()
        .stdout_contains("blocked: schema failed");
    // Fix it and retry: everything completes.
    tt.write("fixed", "");
    tt.run_with(["retry", "schema"]).success();
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("2 completed, 0 failed"), "{out}");
}

#[test]
fn a_killed_agent_s_task_is_requeued_and_completes_once_more() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "f"
[agents.w]
command = ["sh", "-c", "echo $$ > pid-$TT_ATTEMPT; while [ ! -e go ]; do sleep 0.05; done"]
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let _run = Running::start(&tt, &["run"]);
    // `running` is set at claim, just before the command starts: wait for
    // the command itself, so the kill below orphans it.
    wait_until(DEADLINE, "job's command runs", || {
        field(&redis, "f", "job", "status") == "running" && tt.dir().join("pid-1").exists()
    });
    let worker = field(&redis, "f", "job", "worker");
    let pid: i32 = redis.hgetall(&format!("tt:f:agent:{worker}"))["pid"]
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the worker process the runner started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_until(DEADLINE, "job is requeued and runs again", || {
        field(&redis, "f", "job", "attempt") == "2"
            && field(&redis, "f", "job", "status") == "running"
    });
    // The first attempt's command, orphaned by the kill, was stopped before
    // the task ran again: never two copies at once.
    let first = command_pid(&tt, "pid-1");
    assert!(!running(first), "attempt 1's command still runs");
    tt.write("go", "");
    wait_until(DEADLINE, "job completes", || {
        field(&redis, "f", "job", "status") == "completed"
    });
    let evs = events(&redis, "f");
    let completed: Vec<_> = evs
        .iter()
        .filter(|e| e.0 == "completed" && e.1 == "job")
        .collect();
    assert_eq!(completed.len(), 1, "{evs:?}");
    assert_eq!(
        completed[0].2, "2",
        "the second attempt is the one that counts"
    );
    assert!(
        evs.iter()
            .any(|e| e.0 == "requeued" && e.1 == "job" && e.2 == "1"),
        "{evs:?}"
    );
}

#[test]
fn the_runner_survives_redis_being_killed_and_restarted() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let plan = r#"[town]
name = "f"
[agents.w]
command = ["sh", "-c", "while [ ! -e \"go-$TT_TASK_ID\" ]; do sleep 0.05; done"]
[[tasks]]
id = "a"
agent = "w"
[[tasks]]
id = "b"
agent = "w"
depends_on = ["a"]
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    wait_until(DEADLINE, "a runs", || {
        field(&redis, "f", "a", "status") == "running"
    });
    redis.kill();
    std::thread::sleep(Duration::from_millis(300)); // an outage, not a condition
    redis.start_again();
    assert_eq!(
        field(&redis, "f", "a", "status"),
        "running",
        "state survived (AOF)"
    );
    tt.write("go-a", "");
    tt.write("go-b", "");
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&redis, "f", "b", "status"), "completed", "{out}");
}

#[test]
fn kill_9_of_the_runner_mid_plan_loses_nothing_and_runs_nothing_twice_at_once() {
    let redis = RedisServer::start();
    let mut plan = String::from(
        "[town]\nname = \"k\"\n[meta]\ndefault_agent = \"w\"\n[agents.w]\ncommand = [\"sleep\", \"0.2\"]\ncount = 3\n",
    );
    for i in 0..50 {
        plan.push_str(&format!("[[tasks]]\nid = \"t{i}\"\n"));
        if i >= 10 {
            plan.push_str(&format!("depends_on = [\"t{}\"]\n", i - 10));
        }
    }
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let first = Running::start(&tt, &["run"]);
    let completed = |redis: &RedisServer| {
        events(redis, "k")
            .iter()
            .filter(|e| e.0 == "completed")
            .count()
    };
    wait_until(DEADLINE, "ten tasks completed", || completed(&redis) >= 10);
    first.kill9(); // no cleanup: lease and agents left behind
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("50 completed, 0 failed"), "{out}");

    let evs = events(&redis, "k");
    for i in 0..50 {
        let id = format!("t{i}");
        let mine: Vec<&(String, String, String, String)> = evs
            .iter()
            .filter(|e| {
                e.1 == id
                    && matches!(
                        e.0.as_str(),
                        "started" | "completed" | "failed" | "retried" | "requeued" | "rejected"
                    )
            })
            .collect();
        assert_eq!(
            mine.iter().filter(|e| e.0 == "completed").count(),
            1,
            "{id} completed once: {mine:?}"
        );
        // Attempts never overlap: every start is closed by an end of the
        // same attempt before any attempt starts again.
        let mut open: Option<&str> = None;
        for e in &mine {
            match e.0.as_str() {
                "started" => {
                    assert!(
                        open.is_none(),
                        "{id} attempt {} started while attempt {open:?} ran: {mine:?}",
                        e.2
                    );
                    open = Some(&e.2);
                }
                _ if open == Some(e.2.as_str()) => open = None,
                // The end of another attempt (a late report, rejected)
                // closes nothing that runs.
                _ => {}
            }
        }
    }
}

#[test]
fn sigterm_stops_the_runner_cleanly_and_the_next_run_picks_up_the_work() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "g"
[agents.w]
command = ["sh", "-c", "echo \"$TT_ATTEMPT\" >> attempts.log; while [ ! -e go ]; do sleep 0.05; done"]
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let run = Running::start(&tt, &["run", "--grace", "5s"]);
    wait_until(DEADLINE, "job runs", || {
        field(&redis, "g", "job", "status") == "running"
    });
    assert_eq!(run.stop(), 0);
    assert_eq!(redis.hgetall("tt:g:agent:w-1")["state"], "stopped");
    assert!(redis.keys("tt:g:runner").is_empty(), "lease released");
    // The interrupted attempt is recovered by the next runner and runs again.
    tt.write("go", "");
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("1 completed"), "{out}");
    assert_eq!(field(&redis, "g", "job", "attempt"), "2");
}

#[test]
fn recover_by_hand_requeues_a_dead_workers_task() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"h\"\n[[tasks]]\nid = \"job\"\nagent = \"w\"\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // A worker `w-1` that took `job` and died: no heartbeat key.
    let msg = r#"{"kind":"task","task":"job","attempt":1}"#;
    redis.cmd(&[
        "HSET",
        "tt:h:task:job",
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "w-1",
        "assigned_to",
        "w",
    ]);
    redis.cmd(&["RPUSH", "tt:h:claimed:w-1", msg]);
    redis.cmd(&[
        "HSET",
        "tt:h:agent:w-1",
        "id",
        "w-1",
        "name",
        "w",
        "state",
        "working",
    ]);
    redis.cmd(&["SADD", "tt:h:agents", "w-1"]);
    tt.run_with(["recover"])
        .success()
        .stdout_contains("w-1: dead — 1 running task(s) requeued");
    assert_eq!(field(&redis, "h", "job", "status"), "pending");
    assert_eq!(redis.hgetall("tt:h:agent:w-1")["state"], "dead");
    tt.run_with(["recover"])
        .success()
        .stdout_contains("no dead workers");
    // A live worker is never touched.
    redis.cmd(&[
        "HSET",
        "tt:h:task:job",
        "status",
        "running",
        "worker",
        "w-2",
    ]);
    redis.cmd(&["RPUSH", "tt:h:claimed:w-2", msg]);
    redis.cmd(&["SADD", "tt:h:agents", "w-2"]);
    redis.cmd(&[
        "HSET",
        "tt:h:agent:w-2",
        "id",
        "w-2",
        "name",
        "w",
        "state",
        "working",
    ]);
    redis.cmd(&["SET", "tt:h:alive:w-2", "x", "PX", "60000"]);
    tt.run_with(["recover"])
        .success()
        .stdout_contains("no dead workers");
    assert_eq!(field(&redis, "h", "job", "status"), "running");
}

#[test]
fn history_export_and_task_attempts_make_an_audit_trail() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "a"
[agents.w]
command = ["sh", "-c", "test -e ok-$TT_ATTEMPT"]
retries = 1
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.write("ok-2", "");
    tt.run_with(["run", "--until-done"]).success();
    let out = tt.run_with(["task", "job"]).success();
    assert!(
        out.stdout.contains("#1") && out.stdout.contains("retried"),
        "{out}"
    );
    assert!(
        out.stdout.contains("#2") && out.stdout.contains("completed"),
        "{out}"
    );
    assert!(out.stdout.contains(".tt/logs/job/2.log"), "{out}");
    let json = tt.run_with(["task", "job", "--json"]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["attempts"][0]["exit_code"], "1");
    assert_eq!(v["attempts"][1]["outcome"], "completed");
    tt.run_with(["history", "--export", "audit.jsonl"])
        .success();
    let audit = tt.read("audit.jsonl");
    let kinds: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for k in ["added", "dispatched", "started", "retried", "completed"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    assert!(
        kinds.iter().position(|k| k == "retried") < kinds.iter().position(|k| k == "completed")
    );
}

#[test]
fn on_child_failure_fail_cancels_siblings_and_continue_runs_the_join_step() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "p"
[meta]
default_agent = "w"
[agents.w]
command = ["sh", "-c", "echo $TT_TASK_ID >> ran.log; test $TT_TASK_ID != bad1 && test $TT_TASK_ID != bad2"]
[agents.j]
command = ["sh", "-c", "echo $TT_TASK_ID >> ran.log"]
[[tasks]]
id = "strict"
on_child_failure = "fail"
agent = "j"
[[tasks]]
id = "bad1"
parent = "strict"
[[tasks]]
id = "later"
parent = "strict"
depends_on = ["bad1"]
[[tasks]]
id = "lenient"
on_child_failure = "continue"
agent = "j"
[[tasks]]
id = "bad2"
parent = "lenient"
[[tasks]]
id = "fine"
parent = "lenient"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["run", "--until-done"]).code(1);
    assert_eq!(field(&redis, "p", "later", "status"), "cancelled");
    assert_eq!(
        field(&redis, "p", "strict", "status"),
        "pending",
        "join step never ran"
    );
    assert_eq!(
        field(&redis, "p", "lenient", "status"),
        "completed",
        "join step ran"
    );
    let ran = tt.read("ran.log");
    assert!(
        ran.contains("lenient") && !ran.contains("strict") && !ran.contains("later"),
        "{ran}"
    );
}

#[test]
fn a_task_s_own_retries_and_timeout_override_its_agent_s() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "o"
[agents.w]
command = ["sh", "-c", "echo $TT_TASK_ID >> runs.log; if [ $TT_TASK_ID = slow ]; then sleep 30; else exit 1; fi"]
retries = 0
timeout = "10m"
[[tasks]]
id = "flaky"
agent = "w"
retries = 1
[[tasks]]
id = "slow"
agent = "w"
timeout = "1s"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let started = std::time::Instant::now();
    tt.run_with(["run", "--until-done"]).code(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 1 s timeout applied, not 10m"
    );
    assert_eq!(
        field(&redis, "o", "flaky", "attempt"),
        "2",
        "one retry from the task"
    );
    assert_eq!(field(&redis, "o", "slow", "status"), "failed");
    assert!(
        field(&redis, "o", "slow", "error").contains("timed out"),
        "{}",
        field(&redis, "o", "slow", "error")
    );
}

#[test]
fn the_embedded_server_keeps_the_town_across_kill_9_and_tt_down() {
    // No REDIS_URL: the project's own redis-server under .tt/.
    let plan = "[town]\nname = \"e\"\n[[tasks]]\nid = \"a\"\n[[tasks]]\nid = \"b\"\nstatus = \"completed\"\n";
    let tt = Tt::new().file("tasks.toml", plan);
    tt.run_with(["sync", "push"]).success();
    // kill -9 of the server: what it acknowledged is already in its AOF file.
    let pid: i32 = tt.read(".tt/redis.pid").trim().parse().unwrap();
    // SAFETY: kill(2) on the redis-server this test's project started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_until(DEADLINE, "the server is gone", || !running(pid));
    let out = tt.run_with(["tasks", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{out}");
    assert_eq!(v[1]["status"], "completed");
    // A clean stop and start keeps it too.
    tt.run_with(["down"]).success().stdout_contains("stopped");
    let out = tt.run_with(["task", "b"]).success();
    assert!(out.stdout.contains("completed"), "{out}");
    tt.run_with(["sync", "push"])
        .success()
        .stdout_contains("=2 unchanged");
}

#[test]
fn cancel_then_retry_never_overlaps_the_stopping_attempt() {
    let redis = RedisServer::start();
    // The command ignores SIGTERM for a while: stopping it takes time.
    let plan = r#"[town]
name = "c"
[agents.w]
command = ["sh", "-c", "trap 'sleep 1; exit 1' TERM; echo \"start $TT_ATTEMPT\" >> runs.log; while [ ! -e go ]; do sleep 0.05; done; echo \"end $TT_ATTEMPT\" >> runs.log"]
count = 2
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let _run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "job runs", || {
        field(&redis, "c", "job", "status") == "running"
    });
    tt.run_with(["cancel", "job"]).success();
    tt.run_with(["retry", "job"]).success();
    wait_until(DEADLINE, "attempt 2 runs", || {
        field(&redis, "c", "job", "attempt") == "2"
            && field(&redis, "c", "job", "status") == "running"
    });
    // Attempt 2 started only after attempt 1's agent reported it stopped.
    let evs = events(&redis, "c");
    let ended_1 = evs
        .iter()
        .position(|e| e.1 == "job" && e.2 == "1" && e.0 == "rejected");
    let started_2 = evs
        .iter()
        .position(|e| e.1 == "job" && e.2 == "2" && e.0 == "started");
    assert!(ended_1.is_some() && ended_1 < started_2, "{evs:?}");
    tt.write("go", "");
    wait_until(DEADLINE, "job completes", || {
        field(&redis, "c", "job", "status") == "completed"
    });
}

#[test]
fn a_file_status_edit_stops_the_running_task() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "s"
[agents.w]
command = ["sh", "-c", "echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done"]
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let _run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "job runs", || {
        field(&redis, "s", "job", "status") == "running"
    });
    let pid = command_pid(&tt, "pid");
    tt.write("tasks.toml", format!("{plan}status = \"completed\"\n"));
    wait_until(DEADLINE, "job is completed by the file", || {
        field(&redis, "s", "job", "status") == "completed"
    });
    wait_until(DEADLINE, "its process is stopped", || !running(pid));
}

#[test]
fn a_worker_declared_dead_or_replaced_while_cut_off_steps_down() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "d"
[agents.w]
command = ["sh", "-c", "echo $$ > pid-$TT_TASK_ID; while [ ! -e go ]; do sleep 0.05; done"]
[[tasks]]
id = "a"
agent = "w"
[[tasks]]
id = "b"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    for (task, how) in [("a", "replaced"), ("b", "dead")] {
        let runner = Running::start(&tt, &["run", "--no-agents"]);
        let mut agent = Running::start(&tt, &["agent", "w", "--id", "w-9"]);
        wait_until(DEADLINE, "the task runs", || {
            field(&redis, "d", task, "status") == "running"
        });
        let pid = command_pid(&tt, &format!("pid-{task}"));
        runner.stop();
        if how == "replaced" {
            // Another process took the id while this one was cut off.
            redis.cmd(&["SET", "tt:d:alive:w-9", "someone-else", "PX", "60000"]);
        } else {
            // The runner declared it dead and requeued its task.
            redis.cmd(&["DEL", "tt:d:alive:w-9"]);
            redis.cmd(&["HSET", "tt:d:agent:w-9", "state", "dead"]);
        }
        // Not an exit 0 (what `tt kill` gets): a supervisor restarts it.
        assert_eq!(agent.wait_exit(), 1, "{how}: {}", agent.output());
        assert!(
            agent.output().contains("stepped down"),
            "{how}: {}",
            agent.output()
        );
        assert!(!running(pid), "{how}: its command was stopped");
        redis.cmd(&["DEL", "tt:d:alive:w-9"]);
    }
}

/// The pid a test command wrote to `file` (`echo $$ > file`). A task is
/// `running` from its claim, just before its command starts: wait for it.
fn command_pid(tt: &Tt, file: &str) -> i32 {
    let mut pid = 0;
    wait_until(DEADLINE, &format!("the command writes {file}"), || {
        pid = std::fs::read_to_string(tt.dir().join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    pid
}
