//! `tt send <agent> [--urgent] "<message>"`: a direct message into an
//! agent's inbox (urgent ones at the head, read before queued tasks).
//! `supervisor` is the runner: `tt run` prints what it receives.

use super::{CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent name (all its workers share one inbox), or `supervisor`.
    agent: String,
    /// The message.
    message: String,
    /// Put it at the head of the inbox instead of the tail.
    #[arg(long)]
    urgent: bool,
}

/// Who a message is from: `$USER`, else `cli`.
fn sender() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    super::lookup::check_agent_name(&args.agent)?;
    if args.message.trim().is_empty() {
        return Err(CliError::Usage {
            message: "the message is empty".into(),
            help: "give the text as the second argument: `tt send backend \"rebase on main\"`"
                .into(),
        });
    }
    let store = ctx.store_or_start().await?;
    let len = store
        .send(&args.agent, &sender(), &args.message, args.urgent)
        .await?;
    let at = if args.urgent {
        "at the head of"
    } else {
        "into"
    };
    println!("sent {at} the inbox of `{}` ({len} waiting)", args.agent);
    if args.agent != super::lookup::SUPERVISOR {
        let agents = store.agents().await?;
        if !agents.iter().any(|a| a.name == args.agent && a.alive) {
            println!(
                "no worker of `{}` is running: the message waits until one starts",
                args.agent
            );
        }
    }
    Ok(0)
}
