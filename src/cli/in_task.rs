//! Which task a command run from inside a task speaks for: `tt ask`,
//! `tt progress` (and the MCP server) read `TT_TASK_ID` and `TT_ATTEMPT`,
//! which every worker sets for the command it runs, so an agent needs no
//! flags; `--task`/`--attempt` name one by hand.

use super::CliError;
use super::lookup::check_task_id;

/// The task and attempt a command speaks for.
#[derive(Debug, Clone, clap::Args)]
pub struct InTask {
    /// The task (default: the one this runs in).
    #[arg(long, env = "TT_TASK_ID")]
    task: Option<String>,
    /// Its attempt (default: the one this runs in).
    #[arg(long, env = "TT_ATTEMPT")]
    attempt: Option<u32>,
}

impl InTask {
    /// The task id and attempt, or a usage error saying how to give them.
    pub fn resolve(&self, command: &str) -> Result<(String, u32), CliError> {
        let (Some(task), Some(attempt)) = (&self.task, self.attempt) else {
            return Err(CliError::Usage {
                message: format!("`tt {command}` speaks for a running task, and none is named"),
                help: "run it from a task's command (its worker sets TT_TASK_ID and TT_ATTEMPT), or pass --task ID --attempt N".into(),
            });
        };
        check_task_id(task)?;
        Ok((task.clone(), attempt))
    }
}
