//! Where a worker's command comes from: a preset (`--cli claude`) or
//! `--command`, and what `tt agent` says when it has neither or a bad one.

use super::{BUILD_DESCRIPTION, PLAN, agent_once, dispatch, town};
use crate::support::Scenario;

#[test]
fn the_claude_preset_gets_the_prompt_as_one_argument() {
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("claude");
    std::fs::write(
        &fake,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > claude-argv\nenv > claude-env\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let town = Scenario::new()
        .plan(PLAN)
        .env("PATH", path)
        .pushed()
        .build();
    dispatch(&town, "build", 1);
    agent_once(&town, &["--cli", "claude"]).success();

    let argv = town.read("claude-argv");
    let args: Vec<&str> = argv.split_terminator('\0').collect();
    let prompt = format!("{BUILD_DESCRIPTION}\n\n(tinytown task `build`)");
    assert_eq!(
        args[..9],
        [
            "--output-format",
            "stream-json",
            "--verbose",
            "--allowedTools",
            "Bash",
            "--permission-mode",
            "acceptEdits",
            "-p",
            prompt.as_str()
        ]
    );
    // Then the `tt mcp` server (tests/mcp.rs checks it works).
    assert_eq!(args[9], "--mcp-config", "{args:?}");
    let env = town.read("claude-env");
    for line in [
        "TT_TOWN=t",
        "TT_AGENT=dev",
        "TT_WORKER=dev-1",
        "TT_TASK_ID=build",
        "TT_ATTEMPT=1",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in:\n{env}");
    }
    assert_eq!(town.status("build"), "completed");
}

#[test]
fn without_a_command_tt_agent_explains_and_exits_2() {
    let town = town();
    town.tt(["agent", "dev"])
        .code(2)
        .stderr_contains("no command for agent `dev`")
        .stderr_contains("--cli claude");
    town.tt(["agent", "dev", "--cli", "cluade"])
        .code(2)
        .stderr_contains("unknown agent cli `cluade`")
        .stderr_contains("did you mean `claude`?");
    town.tt(["agent", "dev", "--id", "no/slash", "--command", "true"])
        .code(2)
        .stderr_contains("worker id `no/slash` is not valid");
    town.tt(["agent", "dev", "--workdir", "nope", "--command", "true"])
        .code(2)
        .stderr_contains("tt::agent::workdir");
}
