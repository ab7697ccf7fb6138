//! Workers that die, are declared dead, or only look dead.

use crate::support::{Scenario, key, pid_running};

#[test]
fn a_long_task_is_never_requeued() {
    let town = Scenario::new()
        .plan("[town]\nname = \"f\"\n[[tasks]]\nid = \"long\"\nagent = \"w\"\n")
        // 20 s: more than three heartbeat TTLs (6 s).
        .agent("w", r#"command = ["sleep", "20"]"#)
        .build();
    let out = town.tt(["run", "--until-done"]).success();
    assert!(out.stdout.contains("1 completed"), "{out}");
    assert_eq!(town.field("long", "attempt"), "1");
    let evs = town.events();
    assert!(
        !evs.iter()
            .any(|e| e["kind"] == "requeued" || e["kind"] == "agent_dead"),
        "{evs:?}"
    );
}

#[test]
fn a_killed_workers_task_is_requeued_and_completes_exactly_once() {
    let town = Scenario::new()
        .plan("[town]\nname = \"f\"\n[[tasks]]\nid = \"job\"\nagent = \"w\"\n")
        .agent(
            "w",
            r#"command = ["sh", "-c", "echo $$ > pid-$TT_ATTEMPT; while [ ! -e go ]; do sleep 0.05; done"]"#,
        )
        .build();
    let _run = town.start(&["run"]);
    // `running` is set at claim, just before the command starts: wait for
    // the command itself, so the kill below orphans it.
    town.wait_until("job's command runs", || {
        town.status("job") == "running" && town.exists("pid-1")
    });
    let worker = town.field("job", "worker");
    let pid: i32 = town.worker(&worker)["pid"].parse().unwrap();
    // SAFETY: kill(2) on the worker process the runner started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    town.wait_until("job is requeued and runs again", || {
        town.field("job", "attempt") == "2" && town.status("job") == "running"
    });
    // The first attempt's command, orphaned by the kill, was stopped before
    // the task ran again: never two copies at once.
    let first = town.wait_pid("pid-1");
    assert!(!pid_running(first), "attempt 1's command still runs");
    town.write("go", "");
    town.wait_status("job", "completed");
    let evs = town.events();
    let completed: Vec<_> = evs
        .iter()
        .filter(|e| e["kind"] == "completed" && e["task"] == "job")
        .collect();
    assert_eq!(completed.len(), 1, "{evs:?}");
    assert_eq!(
        completed[0]["attempt"], "2",
        "the second attempt is the one that counts"
    );
    assert!(
        evs.iter()
            .any(|e| e["kind"] == "requeued" && e["task"] == "job" && e["attempt"] == "1"),
        "{evs:?}"
    );
}

#[test]
fn tt_recover_requeues_a_dead_workers_task_and_never_touches_a_live_one() {
    let town = Scenario::new()
        .plan("[town]\nname = \"h\"\n[[tasks]]\nid = \"job\"\nagent = \"w\"\n")
        .pushed()
        .build();
    // A worker `w-1` that took `job` and died: no heartbeat key.
    let msg = r#"{"kind":"task","task":"job","attempt":1}"#;
    town.redis_cmd(&[
        "HSET",
        &key("h", "task:job"),
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "w-1",
        "assigned_to",
        "w",
    ]);
    town.redis_cmd(&["RPUSH", &key("h", "claimed:w-1"), msg]);
    town.redis_cmd(&[
        "HSET",
        &key("h", "agent:w-1"),
        "id",
        "w-1",
        "name",
        "w",
        "state",
        "working",
    ]);
    town.redis_cmd(&["SADD", &key("h", "agents"), "w-1"]);
    town.tt(["recover"])
        .success()
        .stdout_contains("w-1: dead — 1 running task(s) requeued");
    assert_eq!(town.status("job"), "pending");
    assert_eq!(town.worker("w-1")["state"], "dead");
    town.tt(["recover"])
        .success()
        .stdout_contains("no dead workers");
    // A live worker is never touched.
    town.redis_cmd(&[
        "HSET",
        &key("h", "task:job"),
        "status",
        "running",
        "worker",
        "w-2",
    ]);
    town.redis_cmd(&["RPUSH", &key("h", "claimed:w-2"), msg]);
    town.redis_cmd(&["SADD", &key("h", "agents"), "w-2"]);
    town.redis_cmd(&[
        "HSET",
        &key("h", "agent:w-2"),
        "id",
        "w-2",
        "name",
        "w",
        "state",
        "working",
    ]);
    town.redis_cmd(&["SET", &key("h", "alive:w-2"), "x", "PX", "60000"]);
    town.tt(["recover"])
        .success()
        .stdout_contains("no dead workers");
    assert_eq!(town.status("job"), "running");
}

#[test]
fn a_worker_declared_dead_or_replaced_while_cut_off_steps_down() {
    let town = Scenario::new()
        .plan(
            "[town]\nname = \"d\"\n[[tasks]]\nid = \"a\"\nagent = \"w\"\n[[tasks]]\nid = \"b\"\nagent = \"w\"\n",
        )
        .agent(
            "w",
            r#"command = ["sh", "-c", "echo $$ > pid-$TT_TASK_ID; while [ ! -e go ]; do sleep 0.05; done"]"#,
        )
        .build();
    for (task, how) in [("a", "replaced"), ("b", "dead")] {
        let runner = town.start(&["run", "--no-agents"]);
        let mut agent = town.start(&["agent", "w", "--id", "w-9"]);
        town.wait_status(task, "running");
        let pid = town.wait_pid(format!("pid-{task}"));
        runner.stop();
        if how == "replaced" {
            // Another process took the id while this one was cut off.
            town.redis_cmd(&["SET", &key("d", "alive:w-9"), "someone-else", "PX", "60000"]);
        } else {
            // The runner declared it dead and requeued its task.
            town.redis_cmd(&["DEL", &key("d", "alive:w-9")]);
            town.redis_cmd(&["HSET", &key("d", "agent:w-9"), "state", "dead"]);
        }
        // Not an exit 0 (what `tt kill` gets): a supervisor restarts it.
        assert_eq!(agent.wait_exit(), 1, "{how}: {}", agent.output());
        assert!(
            agent.output().contains("stepped down"),
            "{how}: {}",
            agent.output()
        );
        assert!(!pid_running(pid), "{how}: its command was stopped");
        town.redis_cmd(&["DEL", &key("d", "alive:w-9")]);
    }
}
