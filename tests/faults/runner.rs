//! A runner killed or stopped in the middle of a plan.

use crate::support::{Scenario, Town, key};

#[test]
fn kill_9_of_the_runner_mid_plan_loses_nothing_and_runs_nothing_twice_at_once() {
    let mut plan = String::from("[town]\nname = \"k\"\n[meta]\ndefault_agent = \"w\"\n");
    for i in 0..50 {
        plan.push_str(&format!("[[tasks]]\nid = \"t{i}\"\n"));
        if i >= 10 {
            plan.push_str(&format!("depends_on = [\"t{}\"]\n", i - 10));
        }
    }
    let town = Scenario::new()
        .plan(plan)
        .agent("w", "command = [\"sleep\", \"0.2\"]\ncount = 3")
        .build();
    let first = town.start(&["run"]);
    let completed = |town: &Town| town.events_of("completed").len();
    town.wait_until("ten tasks completed", || completed(&town) >= 10);
    first.kill9(); // no cleanup: lease and agents left behind
    let out = town.tt(["run", "--until-done"]).success();
    assert!(out.stdout.contains("50 completed, 0 failed"), "{out}");

    let evs = town.events();
    for i in 0..50 {
        let id = format!("t{i}");
        let mine: Vec<_> = evs
            .iter()
            .filter(|e| {
                e["task"] == id
                    && matches!(
                        e["kind"].as_str(),
                        "started" | "completed" | "failed" | "retried" | "requeued" | "rejected"
                    )
            })
            .collect();
        assert_eq!(
            mine.iter().filter(|e| e["kind"] == "completed").count(),
            1,
            "{id} completed once: {mine:?}"
        );
        // Attempts never overlap: every start is closed by an end of the
        // same attempt before any attempt starts again.
        let mut open: Option<&str> = None;
        for e in &mine {
            match e["kind"].as_str() {
                "started" => {
                    assert!(
                        open.is_none(),
                        "{id} attempt {} started while attempt {open:?} ran: {mine:?}",
                        e["attempt"]
                    );
                    open = Some(&e["attempt"]);
                }
                _ if open == Some(e["attempt"].as_str()) => open = None,
                // The end of another attempt (a late report, rejected)
                // closes nothing that runs.
                _ => {}
            }
        }
    }
}

#[test]
fn sigterm_stops_the_runner_cleanly_and_the_next_run_picks_up_the_work() {
    let town = Scenario::new()
        .plan("[town]\nname = \"g\"\n[[tasks]]\nid = \"job\"\nagent = \"w\"\n")
        .agent(
            "w",
            r#"command = ["sh", "-c", "echo \"$TT_ATTEMPT\" >> attempts.log; while [ ! -e go ]; do sleep 0.05; done"]"#,
        )
        .build();
    let run = town.start(&["run", "--grace", "5s"]);
    town.wait_status("job", "running");
    assert_eq!(run.stop(), 0);
    assert_eq!(town.worker("w-1")["state"], "stopped");
    assert!(
        town.redis().keys(&key("g", "runner")).is_empty(),
        "lease released"
    );
    // The interrupted attempt is recovered by the next runner and runs again.
    town.write("go", "");
    let out = town.tt(["run", "--until-done"]).success();
    assert!(out.stdout.contains("1 completed"), "{out}");
    assert_eq!(town.field("job", "attempt"), "2");
}
