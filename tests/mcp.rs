//! `tt mcp` driven by a real MCP client (the official Python SDK, through
//! tests/mcp_client.py), from inside a task as an agent CLI would start
//! it; the claude preset's `--mcp-config` checked by a fake `claude` that
//! starts the server it names; messages an agent reads while its task runs
//! (`tt inbox --mine`).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, command, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
const TT: &str = env!("CARGO_BIN_EXE_tt");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");

/// Fails the test, with how to fix it, when the Python MCP SDK is missing.
fn require_mcp_client() {
    let out = command("python3")
        .args(["-c", "import mcp"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for the MCP client tests: {e}"));
    assert!(
        out.status.success(),
        "the Python MCP SDK is missing: `pip install mcp` (.ci/run installs it)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tasks.toml` of town `t`: task `schema`, then `migrate` (depending on
/// it) for agent `dev`, whose command runs `script` under `sh -c` for
/// `migrate` and prints a line for any other task; `reviewer` is declared
/// and never started.
fn plan(script: &str) -> String {
    let script = format!(
        "if [ \"$TT_TASK_ID\" != migrate ]; then echo \"done $TT_TASK_ID\"; exit 0; fi; {script}"
    );
    let script = script.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"[town]
name = "t"

[agents.dev]
command = ["sh", "-c", "{script}"]
env = {{ TT = "{TT}", CLIENT = "{CLIENT}" }}

[agents.reviewer]
command = ["true"]

[[tasks]]
id = "schema"
agent = "dev"
description = "Write the schema"

[[tasks]]
id = "migrate"
agent = "dev"
description = "Drop the legacy column"
depends_on = ["schema"]
"#
    )
}

/// The script waits for the file `go`, so the test can send messages while
/// the task runs (before, the idle worker would take them itself).
const WAIT_FOR_GO: &str = "while [ ! -f go ]; do sleep 0.05; done";

/// The one JSON line of `out` (the client's output) for a step.
fn step<'a>(lines: &'a [Value], what: &str, n: usize) -> &'a Value {
    lines
        .iter()
        .filter(|l| l.get("tool").and_then(Value::as_str) == Some(what) || l.get(what).is_some())
        .nth(n)
        .unwrap_or_else(|| panic!("no step {what} #{n} in {lines:#?}"))
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn json_of(tt: &Tt, args: &[&str]) -> Value {
    let out = tt.run_with(args);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn wait_running(redis: &RedisServer, task: &str) {
    wait_until(DEADLINE, &format!("{task} runs"), || {
        redis.task_field("t", task, "status") == "running"
    });
}

#[test]
fn every_tool_works_through_a_real_mcp_client() {
    require_mcp_client();
    let redis = RedisServer::start();
    let script =
        format!(r#"{WAIT_FOR_GO}; python3 "$CLIENT" calls.json "$TT" mcp > mcp.out 2> mcp.err"#);
    let calls = json!([
        { "name": "get_task" },
        { "name": "get_task" },
        { "name": "list_tasks", "arguments": { "status": "completed" } },
        { "name": "add_task", "arguments": { "description": "Document the new column", "id": "docs" } },
        { "name": "add_task", "arguments": { "description": "x", "parent": "nope" } },
        { "name": "report_progress", "arguments": { "text": "column dropped, data kept" } },
        { "name": "send_message", "arguments": { "to": "reviewer", "message": "migration is ready for review" } },
        { "name": "send_message", "arguments": { "to": "nobody", "message": "hello?" } },
        { "name": "ask", "arguments": { "question": "Anyone there?", "timeout": "1s" } },
        { "name": "ask", "arguments": { "question": "Drop it in production too?", "choices": ["yes", "no"] } },
    ]);
    let tt = Tt::new()
        .file("tasks.toml", plan(&script))
        .file("calls.json", calls.to_string())
        .redis(&redis)
        .env("USER", "ann");
    let _run = Running::start(&tt, &["run", "--no-agents"]);
    let _agent = Running::start_env(&tt, &["agent", "dev"], &[], "agent.out");
    wait_running(&redis, "migrate");
    tt.run_with(["send", "dev", "use the v2 API"]).success();
    tt.write("go", "");

    // `ask` blocks until a person answers.
    wait_until(DEADLINE, "the MCP ask reaches the task", || {
        redis.task_field("t", "migrate", "question") == "Drop it in production too?"
    });
    tt.run_with(["answer", "migrate", "--choice", "2"])
        .success();
    let out = tt.dir().join("mcp.out");
    wait_until(DEADLINE, "the client ends", || {
        lines_of(&out).iter().any(|l| l.get("done").is_some())
    });
    let lines = lines_of(&out);

    let tools = step(&lines, "tools", 0)["tools"]
        .as_array()
        .unwrap()
        .clone();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "add_task",
            "ask",
            "get_task",
            "list_tasks",
            "report_progress",
            "send_message"
        ]
    );
    for t in &tools {
        assert!(
            t["description"].as_str().is_some_and(|d| d.len() > 10),
            "{t}"
        );
        assert_eq!(t["schema"]["type"], "object", "{t}");
    }

    // get_task: the task, its finished dependency, the message, once.
    let task = &step(&lines, "get_task", 0)["structured"];
    assert_eq!(task["id"], "migrate", "{task}");
    assert_eq!(task["description"], "Drop the legacy column");
    assert_eq!(task["status"], "running");
    let dep = &task["dependencies"][0];
    assert_eq!(dep["id"], "schema", "{task}");
    assert_eq!(dep["status"], "completed");
    assert!(
        dep["output_tail"]
            .as_str()
            .unwrap_or("")
            .contains("done schema"),
        "{dep}"
    );
    assert_eq!(
        task["messages"],
        json!([{ "from": "ann", "body": "use the v2 API" }])
    );
    assert_eq!(
        step(&lines, "get_task", 1)["structured"]["messages"],
        json!([])
    );
    let inbox = json_of(&tt, &["inbox", "dev", "--json"]);
    assert!(
        !inbox
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "message"),
        "a message read by the agent is not delivered again: {inbox}"
    );

    let listed = &step(&lines, "list_tasks", 0)["structured"]["tasks"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], "schema");

    // add_task: a subtask of the current task, for this agent.
    let added = step(&lines, "add_task", 0);
    assert_eq!(added["is_error"], false, "{added}");
    assert_eq!(added["structured"]["id"], "docs");
    let docs = json_of(&tt, &["task", "docs", "--json"]);
    assert_eq!(docs["parent"], "migrate", "{docs}");
    assert_eq!(docs["agent"], "dev");
    assert_eq!(docs["source"], "cli");
    // An error is a tool error with the message `tt assign` prints.
    let refused = step(&lines, "add_task", 1);
    assert_eq!(refused["is_error"], true, "{refused}");
    let cli = tt
        .run_with(["assign", "dev", "x", "--parent", "nope"])
        .code(2);
    assert!(cli.stderr.contains("no task `nope` in town `t`"), "{cli}");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .starts_with("no task `nope` in town `t`"),
        "{refused}"
    );

    assert_eq!(step(&lines, "report_progress", 0)["is_error"], false);
    let shown = json_of(&tt, &["task", "migrate", "--json"]);
    // With a child, `migrate` is a group: its own note moves aside.
    assert_eq!(
        shown["progress_note"]["text"], "column dropped, data kept",
        "{shown}"
    );

    assert_eq!(step(&lines, "send_message", 0)["is_error"], false);
    let inbox = json_of(&tt, &["inbox", "reviewer", "--json"]);
    assert_eq!(
        inbox,
        json!([{ "kind": "message", "from": "dev", "body": "migration is ready for review" }])
    );
    let unknown = step(&lines, "send_message", 1);
    assert_eq!(unknown["is_error"], true, "{unknown}");
    assert!(
        unknown["text"]
            .as_str()
            .unwrap()
            .contains("no agent `nobody`"),
        "{unknown}"
    );

    // At its timeout a question is withdrawn, as `tt ask` withdraws it.
    let timed_out = step(&lines, "ask", 0);
    assert_eq!(timed_out["is_error"], true, "{timed_out}");
    assert!(
        timed_out["text"]
            .as_str()
            .unwrap()
            .starts_with("no answer within 1s; the question is withdrawn"),
        "{timed_out}"
    );
    let answered = step(&lines, "ask", 1);
    assert_eq!(answered["is_error"], false, "{answered}");
    assert_eq!(answered["text"], "no");
}

#[test]
fn the_claude_preset_hands_the_agent_a_working_mcp_server() {
    require_mcp_client();
    let redis = RedisServer::start();
    let bin = tempfile::tempdir().unwrap();
    // A fake claude: records its argv, then starts the server its
    // `--mcp-config` names with the real client.
    let fake = format!(
        r#"#!/usr/bin/env python3
import json, os, subprocess, sys
args = sys.argv[1:]
task = os.environ["TT_TASK_ID"]
with open(f"argv-{{task}}.json", "w") as f:
    json.dump(args, f)
if "--mcp-config" in args:
    server = json.loads(args[args.index("--mcp-config") + 1])["mcpServers"]["tt"]
    with open(f"mcp-{{task}}.out", "w") as out:
        sys.exit(subprocess.call(
            [sys.executable, "{CLIENT}", "calls.json", server["command"], *server["args"]],
            stdout=out))
"#
    );
    let claude = bin.path().join("claude");
    std::fs::write(&claude, fake).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let plan = r#"[town]
name = "t"

[agents.coder]
cli = "claude"

[agents.plain]
cli = "claude"
mcp = false

[[tasks]]
id = "wired"
agent = "coder"
description = "Use the tools"

[[tasks]]
id = "unwired"
agent = "plain"
description = "No tools"
"#;
    let calls = json!([
        { "name": "get_task" },
        { "name": "report_progress", "arguments": { "text": "reached through claude's config" } },
    ]);
    let tt = Tt::new()
        .file("tasks.toml", plan)
        .file("calls.json", calls.to_string())
        .redis(&redis)
        .env("PATH", path);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    assert_eq!(run.wait_exit(), 0, "{}", run.output());

    let argv: Vec<String> = serde_json::from_str(&tt.read("argv-wired.json")).unwrap();
    let at = argv.iter().position(|a| a == "--mcp-config").unwrap();
    let config: Value = serde_json::from_str(&argv[at + 1]).unwrap();
    assert_eq!(config["mcpServers"]["tt"]["command"], TT, "{config}");
    assert_eq!(config["mcpServers"]["tt"]["args"], json!(["mcp"]));
    assert_eq!(argv[at + 2..], ["--allowedTools", "mcp__tt"]);

    let lines = lines_of(&tt.dir().join("mcp-wired.out"));
    assert_eq!(step(&lines, "initialized", 0)["initialized"], "tinytown");
    assert_eq!(
        step(&lines, "get_task", 0)["structured"]["id"],
        "wired",
        "{lines:#?}"
    );
    assert_eq!(
        step(&lines, "report_progress", 0)["is_error"],
        false,
        "{lines:#?}"
    );
    let shown = json_of(&tt, &["task", "wired", "--json"]);
    assert_eq!(shown["progress"]["text"], "reached through claude's config");

    // `mcp = false`: the preset's argv alone.
    let argv: Vec<String> = serde_json::from_str(&tt.read("argv-unwired.json")).unwrap();
    assert!(!argv.iter().any(|a| a == "--mcp-config"), "{argv:?}");
    assert_eq!(argv.len(), 9, "{argv:?}");
}

#[test]
fn an_agent_takes_its_messages_while_its_task_runs() {
    let redis = RedisServer::start();
    let script = format!(
        r#"{WAIT_FOR_GO}; "$TT" inbox --mine --json > mine.json; "$TT" inbox --mine > again.txt"#
    );
    let tt = Tt::new()
        .file("tasks.toml", plan(&script))
        .redis(&redis)
        .env("USER", "ann");
    // Unknown agents are refused, unless created on purpose.
    tt.run_with(["send", "revewer", "hi"])
        .code(2)
        .stderr_contains("no agent `revewer`")
        .stderr_contains("did you mean `reviewer`?");
    tt.run_with(["send", "later", "hi", "--create"]).success();
    tt.run_with(["send", "reviewer", "declared"]).success();
    tt.run_with(["inbox", "--mine"])
        .code(2)
        .stderr_contains("TT_AGENT is not set");

    let mut run = Running::start(&tt, &["run", "--until-done"]);
    wait_running(&redis, "migrate");
    tt.run_with(["send", "dev", "first"]).success();
    tt.run_with(["send", "dev", "--urgent", "stop touching the schema"])
        .success();
    tt.write("go", "");
    assert_eq!(run.wait_exit(), 0, "{}", run.output());

    let mine: Value = serde_json::from_str(&tt.read("mine.json")).unwrap();
    assert_eq!(
        mine,
        json!([
            { "from": "ann", "body": "stop touching the schema" },
            { "from": "ann", "body": "first" },
        ])
    );
    assert_eq!(tt.read("again.txt"), "no messages for `dev`\n");
    let log = run.output();
    assert!(
        !log.contains("message from ann"),
        "the worker does not deliver them again: {log}"
    );
    let history = tt.run_with(["history", "--json"]).success().stdout;
    let delivered = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "message" && e["agent"] == "dev-1" && e["task"] == "migrate")
        .count();
    assert_eq!(delivered, 2, "{history}");
}

#[test]
fn the_codex_preset_names_a_server_that_works_with_only_the_variables_it_forwards() {
    require_mcp_client();
    let redis = RedisServer::start();
    let bin = tempfile::tempdir().unwrap();
    // A fake codex: reads its `-c` overrides as codex does (TOML values),
    // then starts the server as codex would, with a cleared environment
    // plus the variables `env_vars` names.
    let fake = format!(
        r#"#!/usr/bin/env python3
import json, os, subprocess, sys, tomllib
args = sys.argv[1:]
with open("argv.json", "w") as f:
    json.dump(args, f)
servers = {{}}
for i, a in enumerate(args):
    if a == "-c":
        key, value = args[i + 1].split("=", 1)
        parts = key.split(".")
        assert parts[0] == "mcp_servers", key
        servers.setdefault(parts[1], {{}})[parts[2]] = tomllib.loads("v = " + value)["v"]
tt = servers["tt"]
env = {{k: os.environ[k] for k in ["HOME", "PATH"] + tt["env_vars"] if k in os.environ}}
with open("mcp.out", "w") as out:
    sys.exit(subprocess.call(
        [sys.executable, "{CLIENT}", "calls.json", tt["command"], *tt["args"]],
        stdout=out, env=env))
"#
    );
    let codex = bin.path().join("codex");
    std::fs::write(&codex, fake).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&codex, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let plan = r#"[town]
name = "t"

[agents.coder]
cli = "codex"

[[tasks]]
id = "wired"
agent = "coder"
description = "Use the tools"
"#;
    let calls = json!([
        { "name": "get_task" },
        { "name": "report_progress", "arguments": { "text": "reached through codex's config" } },
    ]);
    let tt = Tt::new()
        .file("tasks.toml", plan)
        .file("calls.json", calls.to_string())
        .redis(&redis)
        .env("PATH", path);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    assert_eq!(run.wait_exit(), 0, "{}", run.output());
    let argv: Vec<String> = serde_json::from_str(&tt.read("argv.json")).unwrap();
    assert_eq!(
        argv[..5],
        [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write"
        ],
        "{argv:?}"
    );
    let lines = lines_of(&tt.dir().join("mcp.out"));
    assert_eq!(
        step(&lines, "get_task", 0)["structured"]["id"],
        "wired",
        "{lines:#?}"
    );
    let shown = json_of(&tt, &["task", "wired", "--json"]);
    assert_eq!(shown["progress"]["text"], "reached through codex's config");
}
