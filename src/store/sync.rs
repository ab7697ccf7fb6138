//! Applying a plan diff: the script in `scripts/sync.lua`, fed in chunks
//! inside one MULTI/EXEC so a reload is all-or-nothing.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use super::script::{Declared, Kind, script};
use super::{Store, StoreError};

/// A task definition as the file gives it, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDef {
    pub id: String,
    pub fingerprint: String,
    pub description: String,
    /// Empty: backlog (or, for a group, no join step).
    pub agent: String,
    pub tags: Vec<String>,
    pub parent: String,
    pub depends_on: Vec<String>,
    pub priority: u8,
    pub order: u64,
    /// Empty when the file names no status.
    pub file_status: String,
    /// Per-task override of the agent's `retries`; empty: none.
    pub retries: String,
    /// Per-task override of the agent's `timeout`, in ms; empty: none.
    pub timeout_ms: String,
    /// A group's `on_child_failure`; empty: the default (`wait`).
    pub on_child_failure: String,
    /// The task's own budget, JSON (`{"max_cost_usd":…,"max_turns":…}`);
    /// empty: the agent's.
    pub budget: String,
}

impl TaskDef {
    /// Sorted-set score: priority first, then file order.
    pub fn score(&self) -> f64 {
        score(self.priority, self.order)
    }
}

/// Score in `tt:<town>:tasks`: exact in a double for any realistic plan.
pub fn score(priority: u8, order: u64) -> f64 {
    (u64::from(priority) * 1_000_000_000_000 + order) as f64
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// Tasks the file did not change whose record was missing from Redis
    /// (deleted, or a server that restarted empty), written again.
    pub restored: u64,
    /// Tasks of the plan whose key in Redis holds no hash (edited by hand):
    /// left alone, not written.
    pub skipped: u64,
}

/// What Redis holds of a town's plan, read in one round trip before a
/// sync decides whether it has anything to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The fingerprint of the plan last synced.
    pub plan_fp: Option<String>,
    /// Where that plan came from ([`crate::sync::origin_of`]).
    pub origin: Option<String>,
    /// How many of the asked task records exist.
    pub present: u64,
}

/// What a sync must find in Redis to write.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncGuard<'a> {
    /// Where the plan comes from; a town whose recorded origin differs is
    /// refused unless `take_over`. Empty: no check.
    pub origin: &'a str,
    /// Write even if the town's plan came from elsewhere, and record this
    /// origin from now on.
    pub take_over: bool,
    /// The plan fingerprint Redis must still hold (an incremental reload
    /// writes on the assumption that it does).
    pub expected: Option<&'a str>,
    /// A cold sync: the town must hold no task (else it is refused as
    /// [`SyncRefused::Stale`]), so no record is read before it is written.
    pub cold: bool,
}

/// Why a sync wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRefused {
    /// Redis no longer holds the plan fingerprint the caller expected, or
    /// a cold sync found tasks in the town.
    Stale,
    /// The town's plan comes from another file (its origin is given).
    Foreign(String),
}

// Built once: `Script::new` hashes the source (SHA1) every time it runs.
static SYNC: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/sync.lua")
    ))
});

/// How often a sync reads the workers again because one registered
/// between the read and the transaction, before it gives up.
const WORKER_ROUNDS: usize = 5;

const UPSERTS_PER_CALL: usize = 1000;

/// Keys per `EXISTS` when a sync counts the records of its plan: one
/// command for any plan up to this size (a request of a few MiB), all in
/// the round trip that reads `plan_fp`.
const EXISTS_PER_CALL: usize = 250_000;

impl Store {
    /// The fingerprint of the plan last synced, if any.
    pub async fn plan_fingerprint(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGET")
            .arg(self.keys.meta())
            .arg("plan_fp")
            .query_async(&mut conn)
            .await?)
    }

    /// The plan fingerprint and origin of the town, and how many of the
    /// records of `ids` exist: one round trip (`HMGET` and one `EXISTS`
    /// per 250k ids), so a no-op sync stays cheap and still notices a
    /// record that is gone although the fingerprints say nothing changed.
    pub async fn sync_state(&self, ids: &[&str]) -> Result<SyncState, StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(self.keys.meta())
            .arg("plan_fp")
            .arg("origin");
        for chunk in ids.chunks(EXISTS_PER_CALL) {
            let cmd = pipe.cmd("EXISTS");
            for id in chunk {
                cmd.arg(self.keys.task(id));
            }
        }
        let mut replies: Vec<redis::Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| super::error::name_key(e, &self.keys.meta(), "hash"))?;
        let counts = replies.split_off(1.min(replies.len()));
        let (plan_fp, origin): (Option<String>, Option<String>) = match replies.pop() {
            Some(v) => redis::from_redis_value(v).map_err(redis::RedisError::from)?,
            None => (None, None),
        };
        let mut present = 0;
        for v in counts {
            present += redis::from_redis_value::<u64>(v).map_err(redis::RedisError::from)?;
        }
        Ok(SyncState {
            plan_fp,
            origin,
            present,
        })
    }

    /// Those of `ids` whose task record does not exist.
    pub async fn missing_records(&self, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut missing = Vec::new();
        for chunk in ids.chunks(EXISTS_PER_CALL) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.exists(self.keys.task(id));
            }
            let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
            missing.extend(
                chunk
                    .iter()
                    .zip(exists)
                    .filter(|(_, e)| !e)
                    .map(|(id, _)| id.to_string()),
            );
        }
        Ok(missing)
    }

    /// Fingerprints of every file task, by id.
    pub async fn task_fingerprints(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.fingerprints();
        redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| super::error::name_key(e, &key, "hash"))
    }

    /// Writes new and changed definitions and marks removed tasks, then
    /// records `plan_fp` and the origin, all in one transaction. With
    /// `adopt_status`, the statuses the file names are recorded as seen but
    /// not applied. `guard` is checked inside the script, so atomically:
    /// when it refuses, nothing was written.
    ///
    /// The script gets the control list of every worker of the town, read
    /// just before (a running task the file finishes or removes is told to
    /// stop there); one that registers in between makes it refuse, and
    /// the sync is tried again. The town goes into the set of towns beside
    /// the transaction, not inside it: that set is no key of the town.
    pub async fn apply_sync(
        &self,
        upserts: &[TaskDef],
        removed: &[String],
        plan_fp: &str,
        adopt_status: bool,
        guard: &SyncGuard<'_>,
    ) -> Result<Result<SyncCounts, SyncRefused>, StoreError> {
        for _ in 0..WORKER_ROUNDS {
            if let Some(done) = self
                .try_apply_sync(upserts, removed, plan_fp, adopt_status, guard)
                .await?
            {
                return Ok(done);
            }
        }
        Err(StoreError::Corrupt {
            key: self.keys.agents(),
            what: format!(
                "workers kept registering while the sync wrote ({WORKER_ROUNDS} tries): try again"
            ),
        })
    }

    /// One try of [`Store::apply_sync`]; `None` when a worker registered
    /// after the set of workers was read.
    async fn try_apply_sync(
        &self,
        upserts: &[TaskDef],
        removed: &[String],
        plan_fp: &str,
        adopt_status: bool,
        guard: &SyncGuard<'_>,
    ) -> Result<Option<Result<SyncCounts, SyncRefused>>, StoreError> {
        let script = &*SYNC;
        let mut conn = self.conn.clone();
        let mut load_conn = self.conn.clone();
        // Loading first lets the transaction use EVALSHA without a
        // NOSCRIPT failure inside MULTI; the workers are read in the same
        // round trip.
        let phase = crate::profile::phase("load the script, read workers");
        let (_, workers): (String, Vec<String>) = tokio::try_join!(
            async {
                Ok::<_, StoreError>(script.prepare_invoke().load_async(&mut load_conn).await?)
            },
            self.worker_ids(),
        )?;
        drop(phase);
        let phase = crate::profile::phase("encode the transaction");
        let mut declared = Declared::new();
        for w in &workers {
            declared.add(Kind::Control, w);
        }
        let declared_keys: Vec<String> = declared.keys(&self.keys).collect();
        let names = declared.names();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let chunks: Vec<&[TaskDef]> = upserts.chunks(UPSERTS_PER_CALL).collect();
        let calls = chunks.len().max(1);
        for call in 0..calls {
            let chunk = chunks.get(call).copied().unwrap_or(&[]);
            let last = call + 1 == calls;
            let gone: &[String] = if last { removed } else { &[] };
            let cmd = pipe
                .cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(5 + chunk.len() + gone.len() + declared.len());
            cmd.arg(self.keys.meta())
                .arg(self.keys.tasks())
                .arg(self.keys.fingerprints())
                .arg(self.keys.events())
                .arg(self.keys.agents());
            for d in chunk {
                cmd.arg(self.keys.task(&d.id));
            }
            for id in gone {
                cmd.arg(self.keys.task(id));
            }
            cmd.arg(&declared_keys)
                .arg(&names)
                .arg(if last { plan_fp } else { "" })
                .arg(if adopt_status { "1" } else { "0" })
                .arg(chunk.len())
                .arg(gone.len())
                .arg(guard.expected.unwrap_or(""))
                .arg(guard.origin)
                .arg(if guard.take_over { "1" } else { "0" })
                .arg(if call == 0 { "1" } else { "0" })
                .arg(if guard.cold { "1" } else { "0" });
            for d in chunk {
                cmd.arg(&d.id)
                    .arg(&d.fingerprint)
                    .arg(&d.description)
                    .arg(&d.agent)
                    .arg(json_list(&d.tags))
                    .arg(&d.parent)
                    .arg(json_list(&d.depends_on))
                    .arg(d.priority)
                    .arg(d.order)
                    .arg(&d.file_status)
                    .arg(d.score())
                    .arg(&d.retries)
                    .arg(&d.timeout_ms)
                    .arg(&d.on_child_failure)
                    .arg(&d.budget);
            }
            for id in gone {
                cmd.arg(id);
            }
        }
        drop(phase);
        let phase = crate::profile::phase("send, run, reply");
        type Chunk = (u64, u64, u64, u64, String, Vec<String>);
        let (results, ()): (Vec<Chunk>, ()) = tokio::try_join!(
            async { Ok::<_, StoreError>(pipe.query_async(&mut conn).await?) },
            self.add_town(),
        )?;
        drop(phase);
        let mut counts = SyncCounts::default();
        for (a, c, r, refused, held, skipped) in results {
            // Every chunk runs in the same transaction and sees the same
            // stored fingerprint, origin and workers: either all refuse or
            // none does.
            match refused {
                0 => {}
                1 => return Ok(Some(Err(SyncRefused::Stale))),
                2 => return Ok(Some(Err(SyncRefused::Foreign(held)))),
                _ => return Ok(None),
            }
            counts.added += a;
            counts.changed += c;
            counts.removed += r;
            counts.skipped += skipped.len() as u64;
        }
        Ok(Some(Ok(counts)))
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}
