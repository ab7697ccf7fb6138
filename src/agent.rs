//! Agents: the workers that take tasks from an inbox and run them.
//!
//! [`config`] turns `[agents.<name>]` or command-line flags into an
//! [`AgentConfig`]; [`presets`] knows the non-interactive command line of
//! common agent CLIs; [`command`] substitutes a task into an argv template
//! (never through a shell); [`process`] runs one attempt in a process group
//! of its own with its log; [`heartbeat`] keeps a worker alive and fences
//! its command when it cannot; [`worker`] is the loop that claims,
//! runs and reports, speaking Redis only through [`crate::store`].

pub mod command;
pub mod config;
mod error;
pub mod heartbeat;
pub mod presets;
pub mod process;
pub mod worker;

pub use config::{AgentConfig, Overrides};
pub use error::AgentError;
pub use worker::{Note, Reporter, Summary, Worker};
