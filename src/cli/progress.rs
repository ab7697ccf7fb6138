//! `tt progress "<text>"`: a progress note on the running attempt, shown
//! by `tt task`, `tt status` and `tt tasks --json`.

use super::in_task::InTask;
use super::{CliError, Context};
use crate::store::{Asked, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the work stands, in a line.
    text: String,
    #[command(flatten)]
    task: InTask,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let (task, attempt) = args.task.resolve("progress")?;
    let store = ctx.store().await?;
    record(&store, &task, attempt, &args.text).await?;
    Ok(0)
}

/// Records the note; `tt progress` and the MCP `report_progress` tool
/// both record here.
pub(super) async fn record(
    store: &Store,
    task: &str,
    attempt: u32,
    text: &str,
) -> Result<(), CliError> {
    if text.trim().is_empty() {
        return Err(CliError::Usage {
            message: "the progress note is empty".into(),
            help: "say where the work stands: `tt progress \"3 of 5 endpoints done\"`".into(),
        });
    }
    match store.progress(task, attempt, text).await? {
        Asked::Recorded { .. } => Ok(()),
        Asked::NotRunning { reason } => Err(CliError::Refused {
            message: format!("no progress recorded: {reason}"),
            help: "progress is recorded on the attempt that is running".into(),
        }),
    }
}
