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

    /// The town's state does not allow it (the task is not running, has
    /// no question): nothing wrong with the input, and nothing done.
    #[error("{message}")]
    #[diagnostic(code(tt::refused), help("{help}"))]
    Refused { message: String, help: String },

    #[error("no task `{id}` in town `{town}`")]
    #[diagnostic(code(tt::not_found), help("{help}"))]
    UnknownTask {
        id: String,
        town: String,
        help: String,
    },

    /// A command that shows or changes a town's state, where there is none:
    /// no Redis is configured and no embedded server ever ran here.
    #[error("no town here: nothing to show (no embedded redis-server has run in `{}`)", state_dir.display())]
    #[diagnostic(
        code(tt::no_town),
        help(
            "`tt sync push` or `tt run` creates the town from tasks.toml; `-f PATH` points at another project, `REDIS_URL` at a Redis elsewhere"
        )
    )]
    NoTown { state_dir: std::path::PathBuf },

    #[error("{what}")]
    #[diagnostic(code(tt::io))]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Exit code of bad input: an invalid file, arguments or ids.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of a town that is busy: another `tt run` already dispatches
/// for it. Nothing is wrong with the input; trying again later (or with
/// `--wait`) succeeds.
pub const EXIT_BUSY: u8 = 3;

impl CliError {
    /// [`EXIT_BAD_INPUT`] for bad input (file, arguments, ids),
    /// [`EXIT_BUSY`] for a town another runner holds (of this version, or
    /// an older one that keeps it from being migrated), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Plan(_) | CliError::Usage { .. } | CliError::UnknownTask { .. } => {
                EXIT_BAD_INPUT
            }
            CliError::Store(StoreError::InvalidUrl { .. }) => EXIT_BAD_INPUT,
            CliError::Run(crate::runner::RunError::Plan(_)) => EXIT_BAD_INPUT,
            CliError::Run(crate::runner::RunError::LeaseHeld { .. }) => EXIT_BUSY,
            CliError::Store(StoreError::OldRunner { .. })
            | CliError::Run(crate::runner::RunError::Store(StoreError::OldRunner { .. })) => {
                EXIT_BUSY
            }
            CliError::Run(_) => 1,
            CliError::Agent(crate::agent::AgentError::IdInUse { .. }) => EXIT_BUSY,
            CliError::Agent(e) => e.exit_code(),
            CliError::Store(_)
            | CliError::Io { .. }
            | CliError::NoTown { .. }
            | CliError::Refused { .. } => 1,
        }
    }
}
