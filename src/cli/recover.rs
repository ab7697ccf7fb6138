//! `tt recover`: what `tt run` does by itself for dead workers, by hand —
//! for towns whose workers run without a runner.

use serde_json::json;

use super::{CliError, Context, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let recovered = store.recover_dead().await?;
    if args.json {
        output::json(&json!(recovered));
        return Ok(0);
    }
    if recovered.is_empty() {
        println!(
            "no dead workers with work to recover in town `{}`",
            store.town()
        );
    }
    for r in recovered {
        if r.stop_orphan(&crate::os::hostname()) {
            println!(
                "{}: stopped its orphaned command (process group {})",
                r.worker,
                r.command_pgid.unwrap_or(0)
            );
        }
        println!(
            "{}: dead — {} running task(s) requeued, {} queued message(s) returned to the inbox",
            r.worker, r.requeued, r.returned
        );
    }
    Ok(0)
}
