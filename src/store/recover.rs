//! Recovery of dead workers' work (docs/PROTOCOL.md "Dead agents"): the
//! runner runs it on a timer, `tt recover` by hand.

use redis::Script;

use super::{Store, StoreError};

/// What recovery did for one worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recovered {
    pub worker: String,
    /// Running tasks put back to pending.
    pub requeued: u64,
    /// Taken-but-not-started messages put back into their inbox.
    pub returned: u64,
}

impl Store {
    /// Workers whose heartbeat is gone and who still need recovery: not yet
    /// marked dead, or with something left in their claimed list.
    pub async fn dead_workers(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let workers: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.agents())
            .query_async(&mut conn)
            .await?;
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for w in &workers {
            pipe.exists(self.keys.alive(w))
                .hget(self.keys.agent(w), "state")
                .llen(self.keys.claimed(w));
        }
        let replies: Vec<(bool, Option<String>, u64)> = pipe.query_async(&mut conn).await?;
        Ok(workers
            .into_iter()
            .zip(replies)
            .filter(|(_, (alive, state, claimed))| {
                !alive && (*claimed > 0 || !matches!(state.as_deref(), Some("dead" | "stopped")))
            })
            .map(|(w, _)| w)
            .collect())
    }

    /// Recovers these workers' work if their heartbeat is (still) gone.
    pub async fn recover(&self, workers: &[String]) -> Result<Vec<Recovered>, StoreError> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let script = Script::new(include_str!("scripts/recover.lua"));
        let mut inv = script.prepare_invoke();
        inv.arg(self.keys.prefix());
        for w in workers {
            inv.arg(w);
        }
        let mut conn = self.conn.clone();
        let flat: Vec<redis::Value> = inv.invoke_async(&mut conn).await?;
        Ok(flat
            .chunks(3)
            .filter_map(|c| {
                Some(Recovered {
                    worker: redis::from_redis_value(c.first()?.clone()).ok()?,
                    requeued: redis::from_redis_value(c.get(1)?.clone()).ok()?,
                    returned: redis::from_redis_value(c.get(2)?.clone()).ok()?,
                })
            })
            .collect())
    }

    /// Finds dead workers and recovers them.
    pub async fn recover_dead(&self) -> Result<Vec<Recovered>, StoreError> {
        let dead = self.dead_workers().await?;
        self.recover(&dead).await
    }
}
