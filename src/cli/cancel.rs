//! `tt cancel <task>`: stop a task for good (until `tt retry`). A group
//! takes its unfinished descendants with it; a running task's worker is
//! told to stop the process.

use serde_json::json;

use super::lookup::{check_task_id, find_task};
use super::task_view::{TaskView, cascade_reason, subtree};
use super::{CliError, Context, output};
use crate::Status;
use crate::store::{CancelOutcome, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task id.
    task: String,
    /// Why, recorded in the task and its `cancelled` event.
    #[arg(long, default_value = "cancelled from the command line")]
    reason: String,
    /// Print what was cancelled as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let Cancelled { town, done } = cancel(&store, &args.task, &args.reason).await?;
    if args.json {
        output::json(&json!(done));
        return Ok(0);
    }
    for o in &done {
        let was = o.before.map_or("?", Status::as_str);
        let worker = town
            .graph
            .index_of(&o.id)
            .and_then(|t| town.records[t].worker.as_deref());
        match (o.before, worker) {
            (Some(Status::Running), Some(w)) => {
                println!("cancelled {} (was running; told `{w}` to stop it)", o.id)
            }
            _ => println!("cancelled {} (was {was})", o.id),
        }
    }
    Ok(0)
}

/// What [`cancel`] did: the tasks it cancelled, and the town as it was
/// read before (which worker ran each).
pub(super) struct Cancelled {
    pub town: TaskView,
    pub done: Vec<CancelOutcome>,
}

/// Cancels `task` with `reason` (a group: with its unfinished descendants).
pub(super) async fn cancel(store: &Store, task: &str, reason: &str) -> Result<Cancelled, CliError> {
    check_task_id(task)?;
    let town = TaskView::new(store.tasks().await?);
    let i = find_task(&town, store, task)?;
    let cascade = cascade_reason(task);
    let todo: Vec<(String, String)> = subtree(&town, i)
        .into_iter()
        .filter(|&t| !town.records[t].status.is_final())
        .map(|t| {
            let reason = if t == i { reason } else { &cascade };
            (town.records[t].id.clone(), reason.to_string())
        })
        .collect();
    if todo.is_empty() {
        return Err(already_final(task, town.graph.status(i)));
    }
    let outcomes = store.cancel(&todo).await?;
    let done: Vec<CancelOutcome> = outcomes.into_iter().filter(|o| o.cancelled).collect();
    if done.is_empty() {
        // Everything finished between reading and cancelling.
        let now = store
            .task(task)
            .await?
            .map_or(Status::Completed, |r| r.status);
        return Err(already_final(task, now));
    }
    Ok(Cancelled { town, done })
}

fn already_final(id: &str, status: Status) -> CliError {
    CliError::Usage {
        message: format!("task `{id}` is already {status}"),
        help: match status {
            Status::Cancelled => format!("`tt retry {id}` makes it pending again"),
            Status::Failed => format!("a failed task does not run again until `tt retry {id}`"),
            _ => {
                "finished tasks stay finished; `tt history --task <id>` shows what happened".into()
            }
        },
    }
}
