//! The other towns this town's tasks depend on (`depends_on =
//! ["api:schema"]`), followed read-only: one reader task per town waits
//! on that town's events stream (`XREAD BLOCK` on a connection of its
//! own — on a cluster two towns' streams may live on different nodes, so
//! they are never read together), and the runner keeps that town's tasks
//! ([`OtherTown`]), re-reading those its events name. Each dispatch pass
//! takes the statuses of the tasks named from here into the snapshot, so
//! a dependant is dispatched in the pass right after the event that
//! completed what it waits for.
//!
//! A town is read whole when it is first followed and after its reader
//! failed (a reconnect, maybe to a new server); nothing is ever written
//! to it ([`RemoteTown`] has no way to).

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc;

use super::event_feed::{Batch, read_into};
use crate::crosstown::OtherTown;
use crate::dispatch::Snapshot;
use crate::graph::{RemoteState, split_remote};
use crate::store::{Event, RedisTarget, RemoteTown, Store, StoreError};

/// What the reader of one other town sends: the town and a batch.
pub(super) type TownBatch = (String, Batch);

/// Every other town followed, and the channel their readers send on.
pub(super) struct OtherTowns {
    target: RedisTarget,
    towns: HashMap<String, Followed>,
    tx: mpsc::UnboundedSender<TownBatch>,
    /// The state last reported per remote dependency: a snapshot read
    /// anew learns every state again, which is no news.
    reported: HashMap<String, RemoteState>,
}

struct Followed {
    remote: RemoteTown,
    /// `None`: read the whole town at the next pass.
    tasks: Option<OtherTown>,
    /// Tasks its events named since the last pass.
    dirty: HashSet<String>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Followed {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A remote dependency whose state changed, for the runner to report.
#[derive(Debug, Clone)]
pub struct RemoteNote {
    /// `<town>:<task>`.
    pub task: String,
    pub state: RemoteState,
    /// Whether the town exists in this Redis.
    pub town_exists: bool,
    /// Tasks of this town that depend on it.
    pub dependants: Vec<String>,
}

impl OtherTowns {
    /// No town followed yet; readers will send on `tx`.
    pub(super) fn new(target: RedisTarget, tx: mpsc::UnboundedSender<TownBatch>) -> Self {
        Self {
            target,
            towns: HashMap::new(),
            tx,
            reported: HashMap::new(),
        }
    }

    /// Takes in a batch from the reader of `town`: the tasks it names are
    /// read again at the next pass; an error (some events may be lost)
    /// makes the next pass read the whole town.
    pub(super) fn on_batch(&mut self, town: &str, batch: Result<Vec<Event>, StoreError>) {
        let Some(f) = self.towns.get_mut(town) else {
            return;
        };
        match batch {
            Ok(events) => {
                for e in events {
                    if e.task.is_empty() {
                        // Nothing says what changed.
                        f.tasks = None;
                    } else {
                        f.dirty.insert(e.task);
                    }
                }
            }
            Err(_) => f.tasks = None,
        }
    }

    /// Follows exactly the towns `snapshot` depends on, brings what is
    /// known of them up to date, and records the state of every remote
    /// dependency in `snapshot`. Returns the dependencies whose state
    /// changed.
    pub(super) async fn update(
        &mut self,
        store: &Store,
        snapshot: &mut Snapshot,
    ) -> Result<Vec<RemoteNote>, StoreError> {
        let wanted: HashSet<String> = snapshot
            .graph
            .remote_towns()
            .into_iter()
            .map(String::from)
            .collect();
        self.towns.retain(|town, _| wanted.contains(town));
        for town in wanted {
            if !self.towns.contains_key(&town) {
                let remote = RemoteTown::of(store, &town);
                // From its newest event before the town is read: nothing
                // falls between the read and the following.
                let after = remote.last_event_id().await?;
                let name = town.clone();
                let reader = read_into(remote.follower(&self.target, &after), self.tx.clone(), {
                    move |batch| (name.clone(), batch)
                });
                self.towns.insert(
                    town,
                    Followed {
                        remote,
                        tasks: None,
                        dirty: HashSet::new(),
                        reader,
                    },
                );
            }
        }
        for f in self.towns.values_mut() {
            match &mut f.tasks {
                None => {
                    f.dirty.clear();
                    f.tasks = Some(OtherTown::read(&f.remote).await?);
                }
                Some(tasks) if !f.dirty.is_empty() => {
                    let ids: Vec<String> = f.dirty.drain().collect();
                    tasks.refresh(f.remote.records(&ids).await?);
                }
                Some(_) => {}
            }
        }
        let mut notes = Vec::new();
        let ids: Vec<String> = snapshot.graph.remote_ids().map(String::from).collect();
        for id in ids {
            let Some((town, task)) = split_remote(&id) else {
                continue;
            };
            let Some(tasks) = self.towns.get(town).and_then(|f| f.tasks.as_ref()) else {
                continue;
            };
            let state = tasks.state(task);
            if snapshot.graph.remote_state(&id) == Some(state) {
                continue;
            }
            snapshot.set_remote(&id, state);
            if self.reported.insert(id.clone(), state) == Some(state) {
                continue;
            }
            notes.push(RemoteNote {
                dependants: snapshot
                    .graph
                    .remote_dependants(&id)
                    .iter()
                    .map(|&i| snapshot.id(i).to_string())
                    .collect(),
                task: id,
                state,
                town_exists: tasks.exists(),
            });
        }
        Ok(notes)
    }
}

impl std::fmt::Display for RemoteNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self.dependants.join(", ");
        let task = &self.task;
        match self.state {
            RemoteState::Is(crate::Status::Completed) => {
                write!(f, "{task} completed: {who} may run")
            }
            RemoteState::Is(s @ (crate::Status::Failed | crate::Status::Cancelled)) => write!(
                f,
                "{task} {s}: {who} blocked until it is retried over there"
            ),
            RemoteState::Missing if !self.town_exists => {
                let town = split_remote(task).map_or("", |(t, _)| t);
                write!(
                    f,
                    "{who} waiting for {task}: town {town} does not exist in this Redis yet"
                )
            }
            state => write!(f, "{who} waiting for {task} ({state})"),
        }
    }
}
