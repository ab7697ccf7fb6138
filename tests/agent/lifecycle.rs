//! A worker's life around its tasks: registering its id, running detached
//! (`tt spawn`), surviving a dropped connection.

use super::{agent_once, dispatch, shut_down, town, worker};
use crate::support::pid_running;

#[test]
fn the_id_of_a_live_worker_is_refused() {
    let town = town();
    let _first = worker(&town, &["--command", "true"]);
    town.wait_until("the first worker registers", || town.alive("dev-1"));
    agent_once(&town, &["--command", "true"])
        .code(3)
        .stderr_contains("worker id `dev-1` is in use");
}

#[test]
fn a_worker_reconnects_after_its_connections_are_dropped_and_runs_the_next_task() {
    let town = town();
    let mut worker = worker(&town, &["--command", "true"]);
    town.wait_until("the worker registers", || town.alive("dev-1"));
    // Cut every connection, including the blocked BLMOVE and BLPOP.
    town.redis_cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    dispatch(&town, "build", 1);
    town.wait_until("the task completes after reconnecting", || {
        town.status("build") == "completed"
    });
    shut_down(&town, "dev-1");
    assert_eq!(worker.wait_exit(), 0, "{}", worker.output());
}

#[test]
fn tt_spawn_starts_a_detached_worker() {
    let town = town();
    let out = town
        .tt([
            "spawn",
            "dev",
            "--json",
            "--command",
            "sh",
            "-c",
            "echo spawned-$TT_TASK_ID",
        ])
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let pid = v["pid"].as_u64().unwrap() as i32;
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(id, format!("dev-{pid}"));
    assert!(town.alive(&id), "registered before returning");
    assert!(pid_running(pid));

    dispatch(&town, "build", 1);
    town.wait_until("the spawned worker runs the task", || {
        town.status("build") == "completed"
    });
    assert!(town.field("build", "output").contains("spawned-build"));

    shut_down(&town, &id);
    town.wait_until("the spawned worker exits", || !pid_running(pid));
    assert_eq!(town.worker(&id)["state"], "stopped");
    let journal = town.read(format!(".tt/logs/agents/{id}.log"));
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
