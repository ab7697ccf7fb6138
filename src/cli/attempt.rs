//! The attempts of one task, as `tt task` shows them: put together from the
//! task's events, then checked against what Redis holds now.
//!
//! An attempt's outcome is the last event that ended it (`completed`,
//! `failed`, `retried`, `requeued`, `cancelled`), or `stopped` when its
//! worker stopped it without one (the task was removed or finished in the
//! file: the report is `rejected`; the worker shut down: nothing is
//! reported until recovery). Its log is where the `started` event says the
//! worker wrote it, on that worker's host; an attempt that never started
//! has none.

use std::path::Path;

use crate::Status;
use crate::store::{AgentInfo, Event, TaskRecord};

/// One attempt of a task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attempt {
    pub attempt: u64,
    pub worker: Option<String>,
    /// dispatched, dropped, running, completed, failed, retried, requeued,
    /// cancelled, stopped.
    pub outcome: String,
    pub exit_code: Option<String>,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub duration_ms: Option<u64>,
    /// The log as the worker named it, on `host`; `None` if the attempt
    /// never started (or its events predate this field).
    pub log: Option<String>,
    /// The machine of the worker that ran it.
    pub host: Option<String>,
    /// What it learned, from its worker's report ([`crate::store::Facts`]).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub facts: crate::store::Facts,
}

/// Attempts in order, from the events of one task.
pub fn from_events(events: &[Event]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    for e in events {
        let Ok(n) = e.attempt.parse::<u64>() else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let idx = match out.iter().position(|a| a.attempt == n) {
            Some(i) => i,
            None => {
                out.push(Attempt {
                    attempt: n,
                    worker: None,
                    outcome: "dispatched".into(),
                    exit_code: None,
                    started: None,
                    finished: None,
                    duration_ms: None,
                    log: None,
                    host: None,
                    facts: Default::default(),
                });
                out.len() - 1
            }
        };
        let a = &mut out[idx];
        let present = |name: &str| e.field(name).filter(|v| !v.is_empty()).map(String::from);
        match e.kind.as_str() {
            "started" => {
                a.worker = Some(e.agent.clone());
                a.started = Some(e.at);
                a.outcome = "running".into();
                a.log = present("log");
                a.host = present("host");
            }
            "completed" | "failed" | "retried" | "requeued" | "cancelled" => {
                a.outcome = e.kind.clone();
                a.take_facts(e);
                a.exit_code = present("exit_code");
                a.finished = Some(e.at);
                a.duration_ms = a.started.map(|s| e.at.saturating_sub(s));
            }
            // The worker's report of an attempt that had been taken from
            // it (removed, finished in the file, reassigned): it stopped.
            "rejected" => {
                // A cancelled attempt's facts come with this report too.
                a.take_facts(e);
                if a.outcome == "running" {
                    a.outcome = "stopped".into();
                    a.exit_code = present("exit_code");
                    a.finished = Some(e.at);
                    a.duration_ms = a.started.map(|s| e.at.saturating_sub(s));
                }
            }
            // A stale message: the worker dropped it without starting it.
            "dropped" if a.outcome == "dispatched" => a.outcome = "dropped".into(),
            _ => {}
        }
    }
    out.sort_by_key(|a| a.attempt);
    out
}

impl Attempt {
    /// The facts a worker's report put on `e`, if any (a `cancelled` event
    /// written by `tt cancel` has none: its worker's `rejected` report
    /// brings them).
    fn take_facts(&mut self, e: &Event) {
        if let Some(text) = e.field("facts").filter(|t| !t.is_empty()) {
            self.facts = crate::store::parse_facts(text);
        }
    }
}

/// What an attempt's agent reported, for people: session (and the one
/// it resumed), cost, tokens, turns on one line, then its final message;
/// `None` when it reported nothing.
pub fn facts_text(a: &Attempt) -> Option<String> {
    let f = &a.facts;
    let num = |k: &str| f.get(k).and_then(serde_json::Value::as_u64);
    let mut parts = Vec::new();
    if let Some(s) = f.get("session").and_then(|v| v.as_str()) {
        parts.push(format!("session {s}"));
    }
    if let Some(s) = f.get("resumed").and_then(|v| v.as_str()) {
        parts.push(format!("resumed {s}"));
    }
    if let Some(c) = f.get("cost_usd").and_then(serde_json::Value::as_f64) {
        parts.push(crate::agent::budget::usd(c));
    }
    if num("input_tokens").is_some() || num("output_tokens").is_some() {
        parts.push(format!(
            "{} in / {} out tokens",
            num("input_tokens").unwrap_or(0),
            num("output_tokens").unwrap_or(0)
        ));
    }
    if let Some(t) = num("turns") {
        parts.push(format!("{t} turn(s)"));
    }
    if f.get("is_error").and_then(serde_json::Value::as_bool) == Some(true) {
        parts.push("reported an error".into());
    }
    let result = f.get("result").and_then(|v| v.as_str());
    if parts.is_empty() && result.is_none() {
        return None;
    }
    let mut out = format!("#{} {}", a.attempt, parts.join(" · "));
    if let Some(r) = result {
        for (i, line) in r.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            if i == 5 {
                out.push_str("\n   …");
                break;
            }
            out.push_str(&format!(
                "\n   {}",
                if i == 0 {
                    format!("result: {line}")
                } else {
                    format!("        {line}")
                }
            ));
        }
    }
    Some(out)
}

/// Whether an attempt still `running` by its events may really be: the
/// task is running with that attempt, and its worker is alive and working
/// on it. `agents` is every worker of the town.
pub fn still_running(a: &Attempt, task: &TaskRecord, agents: &[AgentInfo]) -> bool {
    if task.status != Status::Running || u64::from(task.attempt) != a.attempt {
        return false;
    }
    let Some(worker) = &a.worker else {
        return true;
    };
    match agents.iter().find(|w| &w.id == worker) {
        Some(w) => {
            w.alive
                && w.state != "stopped"
                && w.task.as_deref() == Some(task.id.as_str())
                && w.attempt.map(u64::from) == Some(a.attempt)
        }
        // Pruned: nothing says otherwise.
        None => true,
    }
}

/// Marks every attempt that its events leave `running` but that cannot be
/// (see [`still_running`]) as `stopped`.
pub fn settle(attempts: &mut [Attempt], task: &TaskRecord, agents: &[AgentInfo]) {
    for a in attempts.iter_mut() {
        if a.outcome == "running" && !still_running(a, task, agents) {
            a.outcome = "stopped".into();
        }
    }
}

/// Where an attempt's log is, for people: `-` if it never started; the
/// path relative to `project_dir` when it is there on this machine;
/// `host:/path` when another machine wrote it.
pub fn log_location(a: &Attempt, task: &str, project_dir: &Path, this_host: &str) -> String {
    if a.started.is_none() {
        return "-".into();
    }
    let Some(log) = &a.log else {
        // Events from before `started` named the log: the usual place.
        return format!(".tt/logs/{task}/{}.log", a.attempt);
    };
    match a.host.as_deref() {
        Some(host) if host != this_host => format!("{host}:{log}"),
        _ => Path::new(log)
            .strip_prefix(project_dir)
            .map_or_else(|_| log.clone(), |rel| rel.display().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, attempt: &str, at: u64, extra: &[(&str, &str)]) -> Event {
        Event {
            kind: kind.into(),
            task: "t".into(),
            agent: "dev-1".into(),
            attempt: attempt.into(),
            at,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_rejected_report_ends_a_running_attempt_as_stopped() {
        let events = [
            event("dispatched", "1", 1, &[]),
            event(
                "started",
                "1",
                2,
                &[("log", "/p/.tt/logs/t/1.log"), ("host", "a")],
            ),
            event("rejected", "1", 7, &[("exit_code", "")]),
            event("dispatched", "2", 8, &[]),
            event("dropped", "2", 9, &[]),
        ];
        let a = from_events(&events);
        assert_eq!(a[0].outcome, "stopped");
        assert_eq!(a[0].duration_ms, Some(5));
        assert_eq!(a[0].exit_code, None);
        assert_eq!(a[1].outcome, "dropped");
        assert_eq!(log_location(&a[1], "t", Path::new("/p"), "a"), "-");
        assert_eq!(
            log_location(&a[0], "t", Path::new("/p"), "a"),
            ".tt/logs/t/1.log"
        );
        assert_eq!(
            log_location(&a[0], "t", Path::new("/p"), "b"),
            "a:/p/.tt/logs/t/1.log"
        );
    }
}
