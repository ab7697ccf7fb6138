//! [`TaskView`]: what the task commands read from Redis, the records and the
//! readiness graph over them, and the walks the commands share on it (a
//! group's subtree, the reason a cancel cascades with).

use serde_json::{Value, json};

use crate::graph::{Graph, Node, Readiness};
use crate::store::{Store, StoreError, TaskRecord};

/// The task records with the graph built over them, read once for one
/// command: full records (or light ones), for printing and for deciding
/// what to change. It is not [`crate::dispatch::Snapshot`], the runner's
/// lean state that keeps graph nodes only and lives as long as `tt run`,
/// refreshed event by event.
pub struct TaskView {
    pub records: Vec<TaskRecord>,
    pub graph: Graph,
}

impl TaskView {
    pub fn new(records: Vec<TaskRecord>) -> Self {
        let graph = Graph::new(records.iter().map(Node::from).collect());
        Self { records, graph }
    }

    /// Reads the other towns this town's tasks depend on (`<town>:<task>`),
    /// so readiness knows their statuses; without it such a task waits
    /// with its dependency's status unknown.
    /// Returns the towns read.
    pub async fn read_other_towns(
        &mut self,
        store: &Store,
    ) -> Result<std::collections::BTreeMap<String, crate::crosstown::OtherTown>, StoreError> {
        crate::crosstown::read_states(store, &mut self.graph).await
    }

    /// A record as JSON, with its status as users see it and why it waits.
    pub fn json(&self, i: usize) -> Value {
        let r = &self.records[i];
        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
        v["status"] = json!(self.graph.status(i));
        v["stored_status"] = json!(r.status);
        v["group"] = json!(self.graph.is_group(i));
        v["waiting"] = match self.graph.readiness(i) {
            Readiness::Waiting(w) => json!(w.to_string()),
            Readiness::Ready => json!(null),
            Readiness::NotPending => json!(null),
        };
        if self.graph.is_group(i) {
            // A group's `progress` is its children's; a note its own run
            // (a join step) reported moves aside.
            if let Some(note) = v.get("progress").cloned() {
                v["progress_note"] = note;
            }
            let p = self.graph.progress(i);
            v["progress"] = json!({ "completed": p.completed, "failed": p.failed, "running": p.running, "queued": p.queued, "total": p.total });
        }
        v
    }
}

/// `i` and every task below it (children, their children, …), parents
/// before children.
pub(super) fn subtree(town: &TaskView, i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![i];
    while let Some(t) = stack.pop() {
        // Parent links are a forest once validated; a hand-made loop in
        // Redis must not make this spin.
        if out.contains(&t) {
            continue;
        }
        out.push(t);
        stack.extend(town.graph.children(t).iter().rev());
    }
    out
}

/// Reason recorded on descendants cancelled with their group; `tt retry`
/// of the group restores exactly these.
pub(super) fn cascade_reason(group: &str) -> String {
    format!("cancelled with group {group}")
}
