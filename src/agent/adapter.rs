//! Adapters: reading what an agent CLI reports about its run from the
//! machine-readable output it writes while it works (JSON Lines on stdout).
//!
//! Each format has its own file and is fed one line at a time, as the
//! command writes it, so tinytown knows the session, tokens, cost and turns
//! *during* the run (budgets are enforced from them, [`super::budget`]) and
//! the agent's final message once it is done. Parsing is tolerant: an
//! event type or field a format does not know is skipped, and a line that
//! is not JSON is counted and noted in the log, never a failure of the task
//! by itself. What the run learned becomes the attempt's facts
//! ([`Progress::facts`]); what people read — assistant text, one line per
//! tool call — is the [`Transcript`].

mod claude;
mod codex;
mod gemini;
mod opencode;
pub mod stream;

use std::collections::VecDeque;

use serde_json::Value;

use crate::store::Facts;

/// The formats, named where the presets are ([`crate::plan::presets`]).
pub use crate::plan::presets::Output as Format;

/// What an agent's output said so far. Every field is `None` until the
/// stream reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// The id to resume the conversation with.
    pub session: Option<String>,
    /// The agent's final message.
    pub result: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub turns: Option<u64>,
    /// The agent said its run failed (an error result, a failed turn).
    pub is_error: Option<bool>,
    /// Lines that were not JSON objects.
    pub malformed: u64,
}

impl Progress {
    /// The facts of the attempt, under the names `tt task` shows.
    pub fn facts(&self) -> Facts {
        let mut f = Facts::new();
        let mut put = |k: &str, v: Value| {
            f.insert(k.to_string(), v);
        };
        if let Some(s) = &self.session {
            put("session", s.clone().into());
        }
        if let Some(r) = &self.result {
            put("result", r.clone().into());
        }
        for (k, v) in [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cache_read_tokens", self.cache_read_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
            ("turns", self.turns),
        ] {
            if let Some(v) = v {
                put(k, v.into());
            }
        }
        if let Some(c) = self.cost_usd.and_then(serde_json::Number::from_f64) {
            put("cost_usd", Value::Number(c));
        }
        if let Some(e) = self.is_error {
            put("is_error", e.into());
        }
        if self.malformed > 0 {
            put("malformed_lines", self.malformed.into());
        }
        f
    }

    fn add_tokens(slot: &mut Option<u64>, n: Option<u64>) {
        if let Some(n) = n {
            *slot = Some(slot.unwrap_or(0).saturating_add(n));
        }
    }
}

/// The readable end of a run: assistant text and one line per tool call,
/// at most [`Transcript::MAX_BYTES`], oldest lines dropped first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Transcript {
    /// What is kept: as much as the output tail of a task without an adapter.
    pub const MAX_BYTES: usize = 2048;
    /// A tool call's line is cut here.
    const TOOL_LINE: usize = 160;

    /// Adds text (each of its lines; blank ones dropped).
    pub fn text(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.push(line.to_string());
        }
    }

    /// Adds one tool call: `→ name: what`, on one line.
    pub fn tool(&mut self, name: &str, what: &str) {
        let what: String = what.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut line = if what.is_empty() {
            format!("→ {name}")
        } else {
            format!("→ {name}: {what}")
        };
        if line.chars().count() > Self::TOOL_LINE {
            line = line.chars().take(Self::TOOL_LINE - 1).collect::<String>() + "…";
        }
        self.push(line);
    }

    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > Self::MAX_BYTES && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The kept lines, newline-terminated.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.bytes);
        for l in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// Reads one format, line by line.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    state: State,
}

/// What a format remembers between lines.
#[derive(Debug, Default)]
struct State {
    /// Claude: assistant message ids seen, for turns while streaming.
    claude_messages: Vec<String>,
    /// Gemini: the assistant message being streamed in chunks.
    gemini_message: String,
}

/// What one line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// An event (known or not: unknown ones are skipped).
    Event,
    /// Blank.
    Blank,
    /// Not a JSON object.
    Malformed,
}

impl Parser {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            state: State::default(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Reads one line of output into `progress` and `transcript`.
    pub fn line(
        &mut self,
        line: &str,
        progress: &mut Progress,
        transcript: &mut Transcript,
    ) -> Line {
        let line = line.trim();
        if line.is_empty() {
            return Line::Blank;
        }
        let event = match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                progress.malformed += 1;
                return Line::Malformed;
            }
        };
        match self.format {
            Format::ClaudeStream => claude::event(&event, &mut self.state, progress, transcript),
            Format::CodexJson => codex::event(&event, progress, transcript),
            Format::GeminiStream => gemini::event(&event, &mut self.state, progress, transcript),
            Format::OpencodeJson => opencode::event(&event, progress, transcript),
        }
        Line::Event
    }

    /// The stream ended: what is still buffered is settled.
    pub fn end(&mut self, progress: &mut Progress, transcript: &mut Transcript) {
        if self.format == Format::GeminiStream {
            gemini::end(&mut self.state, progress, transcript);
        }
    }
}

/// `v[name]` as text, if it is a non-empty string.
fn text<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `v[name]` as a count, if it is a non-negative integer.
fn count(v: &Value, name: &str) -> Option<u64> {
    v.get(name).and_then(Value::as_u64)
}

/// A tool call's input in one short line: its most telling field, else the
/// JSON.
fn summary(input: &Value) -> String {
    for key in [
        "command",
        "cmd",
        "file_path",
        "filePath",
        "path",
        "pattern",
        "url",
        "query",
        "description",
    ] {
        if let Some(s) = input.get(key).and_then(Value::as_str) {
            return s.to_string();
        }
        if let Some(Value::Array(parts)) = input.get(key) {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            if !parts.is_empty() {
                return parts.join(" ");
            }
        }
    }
    match input {
        Value::Null => String::new(),
        Value::Object(m) if m.is_empty() => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_blank_lines_are_counted_not_fatal() {
        let mut p = Parser::new(Format::CodexJson);
        let (mut progress, mut t) = (Progress::default(), Transcript::default());
        assert_eq!(p.line("", &mut progress, &mut t), Line::Blank);
        assert_eq!(p.line("{not json", &mut progress, &mut t), Line::Malformed);
        assert_eq!(p.line("[1,2]", &mut progress, &mut t), Line::Malformed);
        assert_eq!(
            p.line(r#"{"type":"new.kind"}"#, &mut progress, &mut t),
            Line::Event
        );
        assert_eq!(progress.malformed, 2);
        assert_eq!(progress.facts()["malformed_lines"], 2);
    }

    #[test]
    fn the_transcript_keeps_the_end_and_tool_calls_on_one_line() {
        let mut t = Transcript::default();
        t.tool("Bash", "cargo test\n  --all");
        assert_eq!(t.render(), "→ Bash: cargo test --all\n");
        for i in 0..500 {
            t.text(&format!("line {i}"));
        }
        let r = t.render();
        assert!(r.len() <= Transcript::MAX_BYTES, "{}", r.len());
        assert!(r.ends_with("line 499\n") && !r.contains("Bash"), "{r}");
        t.tool("Write", &"x".repeat(1000));
        assert!(t.render().lines().last().unwrap().ends_with('…'));
    }

    #[test]
    fn facts_name_what_was_reported_only() {
        let p = Progress {
            session: Some("s".into()),
            cost_usd: Some(0.25),
            turns: Some(3),
            ..Default::default()
        };
        let f = p.facts();
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(f["cost_usd"], 0.25);
    }
}
