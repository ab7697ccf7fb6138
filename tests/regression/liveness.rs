//! Regressions in workers, heartbeats, fencing and recovery.

use std::time::Duration;

use crate::support::{RedisServer, Tt, wait_until};

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
        redis.keys("tt:z:runner").len() == 1
    });
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    wait_until(DEADLINE, "the first run is a zombie", || zombie(pid));
    assert_eq!(
        redis.keys("tt:z:runner").len(),
        1,
        "the lease is left behind"
    );
    let out = tt.run_with(["run", "--until-done", "--no-agents"]);
    assert!(zombie(pid), "still unreaped while the next run started");
    first.wait().unwrap();
    out.success();
}
