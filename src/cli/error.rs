//! Errors of the command layer, and their exit codes.

use miette::Diagnostic;

use crate::plan::LoadError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum CliError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] LoadError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Run(#[from] crate::runner::RunError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Agent(#[from] crate::agent::AgentError),

    #[error("{message}")]
    #[diagnostic(code(tt::usage), help("{help}"))]
    Usage { message: String, help: String },

    #[error("no task `{id}` in town `{town}`")]
    #[diagnostic(code(tt::not_found), help("{help}"))]
    UnknownTask {
        id: String,
        town: String,
        help: String,
    },

    #[error("{what}")]
    #[diagnostic(code(tt::io))]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// 2 for bad input (file, arguments, ids), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Plan(_) | CliError::Usage { .. } | CliError::UnknownTask { .. } => 2,
            CliError::Store(StoreError::InvalidUrl { .. }) => 2,
            CliError::Run(
                crate::runner::RunError::Plan(_) | crate::runner::RunError::LeaseHeld { .. },
            ) => 2,
            CliError::Run(_) => 1,
            CliError::Agent(e) => e.exit_code(),
            CliError::Store(_) | CliError::Io { .. } => 1,
        }
    }
}
