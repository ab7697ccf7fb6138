//! Regressions in agent settings, privacy and what commands show.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, key};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// One agent `echo`ing into its log, one task.
const ECHO_PLAN: &str = r#"[town]
name = "priv"
[agents.dev]
command = ["sh", "-c", "echo secret output"]
[[tasks]]
id = "t"
agent = "dev"
"#;

#[test]
fn with_redis_url_the_state_directory_and_logs_are_not_world_readable() {
    // The usual umask, under which tt left `.tt/` 0755 and logs 0644 (it
    // is inherited by `tt`; every test here is fine with it).
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0o022) };
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", ECHO_PLAN).redis(&redis);
    // As an older tt (or `mkdir`) left it.
    let state = tt.dir().join(".tt");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();

    tt.run_with(["run", "--until-done"]).success();

    assert_eq!(mode(&state), 0o700, ".tt");
    let logs = state.join("logs");
    assert_eq!(mode(&logs), 0o700, ".tt/logs");
    let log = logs.join("t").join("1.log");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("secret output")
    );
    assert_eq!(mode(&log), 0o600, "the attempt's log");
    assert_eq!(
        mode(log.parent().unwrap()),
        0o700,
        "the task's log directory"
    );
    let journal = logs.join("agents").join("dev-1.log");
    assert_eq!(mode(&journal), 0o600, "the worker's log");
}

#[test]
fn a_password_in_a_unix_url_query_is_used_not_only_redacted() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("unix://{}?password=s3cret", redis.socket().display());
    let out = Tt::new()
        .file("tasks.toml", ECHO_PLAN)
        .env("REDIS_URL", &url)
        .env_remove("REDISCLI_AUTH")
        .args(["sync", "push"])
        .run()
        .success();
    assert!(
        !out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"),
        "{out}"
    );
}

#[test]
fn redis_cli_auth_authenticates_tt_and_its_agents_without_a_password_in_the_url() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let plan = r#"[town]
name = "priv"
[agents.dev]
command = ["sh", "-c", "printf '%s\n%s\n' \"$REDIS_URL\" \"$REDISCLI_AUTH\" > seen.txt"]
[[tasks]]
id = "t"
agent = "dev"
"#;
    let tt = Tt::new()
        .file("tasks.toml", plan)
        .redis(&redis)
        .env("REDISCLI_AUTH", "s3cret");
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("1 completed"), "{out}");
    let seen = tt.read("seen.txt");
    let mut lines = seen.lines();
    assert_eq!(
        lines.next(),
        Some(redis.url().as_str()),
        "REDIS_URL as given"
    );
    assert_eq!(lines.next(), Some("s3cret"), "REDISCLI_AUTH passed on");

    // Without it the same URL is refused: the password came from REDISCLI_AUTH.
    Tt::new()
        .file("tasks.toml", plan)
        .redis(&redis)
        .env_remove("REDISCLI_AUTH")
        .args(["sync", "push"])
        .run()
        .code(1)
        .stderr_contains("tt::store::auth")
        .stderr_contains("REDISCLI_AUTH");
}

/// `git` in `dir` (from the environment helper: no `GIT_*` of the test's
/// environment); its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = crate::support::command("git")
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git must be installed for this test");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_schema_that_tt_init_links_is_in_a_fresh_clone() {
    let tt = Tt::new();
    tt.run_with(["init"]).success();
    let plan = tt.read("tasks.toml");
    let schema = plan
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("#:schema "))
        .unwrap_or_else(|| panic!("no #:schema line: {plan}"));
    // What a clone has: every file `git add -A` takes.
    git(tt.dir(), &["init", "-q"]);
    git(tt.dir(), &["add", "-A"]);
    let committed = git(tt.dir(), &["ls-files"]);
    let path = schema.trim_start_matches("./");
    assert!(
        committed.lines().any(|f| f == path),
        "`{schema}` is not committed: {committed}"
    );
    let text = tt.read(path);
    assert_eq!(text, tinytown::cli::schema_json(), "the current schema");
}

#[test]
fn read_only_commands_in_a_directory_with_no_town_start_no_server() {
    let tt = Tt::new();
    for args in [
        &["status"][..],
        &["tasks"],
        &["task", "x"],
        &["towns"],
        &["history"],
        &["list"],
        &["inbox", "dev"],
    ] {
        let out = tt.run_with(args).code(1).stderr_contains("nothing to show");
        assert!(
            !tt.dir().join(".tt").exists(),
            "`tt {}` created .tt/ (started a server)\n{out}",
            args.join(" ")
        );
    }
}

#[test]
fn a_town_that_already_has_a_runner_exits_busy_not_bad_input() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"busy\"\n[[tasks]]\nid = \"a\"\nagent = \"elsewhere\"\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    // Printed by its loop, where it handles SIGTERM.
    run.wait_output("dispatched a to elsewhere");
    tt.run_with(["run", "--no-agents"])
        .code(3)
        .stderr_contains("already has a runner");
    assert_eq!(run.stop(), 0);
}

#[test]
fn sync_pull_writes_through_a_symlinked_plan() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"link\"\n[[tasks]]\nid = \"a\"\n";
    let tt = Tt::new().file("shared/plan.toml", plan).redis(&redis);
    std::os::unix::fs::symlink("shared/plan.toml", tt.dir().join("tasks.toml")).unwrap();
    tt.run_with(["sync", "push"]).success();
    redis.cmd(&["HSET", &key("link", "task:a"), "status", "completed"]);
    tt.run_with(["sync", "pull"])
        .success()
        .stdout_contains("1 status pulled");
    let link = tt.dir().join("tasks.toml");
    assert!(
        std::fs::symlink_metadata(&link).unwrap().is_symlink(),
        "tasks.toml is still a link"
    );
    assert!(
        tt.read("shared/plan.toml")
            .contains("status = \"completed\""),
        "the linked file got the status"
    );
}

#[test]
fn a_zero_timeout_is_an_error_at_load_with_its_line() {
    let plan = "[agents.dev]\ncommand = [\"true\"]\ntimeout = \"0s\"\n\
                [[tasks]]\nid = \"a\"\nagent = \"dev\"\ntimeout = \"0m\"\n";
    let out = Tt::new()
        .file("tasks.toml", plan)
        .args(["plan"])
        .run()
        .code(2)
        .stderr_contains("has 2 problems")
        .stderr_contains("[tasks.toml:3:11]")
        .stderr_contains("[tasks.toml:7:11]");
    assert!(
        out.stderr.contains("`0s`") && out.stderr.contains("`0m`"),
        "{out}"
    );
}

#[test]
fn a_missing_workdir_is_an_error_at_load_with_its_line() {
    let plan = "[agents.dev]\ncommand = [\"true\"]\nworkdir = \"build/out\"\n\
                [agents.ok]\ncommand = [\"true\"]\nworkdir = \"src\"\n\
                [[tasks]]\nid = \"a\"\nagent = \"dev\"\n";
    let tt = Tt::new().file("tasks.toml", plan).file("src/keep", "");
    tt.run_with(["plan"])
        .code(2)
        .stderr_contains("has 1 problem")
        .stderr_contains("[tasks.toml:3:11]")
        .stderr_contains("build/out");
    // Relative to tasks.toml, not to where `tt` runs.
    tt.write("build/out/keep", "");
    Tt::new()
        .args(["plan", "-f"])
        .arg(tt.dir().join("tasks.toml"))
        .run()
        .success();
}

#[test]
fn runner_lines_for_a_timeout_and_a_missing_program_say_why_not_exit_blank() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "why"
[agents.slow]
command = ["sleep", "30"]
timeout = "1s"
[agents.nope]
command = ["no-such-program-for-tt-tests"]
[[tasks]]
id = "nap"
agent = "slow"
[[tasks]]
id = "ghost"
agent = "nope"
"#;
    let out = Tt::new()
        .file("tasks.toml", plan)
        .redis(&redis)
        .args(["run", "--until-done"])
        .run()
        .code(1)
        .stdout_contains("FAILED nap on slow-1 (timed out after 1s)")
        .stdout_contains("FAILED ghost on nope-1 (`no-such-program-for-tt-tests` not found")
        .stdout_lacks("(exit )");
    assert!(!out.stdout.contains("(exit ?)"), "{out}");
}

/// A group with one completed child and one queued for an agent nobody
/// runs, and a task after it for the same agent.
const HALF_DONE: &str = r#"[town]
name = "half"
[agents.dev]
command = ["true"]
[[tasks]]
id = "g"
[[tasks]]
id = "done"
parent = "g"
agent = "dev"
[[tasks]]
id = "later"
parent = "g"
agent = "elsewhere"
depends_on = ["done"]
"#;

fn tasks_json(tt: &Tt) -> serde_json::Value {
    let out = tt.run_with(["tasks", "--json"]).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn status_in(tasks: &serde_json::Value, id: &str) -> String {
    tasks
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == id))
        .map(|t| t["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no {id} in {tasks}"))
}

#[test]
fn a_group_with_a_completed_and_a_pending_child_and_nothing_running_is_not_running() {
    let redis = RedisServer::start();
    let plan = HALF_DONE.replace(
        "agent = \"dev\"\n",
        "agent = \"dev\"\nstatus = \"completed\"\n",
    );
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    let tasks = tasks_json(&tt);
    assert_eq!(status_in(&tasks, "done"), "completed");
    assert_eq!(status_in(&tasks, "later"), "pending");
    assert_eq!(status_in(&tasks, "g"), "pending", "nothing of it runs");
    tt.run_with(["task", "g"])
        .success()
        .stdout_contains("status       pending");
}

#[test]
fn until_done_counts_queued_tasks_as_queued_not_running() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", HALF_DONE).redis(&redis);
    tt.run_with(["run", "--until-done"])
        .code(1)
        // `later`, and its group `g` that waits on it.
        .stdout_contains("0 pending, 2 queued, 0 running");
    let tasks = tasks_json(&tt);
    assert_eq!(status_in(&tasks, "later"), "assigned");
    assert_eq!(
        status_in(&tasks, "g"),
        "assigned",
        "its only open child is queued"
    );
    let g = tasks
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == "g"))
        .unwrap_or_else(|| panic!("no g in {tasks}"));
    let progress = &g["progress"];
    assert_eq!(progress["running"], 0, "{g}");
    assert_eq!(progress["queued"], 1, "{g}");
}

#[test]
fn a_task_dispatched_to_an_undeclared_agent_prints_its_line() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", HALF_DONE).redis(&redis);
    tt.run_with(["run", "--until-done"])
        .code(1)
        .stdout_contains("dispatched later to elsewhere (attempt 1)");
}

fn task_json(tt: &Tt, id: &str) -> serde_json::Value {
    let out = tt.run_with(["task", id, "--json"]).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn an_attempt_that_never_started_lists_no_log() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", HALF_DONE).redis(&redis);
    tt.run_with(["run", "--until-done"]).code(1);
    tt.run_with(["cancel", "later"]).success();
    let out = tt.run_with(["task", "later"]).success();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("#1"))
        .unwrap_or_else(|| panic!("no attempt row\n{out}"));
    assert!(!row.contains(".log"), "a log that was never written: {row}");
    let attempt = &task_json(&tt, "later")["attempts"][0];
    assert_eq!(attempt["outcome"], "cancelled");
    assert!(attempt["log"].is_null(), "{attempt}");
}

#[test]
fn an_attempt_logged_on_another_machine_shows_its_host() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"far\"\n[[tasks]]\nid = \"t\"\nagent = \"dev\"\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // A worker on `build-7` claimed attempt 1, as claim.lua records it.
    let log = "/home/ci/proj/.tt/logs/t/1.log";
    redis.cmd(&[
        "HSET",
        &key("far", "task:t"),
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-1",
        "log",
        log,
    ]);
    redis.cmd(&[
        "XADD",
        &key("far", "events"),
        "*",
        "kind",
        "started",
        "task",
        "t",
        "agent",
        "dev-1",
        "attempt",
        "1",
        "at",
        "1",
        "status",
        "running",
        "log",
        log,
        "host",
        "build-7",
    ]);
    tt.run_with(["task", "t"])
        .success()
        .stdout_contains(&format!("build-7:{log}"));
    // And a real worker records where it logged.
    let local = "[town]\nname = \"near\"\n[agents.dev]\ncommand = [\"true\"]\n\
                 [[tasks]]\nid = \"t\"\nagent = \"dev\"\n";
    let tt = Tt::new().file("tasks.toml", local).redis(&redis);
    tt.run_with(["run", "--until-done"]).success();
    let attempt = &task_json(&tt, "t")["attempts"][0];
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_eq!(attempt["host"], host.trim(), "{attempt}");
    let logged = attempt["log"].as_str().unwrap_or_default();
    assert!(std::path::Path::new(logged).exists(), "{attempt}");
    tt.run_with(["task", "t"])
        .success()
        .stdout_contains(".tt/logs/t/1.log")
        .stdout_lacks(&format!("{}:", host.trim()));
}

#[test]
fn a_stopped_attempt_shows_how_it_ended_not_running() {
    let redis = RedisServer::start();
    let plan = "[town]\nname = \"stop\"\n[agents.dev]\ncommand = [\"sleep\", \"60\"]\n\
                [[tasks]]\nid = \"keep\"\nagent = \"elsewhere\"\n\
                [[tasks]]\nid = \"t\"\nagent = \"dev\"\n";
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let run = Running::start(&tt, &["run"]);
    run.wait_output("started t on dev-1");
    // Removed from the file while it runs: the worker stops it.
    tt.write(
        "tasks.toml",
        plan.replace("[[tasks]]\nid = \"t\"\nagent = \"dev\"\n", ""),
    );
    crate::support::wait_until(
        std::time::Duration::from_secs(30),
        "the worker reported the stopped attempt",
        || run.output().contains("rejected a stale report for t"),
    );
    let attempt = &task_json(&tt, "t")["attempts"][0];
    assert_eq!(attempt["outcome"], "stopped", "{attempt}");
    tt.run_with(["task", "t"])
        .success()
        .stdout_lacks(" running ");
    assert_eq!(run.stop(), 0);
}
