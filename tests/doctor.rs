//! `tt doctor`: each declared agent's CLI found on PATH, its version read,
//! the flags tinytown passes checked against its `--help`, the Redis
//! checked, and a fix printed for every problem.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::support::Tt;

const PLAN: &str = r#"[agents.coder]
cli = "claude"

[agents.reviewer]
cli = "codex"

[agents.script]
command = ["sh", "-c", "echo {id}"]
"#;

/// The flags of `claude --help` (Claude Code's CLI reference), one per
/// line as it prints them, without `skip`.
fn claude_help(skip: &str) -> String {
    [
        "  -p, --print                      Print response and exit",
        "      --output-format <format>     text, json, stream-json",
        "      --input-format <format>      text, stream-json",
        "      --verbose                    Override verbose mode",
        "      --max-turns <n>              Limit agentic turns",
        "      --max-budget-usd <amount>    Stop at this spend",
        "      --model <model>              Model for the session",
        "  -r, --resume [sessionId]         Resume a conversation",
        "  -c, --continue                   Continue the most recent conversation",
        "      --session-id <uuid>          Use a specific session ID",
        "      --mcp-config <configs...>    Load MCP servers",
        "      --permission-mode <mode>     acceptEdits, bypassPermissions, default, plan",
        "      --allowedTools <tools...>    Tools allowed without a prompt",
        "      --append-system-prompt <p>   Append to the system prompt",
    ]
    .iter()
    .filter(|l| !l.contains(skip))
    .map(|l| format!("{l}\n"))
    .collect()
}

/// A fake `claude` in `bin/` of `tt`'s directory: `--version` prints the
/// version line Claude Code prints, `--help` the flags.
fn fake_claude(tt: &Tt, help: &str) {
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  --version) echo '2.0.14 (Claude Code)' ;;\n  --help) cat <<'HELP'\nUsage: claude [options] [command] [prompt]\n\nOptions:\n{help}HELP\n ;;\n  *) exit 9 ;;\nesac\n"
    );
    tt.write("bin/claude", script);
    let path = tt.dir().join("bin/claude");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// PATH with `bin/` first and no `codex` anywhere on it: the system's
/// directories for `sh`, not the caller's PATH (which might hold one).
fn path_of(tt: &Tt) -> String {
    format!("{}:/usr/bin:/bin", tt.dir().join("bin").display())
}

/// `tt doctor --json` and `tt doctor` with [`path_of`] as PATH.
fn doctor(tt: Tt) -> (i32, Value, String) {
    let path = path_of(&tt);
    let tt = tt.env("PATH", path);
    let json = tt.run_with(["doctor", "--json"]);
    let text = tt.run_with(["doctor"]);
    let v: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(json.code, text.code, "{json}\n{text}");
    (json.code, v, text.stdout)
}

fn check<'a>(v: &'a Value, subject_starts: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|c| {
                c["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(subject_starts))
            })
        })
        .unwrap_or_else(|| panic!("no check for {subject_starts}: {v}"))
}

#[test]
fn doctor_reports_a_missing_cli_and_a_rejected_flag_with_fixes() {
    let tt = Tt::new().file("tasks.toml", PLAN);
    fake_claude(&tt, &claude_help("--permission-mode"));
    let (code, v, text) = doctor(tt);
    assert_eq!(code, 1, "{v}");
    let claude = check(&v, "agent `coder`");
    assert_eq!(claude["ok"], false, "{claude}");
    let detail = claude["detail"].as_str().unwrap_or("");
    assert!(detail.contains("2.0.14 (Claude Code)"), "{detail}");
    assert!(
        detail.contains("does not list `--permission-mode`"),
        "{detail}"
    );
    assert!(!detail.contains("`-p`"), "-p is listed: {detail}");
    let codex = check(&v, "agent `reviewer`");
    assert_eq!(codex["ok"], false);
    assert!(
        codex["detail"]
            .as_str()
            .unwrap_or("")
            .contains("`codex` is not found on PATH")
    );
    assert!(
        codex["fix"]
            .as_str()
            .unwrap_or("")
            .contains("npm install -g @openai/codex")
    );
    assert_eq!(check(&v, "agent `script`")["ok"], true, "sh is found");
    assert_eq!(v["problems"], 2);
    assert!(
        text.contains("fix: install it (npm install -g @openai/codex)"),
        "{text}"
    );
    assert!(text.ends_with("2 problems\n"), "{text}");
}

#[test]
fn doctor_passes_when_every_cli_is_there_and_accepts_its_flags() {
    let plan = "[agents.coder]\ncli = \"claude\"\n";
    let tt = Tt::new().file("tasks.toml", plan);
    fake_claude(&tt, &claude_help("no such flag"));
    let (code, v, text) = doctor(tt);
    assert_eq!(code, 0, "{v}");
    let claude = check(&v, "agent `coder`");
    assert_eq!(claude["ok"], true, "{claude}");
    assert!(text.ends_with("no problems\n"), "{text}");
}

#[test]
fn doctor_reports_an_unreachable_redis() {
    let plan = "[town]\nredis_url = \"redis+unix:///nonexistent/redis.sock\"\n";
    let tt = Tt::new().file("tasks.toml", plan);
    let (code, v, _) = doctor(tt);
    assert_eq!(code, 1);
    assert_eq!(check(&v, "redis")["ok"], false, "{v}");
}

#[test]
fn doctor_checks_git_for_worktree_agents() {
    let plan = "[agents.script]\ncommand = [\"sh\", \"-c\", \"true\"]\nworkspace = \"worktree\"\n";
    let tt = Tt::new()
        .file("tasks.toml", plan)
        .file(".gitignore", ".tt/\n");
    let init = crate::support::command("git")
        .args(["init", "-q"])
        .current_dir(tt.dir())
        .status()
        .unwrap_or_else(|e| panic!("git is needed for this test: {e}"));
    assert!(init.success());
    let (code, v, _) = doctor(tt);
    assert_eq!(code, 0, "{v}");
    let git = check(&v, "git");
    assert_eq!(git["ok"], true, "{git}");
    assert!(
        git["detail"].as_str().unwrap_or("").starts_with("git 2."),
        "{git}"
    );
}

#[test]
fn doctor_checks_the_flags_that_start_tt_mcp_unless_mcp_is_off() {
    let plan = "[agents.coder]\ncli = \"claude\"\n";
    let tt = Tt::new().file("tasks.toml", plan);
    fake_claude(&tt, &claude_help("--mcp-config"));
    let (code, v, _) = doctor(tt);
    assert_eq!(code, 1, "{v}");
    let claude = check(&v, "agent `coder`");
    let detail = claude["detail"].as_str().unwrap_or("");
    assert!(detail.contains("does not list `--mcp-config`"), "{detail}");

    let plan = "[agents.coder]\ncli = \"claude\"\nmcp = false\n";
    let tt = Tt::new().file("tasks.toml", plan);
    fake_claude(&tt, &claude_help("--mcp-config"));
    let (code, v, _) = doctor(tt);
    assert_eq!(code, 0, "{v}");
}
