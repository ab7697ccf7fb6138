//! Regressions in agent settings, privacy and what commands show.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt};

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
        .args(["sync", "push"])
        .run()
        .code(1)
        .stderr_contains("tt::store::auth")
        .stderr_contains("REDISCLI_AUTH");
}

/// `git` in `dir`, with no `GIT_*` of the test's environment; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("git");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
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
    run.wait_output("town `busy`");
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
    redis.cmd(&["HSET", "tt:link:task:a", "status", "completed"]);
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
