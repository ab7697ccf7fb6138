//! Everything that speaks Redis.
//!
//! [`keys`] names every key; [`connection`] decides which Redis to use
//! (`REDIS_URL`, `[town] redis_url`, or the embedded server from [`server`])
//! and opens the connection — to one server, or to a Redis Cluster
//! (`cluster`) — as one [`Connection`] type; the rest of the crate calls methods on
//! [`Store`] and never builds a command itself.

mod admin;
mod archive;
mod cluster;
pub mod connection;
mod dispatch;
mod error;
mod events;
mod facts;
pub mod keys;
mod lease;
mod messages;
mod migrate;
mod question;
mod recover;
mod remote;
mod script;
pub mod server;
mod sync;
mod task;
mod usage;
mod worker;

pub use admin::{
    ADHOC_ORDER_BASE, AgentInfo, Assigned, CancelOutcome, InboxEntry, KillOutcome, NewTask, Pruned,
    agent_name_of,
};
pub use archive::{Archive, HistoryLoss, STREAM_CAP, room_for};
pub use connection::{Connection, RedisTarget, connect};
pub use dispatch::{Dispatch, Dispatched};
pub use error::StoreError;
pub use events::{
    Event, EventFollower, STREAM_START, parse_entries, stream_position, time as event_time,
};
pub use facts::{Facts, facts_text, parse_facts};
pub use keys::Keys;
pub use lease::RunnerLease;
pub use messages::Message;
pub use migrate::Migration;
pub use question::{Answered, Asked, Progress, Question};
pub use recover::Recovered;
pub use remote::RemoteTown;
pub use script::script;
pub use sync::{SyncCounts, SyncGuard, SyncRefused, SyncState, TaskDef};
pub use task::{Source, TaskRecord};
pub use usage::{Totals, Usage};
pub use worker::{
    BlockingConn, Claim, ClaimedTask, Control, Finish, Heartbeat, MessageSource, Registered,
    Report, WorkerIdentity,
};

use std::collections::HashMap;
/// Queues the read of one task record: every field, or only `fields`.
fn read_record(pipe: &mut redis::Pipeline, key: &str, fields: Option<&[&str]>) {
    match fields {
        None => pipe.cmd("HGETALL").arg(key),
        Some(fields) => pipe.cmd("HMGET").arg(key).arg(fields),
    };
}

/// The record in a reply of [`read_record`]; `None` when there is none.
/// Values are read as bytes ([`TaskRecord::from_bytes`]): one that is not
/// UTF-8 makes its record corrupt, not the read fail.
fn record_of(
    key: &str,
    fields: Option<&[&str]>,
    reply: redis::Value,
) -> Result<Option<TaskRecord>, StoreError> {
    let parse = |e: redis::ParsingError| StoreError::Redis(e.into());
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = match fields {
        None => {
            let h: HashMap<Vec<u8>, Vec<u8>> = redis::from_redis_value(reply).map_err(parse)?;
            h.into_iter().collect()
        }
        Some(fields) => {
            let row: Vec<Option<Vec<u8>>> = redis::from_redis_value(reply).map_err(parse)?;
            // No field at all: no record. One without `id` is a corrupt
            // record, as a full read finds it (`tt status` lists it).
            fields
                .iter()
                .zip(row)
                .filter_map(|(k, v)| Some((k.as_bytes().to_vec(), v?)))
                .collect()
        }
    };
    Ok((!pairs.is_empty()).then(|| TaskRecord::from_bytes(key, pairs)))
}

/// One town's view of a Redis.
#[derive(Clone)]
pub struct Store {
    conn: Connection,
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

    pub fn with_connection(conn: Connection, town: &str) -> Self {
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
        let key = self.keys.tasks();
        redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| error::name_key(e, &key, "sorted set"))
    }

    /// Every task of the town, in dispatch order (priority, file order).
    pub async fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.records(&self.task_ids().await?).await
    }

    /// Records of these ids, in the same order; ids with no record are
    /// skipped.
    pub async fn records(&self, ids: &[String]) -> Result<Vec<TaskRecord>, StoreError> {
        self.read_records(ids, None).await
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
        self.read_records(ids, Some(fields)).await
    }

    /// [`Store::records`] (`fields` = `None`: every field) or
    /// [`Store::records_with`]. Pipelined in chunks so a 100k-task town is
    /// a few round trips, not 100k, without one giant reply. A task key
    /// that holds no hash becomes an [`TaskRecord::unreadable`] record
    /// instead of failing the read.
    async fn read_records(
        &self,
        ids: &[String],
        fields: Option<&[&str]>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                read_record(&mut pipe, &self.keys.task(id), fields);
            }
            // Each reply on its own: one key of the wrong type must not
            // fail the others.
            let replies: Vec<redis::Value> = pipe.ignore_errors().query_async(&mut conn).await?;
            for (id, reply) in chunk.iter().zip(replies) {
                let key = self.keys.task(id);
                match reply {
                    redis::Value::ServerError(e) if e.code() == "WRONGTYPE" => {
                        let kind: String =
                            redis::cmd("TYPE").arg(&key).query_async(&mut conn).await?;
                        out.push(TaskRecord::unreadable(
                            &key,
                            id,
                            &format!("is a {kind}, not a hash"),
                        ));
                    }
                    redis::Value::ServerError(e) => return Err(redis::RedisError::from(e).into()),
                    reply => out.extend(record_of(&key, fields, reply)?),
                }
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
        Ok(self.records(&[id.to_string()]).await?.pop())
    }

    /// Whether Redis answers: one `PING`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Records the town in the global set of towns. Never inside a
    /// town's script: the set is no key of the town (on a cluster it lives
    /// in another slot). Sync and `tt assign` call this after every write,
    /// so a crash between the write and this is repaired by the next sync.
    async fn add_town(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("SADD")
            .arg(keys::TOWNS)
            .arg(&self.town)
            .query_async(&mut conn)
            .await
            .map_err(|e| error::name_key(e, keys::TOWNS, "set"))?;
        Ok(())
    }

    /// Every town that has synced into this Redis.
    pub async fn towns(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut towns: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::TOWNS)
            .query_async(&mut conn)
            .await
            .map_err(|e| error::name_key(e, keys::TOWNS, "set"))?;
        towns.sort();
        Ok(towns)
    }
}
