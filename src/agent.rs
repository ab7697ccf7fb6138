//! Agents: the workers that take tasks from an inbox and run them.
//!
//! [`config`] turns `[agents.<name>]` or command-line flags into an
//! [`AgentConfig`], with the argv of a preset ([`crate::plan::presets`])
//! when one is named; [`command`] substitutes a task into an argv template
//! (never through a shell), and [`mcp_wiring`] adds `tt mcp` to the
//! presets that take an MCP server; [`adapter`] reads what an agent CLI's
//! structured output says (session, result, tokens, cost) as it streams,
//! and [`budget`] holds an attempt to its limits; [`process`] runs one attempt in a process group
//! of its own with its log; [`worker`] is the process that registers,
//! claims, runs and reports, with its heartbeat ([`worker::heartbeat`])
//! that keeps it alive and fences its command when it cannot, speaking
//! Redis only through [`crate::store`].

pub mod adapter;
pub mod budget;
pub mod command;
pub mod config;
mod error;
pub mod mcp_wiring;
pub mod probe;
pub mod process;
pub mod worker;

pub use config::{AgentConfig, Overrides};
pub use error::AgentError;
pub use worker::{Note, Reporter, Summary, Worker};
