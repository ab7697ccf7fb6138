//! Regressions in agent settings, privacy and what commands show.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{RedisServer, Tt};

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
