//! `tt kill <agent-or-worker>`: ask a worker (or every worker of an agent)
//! to shut down: it stops its current process and exits. Workers that are
//! already stopped or dead are left alone — a shutdown message waiting for
//! them would stop the next worker that starts under the same id.

use serde_json::json;

use super::{CliError, Context, output};
use crate::store::KillOutcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A worker id (`backend-2`), or an agent name for all its workers.
    target: String,
    /// Print what happened to each worker as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    super::lookup::check_agent_name(&args.target)?;
    let store = ctx.store().await?;
    let agents = store.agents().await?;
    let workers: Vec<String> = if agents.iter().any(|a| a.id == args.target) {
        vec![args.target.clone()]
    } else {
        agents
            .iter()
            .filter(|a| a.name == args.target)
            .map(|a| a.id.clone())
            .collect()
    };
    if workers.is_empty() {
        let names = agents.iter().flat_map(|a| [a.id.as_str(), a.name.as_str()]);
        let help = match crate::plan::did_you_mean(&args.target, names) {
            Some(s) => format!("did you mean `{s}`? `tt list` shows every worker"),
            None => "`tt list` shows every worker".into(),
        };
        return Err(CliError::Usage {
            message: format!(
                "no agent or worker `{}` in town `{}`",
                args.target,
                store.town()
            ),
            help,
        });
    }
    let outcomes = store.kill(&workers).await?;
    if args.json {
        let list: Vec<_> = workers
            .iter()
            .zip(&outcomes)
            .map(|(w, o)| json!({ "worker": w, "outcome": o }))
            .collect();
        output::json(&json!(list));
        return Ok(0);
    }
    for (w, o) in workers.iter().zip(&outcomes) {
        match o {
            KillOutcome::Killed => println!("{w}: told to shut down"),
            KillOutcome::Stopped => println!("{w}: already stopped"),
            KillOutcome::Dead => {
                println!("{w}: dead (no heartbeat), nothing to stop; `tt prune` forgets it")
            }
            KillOutcome::Missing => println!("{w}: gone meanwhile"),
        }
    }
    Ok(0)
}
