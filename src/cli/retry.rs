//! `tt retry <task>`: a failed or cancelled task goes back to pending, so
//! the runner dispatches it again (attempt + 1). A group brings back its
//! failed descendants and those cancelled along with it.

use serde_json::{Value, json};

use super::lookup::{check_task_id, find_task};
use super::task_view::{TaskView, cascade_reason, subtree};
use super::{CliError, Context, output};
use crate::Status;
use crate::graph::Readiness;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task id.
    task: String,
    /// Print what was retried as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let done = retry(&store, &args.task).await?;
    if args.json {
        output::json(&retried_json(&done));
        return Ok(0);
    }
    for (id, b) in &done {
        println!("{id}: {b} → pending");
    }
    Ok(0)
}

/// Retries `task` (a group: its failed descendants and those cancelled
/// with it): the ids that went back to pending, with their status before.
pub(super) async fn retry(store: &Store, task: &str) -> Result<Vec<(String, Status)>, CliError> {
    check_task_id(task)?;
    let town = TaskView::new(store.tasks().await?);
    let i = find_task(&town, store, task)?;
    let record = &town.records[i];
    if record.removed {
        return Err(CliError::Usage {
            message: format!("task `{task}` was removed from tasks.toml"),
            help: "add it back to the file to run it again (`tt assign` makes a new task)".into(),
        });
    }
    let cascaded = cascade_reason(task);
    let ids: Vec<String> = subtree(&town, i)
        .into_iter()
        .filter(|&t| {
            let r = &town.records[t];
            if r.removed {
                return false;
            }
            if t == i {
                return matches!(r.status, Status::Failed | Status::Cancelled);
            }
            // Below the group: what failed, and what the group's own
            // cancel took along — not children cancelled on purpose.
            r.status == Status::Failed
                || (r.status == Status::Cancelled && r.reason.as_deref() == Some(&cascaded))
        })
        .map(|t| town.records[t].id.clone())
        .collect();
    if ids.is_empty() {
        return Err(not_retryable(&town, i));
    }
    let before = store.retry(&ids).await?;
    let done: Vec<(String, Status)> = ids
        .into_iter()
        .zip(before)
        .filter_map(|(id, b)| b.map(|b| (id, b)))
        .collect();
    if done.is_empty() {
        // It changed between reading and retrying.
        let now = TaskView::new(store.tasks().await?);
        return Err(not_retryable(&now, now.graph.index_of(task).unwrap_or(i)));
    }
    Ok(done)
}

/// What `tt retry --json` prints for what [`retry`] did.
pub(super) fn retried_json(done: &[(String, Status)]) -> Value {
    json!(
        done.iter()
            .map(|(id, b)| json!({ "id": id, "before": b, "status": Status::Pending }))
            .collect::<Vec<_>>()
    )
}

/// Why task `i` cannot be retried, and what to do instead.
fn not_retryable(town: &TaskView, i: usize) -> CliError {
    let id = &town.records[i].id;
    let status = town.graph.status(i);
    let (message, help) = match status {
        Status::Pending => (
            format!("task `{id}` is pending: it has not failed"),
            match town.graph.readiness(i) {
                Readiness::Waiting(w) => format!("it waits ({w}); retry what it waits for"),
                _ => "`tt run` dispatches it when it is ready".into(),
            },
        ),
        Status::Assigned | Status::Running => (
            format!("task `{id}` is {status}: it has not failed"),
            format!("`tt cancel {id}` stops it; then `tt retry {id}` runs it again"),
        ),
        Status::Completed => (
            format!("task `{id}` is completed"),
            "set `status = \"pending\"` on it in tasks.toml to run it again".into(),
        ),
        // A group whose failed or cancelled parts cannot come back
        // (removed from the file, or cancelled on purpose).
        Status::Failed | Status::Cancelled => (
            format!("nothing under task `{id}` can be retried"),
            "retry the failed tasks one by one; `tt tasks --status failed` lists them".into(),
        ),
    };
    CliError::Usage { message, help }
}
