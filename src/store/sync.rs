//! Applying a plan diff: the script in `scripts/sync.lua`, fed in chunks
//! inside one MULTI/EXEC so a reload is all-or-nothing.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

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
}

// Built once: `Script::new` hashes the source (SHA1) every time it runs.
static SYNC: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/sync.lua")));

const UPSERTS_PER_CALL: usize = 1000;

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

    /// Fingerprints of every file task, by id.
    pub async fn task_fingerprints(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGETALL")
            .arg(self.keys.fingerprints())
            .query_async(&mut conn)
            .await?)
    }

    /// Writes new and changed definitions and marks removed tasks, then
    /// records `plan_fp`, all in one transaction. With `adopt_status`, the
    /// statuses the file names are recorded as seen but not applied.
    pub async fn apply_sync(
        &self,
        upserts: &[TaskDef],
        removed: &[String],
        plan_fp: &str,
        adopt_status: bool,
    ) -> Result<SyncCounts, StoreError> {
        let counts = self
            .apply_sync_if(upserts, removed, plan_fp, adopt_status, None)
            .await?;
        // Without an expected fingerprint the script never refuses.
        Ok(counts.unwrap_or_default())
    }

    /// [`Store::apply_sync`], done only if Redis still holds the plan
    /// fingerprint `expected` (checked inside the script, so atomically):
    /// `None` when it does not, and nothing was written. An incremental
    /// reload writes one task on the assumption that Redis holds the plan
    /// it pushed last; a `tt sync push` from elsewhere breaks that.
    pub async fn apply_sync_if(
        &self,
        upserts: &[TaskDef],
        removed: &[String],
        plan_fp: &str,
        adopt_status: bool,
        expected: Option<&str>,
    ) -> Result<Option<SyncCounts>, StoreError> {
        let script = &*SYNC;
        let mut conn = self.conn.clone();
        // Loading first lets the transaction use EVALSHA without a
        // NOSCRIPT failure inside MULTI.
        script.prepare_invoke().load_async(&mut conn).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let chunks: Vec<&[TaskDef]> = upserts.chunks(UPSERTS_PER_CALL).collect();
        let calls = chunks.len().max(1);
        for call in 0..calls {
            let chunk = chunks.get(call).copied().unwrap_or(&[]);
            let last = call + 1 == calls;
            let gone: &[String] = if last { removed } else { &[] };
            let cmd = pipe.cmd("EVALSHA").arg(script.get_hash()).arg(0);
            cmd.arg(self.keys.prefix())
                .arg(&self.town)
                .arg(if last { plan_fp } else { "" })
                .arg(if adopt_status { "1" } else { "0" })
                .arg(chunk.len())
                .arg(gone.len())
                .arg(expected.unwrap_or(""));
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
                    .arg(&d.on_child_failure);
            }
            for id in gone {
                cmd.arg(id);
            }
        }
        let results: Vec<(u64, u64, u64, u64)> = pipe.query_async(&mut conn).await?;
        let mut counts = SyncCounts::default();
        for (a, c, r, stale) in results {
            // Every chunk runs in the same transaction and sees the same
            // stored fingerprint: either all refuse or none does.
            if stale != 0 {
                return Ok(None);
            }
            counts.added += a;
            counts.changed += c;
            counts.removed += r;
        }
        Ok(Some(counts))
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}
