//! Checking what a command names before acting on it: task ids and agent
//! names that cannot exist are refused before Redis is asked, and an
//! unknown task comes back with the closest id as a suggestion.

use super::CliError;
use super::task_view::TaskView;
use crate::store::Store;

/// The well-known id of the runner: it takes messages, never tasks.
pub(super) use crate::store::keys::SUPERVISOR;

/// Refuses ids that cannot name a task, before asking Redis.
pub(super) fn check_task_id(id: &str) -> Result<(), CliError> {
    check_id("task id", id)
}

/// Refuses names that cannot be an agent's.
pub(super) fn check_agent_name(name: &str) -> Result<(), CliError> {
    check_id("agent name", name)
}

/// Task ids and agent names follow one rule ([`crate::plan::valid_id`]);
/// `what` names which one the message is about.
fn check_id(what: &str, id: &str) -> Result<(), CliError> {
    if crate::plan::valid_id(id) {
        Ok(())
    } else {
        Err(CliError::Usage {
            message: format!("`{id}` is not a valid {what}"),
            help: format!("{what}s use 1 to 128 of the characters A-Z a-z 0-9 . _ -"),
        })
    }
}

/// The index of task `id` in `town`, or [`CliError::UnknownTask`] with the
/// closest id as a suggestion.
pub(super) fn find_task(town: &TaskView, store: &Store, id: &str) -> Result<usize, CliError> {
    town.graph.index_of(id).ok_or_else(|| {
        let ids = town.records.iter().map(|r| r.id.as_str());
        let help = match crate::plan::did_you_mean(id, ids) {
            Some(s) => format!("did you mean `{s}`? `tt tasks` lists every task"),
            None => "`tt tasks` lists every task".into(),
        };
        CliError::UnknownTask {
            id: id.to_string(),
            town: store.town().into(),
            help,
        }
    })
}
