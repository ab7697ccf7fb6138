//! Agents talking back from inside a task: `tt ask` waits for
//! `tt answer` and prints the answer, `tt progress` leaves a note, and
//! `tt status` opens with what needs a person.

use std::time::Duration;

use serde_json::Value;

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);
const TT: &str = env!("CARGO_BIN_EXE_tt");

/// A plan whose one task `migrate` runs `script` under `sh -c`; `$TT` is
/// the `tt` under test.
fn plan(script: &str, agent_extra: &str) -> String {
    let script = script.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[town]\nname = \"t\"\n\n[agents.dev]\ncommand = [\"sh\", \"-c\", \"{script}\"]\nenv = {{ TT = \"{TT}\" }}\n{agent_extra}\n\n[[tasks]]\nid = \"migrate\"\nagent = \"dev\"\ndescription = \"Drop the legacy column\"\n"
    )
}

fn json_of(tt: &Tt, args: &[&str]) -> Value {
    let out = tt.run_with(args);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn status_of(redis: &RedisServer) -> String {
    redis.task_field("t", "migrate", "status")
}

/// The open question `tt status --json` lists for `migrate`, once there is one.
fn wait_for_question(tt: &Tt) -> Value {
    let mut found = Value::Null;
    wait_until(DEADLINE, "tt status lists the question", || {
        let v = json_of(tt, &["status", "--json"]);
        found = v["needs_you"]["questions"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["task"] == "migrate"))
            .cloned()
            .unwrap_or(Value::Null);
        !found.is_null()
    });
    found
}

#[test]
fn an_answer_reaches_the_asking_command_exactly() {
    let redis = RedisServer::start();
    let script = r#"answer=$("$TT" ask "The migration drops a column. Go ahead?" --choice yes --choice "not yet") || exit 7; printf '%s' "$answer" > got.txt"#;
    let tt = Tt::new().file("tasks.toml", plan(script, "")).redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    let q = wait_for_question(&tt);
    assert_eq!(q["question"], "The migration drops a column. Go ahead?");
    assert_eq!(q["choices"], serde_json::json!(["yes", "not yet"]));
    assert_eq!(q["worker"], "dev-1");

    let tasks = json_of(&tt, &["tasks", "--json"]);
    let task = &tasks.as_array().unwrap()[0];
    assert_eq!(task["question"]["text"], q["question"], "{task}");
    let text = tt.run_with(["status"]).success().stdout;
    assert!(text.contains("needs you"), "{text}");
    assert!(text.contains("tt answer migrate"), "{text}");

    // A wrong choice is refused and changes nothing.
    tt.run_with(["answer", "migrate", "--choice", "3"])
        .code(2)
        .stderr_contains("the choices are 1: yes, 2: not yet");
    tt.run_with(["answer", "migrate", "maybe"]).code(2);
    tt.run_with(["answer", "migrate", "--choice", "2"])
        .success()
        .stdout_contains("→ not yet");
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    let printed = run.output();
    assert!(
        printed.contains("QUESTION from dev-1 on migrate: The migration drops a column. Go ahead?"),
        "{printed}"
    );
    assert!(printed.contains("answered migrate: not yet"), "{printed}");
    assert!(
        !printed.contains('\u{7}'),
        "no bell off a terminal: {printed}"
    );
    assert_eq!(tt.read("got.txt"), "not yet");
    assert_eq!(status_of(&redis), "completed");
    let v = json_of(&tt, &["status", "--json"]);
    assert_eq!(v["needs_you"]["questions"], serde_json::json!([]), "{v}");
    let history = tt
        .run_with(["history", "--task", "migrate"])
        .success()
        .stdout;
    assert!(
        history.contains("asked") && history.contains("answered"),
        "{history}"
    );
    // Nothing is waiting any more.
    tt.run_with(["answer", "migrate", "yes"])
        .code(1)
        .stderr_contains("has no open question");
}

#[test]
fn a_question_that_times_out_is_withdrawn_and_the_command_sees_a_failure() {
    let redis = RedisServer::start();
    let script = r#""$TT" ask "Anyone?" --timeout 1s 2> ask.err; echo "exit $?" > got.txt"#;
    let tt = Tt::new().file("tasks.toml", plan(script, "")).redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    assert_eq!(tt.read("got.txt"), "exit 1\n");
    assert!(
        tt.read("ask.err").contains("no answer within 1s"),
        "{}",
        tt.read("ask.err")
    );
    let history = tt
        .run_with(["history", "--task", "migrate"])
        .success()
        .stdout;
    assert!(history.contains("unasked"), "{history}");
    let v = json_of(&tt, &["task", "migrate", "--json"]);
    assert!(v.get("question").is_none(), "{v}");
}

#[test]
fn cancelling_a_task_that_waits_for_an_answer_ends_the_wait() {
    let redis = RedisServer::start();
    let script = r#"echo $$ > ask.pid; exec "$TT" ask "Which schema?""#;
    let tt = Tt::new().file("tasks.toml", plan(script, "")).redis(&redis);
    let _run = Running::start(&tt, &["run"]);
    wait_for_question(&tt);
    let pid: i32 = tt.read("ask.pid").trim().parse().unwrap();
    tt.run_with(["cancel", "migrate"]).success();
    wait_until(DEADLINE, "the waiting tt ask is gone", || {
        // SAFETY: signal 0 only checks the pid.
        unsafe { libc::kill(pid, 0) != 0 }
    });
    assert_eq!(status_of(&redis), "cancelled");
    let v = json_of(&tt, &["status", "--json"]);
    assert_eq!(v["needs_you"]["questions"], serde_json::json!([]), "{v}");
    tt.run_with(["answer", "migrate", "x"]).code(1);
}

#[test]
fn waiting_for_an_answer_does_not_count_toward_the_timeout() {
    let redis = RedisServer::start();
    let script = r#"answer=$("$TT" ask "Go?") && printf '%s' "$answer" > got.txt"#;
    let tt = Tt::new()
        .file("tasks.toml", plan(script, "timeout = \"2s\""))
        .redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    wait_for_question(&tt);
    // Answer only once the question has waited past the agent's timeout.
    wait_until(
        DEADLINE,
        "the question waits longer than the timeout",
        || {
            let v = json_of(&tt, &["status", "--json"]);
            v["needs_you"]["questions"][0]["waiting_ms"]
                .as_u64()
                .is_some_and(|ms| ms > 3000)
        },
    );
    tt.run_with(["answer", "migrate", "go"]).success();
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    assert_eq!(tt.read("got.txt"), "go");
    assert_eq!(status_of(&redis), "completed");
}

#[test]
fn with_timeout_counts_questions_the_wait_is_timed() {
    let redis = RedisServer::start();
    let script = r#""$TT" ask "Go?""#;
    let tt = Tt::new()
        .file(
            "tasks.toml",
            plan(script, "timeout = \"1s\"\ntimeout_counts_questions = true"),
        )
        .redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    assert_eq!(run.wait_exit(), 1, "{}", run.output());
    let v = json_of(&tt, &["task", "migrate", "--json"]);
    assert!(
        v["error"].as_str().unwrap_or("").contains("timed out"),
        "{v}"
    );
}

#[test]
fn progress_notes_show_in_status_task_and_tasks_json() {
    let redis = RedisServer::start();
    let script =
        r#""$TT" progress "3 of 5 endpoints done" && while [ ! -e go ]; do sleep 0.05; done"#;
    let tt = Tt::new().file("tasks.toml", plan(script, "")).redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    wait_until(DEADLINE, "the note is recorded", || {
        json_of(&tt, &["tasks", "--json"])[0]["progress"]["text"] == "3 of 5 endpoints done"
    });
    let status = tt.run_with(["status"]).success().stdout;
    assert!(status.contains("3 of 5 endpoints done"), "{status}");
    let task = tt.run_with(["task", "migrate"]).success().stdout;
    assert!(task.contains("3 of 5 endpoints done (attempt 1)"), "{task}");
    tt.write("go", "");
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    // Outside a task there is nothing to speak for.
    tt.run_with(["progress", "hello"])
        .code(2)
        .stderr_contains("TT_TASK_ID");
    tt.run_with(["progress", "late", "--task", "migrate", "--attempt", "1"])
        .code(1)
        .stderr_contains("is completed");
}

/// `parent` runs `tt assign … --parent $TT_TASK_ID` and exits; `after`
/// depends on `parent`. Each task appends its id to `ran.log`.
const SUBTASKS: &str = r#"[town]
name = "t"

[agents.dev]
command = ["sh", "-c", "echo $TT_TASK_ID >> ran.log; if [ $TT_TASK_ID = parent ]; then \"$TT\" assign dev 'found more work' --id child --parent $TT_TASK_ID || exit 9; fi; if [ $TT_TASK_ID = child ]; then while [ ! -e go ]; do sleep 0.05; done; fi"]
env = { TT = "TTBIN" }

[[tasks]]
id = "parent"
agent = "dev"

[[tasks]]
id = "after"
agent = "dev"
depends_on = ["parent"]
"#;

#[test]
fn a_task_that_adds_a_child_holds_its_dependants_until_the_child_completes() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", SUBTASKS.replace("TTBIN", TT))
        .redis(&redis);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    wait_until(DEADLINE, "the child runs", || {
        std::fs::read_to_string(tt.dir().join("ran.log"))
            .unwrap_or_default()
            .lines()
            .any(|l| l == "child")
    });
    // The parent's own run is over, its child is not: `after` waits.
    wait_until(DEADLINE, "the parent's run completed", || {
        redis.task_field("t", "parent", "status") == "completed"
    });
    let after = json_of(&tt, &["task", "after", "--json"]);
    assert_eq!(after["status"], "pending", "{after}");
    assert!(
        after["waiting"].as_str().unwrap_or("").contains("parent"),
        "{after}"
    );
    let parent = json_of(&tt, &["task", "parent", "--json"]);
    assert_ne!(parent["status"], "completed", "{parent}");
    tt.write("go", "");
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    assert_eq!(tt.read("ran.log"), "parent\nchild\nafter\n");
}

#[test]
fn a_child_added_to_a_finished_task_makes_its_dependants_wait_again() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"t\"\n\n[[tasks]]\nid = \"a\"\nagent = \"dev\"\nstatus = \"completed\"\n\n[[tasks]]\nid = \"b\"\ndepends_on = [\"a\"]\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    assert_eq!(
        json_of(&tt, &["task", "b", "--json"])["waiting"],
        Value::Null
    );
    tt.run_with(["assign", "dev", "more", "--id", "a2", "--parent", "a"])
        .success();
    let b = json_of(&tt, &["task", "b", "--json"]);
    assert_eq!(b["waiting"], "waits for a (pending)", "{b}");
}

#[test]
fn assign_refuses_a_cycle_and_a_cancelled_parent() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"t\"\n\n[[tasks]]\nid = \"g\"\n\n[[tasks]]\nid = \"c\"\nparent = \"g\"\n\n[[tasks]]\nid = \"w\"\ndepends_on = [\"g\"]\n\n[[tasks]]\nid = \"gone\"\nstatus = \"cancelled\"\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // Waits for its own group.
    tt.run_with([
        "assign",
        "dev",
        "x",
        "--id",
        "x",
        "--parent",
        "g",
        "--depends-on",
        "g",
    ])
    .code(2)
    .stderr_contains("`x` would wait for itself");
    // Waits for a task that waits for its group.
    tt.run_with(["assign", "dev", "y", "--parent", "g", "--depends-on", "w"])
        .code(2)
        .stderr_contains("would wait for itself");
    tt.run_with(["assign", "dev", "z", "--parent", "gone"])
        .code(2)
        .stderr_contains("group `gone` is cancelled");
    // Nothing was added.
    let tasks = json_of(&tt, &["tasks", "--json"]);
    assert_eq!(tasks.as_array().map(Vec::len), Some(4), "{tasks}");
    // A sound one still goes in.
    tt.run_with([
        "assign",
        "dev",
        "fine",
        "--parent",
        "g",
        "--depends-on",
        "c",
    ])
    .success();
}
