//! `tt prune`: forget workers that are gone — state `stopped`, or a
//! heartbeat key that expired. A live worker is never touched; a dead one
//! that still holds claimed work is kept until the runner requeues it, so
//! no task loses the record of who had it. The inbox of an agent's last
//! worker goes with it, unless tasks still wait in it.

use serde_json::json;

use super::{CliError, Context, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print what was looked at as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let pruned = store.prune().await?;
    if args.json {
        output::json(&json!(pruned));
        return Ok(0);
    }
    if pruned.is_empty() {
        println!("nothing to prune: every worker is alive");
        return Ok(0);
    }
    for p in &pruned {
        if p.removed {
            let inbox = if p.count > 0 {
                format!(
                    ", and the inbox of `{}` ({} message{})",
                    p.agent,
                    p.count,
                    if p.count == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            println!("removed {} ({}){inbox}", p.worker, p.state);
        } else {
            println!(
                "kept {} ({}): {} claimed task message{} wait to be requeued by `tt run`",
                p.worker,
                p.state,
                p.count,
                if p.count == 1 { "" } else { "s" }
            );
        }
    }
    Ok(0)
}
