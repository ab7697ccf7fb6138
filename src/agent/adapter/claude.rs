//! Claude Code's `--output-format stream-json --verbose` (with `-p`), one
//! JSON object per line, as https://code.claude.com/docs/en/headless and
//! the Agent SDK's message types describe it:
//!
//! - `{"type":"system","subtype":"init","session_id":…}` opens the run;
//! - `{"type":"assistant","message":{"id":…,"content":[…]}}` per model
//!   message, its content `text` and `tool_use` (`name`, `input`) blocks;
//! - `{"type":"user",…}` carries tool results (not shown);
//! - `{"type":"result","subtype":"success"|"error_…","is_error":…,
//!   "result":…,"num_turns":…,"session_id":…,"total_cost_usd":…,
//!   "usage":{"input_tokens","output_tokens","cache_read_input_tokens",
//!   "cache_creation_input_tokens"}}` closes it.
//!
//! Amp's `--stream-json` writes the same events (https://ampcode.com/manual).

use serde_json::Value;

use super::{Progress, State, Transcript, count, summary, text};

pub(super) fn event(v: &Value, state: &mut State, p: &mut Progress, t: &mut Transcript) {
    if let Some(s) = text(v, "session_id") {
        p.session = Some(s.to_string());
    }
    match v.get("type").and_then(Value::as_str) {
        Some("assistant") => assistant(v, state, p, t),
        Some("result") => result(v, p),
        _ => {}
    }
}

fn assistant(v: &Value, state: &mut State, p: &mut Progress, t: &mut Transcript) {
    let Some(message) = v.get("message") else {
        return;
    };
    // One model message may come as several events (one per content
    // block), all with its id: a turn is a message, not an event.
    let new = match text(message, "id") {
        Some(id) if state.claude_messages.iter().any(|m| m == id) => false,
        Some(id) => {
            state.claude_messages.push(id.to_string());
            p.turns = Some(state.claude_messages.len() as u64);
            true
        }
        None => {
            p.turns = Some(p.turns.unwrap_or(0) + 1);
            true
        }
    };
    // Tokens so far, message by message, until the result gives the
    // run's totals: a run cut off before its result still counts them.
    if new && let Some(u) = message.get("usage") {
        add(&mut p.input_tokens, count(u, "input_tokens"));
        add(&mut p.output_tokens, count(u, "output_tokens"));
        add(
            &mut p.cache_read_tokens,
            count(u, "cache_read_input_tokens"),
        );
        add(
            &mut p.cache_write_tokens,
            count(u, "cache_creation_input_tokens"),
        );
    }
    let Some(Value::Array(blocks)) = message.get("content") else {
        return;
    };
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(s) = text(b, "text") {
                    t.text(s);
                }
            }
            Some("tool_use") => {
                let name = text(b, "name").unwrap_or("tool");
                t.tool(name, &summary(b.get("input").unwrap_or(&Value::Null)));
            }
            _ => {}
        }
    }
}

fn add(total: &mut Option<u64>, more: Option<u64>) {
    if let Some(n) = more {
        *total = Some(total.unwrap_or(0).saturating_add(n));
    }
}

fn result(v: &Value, p: &mut Progress) {
    let is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(false)
        || text(v, "subtype").is_some_and(|s| s.starts_with("error"));
    p.is_error = Some(is_error);
    match text(v, "result") {
        Some(r) => p.result = Some(r.to_string()),
        // An error result may have no message: its subtype says what.
        None if is_error => p.result = text(v, "subtype").map(String::from),
        None => {}
    }
    if let Some(n) = count(v, "num_turns") {
        p.turns = Some(n);
    }
    if let Some(c) = v.get("total_cost_usd").and_then(Value::as_f64) {
        p.cost_usd = Some(c);
    }
    if let Some(u) = v.get("usage") {
        p.input_tokens = count(u, "input_tokens").or(p.input_tokens);
        p.output_tokens = count(u, "output_tokens").or(p.output_tokens);
        p.cache_read_tokens = count(u, "cache_read_input_tokens").or(p.cache_read_tokens);
        p.cache_write_tokens = count(u, "cache_creation_input_tokens").or(p.cache_write_tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Parser, Progress, Transcript};

    /// A run as Claude Code prints it (abridged only in `tools`).
    pub const SUCCESS: &str = r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b","tools":["Bash","Edit","Read"],"mcp_servers":[],"model":"claude-sonnet-4-5","permissionMode":"acceptEdits","apiKeySource":"ANTHROPIC_API_KEY"}
{"type":"assistant","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"I'll run the tests first."},{"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"cargo test","description":"Run tests"}}],"stop_reason":"tool_use","usage":{"input_tokens":4,"output_tokens":60}},"parent_tool_use_id":null,"session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b"}
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_01","type":"tool_result","content":"test result: ok. 3 passed","is_error":false}]},"parent_tool_use_id":null,"session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b"}
{"type":"assistant","message":{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"All 3 tests pass."}],"stop_reason":"end_turn","usage":{"input_tokens":6,"output_tokens":12}},"parent_tool_use_id":null,"session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b"}
{"type":"result","subtype":"success","is_error":false,"duration_ms":5321,"duration_api_ms":4100,"num_turns":2,"result":"All 3 tests pass.","session_id":"8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b","total_cost_usd":0.0421,"usage":{"input_tokens":10,"cache_creation_input_tokens":1200,"cache_read_input_tokens":3400,"output_tokens":72}}"#;

    fn run(text: &str) -> (Progress, Transcript) {
        let mut p = Parser::new(Format::ClaudeStream);
        let (mut progress, mut t) = (Progress::default(), Transcript::default());
        for line in text.lines() {
            p.line(line, &mut progress, &mut t);
        }
        p.end(&mut progress, &mut t);
        (progress, t)
    }

    #[test]
    fn a_success_gives_result_session_tokens_cost_and_turns() {
        let (p, t) = run(SUCCESS);
        assert_eq!(p.result.as_deref(), Some("All 3 tests pass."));
        assert_eq!(
            p.session.as_deref(),
            Some("8f7e2a4c-1b3d-4e5f-9a8b-7c6d5e4f3a2b")
        );
        assert_eq!((p.input_tokens, p.output_tokens), (Some(10), Some(72)));
        assert_eq!(
            (p.cache_read_tokens, p.cache_write_tokens),
            (Some(3400), Some(1200))
        );
        assert_eq!(
            (p.cost_usd, p.turns, p.is_error),
            (Some(0.0421), Some(2), Some(false))
        );
        assert_eq!(
            t.render(),
            "I'll run the tests first.\n→ Bash: cargo test\nAll 3 tests pass.\n"
        );
    }

    #[test]
    fn an_error_result_without_text_names_its_subtype() {
        let (p, _) = run(
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,"session_id":"s1","total_cost_usd":0.5}"#,
        );
        assert_eq!(p.is_error, Some(true));
        assert_eq!(p.result.as_deref(), Some("error_max_turns"));
        assert_eq!(p.session.as_deref(), Some("s1"));
    }

    #[test]
    fn turns_count_messages_while_streaming() {
        let lines: Vec<&str> = SUCCESS.lines().take(4).collect();
        let (p, _) = run(&lines.join("\n"));
        assert_eq!(p.turns, Some(2));
        assert_eq!(p.result, None);
    }

    #[test]
    fn tokens_add_up_message_by_message_until_the_result_gives_the_totals() {
        // Cut off before the result: each message's usage, once per message
        // (a message's blocks repeat its id and usage).
        let first = SUCCESS.lines().nth(1).unwrap_or_default();
        let lines: Vec<&str> = SUCCESS.lines().take(4).collect();
        let (p, _) = run(&format!("{}\n{first}", lines.join("\n")));
        assert_eq!((p.input_tokens, p.output_tokens), (Some(10), Some(72)));
        let (p, _) = run(SUCCESS.lines().next().unwrap_or_default());
        assert_eq!((p.input_tokens, p.output_tokens), (None, None));
    }
}
