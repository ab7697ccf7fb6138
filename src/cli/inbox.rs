//! `tt inbox <agent>`: what waits in an agent's inbox, head first (the
//! order its workers take it). Task entries show the task's status; one
//! that is no longer assigned with that attempt is stale, and a worker
//! drops it at claim.
//!
//! `--mine`, from inside a task, takes the direct messages waiting for the
//! agent the task runs for (`TT_AGENT`) and prints them: a message taken
//! this way is gone from the inbox, so its worker never delivers it again.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{CliError, Context, output};
use crate::Status;
use crate::store::{InboxEntry, TaskRecord};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent name, or `supervisor`.
    #[arg(required_unless_present = "mine", conflicts_with = "mine")]
    agent: Option<String>,
    /// From inside a task: take the direct messages sent to this task's
    /// agent (`TT_AGENT`) and print them; they are not delivered again.
    #[arg(long)]
    mine: bool,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let Some(agent) = args.agent.clone() else {
        return mine(ctx, args.json).await;
    };
    super::lookup::check_agent_name(&agent)?;
    let store = ctx.store().await?;
    let entries = store.inbox(&agent).await?;
    let ids: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            InboxEntry::Task { task, .. } => Some(task.clone()),
            _ => None,
        })
        .collect();
    let records: HashMap<String, TaskRecord> = store
        .records(&ids)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    // Stale: the claim script would drop it (see docs/PROTOCOL.md).
    let stale = |task: &str, attempt: u32| {
        records
            .get(task)
            .is_none_or(|r| r.status != Status::Assigned || r.attempt != attempt)
    };
    if args.json {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
                if let InboxEntry::Task { task, attempt } = e {
                    v["status"] = json!(records.get(task).map(|r| r.status));
                    v["stale"] = json!(stale(task, *attempt));
                }
                v
            })
            .collect();
        output::json(&Value::Array(list));
        return Ok(0);
    }
    if entries.is_empty() {
        println!("the inbox of `{agent}` is empty");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let (kind, what) = match e {
                InboxEntry::Task { task, attempt } => {
                    let status = records
                        .get(task)
                        .map_or("no such task", |r| r.status.as_str());
                    let note = if stale(task, *attempt) {
                        ", stale: dropped when claimed"
                    } else {
                        ""
                    };
                    ("task", format!("{task} #{attempt} ({status}{note})"))
                }
                InboxEntry::Message { from, body } => (
                    "message",
                    format!("from {from}: {}", output::short(body, 100)),
                ),
                InboxEntry::Unreadable { raw } => ("unreadable", output::short(raw, 100)),
            };
            vec![(n + 1).to_string(), kind.to_string(), what]
        })
        .collect();
    print!("{}", output::table(&["#", "KIND", "ENTRY"], &rows));
    Ok(0)
}

/// `--mine`: takes and prints the messages for this task's agent.
async fn mine(ctx: &Context, json: bool) -> Result<u8, CliError> {
    let me = super::in_task::InAgent::from_env()?;
    let store = ctx.store().await?;
    let messages = me.take_messages(&store).await?;
    if json {
        output::json(&json!(messages));
        return Ok(0);
    }
    if messages.is_empty() {
        println!("no messages for `{}`", me.agent);
    }
    for m in &messages {
        println!(
            "from {}: {}",
            crate::escape::escape(&m.from),
            crate::escape::escape(&m.body)
        );
    }
    Ok(0)
}
