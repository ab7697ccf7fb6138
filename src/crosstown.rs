//! What a town knows of the other towns its tasks depend on
//! (`depends_on = ["api:schema"]`): each other town is read through
//! [`RemoteTown`] (read-only), its graph built from its records as its
//! own views build it, and the status of each task named from here taken
//! from that graph — so a group of the other town counts as done exactly
//! when `tt status` over there says so.
//!
//! The commands read every other town once ([`read_states`]); the runner
//! keeps an [`OtherTown`] per town and refreshes the records its events
//! name; the views that redraw follow the other towns' events with
//! [`TownEvents`].

pub mod cycle;
mod follow;

use std::collections::BTreeMap;

use crate::dispatch::Snapshot;
use crate::graph::{Graph, RemoteState, split_remote};
use crate::store::{RemoteTown, Store, StoreError, TaskRecord};

pub use cycle::Cycle;
pub use follow::TownEvents;

/// Another town's tasks, as its own views derive their statuses.
pub struct OtherTown {
    tasks: Snapshot,
    /// Whether the town exists in this Redis at all (it synced once).
    exists: bool,
}

impl OtherTown {
    /// Reads the whole town.
    pub async fn read(town: &RemoteTown) -> Result<Self, StoreError> {
        let records = town.tasks().await?;
        let exists = !records.is_empty() || town.exists().await?;
        Ok(Self {
            tasks: Snapshot::new(records),
            exists,
        })
    }

    /// Takes fresh copies of some of its records (those its events named).
    pub fn refresh(&mut self, records: Vec<TaskRecord>) {
        if !records.is_empty() {
            self.exists = true;
        }
        self.tasks.refresh(records);
    }

    /// Its graph, with statuses as its own views derive them.
    pub fn graph(&self) -> &Graph {
        &self.tasks.graph
    }

    /// Whether the town has synced into this Redis.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// What is known of its task `task`.
    pub fn state(&self, task: &str) -> RemoteState {
        let g = &self.tasks.graph;
        g.index_of(task)
            .map_or(RemoteState::Missing, |i| RemoteState::Is(g.status(i)))
    }
}

/// The other towns `graph` depends on, each read once.
pub async fn read_towns(
    store: &Store,
    graph: &Graph,
) -> Result<BTreeMap<String, OtherTown>, StoreError> {
    let mut out = BTreeMap::new();
    for town in graph.remote_towns() {
        let other = OtherTown::read(&RemoteTown::of(store, town)).await?;
        out.insert(town.to_string(), other);
    }
    Ok(out)
}

/// Fills in the state of every remote dependency of `graph` from `towns`.
pub fn fill(graph: &mut Graph, towns: &BTreeMap<String, OtherTown>) {
    let ids: Vec<String> = graph.remote_ids().map(String::from).collect();
    for id in ids {
        if let Some((town, task)) = split_remote(&id)
            && let Some(other) = towns.get(town)
        {
            graph.set_remote(&id, other.state(task), &mut Vec::new());
        }
    }
}

/// Reads every other town `graph` depends on and fills in the states of
/// its remote dependencies: what the commands do before they show
/// readiness. A town whose keys hold what tt never writes is left
/// unread (its tasks' states stay unknown, so its dependants wait) rather
/// than failing the command; a Redis that does not answer is an error.
pub async fn read_states(
    store: &Store,
    graph: &mut Graph,
) -> Result<BTreeMap<String, OtherTown>, StoreError> {
    let mut towns = BTreeMap::new();
    for town in graph.remote_towns() {
        match OtherTown::read(&RemoteTown::of(store, town)).await {
            Ok(other) => {
                towns.insert(town.to_string(), other);
            }
            Err(e) if e.is_connection_error() => return Err(e),
            Err(_) => {}
        }
    }
    fill(graph, &towns);
    Ok(towns)
}

/// Why remote dependency `dep` (`<town>:<task>`) is not in this Redis
/// (yet), in words; `None` when its task is there. One or two reads.
pub async fn absent(store: &Store, dep: &str) -> Result<Option<String>, StoreError> {
    let Some((town, task)) = split_remote(dep) else {
        return Ok(None);
    };
    let remote = RemoteTown::of(store, town);
    if !remote.records(&[task.to_string()]).await?.is_empty() {
        return Ok(None);
    }
    Ok(Some(if remote.exists().await? {
        format!(
            "town `{town}` has no task `{task}` (yet): the task waits until it exists and completes"
        )
    } else {
        format!(
            "town `{town}` does not exist in this Redis (yet): the task waits until town \
             `{town}` completes `{task}` (both towns must use the same Redis)"
        )
    }))
}
