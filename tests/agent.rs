//! `tt agent` and `tt spawn` against a private redis-server: real workers,
//! real commands, real process groups. Dispatch is simulated exactly as
//! docs/PROTOCOL.md describes it (task hash `assigned` with its attempt and
//! `assigned_to`, then the message RPUSHed into the inbox), so these tests
//! pin the worker's side of the protocol without the runner.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::RedisExt;
use crate::support::{Output, RedisServer, Tt, wait_until};

/// Long enough for a loaded CI machine, short enough to fail a hang.
const DEADLINE: Duration = Duration::from_secs(60);

const PLAN: &str = r#"[town]
name = "t"

[[tasks]]
id = "grp"
description = "The group"

[[tasks]]
id = "build"
description = "Say \"hi\" $(touch pwned) `touch pwned2`; exit 7\nsecond line"
agent = "dev"
parent = "grp"
tags = ["api", "P1"]

[[tasks]]
id = "a"
description = "A"
agent = "dev"

[[tasks]]
id = "b"
description = "B"
agent = "dev"

[[tasks]]
id = "c"
description = "C"
agent = "dev"
"#;

const BUILD_DESCRIPTION: &str = "Say \"hi\" $(touch pwned) `touch pwned2`; exit 7\nsecond line";

/// Writes `plan` and pushes it.
fn project(redis: &RedisServer, plan: &str) -> Tt {
    let tt = Tt::new().file("tasks.toml", plan).redis(redis);
    tt.run_with(["sync", "push"]).success();
    tt
}

/// What the runner's dispatch does: the task becomes `assigned` to `agent`
/// with `attempt`, and its message goes to the agent's inbox.
fn dispatch_to(redis: &RedisServer, task: &str, attempt: u32, agent: &str) {
    let n = attempt.to_string();
    redis.cmd(&[
        "HSET",
        &format!("tt:t:task:{task}"),
        "status",
        "assigned",
        "attempt",
        &n,
        "assigned_to",
        agent,
    ]);
    redis.cmd(&[
        "RPUSH",
        &format!("tt:t:inbox:{agent}"),
        &message(task, attempt),
    ]);
}

fn dispatch(redis: &RedisServer, task: &str, attempt: u32) {
    dispatch_to(redis, task, attempt, "dev");
}

fn message(task: &str, attempt: u32) -> String {
    serde_json::json!({ "kind": "task", "task": task, "attempt": attempt }).to_string()
}

fn push(redis: &RedisServer, raw: &str) {
    redis.cmd(&["RPUSH", "tt:t:inbox:dev", raw]);
}

fn task(redis: &RedisServer, id: &str) -> HashMap<String, String> {
    redis.hgetall(&format!("tt:t:task:{id}"))
}

fn list(redis: &RedisServer, key: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut redis.conn())
        .unwrap()
}

fn exists(redis: &RedisServer, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query(&mut redis.conn())
        .unwrap()
}

/// Every event of town `t`, oldest first, as field maps.
fn events(redis: &RedisServer) -> Vec<HashMap<String, String>> {
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("tt:t:events")
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .unwrap();
    entries.into_iter().map(|(_, fields)| fields).collect()
}

fn events_of(redis: &RedisServer, kind: &str) -> Vec<HashMap<String, String>> {
    events(redis)
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Runs `tt` with `args` to its end, killing it (and failing) after
/// [`DEADLINE`].
fn run_to_end(tt: &Tt, args: &[&str]) -> Output {
    let mut cmd = tt.command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let command = format!("{cmd:?}");
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => {
            let out = out.unwrap();
            Output {
                command,
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!("`{command}` did not finish within {DEADLINE:?}");
        }
    }
}

/// `tt agent dev --id dev-1 --once <args>`, to its end.
fn agent_once(tt: &Tt, args: &[&str]) -> Output {
    let mut all = vec!["agent", "dev", "--id", "dev-1", "--once"];
    all.extend_from_slice(args);
    run_to_end(tt, &all)
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) only sends a signal.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Gone, or a zombie nobody reaped yet: either way it runs no more.
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `tt agent` running in the background, its stdout in a file; killed
/// on drop if still running.
struct Background {
    child: Child,
    out: PathBuf,
}

impl Background {
    fn start(tt: &Tt, args: &[&str]) -> Self {
        let out = tt
            .dir()
            .join(format!("worker-{}.out", args.join("_").len()));
        let file = std::fs::File::create(&out).unwrap();
        let child = tt
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits for the exit code.
    fn wait(&mut self) -> i32 {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if started.elapsed() > DEADLINE {
                panic!("the worker did not exit:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `sh -c` script that starts a grandchild `sleep 30`, records its pid,
/// and waits: a stop must reach the grandchild through the group.
const SLEEPER: &str = "sleep 30 & echo $! > grandchild.pid; wait";

#[test]
fn a_task_runs_with_its_argv_and_env_and_completes() {
    let redis = RedisServer::start();
    // Redis is named in the file, not in `tt`'s environment: the command's
    // `REDIS_URL` can only come from the worker.
    let plan = PLAN.replacen(
        "[town]\n",
        &format!("[town]\nredis_url = \"{}\"\n", redis.url()),
        1,
    );
    let tt = Tt::new().file("tasks.toml", plan);
    tt.run_with(["sync", "push"]).success();
    dispatch(&redis, "build", 1);
    let out = agent_once(
        &tt,
        &[
            "--command",
            "sh",
            "-c",
            r#"for a in "$@"; do printf '%s\0' "$a"; done > argv; env > env; echo done-building"#,
            "sh",
            "{id}",
            "{description}",
            "{tags}",
            "{parent}",
            "{attempt}",
        ],
    )
    .success();
    assert!(
        out.stdout
            .contains("`build` attempt 1 exited with code 0: completed"),
        "{out}"
    );

    let argv = tt.read("argv");
    let args: Vec<&str> = argv.split_terminator('\0').collect();
    assert_eq!(args, ["build", BUILD_DESCRIPTION, "api,P1", "grp", "1"]);
    assert!(!tt.dir().join("pwned").exists() && !tt.dir().join("pwned2").exists());

    let env = tt.read("env");
    for line in [
        "TT_TOWN=t",
        "TT_AGENT=dev",
        "TT_WORKER=dev-1",
        "TT_TASK_ID=build",
        "TT_ATTEMPT=1",
        r#"TT_TASK_TAGS=["api","P1"]"#,
        "TT_TASK_PARENT=grp",
        "TT_TASK_DESCRIPTION=Say \"hi\" $(touch pwned)",
        &format!("REDIS_URL={}", redis.url()),
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(line)),
            "{line} in:\n{env}"
        );
    }

    let t = task(&redis, "build");
    assert_eq!(t["status"], "completed");
    assert_eq!(t["exit_code"], "0");
    assert_eq!(t["worker"], "dev-1");
    assert!(t["output"].contains("done-building"), "{t:?}");
    let log = tt.dir().join(".tt/logs/build/1.log");
    assert_eq!(Path::new(&t["log"]), log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("done-building\n"), "{text}");
    assert!(text.contains("[tt] exited with code 0"), "{text}");

    assert!(list(&redis, "tt:t:claimed:dev-1").is_empty());
    assert!(list(&redis, "tt:t:inbox:dev").is_empty());
    let kinds: Vec<String> = events(&redis)
        .into_iter()
        .filter(|e| e["task"] == "build")
        .map(|e| e["kind"].clone())
        .collect();
    assert!(
        kinds.ends_with(&["started".into(), "completed".into()]),
        "{kinds:?}"
    );
    let agent = redis.hgetall("tt:t:agent:dev-1");
    assert_eq!(agent["name"], "dev");
    assert_eq!(agent["state"], "stopped");
    assert!(
        !exists(&redis, "tt:t:alive:dev-1"),
        "a stopped worker drops its heartbeat"
    );
    let workers: Vec<String> = redis::cmd("SMEMBERS")
        .arg("tt:t:agents")
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(workers, ["dev-1"]);
}

#[test]
fn a_failing_task_is_retried_then_failed() {
    let redis = RedisServer::start();
    let plan = format!(
        "{PLAN}\n[agents.dev]\ncommand = [\"sh\", \"-c\", \"echo boom-$TT_ATTEMPT; exit 3\"]\nretries = 1\n"
    );
    let tt = project(&redis, &plan);
    dispatch(&redis, "a", 1);
    agent_once(&tt, &[]).success();
    let t = task(&redis, "a");
    assert_eq!(t["status"], "pending", "{t:?}");
    assert_eq!(t["exit_code"], "3");
    assert_eq!(t["error"], "exited with code 3");
    assert!(t["output"].contains("boom-1"), "{t:?}");
    let retry_at: u64 = t["retry_at"].parse().unwrap();
    let finished: u64 = t["finished"].parse().unwrap();
    assert!(
        retry_at >= finished + 1_500,
        "backs off (2 s ± 25 %): {t:?}"
    );
    assert_eq!(events_of(&redis, "retried").len(), 1);

    // The runner dispatches the second attempt; it fails too: no retries left.
    dispatch(&redis, "a", 2);
    agent_once(&tt, &[]).success();
    let t = task(&redis, "a");
    assert_eq!(t["status"], "failed", "{t:?}");
    assert_eq!(t["attempt"], "2");
    assert!(t["output"].contains("boom-2"), "{t:?}");
    assert!(!t.contains_key("retry_at"));
    let failed = events_of(&redis, "failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempt"], "2");
    assert_eq!(failed[0]["exit_code"], "3");
    assert!(tt.dir().join(".tt/logs/a/1.log").exists());
    assert!(tt.dir().join(".tt/logs/a/2.log").exists());
}

#[test]
fn stale_messages_are_dropped_and_never_run() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    // An old attempt: the task has moved on to attempt 2.
    redis.cmd(&[
        "HSET",
        "tt:t:task:a",
        "status",
        "assigned",
        "attempt",
        "2",
        "assigned_to",
        "dev",
    ]);
    push(&redis, &message("a", 1));
    // Cancelled while in the inbox.
    dispatch(&redis, "b", 1);
    redis.cmd(&["HSET", "tt:t:task:b", "status", "cancelled"]);
    // Reassigned to another agent while in this inbox.
    dispatch_to(&redis, "c", 1, "other");
    redis.cmd(&["LREM", "tt:t:inbox:other", "0", &message("c", 1)]);
    push(&redis, &message("c", 1));
    // And one that is ours.
    dispatch(&redis, "build", 1);

    let out = agent_once(&tt, &["--command", "touch", "ran-{id}-{attempt}"]).success();
    assert!(tt.dir().join("ran-build-1").exists(), "{out}");
    for stale in ["ran-a-1", "ran-b-1", "ran-c-1"] {
        assert!(!tt.dir().join(stale).exists(), "{stale} ran:\n{out}");
    }
    let dropped = events_of(&redis, "dropped");
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
    assert_eq!(task(&redis, "a")["status"], "assigned", "untouched");
    assert_eq!(task(&redis, "b")["status"], "cancelled");
    assert!(list(&redis, "tt:t:claimed:dev-1").is_empty());
}

#[test]
fn malformed_messages_go_to_the_deadletter_list_and_the_worker_goes_on() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let bad = [
        "not json at all",
        r#"{"kind":"task"}"#,
        r#"{"kind":"task","task":"a","attempt":"one"}"#,
        r#"{"kind":"reboot"}"#,
        r#"[1,2]"#,
    ];
    for raw in bad {
        push(&redis, raw);
    }
    dispatch(&redis, "build", 1);
    agent_once(&tt, &["--command", "true"]).success();
    assert_eq!(list(&redis, "tt:t:deadletter"), bad);
    assert_eq!(events_of(&redis, "deadletter").len(), bad.len());
    assert_eq!(task(&redis, "build")["status"], "completed");
    assert!(list(&redis, "tt:t:claimed:dev-1").is_empty());
}

#[test]
fn a_direct_message_is_logged_not_run() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let body = "rebase on main; $(touch pwned)";
    push(
        &redis,
        &serde_json::json!({ "kind": "message", "from": "alice", "body": body }).to_string(),
    );
    dispatch(&redis, "build", 1);
    let out = agent_once(&tt, &["--command", "true"]).success();
    let line = format!("[message from alice] {body}");
    assert!(out.stdout.contains(&line), "{out}");
    let journal = tt.read(".tt/logs/agents/dev-1.log");
    assert!(journal.contains(&line), "{journal}");
    assert!(!tt.dir().join("pwned").exists());
    let recorded = events_of(&redis, "message");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["from"], "alice");
    assert_eq!(recorded[0]["body"], body);
    assert_eq!(task(&redis, "build")["status"], "completed");
}

#[test]
fn a_stop_message_kills_the_whole_process_group() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let mut worker = Background::start(
        &tt,
        &[
            "agent",
            "dev",
            "--id",
            "dev-1",
            "--command",
            "sh",
            "-c",
            SLEEPER,
        ],
    );
    dispatch(&redis, "build", 1);
    let pidfile = tt.dir().join("grandchild.pid");
    wait_until(DEADLINE, "the command runs", || {
        read_pid(&pidfile).is_some()
    });
    let grandchild = read_pid(&pidfile).unwrap();
    let running = task(&redis, "build");
    assert_eq!(running["status"], "running");
    let log = tt.dir().join(".tt/logs/build/1.log");
    assert_eq!(
        Path::new(&running["log"]),
        log,
        "the log is known while it runs"
    );
    let agent = redis.hgetall("tt:t:agent:dev-1");
    assert_eq!(
        (agent["state"].as_str(), agent["task"].as_str()),
        ("working", "build")
    );

    redis.cmd(&[
        "LPUSH",
        "tt:t:control:dev-1",
        r#"{"kind":"stop","task":"build","attempt":1}"#,
    ]);
    wait_until(DEADLINE, "the attempt fails", || {
        task(&redis, "build")["status"] == "failed"
    });
    assert_eq!(task(&redis, "build")["error"], "stopped on request");
    wait_until(Duration::from_secs(10), "the grandchild is gone", || {
        process_gone(grandchild)
    });
    assert_eq!(redis.hgetall("tt:t:agent:dev-1")["state"], "idle");

    // The worker goes on until told to shut down.
    redis.cmd(&["LPUSH", "tt:t:control:dev-1", r#"{"kind":"shutdown"}"#]);
    assert_eq!(worker.wait(), 0, "{}", worker.output());
    assert_eq!(redis.hgetall("tt:t:agent:dev-1")["state"], "stopped");
}

#[test]
fn a_timeout_kills_the_process_group_and_fails_the_attempt() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    dispatch(&redis, "build", 1);
    let started = Instant::now();
    let out = agent_once(&tt, &["--timeout", "1s", "--command", "sh", "-c", SLEEPER]).success();
    assert!(started.elapsed() < Duration::from_secs(20), "{out}");
    let t = task(&redis, "build");
    assert_eq!(t["status"], "failed", "{t:?}");
    assert_eq!(t["error"], "timed out after 1s");
    assert!(!t.contains_key("exit_code"));
    let grandchild = read_pid(&tt.dir().join("grandchild.pid")).unwrap();
    wait_until(Duration::from_secs(10), "the grandchild is gone", || {
        process_gone(grandchild)
    });
    let log = tt.read(".tt/logs/build/1.log");
    assert!(log.contains("[tt] timed out after 1s"), "{log}");
}

#[test]
fn the_claude_preset_gets_the_prompt_as_one_argument() {
    let redis = RedisServer::start();
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("claude");
    std::fs::write(
        &fake,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > claude-argv\nenv > claude-env\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tt = Tt::new()
        .file("tasks.toml", PLAN)
        .redis(&redis)
        .env("PATH", path);
    tt.run_with(["sync", "push"]).success();
    dispatch(&redis, "build", 1);
    agent_once(&tt, &["--cli", "claude"]).success();

    let argv = tt.read("claude-argv");
    let args: Vec<&str> = argv.split_terminator('\0').collect();
    let prompt = format!("{BUILD_DESCRIPTION}\n\n(tinytown task `build`)");
    assert_eq!(
        args,
        [
            "--output-format",
            "stream-json",
            "--verbose",
            "--allowedTools",
            "Bash",
            "--permission-mode",
            "acceptEdits",
            "-p",
            prompt.as_str()
        ]
    );
    let env = tt.read("claude-env");
    for line in [
        "TT_TOWN=t",
        "TT_AGENT=dev",
        "TT_WORKER=dev-1",
        "TT_TASK_ID=build",
        "TT_ATTEMPT=1",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in:\n{env}");
    }
    assert_eq!(task(&redis, "build")["status"], "completed");
}

#[test]
fn a_missing_program_fails_the_attempt_and_the_worker_goes_on() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let mut worker = Background::start(
        &tt,
        &[
            "agent",
            "dev",
            "--id",
            "dev-1",
            "--command",
            "tt-no-such-agent-cli",
            "{id}",
        ],
    );
    dispatch(&redis, "a", 1);
    dispatch(&redis, "b", 1);
    wait_until(DEADLINE, "both attempts fail", || {
        task(&redis, "a")["status"] == "failed" && task(&redis, "b")["status"] == "failed"
    });
    let error = &task(&redis, "a")["error"];
    assert!(
        error.starts_with("`tt-no-such-agent-cli` not found on PATH"),
        "{error}"
    );
    assert!(!task(&redis, "a").contains_key("exit_code"));
    let log = tt.read(".tt/logs/a/1.log");
    assert!(log.contains("not found on PATH"), "{log}");
    redis.cmd(&["LPUSH", "tt:t:control:dev-1", r#"{"kind":"shutdown"}"#]);
    assert_eq!(worker.wait(), 0, "{}", worker.output());
}

#[test]
fn sigterm_stops_the_command_and_leaves_the_task_for_recovery() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let mut worker = Background::start(
        &tt,
        &[
            "agent",
            "dev",
            "--id",
            "dev-1",
            "--command",
            "sh",
            "-c",
            SLEEPER,
        ],
    );
    dispatch(&redis, "build", 1);
    let pidfile = tt.dir().join("grandchild.pid");
    wait_until(DEADLINE, "the command runs", || {
        read_pid(&pidfile).is_some()
    });
    let grandchild = read_pid(&pidfile).unwrap();

    signal(worker.child.id(), libc::SIGTERM);
    assert_eq!(worker.wait(), 0, "{}", worker.output());
    assert!(process_gone(grandchild), "the command's group was stopped");
    let t = task(&redis, "build");
    assert_eq!(t["status"], "running", "left for recovery: {t:?}");
    assert_eq!(list(&redis, "tt:t:claimed:dev-1"), [message("build", 1)]);
    assert_eq!(redis.hgetall("tt:t:agent:dev-1")["state"], "stopped");
    assert!(!exists(&redis, "tt:t:alive:dev-1"));
    assert!(events_of(&redis, "completed").is_empty() && events_of(&redis, "failed").is_empty());
    assert!(
        worker.output().contains("left for recovery"),
        "{}",
        worker.output()
    );

    // The same worker id starts again before any runner recovered the
    // task: it requeues it itself (with it alive, recovery never would).
    let mut again = Background::start(
        &tt,
        &[
            "agent",
            "dev",
            "--id",
            "dev-1",
            "--once",
            "--command",
            "true",
        ],
    );
    wait_until(DEADLINE, "the task is requeued", || {
        task(&redis, "build")["status"] == "pending"
    });
    assert!(list(&redis, "tt:t:claimed:dev-1").is_empty());
    assert_eq!(events_of(&redis, "requeued").len(), 1);
    dispatch(&redis, "build", 2);
    assert_eq!(again.wait(), 0, "{}", again.output());
    assert_eq!(task(&redis, "build")["status"], "completed");
}

#[test]
fn a_dead_workers_claimed_work_is_recovered() {
    let redis = RedisServer::start();
    let _tt = project(&redis, PLAN);
    // dev-9 died: it had started `build` and taken `a` without claiming it.
    redis.cmd(&[
        "HSET",
        "tt:t:task:build",
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-9",
    ]);
    dispatch(&redis, "a", 1);
    redis.cmd(&[
        "LMOVE",
        "tt:t:inbox:dev",
        "tt:t:claimed:dev-9",
        "LEFT",
        "RIGHT",
    ]);
    redis.cmd(&["RPUSH", "tt:t:claimed:dev-9", &message("build", 1)]);
    redis.cmd(&["SET", "tt:t:alive:dev-9", "x", "PX", "60000"]);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = tinytown::store::RedisTarget::Url(redis.url());
    let store = runtime
        .block_on(tinytown::store::Store::open(&target, "t"))
        .unwrap();
    let alive = runtime
        .block_on(store.recover_worker("dev-9", "dev"))
        .unwrap();
    assert_eq!(alive, None, "a live worker's work is never touched");
    assert_eq!(task(&redis, "build")["status"], "running");

    redis.cmd(&["DEL", "tt:t:alive:dev-9"]);
    let recovered = runtime
        .block_on(store.recover_worker("dev-9", "dev"))
        .unwrap();
    assert_eq!(recovered, Some((1, 1)));
    assert_eq!(task(&redis, "build")["status"], "pending");
    assert_eq!(list(&redis, "tt:t:inbox:dev"), [message("a", 1)]);
    assert!(list(&redis, "tt:t:claimed:dev-9").is_empty());
    let requeued = events_of(&redis, "requeued");
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0]["task"], "build");
}

#[test]
fn a_message_moved_but_never_claimed_is_not_lost() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    // A worker crashed between its BLMOVE and the claim.
    dispatch(&redis, "build", 1);
    redis.cmd(&[
        "LMOVE",
        "tt:t:inbox:dev",
        "tt:t:claimed:dev-1",
        "LEFT",
        "RIGHT",
    ]);
    let out = agent_once(&tt, &["--command", "true"]).success();
    assert!(
        out.stdout.contains("1 message(s) back in the inbox"),
        "{out}"
    );
    let t = task(&redis, "build");
    assert_eq!(
        (t["status"].as_str(), t["attempt"].as_str()),
        ("completed", "1")
    );
}

#[test]
fn a_late_report_from_an_old_attempt_is_rejected() {
    let redis = RedisServer::start();
    let _tt = project(&redis, PLAN);
    // Attempt 1 ran on dev-1, was requeued, and attempt 2 now runs on dev-2.
    redis.cmd(&[
        "HSET",
        "tt:t:task:build",
        "status",
        "running",
        "attempt",
        "2",
        "worker",
        "dev-2",
    ]);
    let raw = message("build", 1);
    redis.cmd(&["RPUSH", "tt:t:claimed:dev-1", &raw]);
    let before = task(&redis, "build");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let target = tinytown::store::RedisTarget::Url(redis.url());
        let store = tinytown::store::Store::open(&target, "t").await.unwrap();
        let report = |worker: &'static str, attempt: u32| tinytown::store::Report {
            worker,
            raw: if worker == "dev-1" { &raw } else { "" },
            task: "build",
            attempt,
            exit_code: Some(0),
            error: None,
            output: "late",
            log: "/nowhere",
            retries: 3,
            backoff: Duration::from_secs(1),
            requeue: false,
            facts: None,
        };
        let old = store.finish(&report("dev-1", 1), false).await.unwrap();
        // The right attempt from the wrong worker is no better.
        let other = store.finish(&report("dev-1", 2), false).await.unwrap();
        (old, other)
    });
    use tinytown::store::Finish;
    assert_eq!(
        result.0,
        Finish::Stale {
            reason: "attempt 1 is stale, the task is at attempt 2".into()
        }
    );
    assert_eq!(
        result.1,
        Finish::Stale {
            reason: "the task runs on `dev-2`".into()
        }
    );
    assert_eq!(task(&redis, "build"), before, "nothing changed");
    assert!(
        list(&redis, "tt:t:claimed:dev-1").is_empty(),
        "the report left claimed"
    );
    let rejected = events_of(&redis, "rejected");
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["task"], "build");
    assert_eq!(rejected[0]["agent"], "dev-1");
    assert_eq!(rejected[0]["attempt"], "1");
    assert_eq!(rejected[0]["exit_code"], "0");
}

#[test]
fn without_a_command_tt_agent_explains_and_exits_2() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    run_to_end(&tt, &["agent", "dev"])
        .code(2)
        .stderr_contains("no command for agent `dev`")
        .stderr_contains("--cli claude");
    run_to_end(&tt, &["agent", "dev", "--cli", "cluade"])
        .code(2)
        .stderr_contains("unknown agent cli `cluade`")
        .stderr_contains("did you mean `claude`?");
    run_to_end(
        &tt,
        &["agent", "dev", "--id", "no/slash", "--command", "true"],
    )
    .code(2)
    .stderr_contains("worker id `no/slash` is not valid");
    run_to_end(
        &tt,
        &["agent", "dev", "--workdir", "nope", "--command", "true"],
    )
    .code(2)
    .stderr_contains("tt::agent::workdir");
}

#[test]
fn the_id_of_a_live_worker_is_refused() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let _first = Background::start(&tt, &["agent", "dev", "--id", "dev-1", "--command", "true"]);
    wait_until(DEADLINE, "the first worker registers", || {
        exists(&redis, "tt:t:alive:dev-1")
    });
    agent_once(&tt, &["--command", "true"])
        .code(3)
        .stderr_contains("worker id `dev-1` is in use");
}

#[test]
fn a_dropped_connection_is_survived() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let mut worker =
        Background::start(&tt, &["agent", "dev", "--id", "dev-1", "--command", "true"]);
    wait_until(DEADLINE, "the worker registers", || {
        exists(&redis, "tt:t:alive:dev-1")
    });
    // Cut every connection, including the blocked BLMOVE and BLPOP.
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    dispatch(&redis, "build", 1);
    wait_until(DEADLINE, "the task completes after reconnecting", || {
        task(&redis, "build")["status"] == "completed"
    });
    redis.cmd(&["LPUSH", "tt:t:control:dev-1", r#"{"kind":"shutdown"}"#]);
    assert_eq!(worker.wait(), 0, "{}", worker.output());
}

#[test]
fn a_backlog_worker_takes_unassigned_work() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    redis.cmd(&["HSET", "tt:t:task:a", "status", "assigned", "attempt", "1"]);
    redis.cmd(&["RPUSH", "tt:t:backlog", &message("a", 1)]);
    agent_once(&tt, &["--backlog", "--command", "touch", "ran-{id}"]).success();
    assert!(tt.dir().join("ran-a").exists());
    assert_eq!(task(&redis, "a")["status"], "completed");
    assert!(list(&redis, "tt:t:backlog").is_empty());
}

#[test]
fn tt_spawn_starts_a_detached_worker() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    let out = run_to_end(
        &tt,
        &[
            "spawn",
            "dev",
            "--json",
            "--command",
            "sh",
            "-c",
            "echo spawned-$TT_TASK_ID",
        ],
    )
    .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let pid = v["pid"].as_u64().unwrap() as i32;
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(id, format!("dev-{pid}"));
    assert!(
        exists(&redis, &format!("tt:t:alive:{id}")),
        "registered before returning"
    );
    assert!(!process_gone(pid));

    dispatch(&redis, "build", 1);
    wait_until(DEADLINE, "the spawned worker runs the task", || {
        task(&redis, "build")["status"] == "completed"
    });
    assert!(task(&redis, "build")["output"].contains("spawned-build"));

    redis.cmd(&[
        "LPUSH",
        &format!("tt:t:control:{id}"),
        r#"{"kind":"shutdown"}"#,
    ]);
    wait_until(DEADLINE, "the spawned worker exits", || process_gone(pid));
    assert_eq!(
        redis.hgetall(&format!("tt:t:agent:{id}"))["state"],
        "stopped"
    );
    let journal = tt.read(format!(".tt/logs/agents/{id}.log"));
    assert!(journal.contains("is ready in town `t`"), "{journal}");
    assert!(
        journal.contains("`build` attempt 1 exited with code 0: completed"),
        "{journal}"
    );
    assert_eq!(
        journal.matches("is ready in town").count(),
        1,
        "each note once: {journal}"
    );
}

#[test]
fn a_repeated_report_after_a_lost_reply_gets_its_own_outcome_back() {
    let redis = RedisServer::start();
    let _tt = project(&redis, PLAN);
    redis.cmd(&[
        "HSET",
        "tt:t:task:build",
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-1",
    ]);
    let raw = message("build", 1);
    redis.cmd(&["RPUSH", "tt:t:claimed:dev-1", &raw]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, again, stale) = runtime.block_on(async {
        let target = tinytown::store::RedisTarget::Url(redis.url());
        let store = tinytown::store::Store::open(&target, "t").await.unwrap();
        let report = build_succeeded(&raw);
        let first = store.finish(&report, false).await.unwrap();
        // The reply was lost; the worker sends the same report again.
        let again = store.finish(&report, true).await.unwrap();
        // Without the flag the same report is (rightly) stale.
        let stale = store.finish(&report, false).await.unwrap();
        (first, again, stale)
    });
    use tinytown::store::Finish;
    assert_eq!(first, Finish::Completed);
    assert_eq!(again, Finish::Completed);
    assert!(matches!(stale, Finish::Stale { .. }));
    assert_eq!(
        events_of(&redis, "rejected").len(),
        1,
        "only the unflagged repeat"
    );
    assert_eq!(events_of(&redis, "completed").len(), 1);
}

fn identity(id: &str) -> tinytown::store::WorkerIdentity {
    tinytown::store::WorkerIdentity {
        id: id.into(),
        agent: "dev".into(),
        pid: 1,
        host: "h".into(),
        backlog: false,
        token: "1@h/0".into(),
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_report_claims_the_next_message_and_a_repeat_hands_it_out_again() {
    let redis = RedisServer::start();
    let _tt = project(&redis, PLAN);
    redis.cmd(&[
        "HSET",
        "tt:t:task:build",
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-1",
    ]);
    redis.cmd(&["HSET", "tt:t:agent:dev-1", "task", "build", "attempt", "1"]);
    let raw = message("build", 1);
    redis.cmd(&["RPUSH", "tt:t:claimed:dev-1", &raw]);
    dispatch(&redis, "a", 1);
    let logs = "/p/.tt/logs";
    let me = identity("dev-1");
    let runtime = current_thread();
    let (first, again, without) = runtime.block_on(async {
        let target = tinytown::store::RedisTarget::Url(redis.url());
        let store = tinytown::store::Store::open(&target, "t").await.unwrap();
        let report = build_succeeded(&raw);
        let first = store
            .finish_and_take(&report, false, Some(&me), logs)
            .await
            .unwrap();
        // Dispatched after the first report: a repeat must not take it.
        dispatch(&redis, "b", 1);
        let again = store
            .finish_and_take(&report, true, Some(&me), logs)
            .await
            .unwrap();
        let without = store.finish_and_take(&report, true, None, logs).await;
        (first, again, without.unwrap())
    });
    use tinytown::store::{Claim, Finish};
    let ran = |next: &Option<(String, Claim)>| match next {
        Some((raw, Claim::Run(t))) => (raw.clone(), t.id.clone(), t.attempt),
        other => panic!("expected a task to run, got {other:?}"),
    };
    assert_eq!(first.0, Finish::Completed);
    assert_eq!(ran(&first.1), (message("a", 1), "a".into(), 1));
    assert_eq!(again.0, Finish::Completed);
    assert_eq!(ran(&again.1), (message("a", 1), "a".into(), 1));
    assert_eq!(without, (Finish::Completed, None));

    let a = task(&redis, "a");
    assert_eq!(
        (a["status"].as_str(), a["worker"].as_str()),
        ("running", "dev-1")
    );
    assert_eq!(a["log"], "/p/.tt/logs/a/1.log");
    assert_eq!(task(&redis, "build")["status"], "completed");
    assert_eq!(list(&redis, "tt:t:claimed:dev-1"), [message("a", 1)]);
    assert_eq!(list(&redis, "tt:t:inbox:dev"), [message("b", 1)]);
    let agent = redis.hgetall("tt:t:agent:dev-1");
    assert_eq!(
        (agent["state"].as_str(), agent["task"].as_str()),
        ("working", "a")
    );
    assert_eq!(events_of(&redis, "started").len(), 1, "claimed once");
}

#[test]
fn claim_records_the_log_the_worker_writes() {
    let redis = RedisServer::start();
    let _tt = project(&redis, PLAN);
    let ids = ["..", ".", "a..b", "x_y-Z.9", "not valid/id"];
    for id in ids {
        dispatch(&redis, id, 2);
    }
    let me = identity("dev-1");
    let runtime = current_thread();
    runtime.block_on(async {
        let target = tinytown::store::RedisTarget::Url(redis.url());
        let store = tinytown::store::Store::open(&target, "t").await.unwrap();
        for _ in ids {
            let raw: String = redis::cmd("LMOVE")
                .arg("tt:t:inbox:dev")
                .arg("tt:t:claimed:dev-1")
                .arg("LEFT")
                .arg("RIGHT")
                .query(&mut redis.conn())
                .unwrap();
            let claim = store
                .claim(
                    &me,
                    &raw,
                    tinytown::store::MessageSource::Inbox,
                    false,
                    "/p/.tt/logs",
                )
                .await
                .unwrap();
            assert!(matches!(claim, tinytown::store::Claim::Run(_)), "{claim:?}");
        }
    });
    let project = Path::new("/p");
    for id in &ids[..4] {
        let expected = tinytown::state_dir::task_log(project, id, 2);
        assert_eq!(Path::new(&task(&redis, id)["log"]), expected, "{id}");
    }
    // An id no plan allows: its report records where its log went.
    assert!(!task(&redis, "not valid/id").contains_key("log"));
}

#[test]
fn a_busy_worker_runs_queued_tasks_back_to_back_with_their_logs() {
    let redis = RedisServer::start();
    let tt = project(&redis, PLAN);
    // Queued before the worker starts: each report claims the next one.
    for id in ["a", "b", "c"] {
        dispatch(&redis, id, 1);
    }
    let mut worker = Background::start(
        &tt,
        &[
            "agent",
            "dev",
            "--id",
            "dev-1",
            "--command",
            "sh",
            "-c",
            "echo out-$TT_TASK_ID; echo $$ > pid-$TT_TASK_ID; while [ ! -e go-$TT_TASK_ID ]; do sleep 0.02; done",
        ],
    );
    for id in ["a", "b", "c"] {
        // The file exists a moment before the pid is in it.
        let mut pid = None;
        wait_until(DEADLINE, "the task runs", || {
            pid = read_pid(&tt.dir().join(format!("pid-{id}")));
            task(&redis, id)["status"] == "running" && pid.is_some()
        });
        // Its process group is on record while it runs, for recovery.
        let pid = pid.unwrap_or_default();
        wait_until(DEADLINE, "the pgid is recorded", || {
            redis.hgetall("tt:t:agent:dev-1").get("command_pgid") == Some(&pid.to_string())
        });
        tt.write(format!("go-{id}"), "");
        wait_until(DEADLINE, "the task completes", || {
            task(&redis, id)["status"] == "completed"
        });
    }
    for id in ["a", "b", "c"] {
        let t = task(&redis, id);
        let log = tt.dir().join(format!(".tt/logs/{id}/1.log"));
        assert_eq!(Path::new(&t["log"]), log);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.starts_with(&format!(
                "[tt] task `{id}` attempt 1 on worker `dev-1`: running `sh`"
            )) && text.contains(&format!("\nout-{id}\n[tt] exited with code 0\n")),
            "{text}"
        );
        // The output is the log's tail: here, all of it.
        assert_eq!(t["output"], text);
    }
    assert!(
        !redis
            .hgetall("tt:t:agent:dev-1")
            .contains_key("command_pgid")
    );
    assert_eq!(events_of(&redis, "started").len(), 3);
    assert!(list(&redis, "tt:t:claimed:dev-1").is_empty());
    redis.cmd(&["LPUSH", "tt:t:control:dev-1", r#"{"kind":"shutdown"}"#]);
    assert_eq!(worker.wait(), 0, "{}", worker.output());
}

/// `dev-1`'s report that attempt 1 of `build` exited 0.
fn build_succeeded(raw: &str) -> tinytown::store::Report<'_> {
    tinytown::store::Report {
        worker: "dev-1",
        raw,
        task: "build",
        attempt: 1,
        exit_code: Some(0),
        error: None,
        output: "",
        log: "/nowhere",
        retries: 0,
        backoff: Duration::from_secs(1),
        requeue: false,
        facts: None,
    }
}
