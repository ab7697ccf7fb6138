//! Everything that speaks Redis.
//!
//! [`keys`] names every key; [`connection`] decides which Redis to use
//! (`REDIS_URL`, `[town] redis_url`, or the embedded server from [`server`])
//! and opens the connection; the rest of the crate calls methods on
//! [`Store`] and never builds a command itself.

mod admin;
pub mod connection;
mod dispatch;
mod error;
mod events;
pub mod keys;
mod recover;
pub mod server;
mod sync;
mod task;
mod worker;

pub use admin::{
    ADHOC_ORDER_BASE, AgentInfo, Assigned, CancelOutcome, InboxEntry, KillOutcome, NewTask, Pruned,
    RunnerLease, agent_name_of,
};
pub use connection::{RedisTarget, connect};
pub use dispatch::{Dispatch, Dispatched, Event, parse_entries};
pub use error::StoreError;
pub use events::{EventFollower, STREAM_START};
pub use keys::Keys;
pub use recover::Recovered;
pub use sync::{SyncCounts, SyncGuard, SyncRefused, SyncState, TaskDef};
pub use task::{Source, TaskRecord};
pub use worker::{
    BlockingConn, Claim, ClaimedTask, Control, Finish, Heartbeat, MessageSource, Registered,
    Report, WorkerIdentity,
};

use std::collections::HashMap;

use redis::aio::ConnectionManager;

/// One town's view of a Redis.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keys,
    town: String,
}

/// The fields of a task record the graph and dispatch read; `id` first.
pub const LIGHT_FIELDS: [&str; 10] = [
    "id",
    "status",
    "agent",
    "parent",
    "depends_on",
    "priority",
    "order",
    "on_child_failure",
    "retry_at",
    "attempt",
];

impl Store {
    /// Connects to `target` for `town`.
    pub async fn open(target: &RedisTarget, town: &str) -> Result<Self, StoreError> {
        let conn = connect(target).await?;
        Ok(Self::with_connection(conn, town))
    }

    pub fn with_connection(conn: ConnectionManager, town: &str) -> Self {
        Self {
            conn,
            keys: Keys::new(town),
            town: town.to_string(),
        }
    }

    /// The same connection, for another town.
    pub fn with_connection_of(other: &Store, town: &str) -> Self {
        Self::with_connection(other.conn.clone(), town)
    }

    pub fn town(&self) -> &str {
        &self.town
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Every task id of the town, in dispatch order (priority, file order).
    async fn task_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("ZRANGE")
            .arg(self.keys.tasks())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?)
    }

    /// Every task of the town, in dispatch order (priority, file order).
    pub async fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.records(&self.task_ids().await?).await
    }

    /// Records of these ids, in the same order; ids with no record are
    /// skipped.
    pub async fn records(&self, ids: &[String]) -> Result<Vec<TaskRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(ids.len());
        // Pipelined in chunks so a 100k-task town is a few round trips, not
        // 100k, without one giant reply.
        for chunk in ids.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hgetall(self.keys.task(id));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (id, h) in chunk.iter().zip(hashes) {
                if !h.is_empty() {
                    out.push(TaskRecord::from_hash(&self.keys.task(id), h)?);
                }
            }
        }
        Ok(out)
    }

    /// These tasks with only `fields` read (`id` must be the first; ids
    /// with no record are skipped), in the same order. Dispatch and views
    /// that do not show text read [`LIGHT_FIELDS`]: a runner re-reading a
    /// task, or `tt status` reading 100k of them, does not move outputs and
    /// descriptions (README "Performance").
    pub async fn records_with(
        &self,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HMGET").arg(self.keys.task(id)).arg(fields);
            }
            let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
            for (id, row) in chunk.iter().zip(rows) {
                // No `id` field: no record.
                if row.first().is_none_or(Option::is_none) {
                    continue;
                }
                let h: HashMap<String, String> = fields
                    .iter()
                    .zip(row)
                    .filter_map(|(k, v)| Some((k.to_string(), v?)))
                    .collect();
                out.push(TaskRecord::from_hash(&self.keys.task(id), h)?);
            }
        }
        Ok(out)
    }

    /// Every task as [`Store::records_with`] reads them, in dispatch order.
    pub async fn tasks_with(&self, fields: &[&str]) -> Result<Vec<TaskRecord>, StoreError> {
        self.records_with(&self.task_ids().await?, fields).await
    }

    /// One task, if it exists.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.task(id);
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        TaskRecord::from_hash(&key, h).map(Some)
    }

    /// Every town that has synced into this Redis.
    pub async fn towns(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut towns: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::TOWNS)
            .query_async(&mut conn)
            .await?;
        towns.sort();
        Ok(towns)
    }
}
