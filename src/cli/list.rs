//! `tt list`: the town's workers with their state, current task and last
//! heartbeat. A worker whose heartbeat key expired shows as `dead`, whatever
//! it last wrote.

use serde_json::Value;

use super::agent_view::{agent_json, current_task};
use super::time::ago;
use super::{CliError, Context, output};

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
