//! Regression tests, named after what broke (ripgrep's `tests/regression.rs`
//! habit): each one failed before its fix. One file per area.

mod config;
mod front;
mod input;
mod liveness;
mod shape_core;
mod shape_runner;
mod state;
mod workers;
