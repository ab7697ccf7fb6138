//! Stopping a running attempt — by `tt cancel`, by an edit of its status
//! in the file — and what may start while it stops.

use crate::support::{Scenario, pid_running};

#[test]
fn cancel_then_retry_never_overlaps_the_stopping_attempt() {
    let town = Scenario::new()
        .plan("[town]\nname = \"c\"\n[[tasks]]\nid = \"job\"\nagent = \"w\"\n")
        // The command ignores SIGTERM for a while: stopping it takes time.
        .agent(
            "w",
            r#"command = ["sh", "-c", "trap 'sleep 1; exit 1' TERM; echo \"start $TT_ATTEMPT\" >> runs.log; while [ ! -e go ]; do sleep 0.05; done; echo \"end $TT_ATTEMPT\" >> runs.log"]
count = 2"#,
        )
        .build();
    let _run = town.start(&["run"]);
    town.wait_status("job", "running");
    town.tt(["cancel", "job"]).success();
    town.tt(["retry", "job"]).success();
    town.wait_until("attempt 2 runs", || {
        town.field("job", "attempt") == "2" && town.status("job") == "running"
    });
    // Attempt 2 started only after attempt 1's agent reported it stopped.
    let evs = town.events();
    let ended_1 = evs
        .iter()
        .position(|e| e["task"] == "job" && e["attempt"] == "1" && e["kind"] == "rejected");
    let started_2 = evs
        .iter()
        .position(|e| e["task"] == "job" && e["attempt"] == "2" && e["kind"] == "started");
    assert!(ended_1.is_some() && ended_1 < started_2, "{evs:?}");
    town.write("go", "");
    town.wait_status("job", "completed");
}

#[test]
fn a_file_status_edit_stops_the_running_task() {
    let plan = r#"[town]
name = "s"
[agents.w]
command = ["sh", "-c", "echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done"]
[[tasks]]
id = "job"
agent = "w"
"#;
    let town = Scenario::new().plan(plan).build();
    let _run = town.start(&["run"]);
    town.wait_status("job", "running");
    let pid = town.wait_pid("pid");
    town.write("tasks.toml", format!("{plan}status = \"completed\"\n"));
    town.wait_status("job", "completed");
    town.wait_until("its process is stopped", || !pid_running(pid));
}
