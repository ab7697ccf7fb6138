//! Gemini CLI's `--output-format stream-json` (headless, `-p`): JSON Lines,
//! as https://geminicli.com/docs/cli/headless/ lists them:
//!
//! - `{"type":"init","session_id":…,"model":…}`;
//! - `{"type":"message","role":"assistant","content":…,"delta":true}`,
//!   the assistant's text in chunks (`role":"user"` echoes the prompt);
//! - `{"type":"tool_use","tool_name":…,"tool_id":…,"parameters":{…}}` and
//!   `{"type":"tool_result","tool_id":…,"status":…}`;
//! - `{"type":"error","severity":…,"message":…}` (non-fatal);
//! - `{"type":"result","status":"success"|"error","stats":{"total_tokens",
//!   "input_tokens","output_tokens","cached","duration_ms","tool_calls"}}`.
//!
//! Gemini reports no cost.

use serde_json::Value;

use super::{Progress, State, Transcript, count, summary, text};

pub(super) fn event(v: &Value, state: &mut State, p: &mut Progress, t: &mut Transcript) {
    if let Some(s) = text(v, "session_id").or_else(|| text(v, "sessionId")) {
        p.session = Some(s.to_string());
    }
    let kind = v.get("type").and_then(Value::as_str);
    // A message ends where anything else begins.
    if kind != Some("message") {
        flush(state, p, t);
    }
    match kind {
        Some("message") if text(v, "role") == Some("assistant") => {
            if let Some(s) = v.get("content").and_then(Value::as_str) {
                if v.get("delta").and_then(Value::as_bool) != Some(true) {
                    flush(state, p, t);
                }
                state.gemini_message.push_str(s);
            }
        }
        Some("tool_use") => {
            p.turns = Some(p.turns.unwrap_or(0) + 1);
            t.tool(
                text(v, "tool_name").unwrap_or("tool"),
                &summary(v.get("parameters").unwrap_or(&Value::Null)),
            );
        }
        Some("error") => {
            if let Some(m) = text(v, "message") {
                t.text(&format!("error: {m}"));
            }
        }
        Some("result") => {
            let ok = text(v, "status") == Some("success");
            p.is_error = Some(!ok);
            if let Some(m) = v.get("error").and_then(|e| text(e, "message"))
                && !ok
            {
                p.result = Some(m.to_string());
            }
            if let Some(s) = v.get("stats") {
                p.input_tokens = count(s, "input_tokens").or(p.input_tokens);
                p.output_tokens = count(s, "output_tokens").or(p.output_tokens);
                p.cache_read_tokens = count(s, "cached").or(p.cache_read_tokens);
            }
        }
        _ => {}
    }
}

pub(super) fn end(state: &mut State, p: &mut Progress, t: &mut Transcript) {
    flush(state, p, t);
}

fn flush(state: &mut State, p: &mut Progress, t: &mut Transcript) {
    let message = std::mem::take(&mut state.gemini_message);
    if !message.trim().is_empty() {
        t.text(&message);
        p.result = Some(message);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Parser, Progress, Transcript};

    const SUCCESS: &str = r#"{"type":"init","timestamp":"2025-10-10T12:00:00.000Z","session_id":"c25acda3-b3b5-4b5e-9f5c-8a9f4d1e2c3b","model":"gemini-2.5-pro"}
{"type":"message","timestamp":"2025-10-10T12:00:00.100Z","role":"user","content":"Run the tests"}
{"type":"tool_use","timestamp":"2025-10-10T12:00:01.000Z","tool_name":"run_shell_command","tool_id":"t1","parameters":{"command":"npm test"}}
{"type":"tool_result","timestamp":"2025-10-10T12:00:03.000Z","tool_id":"t1","status":"success","output":"ok"}
{"type":"message","timestamp":"2025-10-10T12:00:04.000Z","role":"assistant","content":"All tests ","delta":true}
{"type":"message","timestamp":"2025-10-10T12:00:04.100Z","role":"assistant","content":"pass.","delta":true}
{"type":"result","timestamp":"2025-10-10T12:00:04.200Z","status":"success","stats":{"total_tokens":250,"input_tokens":200,"output_tokens":50,"cached":20,"duration_ms":4200,"tool_calls":1}}"#;

    #[test]
    fn chunks_make_the_result_and_stats_the_tokens() {
        let mut parser = Parser::new(Format::GeminiStream);
        let (mut p, mut t) = (Progress::default(), Transcript::default());
        for l in SUCCESS.lines() {
            parser.line(l, &mut p, &mut t);
        }
        parser.end(&mut p, &mut t);
        assert_eq!(p.result.as_deref(), Some("All tests pass."));
        assert_eq!(
            p.session.as_deref(),
            Some("c25acda3-b3b5-4b5e-9f5c-8a9f4d1e2c3b")
        );
        assert_eq!(
            (p.input_tokens, p.output_tokens, p.cache_read_tokens),
            (Some(200), Some(50), Some(20))
        );
        assert_eq!(p.is_error, Some(false));
        assert_eq!(
            t.render(),
            "→ run_shell_command: npm test\nAll tests pass.\n"
        );
    }
}
