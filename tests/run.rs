//! `tt run` end to end: real runner, real agents (`sh` commands), a private
//! redis-server; every wait is for a condition, with a deadline. One file
//! per part of a run.

mod plans;
mod runner;
mod saves;

use std::time::Duration;

use crate::support::Town;

const DEADLINE: Duration = Duration::from_secs(30);

/// An agent command that appends `<task id>` to `order.log` when it runs.
const RECORD: &str = r#"command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> order.log"]"#;

/// The lines of a project file, none if it does not exist yet.
fn lines(town: &Town, name: &str) -> Vec<String> {
    std::fs::read_to_string(town.dir().join(name))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Where `id` is in the run order.
fn pos(order: &[String], id: &str) -> usize {
    order
        .iter()
        .position(|l| l == id)
        .unwrap_or_else(|| panic!("{id} never ran: {order:?}"))
}

/// A plan whose agent waits for `go-<id>` to exist before finishing, so a
/// test decides when each task completes.
fn gated_plan(tasks: &str) -> String {
    format!(
        r#"[town]
name = "live"
[meta]
default_agent = "w"
[agents.w]
command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> order.log; while [ ! -e \"go-$TT_TASK_ID\" ]; do sleep 0.02; done"]
{tasks}"#
    )
}

/// A `[[tasks]]` entry with only an id.
fn task(id: &str) -> String {
    format!("[[tasks]]\nid = \"{id}\"\n")
}

/// Lets the gated command of task `id` finish.
fn release(town: &Town, id: &str) {
    town.write(format!("go-{id}"), "");
}
