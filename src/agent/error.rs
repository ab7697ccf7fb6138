//! Errors of the agent layer: the ones that keep a worker from starting.
//!
//! Once a worker runs, nothing here is fatal: a command that fails, cannot
//! start or times out is a failed attempt recorded in Redis, and a lost
//! connection is retried.

use std::path::PathBuf;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AgentError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    /// No command line given and none in tasks.toml.
    #[error(
        "no command for agent `{name}`: neither `--cli`/`--command` nor `[agents.{name}]` in `{file}`"
    )]
    #[diagnostic(
        code(tt::agent::no_command),
        help(
            "start it with a preset (`tt agent {name} --cli claude`) or a command \
             (`tt agent {name} --command make {{id}}`), or declare `[agents.{name}]` \
             with `cli` or `command` in tasks.toml"
        )
    )]
    NoCommand { name: String, file: String },

    /// `--cli` names no preset.
    #[error("unknown agent cli `{cli}`")]
    #[diagnostic(code(tt::agent::unknown_preset), help("{help}"))]
    UnknownPreset { cli: String, help: String },

    /// `permissions` for a preset without a permission flag.
    #[error("agent `{name}` sets `permissions`, but the `{cli}` preset has no permission flag")]
    #[diagnostic(
        code(tt::agent::no_permission_flag),
        help("leave `permissions` out: the CLI's own configuration decides what it may do")
    )]
    NoPermissionFlag { name: String, cli: String },

    /// `command` is an empty list.
    #[error("the command of agent `{name}` is empty")]
    #[diagnostic(
        code(tt::agent::empty_command),
        help("give at least the program, e.g. `--command make {{id}}`")
    )]
    EmptyCommand { name: String },

    /// A `{name}` in the command that is no placeholder.
    #[error("unknown placeholder `{{{name}}}` in the command of agent `{agent}`")]
    #[diagnostic(code(tt::agent::unknown_placeholder), help("{help}"))]
    UnknownPlaceholder {
        agent: String,
        name: String,
        help: String,
    },

    /// `timeout` is not a duration.
    #[error("`{value}` is not a duration")]
    #[diagnostic(
        code(tt::agent::bad_timeout),
        help("write it like \"90s\", \"30m\" or \"1h 30m\"")
    )]
    BadTimeout { value: String },

    /// A worker id that cannot be a key part.
    #[error("`{id}` is not a valid worker id")]
    #[diagnostic(
        code(tt::agent::bad_id),
        help("use 1 to 128 of the characters A-Z a-z 0-9 . _ -")
    )]
    BadId { id: String },

    /// The working directory is missing.
    #[error("the working directory `{}` of agent `{name}` does not exist", .path.display())]
    #[diagnostic(
        code(tt::agent::workdir),
        help("create it, or fix `workdir` (relative to the directory of tasks.toml)")
    )]
    Workdir { name: String, path: PathBuf },

    /// Another live process uses this worker id.
    #[error("worker id `{id}` is in use by a live worker ({holder})")]
    #[diagnostic(
        code(tt::agent::id_in_use),
        help("pick another `--id`, or stop that worker first (`tt kill {id}`)")
    )]
    IdInUse { id: String, holder: String },

    #[error("worker `{id}` stepped down: {why}")]
    #[diagnostic(
        code(tt::agent::stepped_down),
        help(
            "its running command was stopped and its work is requeued; `tt run` starts it again, a worker started by hand can simply be started again"
        )
    )]
    SteppedDown { id: String, why: String },

    /// `tt spawn`: the background worker never registered.
    #[error("worker `{id}` {what}{log_tail}")]
    #[diagnostic(
        code(tt::agent::spawn),
        help("its output is in `{}`", .log.display())
    )]
    SpawnFailed {
        id: String,
        /// "exited with exit status: 1 before it registered", …
        what: String,
        log: PathBuf,
        /// The last lines of its log, each indented after a newline.
        log_tail: String,
    },

    /// A file or process operation of the worker failed.
    #[error("cannot {what}")]
    #[diagnostic(code(tt::agent::io))]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    /// 2 for bad input (flags, tasks.toml, ids), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Store(StoreError::InvalidUrl { .. })
            | AgentError::NoCommand { .. }
            | AgentError::UnknownPreset { .. }
            | AgentError::EmptyCommand { .. }
            | AgentError::NoPermissionFlag { .. }
            | AgentError::UnknownPlaceholder { .. }
            | AgentError::BadTimeout { .. }
            | AgentError::BadId { .. }
            | AgentError::Workdir { .. } => 2,
            AgentError::Store(_)
            | AgentError::IdInUse { .. }
            | AgentError::SteppedDown { .. }
            | AgentError::SpawnFailed { .. }
            | AgentError::Io { .. } => 1,
        }
    }
}
