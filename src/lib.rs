//! tinytown (`tt`): a declarative, TOML-driven workflow runner for teams of
//! coding agents.
//!
//! Data flows one way: file → [`plan`] → [`graph`] → [`sync`] → Redis
//! ([`store`]) → dispatch → agent → Redis → events. Only [`store`] speaks
//! Redis; only [`cli`] prints.

pub mod agent;
pub mod backoff;
pub mod cli;
pub mod crosstown;
pub mod dispatch;
pub mod escape;
pub mod graph;
pub mod os;
pub mod plan;
pub mod profile;
pub mod reload;
pub mod runner;
pub mod state_dir;
pub mod store;
pub mod sync;
pub mod watch;
pub mod workspace;

pub use plan::Status;
