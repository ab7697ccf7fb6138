//! `tt progress "<text>"`: a progress note on the running attempt, shown
//! by `tt task`, `tt status` and `tt tasks --json`.

use super::in_task::InTask;
use super::{CliError, Context};
use crate::store::Asked;

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
    match store.progress(&task, attempt, &args.text).await? {
        Asked::Recorded { .. } => Ok(0),
        Asked::NotRunning { reason } => Err(CliError::Refused {
            message: format!("no progress recorded: {reason}"),
            help: "progress is recorded on the attempt that is running".into(),
        }),
    }
}
