//! What `get_task` and `list_tasks` answer: a task with what an agent
//! working on it needs to know (its parent, what it depends on and how
//! that ended, its children), kept short, since agents pay for every byte.

use serde_json::{Value, json};

use super::super::CliError;
use super::super::lookup::find_task;
use super::super::task_view::TaskView;
use crate::store::Store;

/// The last lines of a dependency's output an agent gets.
const OUTPUT_LINES: usize = 20;
/// Characters of a description in a list.
const LIST_DESCRIPTION: usize = 200;

/// Task `id` in full, with its parent, dependencies and children.
pub fn task(town: &TaskView, store: &Store, id: &str) -> Result<Value, CliError> {
    let i = find_task(town, store, id)?;
    let r = &town.records[i];
    let parent = town.graph.parent(i).map(|p| {
        let pr = &town.records[p];
        json!({ "id": pr.id, "description": pr.description, "status": town.graph.status(p) })
    });
    let dependencies: Vec<Value> = r
        .depends_on
        .iter()
        .map(|d| match town.graph.index_of(d) {
            Some(j) => result(town, j),
            None => json!({ "id": d, "status": null }),
        })
        .collect();
    let children: Vec<Value> = town
        .graph
        .children(i)
        .iter()
        .map(|&c| row(town, c))
        .collect();
    Ok(json!({
        "id": r.id,
        "description": r.description,
        "status": town.graph.status(i),
        "agent": r.agent,
        "attempt": r.attempt,
        "tags": r.tags,
        "progress": r.progress,
        "question": r.question,
        "parent": parent,
        "dependencies": dependencies,
        "children": children,
    }))
}

/// How a task ended, for those that depend on it.
fn result(town: &TaskView, i: usize) -> Value {
    let r = &town.records[i];
    let tail = r.output.as_deref().map(|o| {
        let lines: Vec<&str> = o.lines().collect();
        lines[lines.len().saturating_sub(OUTPUT_LINES)..].join("\n")
    });
    json!({
        "id": r.id,
        "description": super::super::output::short(&r.description, LIST_DESCRIPTION),
        "status": town.graph.status(i),
        "exit_code": r.exit_code,
        "error": r.error,
        "facts": r.facts,
        "output_tail": tail,
    })
}

/// One line of a list.
pub fn row(town: &TaskView, i: usize) -> Value {
    let r = &town.records[i];
    json!({
        "id": r.id,
        "status": town.graph.status(i),
        "agent": r.agent,
        "parent": r.parent,
        "tags": r.tags,
        "description": super::super::output::short(&r.description, LIST_DESCRIPTION),
    })
}
