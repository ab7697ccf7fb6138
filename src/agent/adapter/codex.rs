//! Codex's `codex exec --json`: JSON Lines, as
//! https://developers.openai.com/codex/noninteractive and
//! `codex-rs/exec/src/exec_events.rs` define them:
//!
//! - `{"type":"thread.started","thread_id":…}` — the id `codex exec
//!   resume <id>` continues;
//! - `{"type":"turn.started"}`, then `{"type":"turn.completed","usage":
//!   {"input_tokens","cached_input_tokens","output_tokens"}}` or
//!   `{"type":"turn.failed","error":{"message":…}}`;
//! - `item.started` / `item.updated` / `item.completed` with an `item` of
//!   type `agent_message` (`text`), `reasoning`, `command_execution`
//!   (`command`, `exit_code`), `file_change` (`changes[].path`),
//!   `mcp_tool_call` (`server`, `tool`), `web_search` (`query`), `todo_list`
//!   or `error` (`message`);
//! - `{"type":"error","message":…}` for an unrecoverable stream error.
//!
//! Codex reports no cost: `cost_usd` stays unknown.

use serde_json::Value;

use super::{Progress, Transcript, count, text};

pub(super) fn event(v: &Value, p: &mut Progress, t: &mut Transcript) {
    match v.get("type").and_then(Value::as_str) {
        Some("thread.started") => {
            if let Some(id) = text(v, "thread_id") {
                p.session = Some(id.to_string());
            }
        }
        Some("turn.completed") => {
            p.turns = Some(p.turns.unwrap_or(0) + 1);
            p.is_error = Some(false);
            if let Some(u) = v.get("usage") {
                Progress::add_tokens(&mut p.input_tokens, count(u, "input_tokens"));
                Progress::add_tokens(&mut p.cache_read_tokens, count(u, "cached_input_tokens"));
                Progress::add_tokens(&mut p.output_tokens, count(u, "output_tokens"));
            }
        }
        Some("turn.failed") => {
            p.turns = Some(p.turns.unwrap_or(0) + 1);
            failed(v.get("error").and_then(|e| text(e, "message")), p, t);
        }
        Some("error") => failed(text(v, "message"), p, t),
        Some("item.completed") => {
            if let Some(item) = v.get("item") {
                item_completed(item, p, t);
            }
        }
        _ => {}
    }
}

fn failed(message: Option<&str>, p: &mut Progress, t: &mut Transcript) {
    p.is_error = Some(true);
    if let Some(m) = message {
        t.text(&format!("error: {m}"));
        p.result = Some(m.to_string());
    }
}

fn item_completed(item: &Value, p: &mut Progress, t: &mut Transcript) {
    match item.get("type").and_then(Value::as_str) {
        Some("agent_message") => {
            if let Some(s) = text(item, "text") {
                t.text(s);
                p.result = Some(s.to_string());
            }
        }
        Some("command_execution") => {
            let command = text(item, "command").unwrap_or("");
            let what = match item.get("exit_code").and_then(Value::as_i64) {
                Some(code) if code != 0 => format!("{command} (exit {code})"),
                _ => command.to_string(),
            };
            t.tool("shell", &what);
        }
        Some("file_change") => {
            let paths: Vec<&str> = match item.get("changes") {
                Some(Value::Array(c)) => c.iter().filter_map(|c| text(c, "path")).collect(),
                _ => Vec::new(),
            };
            t.tool("edit", &paths.join(", "));
        }
        Some("mcp_tool_call") => {
            let server = text(item, "server").unwrap_or("mcp");
            t.tool(
                &format!("{server}.{}", text(item, "tool").unwrap_or("?")),
                "",
            );
        }
        Some("web_search") => t.tool("web_search", text(item, "query").unwrap_or("")),
        Some("error") => {
            if let Some(m) = text(item, "message") {
                t.text(&format!("error: {m}"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Parser, Progress, Transcript};

    /// A run as the Codex docs show `codex exec --json`.
    const SUCCESS: &str = r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Searching for README files**"}}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"README.md\ndocs\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"docs/a.md","kind":"update"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Repo contains docs, sdk, and examples directories."}}
{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}"#;

    fn run(text: &str) -> (Progress, Transcript) {
        let mut p = Parser::new(Format::CodexJson);
        let (mut progress, mut t) = (Progress::default(), Transcript::default());
        for line in text.lines() {
            p.line(line, &mut progress, &mut t);
        }
        (progress, t)
    }

    #[test]
    fn a_success_gives_thread_message_and_usage() {
        let (p, t) = run(SUCCESS);
        assert_eq!(
            p.session.as_deref(),
            Some("0199a213-81c0-7800-8aa1-bbab2a035a53")
        );
        assert_eq!(
            p.result.as_deref(),
            Some("Repo contains docs, sdk, and examples directories.")
        );
        assert_eq!(
            (p.input_tokens, p.cache_read_tokens, p.output_tokens),
            (Some(24763), Some(24448), Some(122))
        );
        assert_eq!(
            (p.turns, p.is_error, p.cost_usd),
            (Some(1), Some(false), None)
        );
        assert_eq!(
            t.render(),
            "→ shell: bash -lc ls\n→ edit: docs/a.md\nRepo contains docs, sdk, and examples directories.\n"
        );
    }

    #[test]
    fn a_failed_turn_is_an_error_with_its_message() {
        let (p, t) = run("{\"type\":\"thread.started\",\"thread_id\":\"t1\"}\n\
             {\"type\":\"turn.failed\",\"error\":{\"message\":\"stream disconnected\"}}");
        assert_eq!(p.is_error, Some(true));
        assert_eq!(p.result.as_deref(), Some("stream disconnected"));
        assert_eq!(t.render(), "error: stream disconnected\n");
    }
}
