//! The runner itself: one per town, and its own inbox.

use super::{gated_plan, task};
use crate::support::{Scenario, key};

#[test]
fn a_second_runner_on_the_same_town_is_refused() {
    let town = Scenario::new().plan(gated_plan(&task("a"))).build();
    let run = town.start(&["run", "--no-agents"]);
    run.wait_output("town `live`");
    town.tt(["run", "--no-agents"])
        .code(3)
        .stderr_contains("town `live` already has a runner")
        .stderr_contains("--wait");
    assert_eq!(run.stop(), 0);
    // Its lease is released on a clean stop: a new runner starts at once.
    let again = town.start(&["run", "--no-agents"]);
    again.wait_output("town `live`");
    assert_eq!(again.stop(), 0);
}

#[test]
fn supervisor_messages_show_in_the_runner_output() {
    let town = Scenario::new().plan(gated_plan(&task("a"))).build();
    let run = town.start(&["run", "--no-agents"]);
    run.wait_output("town `live`");
    town.redis_cmd(&[
        "RPUSH",
        &key("live", "inbox:supervisor"),
        r#"{"kind":"message","from":"ann","body":"hello runner"}"#,
    ]);
    town.redis_cmd(&[
        "XADD",
        &key("live", "events"),
        "*",
        "kind",
        "message",
        "agent",
        "supervisor",
        "task",
        "",
    ]);
    run.wait_output("message to supervisor from ann: hello runner");
    run.stop();
}
