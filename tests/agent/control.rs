//! Stopping a worker's command: a `stop` control message, SIGTERM to the
//! worker, and the whole process group either way.

use std::path::Path;
use std::time::Duration;

use super::{SLEEPER, dispatch, message, shut_down, town, worker};
use crate::support::{key, pid_running, wait_until};

#[test]
fn a_stop_message_kills_the_whole_process_group() {
    let town = town();
    let mut worker = worker(&town, &["--command", "sh", "-c", SLEEPER]);
    dispatch(&town, "build", 1);
    let grandchild = town.wait_pid("grandchild.pid");
    let running = town.task("build");
    assert_eq!(running["status"], "running");
    let log = town.dir().join(".tt/logs/build/1.log");
    assert_eq!(
        Path::new(&running["log"]),
        log,
        "the log is known while it runs"
    );
    let agent = town.worker("dev-1");
    assert_eq!(
        (agent["state"].as_str(), agent["task"].as_str()),
        ("working", "build")
    );

    town.redis_cmd(&[
        "LPUSH",
        &key("t", "control:dev-1"),
        r#"{"kind":"stop","task":"build","attempt":1}"#,
    ]);
    town.wait_status("build", "failed");
    assert_eq!(town.field("build", "error"), "stopped on request");
    wait_until(Duration::from_secs(10), "the grandchild is gone", || {
        !pid_running(grandchild)
    });
    assert_eq!(town.worker("dev-1")["state"], "idle");

    // The worker goes on until told to shut down.
    shut_down(&town, "dev-1");
    assert_eq!(worker.wait_exit(), 0, "{}", worker.output());
    assert_eq!(town.worker("dev-1")["state"], "stopped");
}

#[test]
fn sigterm_stops_the_command_and_leaves_the_task_for_recovery() {
    let town = town();
    let mut worker = worker(&town, &["--command", "sh", "-c", SLEEPER]);
    dispatch(&town, "build", 1);
    let grandchild = town.wait_pid("grandchild.pid");

    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_exit(), 0, "{}", worker.output());
    assert!(!pid_running(grandchild), "the command's group was stopped");
    let t = town.task("build");
    assert_eq!(t["status"], "running", "left for recovery: {t:?}");
    assert_eq!(town.list("claimed:dev-1"), [message("build", 1)]);
    assert_eq!(town.worker("dev-1")["state"], "stopped");
    assert!(!town.alive("dev-1"));
    assert!(town.events_of("completed").is_empty() && town.events_of("failed").is_empty());
    assert!(
        worker.output().contains("left for recovery"),
        "{}",
        worker.output()
    );

    // The same worker id starts again before any runner recovered the
    // task: it requeues it itself (with it alive, recovery never would).
    let mut again = super::worker(&town, &["--once", "--command", "true"]);
    town.wait_status("build", "pending");
    assert!(town.list("claimed:dev-1").is_empty());
    assert_eq!(town.events_of("requeued").len(), 1);
    dispatch(&town, "build", 2);
    assert_eq!(again.wait_exit(), 0, "{}", again.output());
    assert_eq!(town.status("build"), "completed");
}
