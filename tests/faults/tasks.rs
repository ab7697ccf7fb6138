//! Tasks that fail: retries and their backoff, what a failure does to
//! dependants and groups, and the audit trail it leaves.

use std::time::{Duration, Instant};

use crate::support::Scenario;

#[test]
fn a_task_that_fails_its_retries_blocks_its_dependants_until_it_is_retried() {
    let town = Scenario::new()
        .plan(
            r#"[town]
name = "f"
[meta]
default_agent = "w"
[[tasks]]
id = "schema"
[[tasks]]
id = "api"
depends_on = ["schema"]
"#,
        )
        .agent(
            "w",
            r#"command = ["sh", "-c", "echo \"$TT_TASK_ID $TT_ATTEMPT\" >> runs.log; test \"$TT_TASK_ID\" != schema || test -e fixed"]
retries = 2"#,
        )
        .build();
    let out = town.tt(["run", "--until-done"]).code(1);
    assert!(out.stdout.contains("failed: schema"), "{out}");
    assert!(out.stdout.contains("api — blocked: schema failed"), "{out}");
    let runs = town.read("runs.log");
    assert_eq!(
        runs, "schema 1\nschema 2\nschema 3\n",
        "1 attempt + 2 retries"
    );
    // Retries waited for their backoff.
    let evs = town.events();
    assert_eq!(
        evs.iter().filter(|e| e["kind"] == "retried").count(),
        2,
        "{evs:?}"
    );
    town.tt(["task", "api"])
        .success()
        .stdout_contains("blocked: schema failed");
    // Fix it and retry: everything completes.
    town.write("fixed", "");
    town.tt(["retry", "schema"]).success();
    let out = town.tt(["run", "--until-done"]).success();
    assert!(out.stdout.contains("2 completed, 0 failed"), "{out}");
}

#[test]
fn a_task_s_own_retries_and_timeout_override_its_agent_s() {
    let town = Scenario::new()
        .plan(
            r#"[town]
name = "o"
[[tasks]]
id = "flaky"
agent = "w"
retries = 1
[[tasks]]
id = "slow"
agent = "w"
timeout = "1s"
"#,
        )
        .agent(
            "w",
            r#"command = ["sh", "-c", "echo $TT_TASK_ID >> runs.log; if [ $TT_TASK_ID = slow ]; then sleep 30; else exit 1; fi"]
retries = 0
timeout = "10m""#,
        )
        .build();
    let started = Instant::now();
    town.tt(["run", "--until-done"]).code(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 1 s timeout applied, not 10m"
    );
    assert_eq!(
        town.field("flaky", "attempt"),
        "2",
        "one retry from the task"
    );
    assert_eq!(town.status("slow"), "failed");
    assert!(
        town.field("slow", "error").contains("timed out"),
        "{}",
        town.field("slow", "error")
    );
}

#[test]
fn on_child_failure_fail_cancels_siblings_and_continue_runs_the_join_step() {
    let town = Scenario::new()
        .plan(
            r#"[town]
name = "p"
[meta]
default_agent = "w"
[[tasks]]
id = "strict"
on_child_failure = "fail"
agent = "j"
[[tasks]]
id = "bad1"
parent = "strict"
[[tasks]]
id = "later"
parent = "strict"
depends_on = ["bad1"]
[[tasks]]
id = "lenient"
on_child_failure = "continue"
agent = "j"
[[tasks]]
id = "bad2"
parent = "lenient"
[[tasks]]
id = "fine"
parent = "lenient"
"#,
        )
        .agent(
            "w",
            r#"command = ["sh", "-c", "echo $TT_TASK_ID >> ran.log; test $TT_TASK_ID != bad1 && test $TT_TASK_ID != bad2"]"#,
        )
        .agent("j", r#"command = ["sh", "-c", "echo $TT_TASK_ID >> ran.log"]"#)
        .build();
    town.tt(["run", "--until-done"]).code(1);
    assert_eq!(town.status("later"), "cancelled");
    assert_eq!(town.status("strict"), "pending", "join step never ran");
    assert_eq!(town.status("lenient"), "completed", "join step ran");
    let ran = town.read("ran.log");
    assert!(
        ran.contains("lenient") && !ran.contains("strict") && !ran.contains("later"),
        "{ran}"
    );
}

#[test]
fn history_export_and_task_attempts_make_an_audit_trail() {
    let town = Scenario::new()
        .plan("[town]\nname = \"a\"\n[[tasks]]\nid = \"job\"\nagent = \"w\"\n")
        .agent(
            "w",
            "command = [\"sh\", \"-c\", \"test -e ok-$TT_ATTEMPT\"]\nretries = 1",
        )
        .file("ok-2", "")
        .build();
    town.tt(["run", "--until-done"]).success();
    let out = town.tt(["task", "job"]).success();
    assert!(
        out.stdout.contains("#1") && out.stdout.contains("retried"),
        "{out}"
    );
    assert!(
        out.stdout.contains("#2") && out.stdout.contains("completed"),
        "{out}"
    );
    assert!(out.stdout.contains(".tt/logs/job/2.log"), "{out}");
    let json = town.tt(["task", "job", "--json"]).success().stdout;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["attempts"][0]["exit_code"], "1");
    assert_eq!(v["attempts"][1]["outcome"], "completed");
    town.tt(["history", "--export", "audit.jsonl"]).success();
    let audit = town.read("audit.jsonl");
    let kinds: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for k in ["synced", "dispatched", "started", "retried", "completed"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    assert!(
        kinds.iter().position(|k| k == "retried") < kinds.iter().position(|k| k == "completed")
    );
}
