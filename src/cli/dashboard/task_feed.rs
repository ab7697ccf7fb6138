//! The tasks as the page draws them, kept current from the event stream
//! (`GET /api/events?tasks=1`): sent whole once, then after each batch of
//! events only the tasks whose state changed.
//!
//! Each task is the object `tt tasks --json` prints for it, cut to the
//! keys the graph needs ([`KEYS`]), from the same [`TaskView`] the
//! commands use, so the page never disagrees with them. A batch re-reads
//! only the records its events name (one pipelined round trip) and asks
//! the graph which tasks such a change can affect, so the cost of
//! following the town grows with what changed, not with the town. A change
//! of shape (a task added or gone, a parent, a dependency, an order) reads
//! the town again and sends it whole: the page lays the graph out anew then.
//! Tasks of other towns named in `depends_on` are read with the whole town,
//! and again whenever one of those towns has events
//! ([`TaskFeed::others_changed`]; `sse.rs` follows their streams).

use serde_json::{Map, Value, json};

use super::super::task_view::TaskView;
use crate::store::{Event, LIGHT_FIELDS, Store, StoreError, TaskRecord};

/// The keys of a task's JSON the page keeps: what the graph, the counts
/// and the attention strip draw. The task panel reads the rest itself
/// (`GET /api/tasks/<id>`).
pub const KEYS: [&str; 8] = [
    "id",
    "status",
    "group",
    "parent",
    "depends_on",
    "agent",
    "waiting",
    "progress",
];

/// The town's tasks as last sent to one page.
pub struct TaskFeed {
    view: TaskView,
    /// Per task (by index in `view`): the object last sent.
    sent: Vec<Value>,
}

impl TaskFeed {
    /// Reads every task (the light fields, as `tt status` does).
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let mut view = TaskView::new(store.tasks_with(&LIGHT_FIELDS).await?);
        view.read_other_towns(store).await?;
        let sent = (0..view.records.len()).map(|i| lean(&view, i)).collect();
        Ok(Self { view, sent })
    }

    /// Every task, in dispatch order: `{"full": true, "after": ID,
    /// "tasks": […]}`, the town as it is after event `after`.
    pub fn whole(&self, after: &str) -> Value {
        json!({ "full": true, "after": after, "tasks": self.sent })
    }

    /// Takes a batch of events in: re-reads the tasks they name and
    /// returns what changed for the page — `{"full": false, "after": ID,
    /// "tasks": [only the changed ones]}`, or the whole town after a
    /// change of shape — or `None` when nothing it shows changed.
    pub async fn follow(
        &mut self,
        store: &Store,
        events: &[Event],
    ) -> Result<Option<Value>, StoreError> {
        let Some(after) = events.last().map(|e| e.id.as_str()) else {
            return Ok(None);
        };
        let mut ids: Vec<String> = Vec::new();
        for e in events {
            if !e.task.is_empty() && !ids.contains(&e.task) {
                ids.push(e.task.clone());
            }
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let fresh = store.records_with(&ids, &LIGHT_FIELDS).await?;
        let gone = ids
            .iter()
            .any(|id| self.view.graph.index_of(id).is_some() && !fresh.iter().any(|r| &r.id == id));
        let reshaped = fresh.iter().any(|r| match self.view.graph.index_of(&r.id) {
            None => true,
            Some(i) => !same_shape(&self.view.records[i], r),
        });
        if gone || reshaped {
            *self = Self::read(store).await?;
            return Ok(Some(self.whole(after)));
        }
        let mut affected = Vec::new();
        for r in fresh {
            let Some(i) = self.view.graph.index_of(&r.id) else {
                continue;
            };
            if self.view.graph.node(i).status != r.status {
                self.view.graph.set_status(i, r.status);
            }
            self.view.records[i] = r;
            self.view.graph.affected_by(i, &mut affected);
        }
        affected.sort_unstable();
        affected.dedup();
        let mut changed = Vec::new();
        for i in affected {
            let now = lean(&self.view, i);
            if now != self.sent[i] {
                changed.push(now.clone());
                self.sent[i] = now;
            }
        }
        if changed.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            json!({ "full": false, "after": after, "tasks": changed }),
        ))
    }
}

impl TaskFeed {
    /// The other towns the tasks depend on, whose events change them too.
    pub fn other_towns(&self) -> Vec<String> {
        self.view
            .graph
            .remote_towns()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// After another town's events: reads the other towns again and
    /// returns the tasks whose state changed with them (why they wait,
    /// whether they are ready), as [`TaskFeed::follow`] does, or `None`.
    pub async fn others_changed(
        &mut self,
        store: &Store,
        after: &str,
    ) -> Result<Option<Value>, StoreError> {
        self.view.read_other_towns(store).await?;
        let mut changed = Vec::new();
        for i in 0..self.sent.len() {
            let now = lean(&self.view, i);
            if now != self.sent[i] {
                changed.push(now.clone());
                self.sent[i] = now;
            }
        }
        Ok((!changed.is_empty())
            .then(|| json!({ "full": false, "after": after, "tasks": changed })))
    }
}

/// Task `i` as `tt tasks --json` prints it, with only [`KEYS`].
fn lean(view: &TaskView, i: usize) -> Value {
    let Value::Object(mut whole) = view.json(i) else {
        return Value::Null;
    };
    let mut out = Map::new();
    for k in KEYS {
        if let Some(v) = whole.remove(k) {
            out.insert(k.to_string(), v);
        }
    }
    Value::Object(out)
}

/// Whether `a` and `b` place a task in the graph alike: anything else
/// than its status changed means a new layout (and a new graph).
fn same_shape(a: &TaskRecord, b: &TaskRecord) -> bool {
    a.parent == b.parent
        && a.depends_on == b.depends_on
        && a.agent.is_some() == b.agent.is_some()
        && a.on_child_failure == b.on_child_failure
        && a.priority == b.priority
        && a.order == b.order
}
