//! Agent CLIs driven for real: fake `claude`, `codex`, `opencode`, … on
//! PATH print their CLI's documented output line for line (and log their
//! argv); `tt run` reads it as it streams. Result, session, tokens and
//! cost land on the attempt and in the town's totals, budgets hold (as a
//! flag, or enforced from the stream by stopping the process group), and a
//! retry resumes the failed attempt's session.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{RedisServer, Tt, wait_until};

/// Every program a preset runs.
const PROGRAMS: &[&str] = &[
    "claude", "codex", "gemini", "aider", "goose", "opencode", "amp",
];

/// One fake CLI for every preset. It writes its argv (NUL-separated) to
/// `argv/<program>.<task>.<attempt>`, prints `fake/<task>.<attempt>.out`
/// (else `fake/<task>.out`) as it is, then: with a `.hang` file, waits for
/// a `sleep` it starts (its pid in `argv/<task>.<attempt>.sleeper`); with
/// `.crash`, kills itself (SIGKILL); exits with the code in `.code`, else 0.
const FAKE: &str = r#"#!/bin/sh
prog=${0##*/}
mkdir -p argv
for a in "$@"; do printf '%s\0' "$a"; done > "argv/$prog.$TT_TASK_ID.$TT_ATTEMPT"
f="fake/$TT_TASK_ID.$TT_ATTEMPT"
[ -e "$f.out" ] || f="fake/$TT_TASK_ID"
if [ -e "$f.hang" ]; then
  sleep 60 &
  echo $! > "argv/$TT_TASK_ID.$TT_ATTEMPT.sleeper"
fi
[ -e "$f.out" ] && cat "$f.out"
[ -e "$f.hang" ] && wait
[ -e "$f.crash" ] && kill -9 $$
[ -e "$f.code" ] && exit "$(cat "$f.code")"
exit 0
"#;

const PROMPT_SUFFIX: &str = "\n\n(tinytown task `";

/// Claude Code `-p --output-format stream-json --verbose`, a success, as
/// its docs and the Agent SDK's message types show it; with an event type
/// tt does not know and a line that is not JSON in the middle.
const CLAUDE_SUCCESS: &str = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b","tools":["Bash","Edit","Read"],"mcp_servers":[],"model":"claude-sonnet-4-5","permissionMode":"acceptEdits","apiKeySource":"ANTHROPIC_API_KEY"}
{"type":"assistant","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"I'll run the tests first."},{"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"cargo test","description":"Run tests"}}],"stop_reason":"tool_use","usage":{"input_tokens":4,"output_tokens":60}},"parent_tool_use_id":null,"session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b"}
{"type":"stream_event","event":{"type":"future_thing"},"session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b"}
this line is not JSON
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_01","type":"tool_result","content":"test result: ok. 3 passed","is_error":false}]},"parent_tool_use_id":null,"session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b"}
{"type":"assistant","message":{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"All 3 tests pass."}],"stop_reason":"end_turn","usage":{"input_tokens":6,"output_tokens":12}},"parent_tool_use_id":null,"session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b"}
{"type":"result","subtype":"success","is_error":false,"duration_ms":5321,"duration_api_ms":4100,"num_turns":2,"result":"All 3 tests pass.","session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b","total_cost_usd":0.0421,"usage":{"input_tokens":10,"cache_creation_input_tokens":1200,"cache_read_input_tokens":3400,"output_tokens":72}}
"#;

const CLAUDE_SESSION: &str = "8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b";

/// A Claude Code run that ends in an error result (exit 1).
const CLAUDE_ERROR: &str = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5","tools":["Bash"],"mcp_servers":[],"model":"claude-sonnet-4-5","permissionMode":"acceptEdits","apiKeySource":"ANTHROPIC_API_KEY"}
{"type":"assistant","message":{"id":"msg_11","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_11","name":"Bash","input":{"command":"make test"}}],"stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":20}},"parent_tool_use_id":null,"session_id":"0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5"}
{"type":"result","subtype":"error_during_execution","is_error":true,"duration_ms":900,"duration_api_ms":800,"num_turns":1,"session_id":"0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5","total_cost_usd":0.1,"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":20}}
"#;

const CLAUDE_ERROR_SESSION: &str = "0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5";

/// `codex exec --json`, a success, as the Codex docs show it.
const CODEX_SUCCESS: &str = r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Searching for README files**"}}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"README.md\ndocs\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Repo contains docs, sdk, and examples directories."}}
{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}
"#;

const CODEX_THREAD: &str = "0199a213-81c0-7800-8aa1-bbab2a035a53";

/// A Codex run cut off by a crash: the thread started, a line half written.
const CODEX_CRASH: &str = "{\"type\":\"thread.started\",\"thread_id\":\"0199a213-81c0-7800-8aa1-bbab2a035a53\"}\n\
{\"type\":\"turn.started\"}\n\
{\"type\":\"item.completed\",\"item\":{\"id\":\"item_0\",\"type\":\"agent_message\",\"text\":\"Halfway there.\"}}\n\
{\"type\":\"item.completed\",\"item\":{\"id\":\"item_1\",\"type\":\"comm";

/// `opencode run --format json`: two steps costing $0.25 and $0.27.
const OPENCODE_STEPS: &str = r#"{"type":"step_start","timestamp":1767036059338,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_1","sessionID":"ses_494719016ffe85dkDMj0FPRbHK","messageID":"msg_1","type":"step-start"}}
{"type":"tool_use","timestamp":1767036060000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_2","type":"tool","tool":"bash","callID":"c1","state":{"status":"completed","input":{"command":"go test ./..."},"output":"ok"}}}
{"type":"step_finish","timestamp":1767036061000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_3","type":"step-finish","reason":"tool-calls","cost":0.25,"tokens":{"input":1000,"output":50,"reasoning":0,"cache":{"read":10,"write":5}}}}
{"type":"step_finish","timestamp":1767036063000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_5","type":"step-finish","reason":"tool-calls","cost":0.27,"tokens":{"input":1100,"output":20,"reasoning":0,"cache":{"read":0,"write":0}}}}
"#;

/// A project whose PATH starts with the fake CLIs.
fn project(redis: &RedisServer, plan: &str) -> Tt {
    let tt = Tt::new().file("tasks.toml", plan).redis(redis);
    let bin = tt.dir().join("bin");
    for name in PROGRAMS {
        tt.write(Path::new("bin").join(name), FAKE);
        let path = bin.join(name);
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    tt.env("PATH", path)
}

/// What the fake prints for `task` (every attempt, or one).
fn fake(tt: &Tt, task: &str, attempt: Option<u32>, ext: &str, text: &str) {
    let name = match attempt {
        Some(n) => format!("fake/{task}.{n}.{ext}"),
        None => format!("fake/{task}.{ext}"),
    };
    tt.write(name, text);
}

/// The argv (without the program) `program` got for an attempt.
fn argv(tt: &Tt, program: &str, task: &str, attempt: u32) -> Vec<String> {
    let text = tt.read(format!("argv/{program}.{task}.{attempt}"));
    text.split_terminator('\0').map(String::from).collect()
}

fn prompt(description: &str, task: &str) -> String {
    format!("{description}{PROMPT_SUFFIX}{task}`)")
}

fn json_of(tt: &Tt, args: &[&str]) -> Value {
    let out = tt.run_with(args).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn task_json(tt: &Tt, id: &str) -> Value {
    json_of(tt, &["task", id, "--json"])
}

fn attempt_facts(task: &Value, attempt: usize) -> &Value {
    &task["attempts"][attempt - 1]["facts"]
}

fn approx(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9)
}

#[test]
fn claude_results_session_tokens_and_cost_land_on_the_attempt_and_in_the_totals() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "ad"

[agents.dev]
cli = "claude"

[[tasks]]
id = "build"
description = "Run the tests"
agent = "dev"

[[tasks]]
id = "broken"
description = "Fix the build"
agent = "dev"
"#;
    let tt = project(&redis, plan);
    fake(&tt, "build", None, "out", CLAUDE_SUCCESS);
    fake(&tt, "broken", None, "out", CLAUDE_ERROR);
    fake(&tt, "broken", None, "code", "1");
    let run = tt.run_with(["run", "--until-done"]).code(1);
    // `tt run` says what each agent concluded, what it cost, which session.
    let line = format!(
        "completed build on dev-1 — $0.04, 10 in / 72 out tokens, session {CLAUDE_SESSION}: All 3 tests pass."
    );
    assert!(run.stdout.contains(&line), "{run}");
    assert!(
        run.stdout
            .contains("the agent reported an error: error_during_execution"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("spent: $0.14, 15 in / 92 out tokens over 2 attempt(s) (dev $0.14"),
        "{run}"
    );

    let build = task_json(&tt, "build");
    assert_eq!(build["status"], "completed", "{build}");
    let f = attempt_facts(&build, 1);
    assert_eq!(f["result"], "All 3 tests pass.", "{f}");
    assert_eq!(f["session"], CLAUDE_SESSION);
    assert_eq!(f["input_tokens"], 10);
    assert_eq!(f["output_tokens"], 72);
    assert_eq!(f["cache_read_tokens"], 3400);
    assert_eq!(f["cache_write_tokens"], 1200);
    assert!(approx(&f["cost_usd"], 0.0421), "{f}");
    assert_eq!(f["turns"], 2);
    assert_eq!(f["is_error"], false);
    // The line that was not JSON is counted, and noted in the log; the
    // unknown event is skipped without a word.
    assert_eq!(f["malformed_lines"], 1);
    let log = tt.read(".tt/logs/build/1.log");
    assert!(log.contains("\"type\":\"result\""), "the raw stream: {log}");
    assert!(log.contains("[tt] output line 4 is not"), "{log}");

    // `tt tasks --json` has the last attempt's facts.
    let tasks = json_of(&tt, &["tasks", "--json"]);
    let listed = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "build")
        .unwrap();
    assert_eq!(listed["facts"]["session"], CLAUDE_SESSION, "{listed}");

    // `tt task` shows the readable transcript, not the raw JSON, and what
    // the agent reported.
    let text = tt.run_with(["task", "build"]).success().stdout;
    assert!(text.contains("→ Bash: cargo test"), "{text}");
    assert!(text.contains("I'll run the tests first."), "{text}");
    assert!(!text.contains("\"type\""), "{text}");
    assert!(
        text.contains(&format!("#1 session {CLAUDE_SESSION}")),
        "{text}"
    );
    assert!(text.contains("$0.04"), "{text}");
    assert!(text.contains("result: All 3 tests pass."), "{text}");

    // An error result fails the attempt even though its output parsed.
    let broken = task_json(&tt, "broken");
    assert_eq!(broken["status"], "failed", "{broken}");
    let f = attempt_facts(&broken, 1);
    assert_eq!(f["is_error"], true, "{f}");
    assert_eq!(f["result"], "error_during_execution");
    let error = tt.run_with(["task", "broken"]).success().stdout;
    assert!(
        error.contains("the agent reported an error: error_during_execution"),
        "{error}"
    );

    // The town's totals: both attempts, per agent and overall.
    let status = json_of(&tt, &["status", "--json"]);
    let usage = &status["usage"];
    assert!(approx(&usage["total"]["cost_usd"], 0.1421), "{usage}");
    assert_eq!(usage["total"]["input_tokens"], 15, "{usage}");
    assert_eq!(usage["total"]["output_tokens"], 92, "{usage}");
    assert_eq!(usage["total"]["attempts"], 2, "{usage}");
    assert!(
        approx(&usage["agents"]["dev"]["cost_usd"], 0.1421),
        "{usage}"
    );
    let text = tt.run_with(["status"]).success().stdout;
    assert!(text.contains("usage"), "{text}");
    assert!(text.contains("$0.14"), "{text}");
}

#[test]
fn a_claude_retry_resumes_the_failed_attempts_session_and_counts_both() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "ad"

[agents.dev]
cli = "claude"
retries = 1
max_cost_usd = 0.5
max_turns = 30

[[tasks]]
id = "fix"
description = "Fix it"
agent = "dev"
"#;
    let tt = project(&redis, plan);
    fake(&tt, "fix", Some(1), "out", CLAUDE_ERROR);
    fake(&tt, "fix", Some(1), "code", "1");
    fake(&tt, "fix", Some(2), "out", CLAUDE_SUCCESS);
    tt.run_with(["run", "--until-done"]).success();

    // The budget is passed as the CLI's own flags.
    let first = argv(&tt, "claude", "fix", 1);
    let flags = ["--max-budget-usd", "0.5", "--max-turns", "30"];
    assert!(
        first.windows(4).any(|w| w == flags),
        "budget flags in {first:?}"
    );
    assert!(!first.contains(&"--resume".to_string()), "{first:?}");
    let second = argv(&tt, "claude", "fix", 2);
    let resume = ["--resume".to_string(), CLAUDE_ERROR_SESSION.to_string()];
    assert!(second.windows(2).any(|w| w == resume), "{second:?}");
    assert!(second.contains(&prompt("Fix it", "fix")), "{second:?}");

    let fix = task_json(&tt, "fix");
    assert_eq!(fix["status"], "completed", "{fix}");
    assert_eq!(attempt_facts(&fix, 1)["session"], CLAUDE_ERROR_SESSION);
    assert!(attempt_facts(&fix, 1).get("resumed").is_none());
    assert_eq!(attempt_facts(&fix, 2)["resumed"], CLAUDE_ERROR_SESSION);
    let usage = &json_of(&tt, &["status", "--json"])["usage"];
    assert_eq!(usage["total"]["attempts"], 2, "{usage}");
    assert!(approx(&usage["total"]["cost_usd"], 0.1421), "{usage}");
}

#[test]
fn codex_output_is_read_and_a_crashed_attempt_is_resumed() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "ad"

[agents.rev]
cli = "codex"
retries = 1
mcp = false

[[tasks]]
id = "review"
description = "Review it"
agent = "rev"
"#;
    let tt = project(&redis, plan);
    fake(&tt, "review", Some(1), "out", CODEX_CRASH);
    fake(&tt, "review", Some(1), "crash", "");
    fake(&tt, "review", Some(2), "out", CODEX_SUCCESS);
    tt.run_with(["run", "--until-done"]).success();

    let review = task_json(&tt, "review");
    assert_eq!(review["status"], "completed", "{review}");
    // The crash: what the stream said before it was cut off is kept.
    let first = attempt_facts(&review, 1);
    assert_eq!(first["session"], CODEX_THREAD, "{review}");
    assert_eq!(first["result"], "Halfway there.");
    assert_eq!(first["malformed_lines"], 1, "the half line");
    assert_eq!(review["attempts"][0]["outcome"], "retried");
    // The retry continues the thread: flags between `exec` and `resume`.
    let pr = prompt("Review it", "review");
    assert_eq!(
        argv(&tt, "codex", "review", 2),
        [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
            "resume",
            CODEX_THREAD,
            pr.as_str()
        ]
    );
    let second = attempt_facts(&review, 2);
    assert_eq!(second["resumed"], CODEX_THREAD);
    assert_eq!(
        second["result"],
        "Repo contains docs, sdk, and examples directories."
    );
    assert_eq!(second["input_tokens"], 24763);
    assert_eq!(second["cache_read_tokens"], 24448);
    assert_eq!(second["output_tokens"], 122);
    assert!(second.get("cost_usd").is_none(), "codex reports no cost");
    let usage = &json_of(&tt, &["status", "--json"])["usage"];
    assert_eq!(usage["agents"]["rev"]["output_tokens"], 122, "{usage}");
    let text = tt.run_with(["task", "review"]).success().stdout;
    assert!(text.contains("→ shell: bash -lc ls"), "{text}");
}

#[test]
fn a_budget_the_cli_has_no_flag_for_is_enforced_from_the_stream() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "ad"

[agents.oc]
cli = "opencode"
max_cost_usd = 0.5

[[tasks]]
id = "spend"
description = "Spend"
agent = "oc"
"#;
    let tt = project(&redis, plan);
    fake(&tt, "spend", None, "out", OPENCODE_STEPS);
    fake(&tt, "spend", None, "hang", "");
    let started = Instant::now();
    tt.run_with(["run", "--until-done"]).code(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped long before the fake's sleep ends"
    );
    let spend = task_json(&tt, "spend");
    assert_eq!(spend["status"], "failed", "{spend}");
    let text = tt.run_with(["task", "spend"]).success().stdout;
    assert!(text.contains("over budget: $0.52 of $0.50"), "{text}");
    assert!(
        approx(&attempt_facts(&spend, 1)["cost_usd"], 0.52),
        "{spend}"
    );
    assert!(
        !argv(&tt, "opencode", "spend", 1)
            .iter()
            .any(|a| a.contains("budget")),
        "opencode has no budget flag"
    );
    // The whole process group went: the fake's own child too.
    let sleeper: i32 = tt.read("argv/spend.1.sleeper").trim().parse().expect("pid");
    wait_until(Duration::from_secs(10), "the sleeper is gone", || {
        let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z")
    });
    let log = tt.read(".tt/logs/spend/1.log");
    assert!(log.contains("[tt] over budget: $0.52 of $0.50"), "{log}");
}

/// Runs one task on an agent of `cli` (plus `extra` lines in its table)
/// and returns the argv its program got.
fn argv_of(cli: &str, extra: &str) -> (Vec<String>, String) {
    let redis = RedisServer::start();
    let plan = format!(
        "[town]\nname = \"ad\"\n\n[agents.a]\ncli = \"{cli}\"\nmcp = false\n{extra}\n\n\
         [[tasks]]\nid = \"t\"\ndescription = \"Do it\"\nagent = \"a\"\n"
    );
    let tt = project(&redis, &plan);
    tt.run_with(["run", "--until-done"]).success();
    let program = if cli == "shell" { "sh" } else { cli };
    let got = if cli == "shell" {
        Vec::new()
    } else {
        argv(&tt, program, "t", 1)
    };
    (got, prompt("Do it", "t"))
}

macro_rules! pins_argv {
    ($name:ident, $cli:literal, $extra:literal, [$($arg:expr),* $(,)?]) => {
        #[test]
        fn $name() {
            let (got, prompt) = argv_of($cli, $extra);
            let prompt = prompt.as_str();
            let want: Vec<&str> = vec![$($arg),*];
            let want: Vec<&str> = want.into_iter().map(|a| if a == "{prompt}" { prompt } else { a }).collect();
            assert_eq!(got, want);
        }
    };
}

pins_argv!(
    the_claude_preset_argv,
    "claude",
    "",
    [
        "--output-format",
        "stream-json",
        "--verbose",
        "--allowedTools",
        "Bash",
        "--permission-mode",
        "acceptEdits",
        "-p",
        "{prompt}"
    ]
);
pins_argv!(
    the_claude_preset_with_permissions_and_args,
    "claude",
    "permissions = \"plan\"\nargs = [\"--model\", \"opus\"]",
    [
        "--output-format",
        "stream-json",
        "--verbose",
        "--allowedTools",
        "Bash",
        "--permission-mode",
        "plan",
        "--model",
        "opus",
        "-p",
        "{prompt}"
    ]
);
pins_argv!(
    the_codex_preset_argv,
    "codex",
    "",
    [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        "{prompt}"
    ]
);
pins_argv!(
    the_codex_preset_with_permissions,
    "codex",
    "permissions = \"read-only\"",
    [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "read-only",
        "{prompt}"
    ]
);
pins_argv!(
    the_gemini_preset_argv,
    "gemini",
    "",
    [
        "--output-format",
        "stream-json",
        "--approval-mode",
        "auto_edit",
        "-p",
        "{prompt}"
    ]
);
pins_argv!(
    the_aider_preset_argv,
    "aider",
    "",
    ["--yes-always", "--message", "{prompt}"]
);
pins_argv!(
    the_goose_preset_argv,
    "goose",
    "",
    ["run", "-t", "{prompt}"]
);
pins_argv!(
    the_opencode_preset_argv,
    "opencode",
    "",
    ["run", "--format", "json", "{prompt}"]
);
pins_argv!(
    the_amp_preset_argv,
    "amp",
    "",
    ["--stream-json", "-x", "{prompt}"]
);

#[test]
fn permissions_for_a_preset_without_the_flag_is_a_plan_error() {
    let redis = RedisServer::start();
    let plan = "[agents.a]\ncli = \"aider\"\npermissions = \"all\"\n\n\
                [[tasks]]\nid = \"t\"\ndescription = \"d\"\nagent = \"a\"\n";
    let tt = project(&redis, plan);
    let out = tt.run_with(["plan"]).code(2);
    assert!(
        out.stderr
            .contains("the `aider` preset has no permission flag"),
        "{out}"
    );
}

#[test]
fn a_spent_town_budget_stops_new_attempts_and_says_so() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "ad"
max_cost_usd = 0.03

[agents.dev]
cli = "claude"

[[tasks]]
id = "first"
description = "First"
agent = "dev"

[[tasks]]
id = "second"
description = "Second"
agent = "dev"
depends_on = ["first"]
"#;
    let tt = project(&redis, plan);
    fake(&tt, "first", None, "out", CLAUDE_SUCCESS);
    fake(&tt, "second", None, "out", CLAUDE_SUCCESS);
    let run = tt.run_with(["run", "--until-done"]).code(1);
    let said = "town budget reached: $0.04 of $0.03 spent; no new attempts are dispatched";
    assert!(run.stdout.contains(said), "{run}");
    assert_eq!(task_json(&tt, "first")["status"], "completed");
    assert_eq!(task_json(&tt, "second")["status"], "pending");
    assert!(!tt.dir().join("argv/claude.second.1").exists());
    let status = json_of(&tt, &["status", "--json"]);
    assert_eq!(status["budget_reached"], true, "{status}");
    let text = tt.run_with(["status"]).success().stdout;
    assert!(
        text.contains("town budget reached: $0.04 of $0.03"),
        "{text}"
    );
}

#[test]
fn a_tasks_own_budget_overrides_the_agents() {
    let redis = RedisServer::start();
    let plan = r#"[town]
name = "ad"

[agents.dev]
cli = "claude"
max_cost_usd = 0.5
max_turns = 30

[[tasks]]
id = "small"
description = "Small"
agent = "dev"
max_turns = 1
"#;
    let tt = project(&redis, plan);
    fake(&tt, "small", None, "out", CLAUDE_SUCCESS);
    tt.run_with(["run", "--until-done"]).code(1);
    let args = argv(&tt, "claude", "small", 1);
    let flags = ["--max-budget-usd", "0.5", "--max-turns", "1"];
    assert!(args.windows(4).any(|w| w == flags), "{args:?}");
    // The fake ignores the flag and takes two turns: tinytown holds it.
    let small = task_json(&tt, "small");
    assert_eq!(small["status"], "failed", "{small}");
    let text = tt.run_with(["task", "small"]).success().stdout;
    assert!(text.contains("over budget: 2 turns of 1"), "{text}");
}

/// Town `town` with one claude task, `long`, whose attempt 1 says its
/// session and one message, then works on (until killed); attempt 2
/// succeeds.
fn long_claude_task(town: &str) -> (RedisServer, Tt) {
    let redis = RedisServer::start();
    let plan = format!(
        "[town]\nname = \"{town}\"\n\n[agents.dev]\ncli = \"claude\"\n\n\
         [[tasks]]\nid = \"long\"\ndescription = \"Long work\"\nagent = \"dev\"\n"
    );
    let tt = project(&redis, &plan);
    let started: String = CLAUDE_SUCCESS
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    fake(&tt, "long", Some(1), "out", &started);
    fake(&tt, "long", Some(1), "hang", "");
    fake(&tt, "long", Some(2), "out", CLAUDE_SUCCESS);
    (redis, tt)
}

#[test]
fn an_attempt_interrupted_by_a_shutdown_is_resumed_by_the_next_run() {
    let (redis, tt) = long_claude_task("ad");
    let run = crate::support::Running::start(&tt, &["run"]);
    wait_until(
        Duration::from_secs(30),
        "attempt 1 said its session",
        || {
            std::fs::read_to_string(tt.dir().join(".tt/logs/long/1.log"))
                .is_ok_and(|l| l.contains("\"type\":\"assistant\""))
        },
    );
    assert_eq!(run.stop(), 0);
    let stored: Value =
        serde_json::from_str(&crate::RedisExt::task_field(&redis, "ad", "long", "facts"))
            .expect("facts kept on the task");
    assert_eq!(stored["session"], CLAUDE_SESSION, "{stored}");
    let log = tt.read(".tt/logs/long/1.log");
    assert!(
        log.contains(&format!("[tt] kept session {CLAUDE_SESSION}")),
        "{log}"
    );
    // The next run recovers the task; its attempt continues the session.
    tt.run_with(["run", "--until-done"]).success();
    let second = argv(&tt, "claude", "long", 2);
    let resume = ["--resume".to_string(), CLAUDE_SESSION.to_string()];
    assert!(second.windows(2).any(|w| w == resume), "{second:?}");
    let long = task_json(&tt, "long");
    assert_eq!(attempt_facts(&long, 2)["resumed"], CLAUDE_SESSION, "{long}");
}

#[test]
fn a_worker_killed_outright_leaves_its_session_for_the_retry_to_resume() {
    let (redis, tt) = long_claude_task("ak");
    let _run = crate::support::Running::start(&tt, &["run"]);
    let keys = tinytown::store::Keys::new("ak");
    // The session is on the task while attempt 1 runs: nothing waits for
    // the attempt to end (which it never does: its worker is killed).
    wait_until(
        Duration::from_secs(30),
        "attempt 1's session is noted on the task",
        || {
            crate::RedisExt::hgetall(&redis, &keys.task("long"))
                .get("facts")
                .is_some_and(|f| f.contains(CLAUDE_SESSION))
        },
    );
    let worker = crate::RedisExt::task_field(&redis, "ak", "long", "worker");
    let pid: i32 = crate::RedisExt::hgetall(&redis, &keys.agent(&worker))
        .get("pid")
        .and_then(|p| p.parse().ok())
        .expect("the worker's pid");
    // SAFETY: kill(2) on the worker process the runner started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    // Recovery requeues the task; attempt 2 continues attempt 1's session.
    wait_until(Duration::from_secs(60), "the retry completes", || {
        crate::RedisExt::task_field(&redis, "ak", "long", "status") == "completed"
    });
    let second = argv(&tt, "claude", "long", 2);
    let resume = ["--resume".to_string(), CLAUDE_SESSION.to_string()];
    assert!(second.windows(2).any(|w| w == resume), "{second:?}");
    let long = task_json(&tt, "long");
    assert_eq!(attempt_facts(&long, 2)["resumed"], CLAUDE_SESSION, "{long}");
    // Attempt 1's tokens so far (its one message: 4 in, 60 out) count in
    // the town's totals beside attempt 2's (10 in, 72 out).
    let usage = crate::RedisExt::hgetall(&redis, &keys.usage());
    let field = |name: &str| usage.get(name).cloned().unwrap_or_default();
    assert_eq!(field("attempts"), "2", "{usage:?}");
    assert_eq!(field("input_tokens"), "14", "{usage:?}");
    assert_eq!(field("output_tokens"), "132", "{usage:?}");
}
