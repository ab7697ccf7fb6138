//! An attempt that outlives its timeout.

use std::time::{Duration, Instant};

use super::{SLEEPER, agent_once, dispatch, town};
use crate::support::{pid_running, wait_until};

#[test]
fn a_timeout_kills_the_process_group_and_fails_the_attempt() {
    let town = town();
    dispatch(&town, "build", 1);
    let started = Instant::now();
    let out = agent_once(
        &town,
        &["--timeout", "1s", "--command", "sh", "-c", SLEEPER],
    )
    .success();
    assert!(started.elapsed() < Duration::from_secs(20), "{out}");
    let t = town.task("build");
    assert_eq!(t["status"], "failed", "{t:?}");
    assert_eq!(t["error"], "timed out after 1s");
    assert!(!t.contains_key("exit_code"));
    let grandchild: i32 = town.read("grandchild.pid").trim().parse().unwrap();
    wait_until(Duration::from_secs(10), "the grandchild is gone", || {
        !pid_running(grandchild)
    });
    let log = town.read(".tt/logs/build/1.log");
    assert!(log.contains("[tt] timed out after 1s"), "{log}");
}
