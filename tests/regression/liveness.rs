//! Regressions in workers, heartbeats, fencing and recovery.

use std::time::Duration;

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, key, pid_running, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// Whether `pid` is a zombie: exited, not yet reaped by its parent.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Cuts worker `w-1` off from Redis and waits until its command `pid` is
/// gone, then checks that its heartbeat key still holds: no recovery can
/// have requeued the task, so no second attempt can have started while
/// this one ran.
fn cut_off_and_expect_fenced(proxy: &crate::support::proxy::Proxy, redis: &RedisServer, pid: i32) {
    proxy.cut();
    wait_until(
        Duration::from_secs(30),
        "attempt 1's command is stopped",
        || !pid_running(pid),
    );
    assert!(
        alive_key(redis, "w-1"),
        "the command outlived the heartbeat of its worker"
    );
}

#[test]
fn a_zombie_holding_the_lease_does_not_block_the_next_run() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"z\"\n[[tasks]]\nid = \"a\"\nstatus = \"completed\"\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    // A `tt run` of our own, so that once killed it stays a zombie until
    // this test reaps it.
    let mut first = tt
        .command()
        .args(["run", "--no-agents"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    wait_until(DEADLINE, "the first run holds the lease", || {
        redis.keys(&key("z", "runner")).len() == 1
    });
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    wait_until(DEADLINE, "the first run is a zombie", || zombie(pid));
    assert_eq!(
        redis.keys(&key("z", "runner")).len(),
        1,
        "the lease is left behind"
    );
    let out = tt.run_with(["run", "--until-done", "--no-agents"]);
    assert!(zombie(pid), "still unreaped while the next run started");
    first.wait().unwrap();
    out.success();
}

/// `[town] name = "p"`, an agent `w` whose command writes its pid and waits
/// for the file `go`, and one task `job` for it.
const WAITING_JOB: &str = r#"[town]
name = "p"
[agents.w]
command = ["sh", "-c", "echo $$ > pid-$TT_ATTEMPT; while [ ! -e go ]; do sleep 0.05; done"]
[[tasks]]
id = "job"
agent = "w"
"#;

#[test]
fn a_clean_stop_leaves_no_process_group_on_record() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", WAITING_JOB).redis(&redis);
    let _runner = Running::start(&tt, &["run", "--no-agents"]);
    let agent = Running::start(&tt, &["agent", "w", "--id", "w-1"]);
    wait_until(DEADLINE, "the command's group is on record", || {
        tt.dir().join("pid-1").exists()
            && redis
                .hgetall(&key("p", "agent:w-1"))
                .contains_key("command_pgid")
    });
    assert_eq!(agent.stop(), 0);
    let record = redis.hgetall(&key("p", "agent:w-1"));
    assert_eq!(record["state"], "stopped", "{record:?}");
    assert!(
        !record.contains_key("command_pgid") && !record.contains_key("command_start"),
        "a stopped command's group stays on record: {record:?}"
    );
}

/// A process in a process group of its own, like a command tinytown starts,
/// but not one: what a recorded group id may name after pid reuse.
struct Bystander(std::process::Child);

impl Bystander {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let child = crate::support::command("sleep")
            .arg("120")
            .process_group(0)
            .spawn()
            .unwrap();
        Bystander(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn recovery_never_kills_a_process_group_that_is_not_the_recorded_command() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", WAITING_JOB).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    let mut bystander = Bystander::start();
    let host = tinytown::os::hostname();
    for recoverer in ["tt recover", "a new worker with the id"] {
        // Worker `w-1` on this host died while running `job`; the group id it
        // recorded now belongs to an unrelated process (another start time).
        redis.cmd(&[
            "HSET",
            &key("p", "task:job"),
            "status",
            "running",
            "attempt",
            "1",
        ]);
        redis.cmd(&[
            "HSET",
            &key("p", "task:job"),
            "worker",
            "w-1",
            "assigned_to",
            "w",
        ]);
        redis.cmd(&["DEL", &key("p", "claimed:w-1"), &key("p", "agent:w-1")]);
        redis.cmd(&[
            "RPUSH",
            &key("p", "claimed:w-1"),
            r#"{"kind":"task","task":"job","attempt":1}"#,
        ]);
        let pgid = bystander.pid().to_string();
        redis.cmd(&[
            "HSET",
            &key("p", "agent:w-1"),
            "id",
            "w-1",
            "name",
            "w",
            "host",
            &host,
        ]);
        redis.cmd(&[
            "HSET",
            &key("p", "agent:w-1"),
            "state",
            "working",
            "task",
            "job",
            "attempt",
            "1",
        ]);
        redis.cmd(&[
            "HSET",
            &key("p", "agent:w-1"),
            "command_pgid",
            &pgid,
            "command_start",
            "1",
        ]);
        redis.cmd(&["SADD", &key("p", "agents"), "w-1"]);
        if recoverer == "tt recover" {
            tt.run_with(["recover"])
                .success()
                .stdout_contains("1 running task(s) requeued")
                .stdout_lacks("stopped its orphaned command");
        } else {
            let agent = Running::start(&tt, &["agent", "w", "--id", "w-1"]);
            agent.wait_output("ready in town");
            agent.stop();
        }
        assert_eq!(
            redis.task_field("p", "job", "status"),
            "pending",
            "{recoverer}"
        );
        assert!(
            bystander.alive(),
            "{recoverer} killed an unrelated process group"
        );
    }
}

fn alive_key(redis: &RedisServer, worker: &str) -> bool {
    !redis.keys(&key("p", &format!("alive:{worker}"))).is_empty()
}

#[test]
fn a_worker_cut_off_from_redis_stops_its_command_before_its_heartbeat_expires() {
    let redis = RedisServer::start();
    let proxy = crate::support::proxy::Proxy::start(redis.socket());
    let tt = Tt::new().file("tasks.toml", WAITING_JOB).redis(&redis);
    let _runner = Running::start_env(&tt, &["run", "--no-agents"], &[], "run.out");
    let url = proxy.url();
    let _agent = Running::start_env(
        &tt,
        &["agent", "w", "--id", "w-1"],
        &[("REDIS_URL", &url)],
        "agent.out",
    );
    let pid = tt.wait_pid("pid-1");
    wait_until(DEADLINE, "attempt 1 runs", || {
        redis.task_field("p", "job", "status") == "running"
    });
    // The worker's host loses Redis; everyone else still reaches it.
    cut_off_and_expect_fenced(&proxy, &redis, pid);
    let log = tt.read(".tt/logs/job/1.log");
    assert!(log.contains("no heartbeat renewed for"), "{log}");
}

#[test]
fn a_frozen_worker_stops_its_command_as_soon_as_it_is_continued() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", WAITING_JOB).redis(&redis);
    let runner = Running::start_env(&tt, &["run", "--no-agents"], &[], "run.out");
    let _agent = Running::start_env(&tt, &["agent", "w", "--id", "w-1"], &[], "agent.out");
    let pid = tt.wait_pid("pid-1");
    wait_until(DEADLINE, "attempt 1 runs", || {
        redis.task_field("p", "job", "status") == "running"
    });
    // No runner: nothing recovers the task, so on waking the worker finds
    // its heartbeat expired but its task untouched — it must still stop.
    runner.stop();
    let worker: i32 = redis.hgetall(&key("p", "agent:w-1"))["pid"]
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the worker this test started.
    unsafe {
        libc::kill(worker, libc::SIGSTOP);
    }
    wait_until(Duration::from_secs(30), "the heartbeat expires", || {
        !alive_key(&redis, "w-1")
    });
    assert!(
        pid_running(pid),
        "the command runs on while its worker is frozen"
    );
    // A runner that prints what happens next: it recovers nobody for a
    // heartbeat TTL from its start, so the requeue is the worker's own.
    let watcher = Running::start_env(&tt, &["run", "--no-agents"], &[], "run2.out");
    watcher.wait_output("town `p`");
    tt.run_with(["send", "w-1", "following", "--create"])
        .success();
    watcher.wait_output("message for w-1: following");
    // SAFETY: as above.
    unsafe {
        libc::kill(worker, libc::SIGCONT);
    }
    wait_until(
        Duration::from_secs(20),
        "attempt 1's command is stopped",
        || !pid_running(pid),
    );
    // The attempt is requeued, a retry not used up (the agent has none):
    // it runs again as attempt 2. The runner says why, not that the
    // worker died.
    watcher.wait_output("requeued job (");
    let out = watcher.output();
    assert!(
        out.contains(
            "requeued job (attempt 1 stopped by its worker, which could not renew its heartbeat"
        ),
        "{out}"
    );
    wait_until(DEADLINE, "the requeued task runs again", || {
        redis.task_field("p", "job", "attempt") == "2"
    });
}

#[test]
fn an_outage_longer_than_the_heartbeat_ttl_does_not_rerun_finished_work() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let plan = r#"[town]
name = "p"
[agents.w]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.05; done; echo \"$TT_TASK_ID $TT_ATTEMPT\" >> runs.log"]
count = 2
[[tasks]]
id = "a"
agent = "w"
[[tasks]]
id = "b"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    wait_until(DEADLINE, "both tasks run", || {
        ["a", "b"]
            .iter()
            .all(|t| redis.task_field("p", t, "status") == "running")
    });
    redis.kill();
    // Both commands finish while Redis is away: their reports wait.
    tt.write("go", "");
    wait_until(DEADLINE, "both commands finished", || {
        tt.dir().join("runs.log").exists() && tt.read("runs.log").lines().count() == 2
    });
    // An outage, not a condition: longer than the heartbeat TTL (6 s), so
    // every heartbeat has expired when Redis is back.
    std::thread::sleep(Duration::from_secs(8));
    redis.start_again();
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    let runs = tt.read("runs.log");
    assert_eq!(
        runs.lines().count(),
        2,
        "finished work ran again: {runs}\n{out}"
    );
    for t in ["a", "b"] {
        assert_eq!(redis.task_field("p", t, "status"), "completed", "{out}");
        assert_eq!(redis.task_field("p", t, "attempt"), "1", "{out}");
    }
}

#[test]
fn a_worker_whose_runner_and_redis_are_gone_gives_up_and_exits() {
    let mut redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", WAITING_JOB).redis(&redis);
    let run = Running::start(&tt, &["run"]);
    tt.wait_pid("pid-1");
    wait_until(DEADLINE, "attempt 1 runs", || {
        redis.task_field("p", "job", "status") == "running"
    });
    let worker: i32 = redis.hgetall(&key("p", "agent:w-1"))["pid"]
        .parse()
        .unwrap();
    run.kill9();
    redis.kill();
    // The command ends; its report cannot be delivered, and nobody
    // supervises the worker any more.
    tt.write("go", "");
    let started = std::time::Instant::now();
    wait_until(Duration::from_secs(90), "the orphaned worker exits", || {
        !pid_running(worker)
    });
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "it gave up before trying for a while"
    );
    let journal = tt.read(".tt/logs/agents/w-1.log");
    assert!(
        journal.contains("gave up reporting `job` attempt 1"),
        "{journal}"
    );
}

#[test]
fn a_worker_that_cannot_start_is_not_restarted_in_a_loop_and_until_done_names_it() {
    let redis = RedisServer::start();
    // The task removes its agent's working directory and kills its worker:
    // the replica started again finds no `workdir` (it passed at load).
    let plan = r#"[town]
name = "p"
[agents.w]
command = ["sh", "-c", "cd .. && rm -rf wd && kill -9 $PPID"]
workdir = "wd"
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new()
        .file("tasks.toml", plan)
        .file("wd/keep", "")
        .redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("agent w-1 cannot start:") && out.contains("wd"),
        "why is printed: {out}"
    );
    assert!(
        out.contains("job — agent `w` cannot start:"),
        "the summary names it: {out}"
    );
    let starts = out.matches("agent w-1 started").count();
    assert!(starts <= 3, "restarted {starts} times: {out}");
}

#[test]
fn a_sigterm_right_after_the_start_line_stops_the_run_cleanly() {
    let redis = RedisServer::start();
    // Several replicas: starting them is what follows the start line.
    let plan = r#"[town]
name = "t"
[agents.w]
command = ["true"]
count = 4
[[tasks]]
id = "a"
status = "completed"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let mut run = Running::start(&tt, &["run"]);
    let started = std::time::Instant::now();
    // Polled without the usual 20 ms pause: the signal must land as close
    // behind the line as this test can put it.
    while !run.output().contains("town `t`") {
        assert!(
            started.elapsed() < DEADLINE,
            "no start line: {}",
            run.output()
        );
        std::thread::yield_now();
    }
    run.signal(libc::SIGTERM);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "killed by the signal instead of stopping: {out}");
    assert!(
        redis.keys(&key("t", "runner")).is_empty(),
        "the lease is released: {out}"
    );
    let left = crate::support::processes_in(tt.dir());
    assert!(left.is_empty(), "its agents are stopped: {left:?}");
}

#[test]
fn a_worker_started_from_inside_a_task_does_not_think_its_runner_is_gone() {
    let redis = RedisServer::start();
    // `outer` runs a `tt agent` of its own, which must serve `inner`: it
    // was started by a task, not by the `tt run` whose pid the task's
    // worker was given.
    let plan = format!(
        r#"[town]
name = "p"
[agents.w]
command = ["sh", "-c", "{tt} agent v --once --command sh -c 'echo ran > inner-ran'"]
[[tasks]]
id = "outer"
agent = "w"
[[tasks]]
id = "inner"
agent = "v"
"#,
        tt = env!("CARGO_BIN_EXE_tt")
    );
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let _run = Running::start(&tt, &["run"]);
    wait_until(Duration::from_secs(30), "the inner task completes", || {
        redis.task_field("p", "inner", "status") == "completed"
    });
    assert!(tt.dir().join("inner-ran").exists());
}

#[test]
fn a_command_stopped_for_its_timeout_is_still_gone_before_the_heartbeat_expires() {
    let redis = RedisServer::start();
    let proxy = crate::support::proxy::Proxy::start(redis.socket());
    // The command ignores SIGTERM, so only SIGKILL ends it; its timeout
    // fires after the cut but before the fence would.
    let plan = r#"[town]
name = "p"
[agents.w]
command = ["sh", "-c", "trap '' TERM; echo $$ > pid-$TT_ATTEMPT; while [ ! -e go ]; do sleep 0.05; done"]
timeout = "2s"
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let _runner = Running::start_env(&tt, &["run", "--no-agents"], &[], "run.out");
    let url = proxy.url();
    let _agent = Running::start_env(
        &tt,
        &["agent", "w", "--id", "w-1"],
        &[("REDIS_URL", &url)],
        "agent.out",
    );
    let pid = tt.wait_pid("pid-1");
    cut_off_and_expect_fenced(&proxy, &redis, pid);
    let log = tt.read(".tt/logs/job/1.log");
    assert!(log.contains("timed out after"), "{log}");
}

/// Members of the town's `agents` set.
fn agents_set(redis: &RedisServer) -> Vec<String> {
    let mut conn = redis.conn();
    redis::cmd("SMEMBERS")
        .arg(key("p", "agents"))
        .query(&mut conn)
        .unwrap_or_default()
}

#[test]
fn a_task_running_when_redis_restarts_empty_is_not_run_twice_at_once() {
    let mut redis = RedisServer::start();
    // Each start first checks that no earlier start of `job` still runs.
    let plan = r#"[town]
name = "p"
[agents.w]
command = ["sh", "-c", "for p in $(cat pids 2>/dev/null); do kill -0 $p 2>/dev/null && echo \"$p still runs\" >> overlap; done; echo $$ >> pids; while [ ! -e go ]; do sleep 0.05; done"]
count = 2
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    let pids = tt.dir().join("pids");
    let starts = |n: usize| {
        let pids = pids.clone();
        move || std::fs::read_to_string(&pids).is_ok_and(|p| p.lines().count() >= n)
    };
    wait_until(DEADLINE, "the job starts", starts(1));
    let first: i32 = tt.read("pids").trim().parse().unwrap();
    let worker = redis.task_field("p", "job", "worker");
    // No persistence: the server comes back with nothing.
    redis.kill();
    redis.start_again();
    wait_until(DEADLINE, "the restored job starts again", starts(2));
    assert!(!pid_running(first), "the first start still runs");
    wait_until(
        DEADLINE,
        "the worker that lost its records registers again",
        || agents_set(&redis).contains(&worker),
    );
    tt.write("go", "");
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    assert!(
        !tt.dir().join("overlap").exists(),
        "two starts overlapped: {}\n{out}",
        tt.read("overlap")
    );
}

#[test]
fn a_task_that_kills_its_own_worker_is_not_requeued_forever() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "p"
[agents.w]
command = ["sh", "-c", "echo $TT_ATTEMPT >> attempts; kill -9 $PPID"]
[[tasks]]
id = "job"
agent = "w"
"#;
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 1, "{out}");
    assert_eq!(redis.task_field("p", "job", "status"), "failed", "{out}");
    let reason = redis.task_field("p", "job", "reason");
    assert!(reason.contains("requeued 3 times in a row"), "{reason}");
    assert_eq!(tt.read("attempts").lines().count(), 3, "{out}");
}

#[test]
fn a_runner_that_was_frozen_waits_a_heartbeat_ttl_before_recovering() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", WAITING_JOB).redis(&redis);
    let runner = Running::start_env(&tt, &["run", "--no-agents"], &[], "run.out");
    let _agent = Running::start_env(&tt, &["agent", "w", "--id", "w-1"], &[], "agent.out");
    tt.wait_pid("pid-1");
    wait_until(DEADLINE, "attempt 1 runs", || {
        redis.task_field("p", "job", "status") == "running"
    });
    let worker: i32 = redis.hgetall(&key("p", "agent:w-1"))["pid"]
        .parse()
        .unwrap();
    // Both freeze, as on a suspended laptop; the heartbeat expires meanwhile.
    runner.signal(libc::SIGSTOP);
    // SAFETY: kill(2) on the worker this test started.
    unsafe {
        libc::kill(worker, libc::SIGSTOP);
    }
    wait_until(Duration::from_secs(30), "the heartbeat expires", || {
        !alive_key(&redis, "w-1")
    });
    // The runner wakes first. A gap in its contact with Redis proves
    // nothing about the worker, which gets a heartbeat TTL to renew.
    runner.signal(libc::SIGCONT);
    let woke = std::time::Instant::now();
    wait_until(DEADLINE, "the still frozen worker is recovered", || {
        redis
            .hgetall(&key("p", "agent:w-1"))
            .get("state")
            .map(String::as_str)
            == Some("dead")
    });
    let waited = woke.elapsed();
    // SAFETY: as above.
    unsafe {
        libc::kill(worker, libc::SIGCONT);
    }
    assert!(
        waited >= Duration::from_secs(5),
        "recovered {waited:?} after waking, before the worker could renew"
    );
}
