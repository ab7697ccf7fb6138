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
        if let Some((pgid, start)) = r.orphan_on(&crate::os::hostname())
            && crate::os::signal_group_if_same(pgid, start, libc::SIGKILL)
        {
            println!(
                "{}: stopped its orphaned command (process group {})",
                r.worker, pgid
            );
        }
        println!(
            "{}: dead — {} running task(s) requeued, {} queued message(s) returned to the inbox",
            r.worker, r.requeued, r.returned
        );
    }
    Ok(0)
}
