//! opencode's `run --format json`: JSON Lines, each with `type`,
//! `timestamp` and `sessionID` (https://opencode.ai/docs/cli/, the `run`
//! command):
//!
//! - `step_start` opens a model step;
//! - `text` with `part.text`, the assistant's text;
//! - `tool_use` with `part.tool` and `part.state` (`status`, `input`);
//! - `step_finish` with `part.cost` (USD) and `part.tokens` (`input`,
//!   `output`, `reasoning`, `cache.read`, `cache.write`) for that step;
//! - `error` with `error` (`name`, `data.message`).
//!
//! Cost and tokens are per step and add up; each step is a turn.

use serde_json::Value;

use super::{Progress, Transcript, count, summary, text};

pub(super) fn event(v: &Value, p: &mut Progress, t: &mut Transcript) {
    if let Some(s) = text(v, "sessionID") {
        p.session = Some(s.to_string());
    }
    let part = v.get("part").unwrap_or(&Value::Null);
    match v.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(s) = text(part, "text") {
                t.text(s);
                p.result = Some(s.to_string());
            }
        }
        Some("tool_use") => {
            let input = part
                .get("state")
                .and_then(|s| s.get("input"))
                .unwrap_or(&Value::Null);
            t.tool(text(part, "tool").unwrap_or("tool"), &summary(input));
        }
        Some("step_finish") => {
            p.turns = Some(p.turns.unwrap_or(0) + 1);
            p.is_error = Some(false);
            if let Some(c) = part.get("cost").and_then(Value::as_f64) {
                p.cost_usd = Some(p.cost_usd.unwrap_or(0.0) + c);
            }
            if let Some(tk) = part.get("tokens") {
                Progress::add_tokens(&mut p.input_tokens, count(tk, "input"));
                Progress::add_tokens(&mut p.output_tokens, count(tk, "output"));
                if let Some(cache) = tk.get("cache") {
                    Progress::add_tokens(&mut p.cache_read_tokens, count(cache, "read"));
                    Progress::add_tokens(&mut p.cache_write_tokens, count(cache, "write"));
                }
            }
        }
        Some("error") => {
            p.is_error = Some(true);
            let e = v.get("error").unwrap_or(&Value::Null);
            let message = e
                .get("data")
                .and_then(|d| text(d, "message"))
                .or_else(|| text(e, "message"))
                .or_else(|| text(e, "name"))
                .unwrap_or("error");
            t.text(&format!("error: {message}"));
            p.result = Some(message.to_string());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Parser, Progress, Transcript};

    const RUN: &str = r#"{"type":"step_start","timestamp":1767036059338,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_1","sessionID":"ses_494719016ffe85dkDMj0FPRbHK","messageID":"msg_1","type":"step-start"}}
{"type":"tool_use","timestamp":1767036060000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_2","type":"tool","tool":"bash","callID":"c1","state":{"status":"completed","input":{"command":"go test ./..."},"output":"ok"}}}
{"type":"step_finish","timestamp":1767036061000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_3","type":"step-finish","reason":"tool-calls","cost":0.25,"tokens":{"input":1000,"output":50,"reasoning":0,"cache":{"read":10,"write":5}}}}
{"type":"text","timestamp":1767036062000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_4","type":"text","text":"Tests pass."}}
{"type":"step_finish","timestamp":1767036063000,"sessionID":"ses_494719016ffe85dkDMj0FPRbHK","part":{"id":"prt_5","type":"step-finish","reason":"stop","cost":0.27,"tokens":{"input":1100,"output":20,"reasoning":0,"cache":{"read":0,"write":0}}}}"#;

    #[test]
    fn steps_add_up_cost_tokens_and_turns() {
        let mut parser = Parser::new(Format::OpencodeJson);
        let (mut p, mut t) = (Progress::default(), Transcript::default());
        for l in RUN.lines() {
            parser.line(l, &mut p, &mut t);
        }
        assert_eq!(p.session.as_deref(), Some("ses_494719016ffe85dkDMj0FPRbHK"));
        assert_eq!(p.result.as_deref(), Some("Tests pass."));
        assert_eq!(p.turns, Some(2));
        assert!((p.cost_usd.unwrap() - 0.52).abs() < 1e-9);
        assert_eq!((p.input_tokens, p.output_tokens), (Some(2100), Some(70)));
        assert_eq!(
            (p.cache_read_tokens, p.cache_write_tokens),
            (Some(10), Some(5))
        );
        assert_eq!(t.render(), "→ bash: go test ./...\nTests pass.\n");
    }
}
