//! `tt mcp`: the town's Model Context Protocol server over stdio, started
//! by an agent CLI inside a task ([`crate::agent::mcp_wiring`] tells the
//! presets). Its tools are the shell commands an agent would otherwise run
//! (`tt task`, `tt tasks`, `tt assign`, `tt progress`, `tt ask`, `tt send`,
//! `tt inbox --mine`), through the same code and with the same error
//! messages, as MCP tool errors. Standard output is the protocol channel:
//! nothing else is printed there; diagnostics go to standard error.

mod brief;
mod tools;

use rmcp::ServiceExt;

use super::in_task::InTask;
use super::{CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    task: InTask,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let tools = tools::Tools::new(ctx.clone(), store, args.task);
    let service = tools
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| io_error("cannot start the MCP session on stdin/stdout", e))?;
    service
        .waiting()
        .await
        .map_err(|e| io_error("the MCP session ended with an error", e))?;
    Ok(0)
}

fn io_error(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Io {
        what: format!("{what}: {e}"),
        source: std::io::Error::other(e.to_string()),
    }
}
