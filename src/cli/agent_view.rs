//! How a worker is shown by `tt list` and `tt status`: as JSON with its
//! heartbeat's age, and its current task as one short cell.

use serde_json::{Value, json};

use crate::store::AgentInfo;

/// An agent as JSON, with the heartbeat's age measured on the server clock.
pub(super) fn agent_json(a: &AgentInfo, now: u64) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    v["heartbeat_age_ms"] = json!(a.heartbeat.map(|h| now.saturating_sub(h)));
    v
}

/// `login #2`, or `-` when idle.
pub(super) fn current_task(a: &AgentInfo) -> String {
    match (&a.task, a.attempt) {
        (Some(t), Some(n)) if n > 0 => format!("{t} #{n}"),
        (Some(t), _) => t.clone(),
        (None, _) => "-".into(),
    }
}
