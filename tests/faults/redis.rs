//! A Redis that goes away: a private server killed and restarted, the
//! embedded one killed with `kill -9` or stopped with `tt down`.

use std::time::Duration;

use crate::support::{RUN_DEADLINE, Scenario, Tt, pid_running, wait_until};

#[test]
fn the_runner_survives_redis_being_killed_and_restarted() {
    let mut town = Scenario::new()
        .plan(
            "[town]\nname = \"f\"\n[[tasks]]\nid = \"a\"\nagent = \"w\"\n[[tasks]]\nid = \"b\"\nagent = \"w\"\ndepends_on = [\"a\"]\n",
        )
        .agent(
            "w",
            r#"command = ["sh", "-c", "while [ ! -e \"go-$TT_TASK_ID\" ]; do sleep 0.05; done"]"#,
        )
        .redis_args(&["--appendonly", "yes", "--appendfsync", "always"])
        .build();
    let mut run = town.start(&["run", "--until-done"]);
    town.wait_status("a", "running");
    town.redis_mut().kill();
    std::thread::sleep(Duration::from_millis(300)); // an outage, not a condition
    town.redis_mut().start_again();
    assert_eq!(town.status("a"), "running", "state survived (AOF)");
    town.write("go-a", "");
    town.write("go-b", "");
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    assert_eq!(town.status("b"), "completed", "{out}");
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
    wait_until(RUN_DEADLINE, "the server is gone", || !pid_running(pid));
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
