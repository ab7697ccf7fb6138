//! One attempt from claim to report: the command's argv, environment and
//! log, tasks back to back, a program that is missing, backlog work.

use std::path::Path;

use super::{BUILD_DESCRIPTION, PLAN, agent_once, dispatch, shut_down, town, worker};
use crate::support::{Scenario, key};

#[test]
fn a_task_runs_with_its_argv_and_env_and_completes() {
    // Redis is named in the file, not in `tt`'s environment: the command's
    // `REDIS_URL` can only come from the worker.
    let town = Scenario::new()
        .plan(PLAN)
        .redis_url_in_plan()
        .pushed()
        .build();
    dispatch(&town, "build", 1);
    let out = agent_once(
        &town,
        &[
            "--command",
            "sh",
            "-c",
            r#"for a in "$@"; do printf '%s\0' "$a"; done > argv; env > env; echo done-building"#,
            "sh",
            "{id}",
            "{description}",
            "{tags}",
            "{parent}",
            "{attempt}",
        ],
    )
    .success();
    assert!(
        out.stdout
            .contains("`build` attempt 1 exited with code 0: completed"),
        "{out}"
    );

    let argv = town.read("argv");
    let args: Vec<&str> = argv.split_terminator('\0').collect();
    assert_eq!(args, ["build", BUILD_DESCRIPTION, "api,P1", "grp", "1"]);
    assert!(!town.exists("pwned") && !town.exists("pwned2"));

    let env = town.read("env");
    for line in [
        "TT_TOWN=t",
        "TT_AGENT=dev",
        "TT_WORKER=dev-1",
        "TT_TASK_ID=build",
        "TT_ATTEMPT=1",
        r#"TT_TASK_TAGS=["api","P1"]"#,
        "TT_TASK_PARENT=grp",
        "TT_TASK_DESCRIPTION=Say \"hi\" $(touch pwned)",
        &format!("REDIS_URL={}", town.redis().url()),
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(line)),
            "{line} in:\n{env}"
        );
    }

    let t = town.task("build");
    assert_eq!(t["status"], "completed");
    assert_eq!(t["exit_code"], "0");
    assert_eq!(t["worker"], "dev-1");
    assert!(t["output"].contains("done-building"), "{t:?}");
    let log = town.dir().join(".tt/logs/build/1.log");
    assert_eq!(Path::new(&t["log"]), log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("done-building\n"), "{text}");
    assert!(text.contains("[tt] exited with code 0"), "{text}");

    assert!(town.list("claimed:dev-1").is_empty());
    assert!(town.list("inbox:dev").is_empty());
    let kinds: Vec<String> = town
        .events()
        .into_iter()
        .filter(|e| e["task"] == "build")
        .map(|e| e["kind"].clone())
        .collect();
    assert!(
        kinds.ends_with(&["started".into(), "completed".into()]),
        "{kinds:?}"
    );
    let agent = town.worker("dev-1");
    assert_eq!(agent["name"], "dev");
    assert_eq!(agent["state"], "stopped");
    assert!(!town.alive("dev-1"), "a stopped worker drops its heartbeat");
    let workers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(key("t", "agents"))
        .query(&mut town.redis().conn())
        .unwrap();
    assert_eq!(workers, ["dev-1"]);
}

#[test]
fn a_busy_worker_runs_queued_tasks_back_to_back_with_their_logs() {
    let town = town();
    // Queued before the worker starts: each report claims the next one.
    for id in ["a", "b", "c"] {
        dispatch(&town, id, 1);
    }
    let mut worker = worker(
        &town,
        &[
            "--command",
            "sh",
            "-c",
            "echo out-$TT_TASK_ID; echo $$ > pid-$TT_TASK_ID; while [ ! -e go-$TT_TASK_ID ]; do sleep 0.02; done",
        ],
    );
    for id in ["a", "b", "c"] {
        town.wait_status(id, "running");
        let pid = town.wait_pid(format!("pid-{id}"));
        // Its process group is on record while it runs, for recovery.
        town.wait_until("the pgid is recorded", || {
            town.worker("dev-1").get("command_pgid") == Some(&pid.to_string())
        });
        town.write(format!("go-{id}"), "");
        town.wait_status(id, "completed");
    }
    for id in ["a", "b", "c"] {
        let t = town.task(id);
        let log = town.dir().join(format!(".tt/logs/{id}/1.log"));
        assert_eq!(Path::new(&t["log"]), log);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.starts_with(&format!(
                "[tt] task `{id}` attempt 1 on worker `dev-1`: running `sh`"
            )) && text.contains(&format!("\nout-{id}\n[tt] exited with code 0\n")),
            "{text}"
        );
        // The output is the log's tail: here, all of it.
        assert_eq!(t["output"], text);
    }
    assert!(!town.worker("dev-1").contains_key("command_pgid"));
    assert_eq!(town.events_of("started").len(), 3);
    assert!(town.list("claimed:dev-1").is_empty());
    shut_down(&town, "dev-1");
    assert_eq!(worker.wait_exit(), 0, "{}", worker.output());
}

#[test]
fn a_missing_program_fails_the_attempt_and_the_worker_goes_on() {
    let town = town();
    let mut worker = worker(&town, &["--command", "tt-no-such-agent-cli", "{id}"]);
    dispatch(&town, "a", 1);
    dispatch(&town, "b", 1);
    town.wait_until("both attempts fail", || {
        town.status("a") == "failed" && town.status("b") == "failed"
    });
    let error = &town.task("a")["error"];
    assert!(
        error.starts_with("`tt-no-such-agent-cli` not found on PATH"),
        "{error}"
    );
    assert!(!town.task("a").contains_key("exit_code"));
    let log = town.read(".tt/logs/a/1.log");
    assert!(log.contains("not found on PATH"), "{log}");
    shut_down(&town, "dev-1");
    assert_eq!(worker.wait_exit(), 0, "{}", worker.output());
}

#[test]
fn a_backlog_worker_takes_unassigned_work() {
    let town = town();
    town.redis_cmd(&[
        "HSET",
        &key("t", "task:a"),
        "status",
        "assigned",
        "attempt",
        "1",
    ]);
    town.redis_cmd(&["RPUSH", &key("t", "backlog"), &super::message("a", 1)]);
    agent_once(&town, &["--backlog", "--command", "touch", "ran-{id}"]).success();
    assert!(town.exists("ran-a"));
    assert_eq!(town.status("a"), "completed");
    assert!(town.list("backlog").is_empty());
}
