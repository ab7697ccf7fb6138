//! Read-only access to another town on the same Redis, for dependencies
//! `<town>:<task>`: whether the town exists, its tasks' records, and an
//! [`EventFollower`] on its events stream. A [`RemoteTown`] offers no way
//! to write: no town writes another's keys.

use super::{EventFollower, LIGHT_FIELDS, RedisTarget, Store, StoreError, TaskRecord, keys};

/// Another town, seen from this one.
#[derive(Clone)]
pub struct RemoteTown {
    /// Private, so that only the reads below reach the other town.
    store: Store,
}

impl RemoteTown {
    /// Town `town` on `own`'s connection (and so on its Redis).
    pub fn of(own: &Store, town: &str) -> Self {
        Self {
            store: Store::with_connection_of(own, town),
        }
    }

    pub fn town(&self) -> &str {
        self.store.town()
    }

    /// Whether the town has synced into this Redis at least once (it is in
    /// the set of towns, or has tasks).
    pub async fn exists(&self) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        let known: bool = redis::cmd("SISMEMBER")
            .arg(keys::TOWNS)
            .arg(self.town())
            .query_async(&mut conn)
            .await?;
        if known {
            return Ok(true);
        }
        let tasks: u64 = redis::cmd("EXISTS")
            .arg(self.store.keys().tasks())
            .query_async(&mut conn)
            .await?;
        Ok(tasks > 0)
    }

    /// Every task of the town with the fields the graph needs, in its
    /// dispatch order: enough to derive any task's status as its own
    /// views show it (a group's comes from its children).
    pub async fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.store.tasks_with(&LIGHT_FIELDS).await
    }

    /// These tasks with the fields the graph needs; ids with no record
    /// are skipped.
    pub async fn records(&self, ids: &[String]) -> Result<Vec<TaskRecord>, StoreError> {
        self.store.records_with(ids, &LIGHT_FIELDS).await
    }

    /// Stream id of the town's newest event, to follow from.
    pub async fn last_event_id(&self) -> Result<String, StoreError> {
        self.store.last_event_id().await
    }

    /// Follows the town's events after `after`, on a blocking connection
    /// of its own (one per town: on a cluster, two towns' streams may be
    /// on different nodes, so they are never read in one `XREAD`).
    pub fn follower(&self, target: &RedisTarget, after: &str) -> EventFollower {
        EventFollower::lazy(&self.store, target, after)
    }
}
