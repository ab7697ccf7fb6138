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

/// The agent a command run from inside a task speaks for (`TT_AGENT`, the
/// agent name), with the worker (`TT_WORKER`) and task (`TT_TASK_ID`) it
/// reads messages in.
#[derive(Debug, Clone)]
pub struct InAgent {
    pub agent: String,
    worker: String,
    task: String,
}

impl InAgent {
    /// From the environment a worker gives a task's command.
    pub fn from_env() -> Result<Self, CliError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(agent) = var("TT_AGENT") else {
            return Err(CliError::Usage {
                message: "no agent to read messages for: TT_AGENT is not set".into(),
                help: "run it from a task's command (its worker sets TT_AGENT), or read an inbox without taking with `tt inbox NAME`".into(),
            });
        };
        super::lookup::check_agent_name(&agent)?;
        Ok(Self {
            worker: var("TT_WORKER").unwrap_or_else(|| agent.clone()),
            task: var("TT_TASK_ID").unwrap_or_default(),
            agent,
        })
    }

    /// Takes the direct messages waiting in this agent's inbox.
    pub async fn take_messages(
        &self,
        store: &crate::store::Store,
    ) -> Result<Vec<crate::store::Message>, CliError> {
        Ok(store
            .take_messages(&self.agent, &self.worker, &self.task)
            .await?)
    }
}
