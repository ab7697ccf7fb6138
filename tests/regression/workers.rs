//! Regressions in what a worker reads and holds.

use std::time::Duration;

use crate::support::{RedisServer, Running, Tt, key, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

/// Agent `w` and tasks with mistakes only a load of every task sees: a
/// duplicate id, a missing parent, a bad status.
const BAD_TASKS: &str = r#"[town]
name = "wk"
[agents.w]
command = ["true"]

[[tasks]]
id = "a"
parent = "nowhere"
[[tasks]]
id = "a"
status = "bogus"
"#;

#[test]
fn a_worker_does_not_load_every_task_of_the_plan() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", BAD_TASKS).redis(&redis);
    // The whole plan is invalid, as `tt plan` says…
    tt.run_with(["plan"])
        .code(2)
        .stderr_contains("duplicate task id `a`");
    // …yet a worker reads only its tables, and starts.
    let mut agent = Running::start(&tt, &["agent", "w", "--id", "w-1"]);
    wait_until(DEADLINE, "the worker registers", || {
        redis.keys(&key("wk", "alive:w-1")).len() == 1 || agent.output().contains("tt::")
    });
    assert!(
        redis.keys(&key("wk", "alive:w-1")).len() == 1,
        "{}",
        agent.output()
    );
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(), 0, "{}", agent.output());
}

#[test]
fn a_bad_agent_table_still_stops_a_worker_with_its_line() {
    let redis = RedisServer::start();
    let plan = BAD_TASKS.replace("command = [\"true\"]", "cli = \"shel\"");
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["agent", "w", "--id", "w-1"])
        .code(2)
        .stderr_contains("unknown agent cli `shel`")
        .stderr_contains("tasks.toml:4:")
        .stderr_lacks("duplicate task id");
}
