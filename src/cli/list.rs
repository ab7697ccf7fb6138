//! `tt list`: the town's workers with their state, current task and last
//! heartbeat. A worker whose heartbeat key expired shows as `dead`, whatever
//! it last wrote.

use serde_json::{Value, json};

use super::{CliError, Context, output};
use crate::store::AgentInfo;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let agents = store.agents().await?;
    let now = store.now_ms().await?;
    if args.json {
        output::json(&Value::Array(
            agents.iter().map(|a| agent_json(a, now)).collect(),
        ));
        return Ok(0);
    }
    if agents.is_empty() {
        println!(
            "no agents in town `{}` — `tt run` starts those of tasks.toml, `tt agent <name>` one by hand",
            store.town()
        );
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.name.clone(),
                a.state.clone(),
                current_task(a),
                a.heartbeat.map_or_else(|| "-".into(), |h| ago(now, h)),
                a.host.clone().unwrap_or_else(|| "-".into()),
                a.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["ID", "AGENT", "STATE", "TASK", "HEARTBEAT", "HOST", "PID"],
            &rows
        )
    );
    Ok(0)
}

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

/// How long ago `then` was, coarsely: `4s ago`, `12m ago`, `3h ago`,
/// `2d ago` (milliseconds since the epoch, both from the server's clock).
pub(super) fn ago(now: u64, then: u64) -> String {
    format!("{} ago", duration(now.saturating_sub(then)))
}

/// A duration in its largest whole unit: `4s`, `12m`, `3h`, `2d`.
pub(super) fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(ago(10_000, 6_000), "4s ago");
        assert_eq!(ago(0, 5), "0s ago", "a clock step back is not negative");
        assert_eq!(duration(125_000), "2m");
        assert_eq!(duration(3 * 3_600_000 + 1), "3h");
        assert_eq!(duration(49 * 3_600_000), "2d");
    }
}
