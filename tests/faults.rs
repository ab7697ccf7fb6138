//! Failure and recovery (README "Failure and recovery"): dead workers,
//! long tasks, retries, a runner or a Redis that goes away. Real
//! processes, real Redis, deadlines instead of sleeps; each town is a
//! [`Scenario`](crate::support::Scenario). One file per thing that fails.

mod redis;
mod runner;
mod stopping;
mod tasks;
mod workers;
