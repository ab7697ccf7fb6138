//! Regressions in how `tt run` tells what happens to it.

use crate::support::{RedisServer, Running, Tt};

/// One task for an agent that `--no-agents` leaves unstarted: what is
/// dispatched stays queued, and the run goes on.
const PLAN: &str = r#"
[town]
name = "app"
[meta]
default_agent = "dev"
[agents.dev]
command = ["true"]
[[tasks]]
id = "a"
"#;

#[test]
fn redis_trouble_is_reported_as_such_and_the_run_follows_events_again_after_it() {
    let mut redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    run.wait_output("dispatched a to dev");
    redis.kill();
    run.wait_output("Redis trouble: reading events failed, retrying:");
    let out = run.output();
    assert!(
        !out.contains("agent events") && !out.contains("agent redis"),
        "Redis trouble was reported as an agent's:\n{out}"
    );
    redis.start_again();
    // An empty server: the runner pushes the plan again.
    run.wait_output("reloaded tasks.toml: +1");
    // The events reader connects again: what happens now is reported.
    tt.run_with(["cancel", "a"]).success();
    run.wait_output("cancelled a");
}
