//! `tt send <agent> [--urgent] "<message>"`: a direct message into an
//! agent's inbox (urgent ones at the head, read before queued tasks).
//! `supervisor` is the runner: `tt run` prints what it receives. An agent
//! whose task is running reads it with `tt inbox --mine` or the MCP
//! `get_task` tool; otherwise its worker takes it between tasks.

use super::lookup::SUPERVISOR;
use super::{CliError, Context};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent name (all its workers share one inbox), or `supervisor`.
    agent: String,
    /// The message.
    message: String,
    /// Put it at the head of the inbox instead of the tail.
    #[arg(long)]
    urgent: bool,
    /// Send even to an agent the town does not know (not in tasks.toml,
    /// no worker, no task): its inbox is created.
    #[arg(long)]
    create: bool,
}

/// Who a message is from: the agent a task's command runs for
/// (`TT_AGENT`), else `$USER`, else `cli`.
pub(super) fn sender() -> String {
    ["TT_AGENT", "USER"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

/// A message to deliver.
pub(super) struct Outgoing<'a> {
    pub agent: &'a str,
    pub from: &'a str,
    pub body: &'a str,
    pub urgent: bool,
    /// Deliver to an agent the town does not know.
    pub create: bool,
}

/// What [`deliver`] did.
pub(super) struct Delivered {
    pub store: Store,
    /// Entries in the inbox now.
    pub waiting: u64,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let out = Outgoing {
        agent: &args.agent,
        from: &sender(),
        body: &args.message,
        urgent: args.urgent,
        create: args.create,
    };
    let Delivered { store, waiting } = deliver(ctx, &out).await?;
    let at = if args.urgent {
        "at the head of"
    } else {
        "into"
    };
    println!(
        "sent {at} the inbox of `{}` ({waiting} waiting)",
        args.agent
    );
    if args.agent != SUPERVISOR {
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

/// Checks and sends a message; `tt send` and the MCP `send_message` tool
/// both send here.
pub(super) async fn deliver(ctx: &Context, m: &Outgoing<'_>) -> Result<Delivered, CliError> {
    super::lookup::check_agent_name(m.agent)?;
    if m.body.trim().is_empty() {
        return Err(CliError::Usage {
            message: "the message is empty".into(),
            help: "give the text as the second argument: `tt send backend \"rebase on main\"`"
                .into(),
        });
    }
    let store = ctx.store_or_start().await?;
    if m.agent != SUPERVISOR && !m.create {
        check_known(ctx, &store, m.agent).await?;
    }
    let waiting = store.send(m.agent, m.from, m.body, m.urgent).await?;
    Ok(Delivered { store, waiting })
}

/// Refuses an agent the town does not know: not declared in tasks.toml
/// (nor its `default_agent`), no worker of it registered, no task for it.
/// A typo would otherwise leave the message in an inbox nobody reads.
async fn check_known(ctx: &Context, store: &Store, agent: &str) -> Result<(), CliError> {
    let mut known: Vec<String> = vec![SUPERVISOR.to_string()];
    // A plan that does not load declares nothing: Redis still knows.
    if let Ok(settings) = ctx.load_settings() {
        known.extend(settings.agents.iter().map(|(n, _)| n.clone()));
        known.extend(settings.meta.default_agent.clone());
    }
    known.extend(store.agents().await?.into_iter().map(|a| a.name));
    known.extend(store.tasks().await?.into_iter().filter_map(|t| t.agent));
    if known.iter().any(|k| k == agent) {
        return Ok(());
    }
    let near = crate::plan::did_you_mean(agent, known.iter().map(String::as_str));
    let hint = match near {
        Some(n) => format!("did you mean `{n}`? "),
        None => String::new(),
    };
    Err(CliError::Usage {
        message: format!(
            "no agent `{agent}` in town `{}`: not in tasks.toml, no worker, no task",
            store.town()
        ),
        help: format!(
            "{hint}`tt list` shows the workers; `--create` sends anyway (its inbox waits for a worker)"
        ),
    })
}
