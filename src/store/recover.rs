//! Recovery of dead workers' work (docs/PROTOCOL.md "Dead agents"): the
//! runner runs it on a timer, `tt recover` by hand. The store says which
//! orphaned command to stop ([`Recovered::orphan_on`]); the caller stops it,
//! so the store never signals a process.

use super::{Store, StoreError};

/// What recovery did for one worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recovered {
    pub worker: String,
    /// Running tasks put back to pending.
    pub requeued: u64,
    /// Taken-but-not-started messages put back into their inbox.
    pub returned: u64,
    /// Host of the dead worker and the process group of the command it was
    /// running, so the recoverer can stop that command if it is local.
    pub host: Option<String>,
    pub command_pgid: Option<u32>,
    /// When that group's leader started ([`crate::os::process_start`]): a
    /// group id whose leader has another start time was reused by an
    /// unrelated process and is never signalled.
    pub command_start: Option<u64>,
    /// The dead worker's own pid, to tell its process from a replica that
    /// has taken the id since.
    pub pid: Option<u32>,
}

impl Recovered {
    /// The process group, and its leader's start time, of the command the
    /// dead worker left running, when it ran on `this_host` and had a task
    /// that was requeued: the recoverer stops it
    /// ([`crate::os::signal_group_if_same`]) so that the task does not run
    /// twice at once. The store only says what to stop; signalling is the
    /// caller's.
    pub fn orphan_on(&self, this_host: &str) -> Option<(u32, u64)> {
        match (&self.host, self.command_pgid, self.command_start) {
            (Some(h), Some(pgid), Some(start)) if h == this_host && self.requeued > 0 => {
                Some((pgid, start))
            }
            _ => None,
        }
    }
}

impl Store {
    /// Workers whose heartbeat is gone and who still need recovery: not yet
    /// marked dead, or with something left in their claimed list.
    pub async fn dead_workers(&self) -> Result<Vec<String>, StoreError> {
        let workers = self.worker_ids().await?;
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
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

    /// Recovers these workers' work if their heartbeat is (still) gone
    /// (`worker.lua`'s `recover`: the same cleanup a worker does for its
    /// predecessor when it registers under the same id).
    pub async fn recover(&self, workers: &[String]) -> Result<Vec<Recovered>, StoreError> {
        let mut out = Vec::new();
        for w in workers {
            let mut conn = self.conn.clone();
            // Every field as text: a hand-edited `pid=x` must not fail
            // the recovery of every worker; it is read as no pid.
            type Fields = (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let (name, host, command_pgid, command_start, pid): Fields = redis::cmd("HMGET")
                .arg(self.keys.agent(w))
                .arg("name")
                .arg("host")
                .arg("command_pgid")
                .arg("command_start")
                .arg("pid")
                .query_async(&mut conn)
                .await?;
            let agent = name.unwrap_or_else(|| super::agent_name_of(w).to_string());
            if let Some((returned, requeued)) = self.recover_worker(w, &agent).await? {
                out.push(Recovered {
                    worker: w.clone(),
                    requeued,
                    returned,
                    host,
                    command_pgid: command_pgid.and_then(|s| s.parse().ok()),
                    // Empty when the worker could not read it.
                    command_start: command_start.and_then(|s| s.parse().ok()),
                    pid: pid.and_then(|s| s.parse().ok()),
                });
            }
        }
        Ok(out)
    }

    /// Records the process group of the command a worker runs and when its
    /// leader started (`start`, when known), so that a recoverer signals the
    /// group only while it is still that command. finish.lua, a clean stop
    /// and recovery clear both.
    ///
    /// Sent without waiting for the reply: the worker goes on to wait for
    /// its command at once, and a no-op task is over before a reply would
    /// come. The command is queued on the shared connection before this
    /// returns, so it reaches Redis ahead of the same attempt's report. Only
    /// an error to send it (a broken connection) is returned.
    pub async fn record_command(
        &self,
        worker: &str,
        pgid: u32,
        start: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys.agent(worker))
            .arg("command_pgid")
            .arg(pgid)
            .arg("command_start")
            // Unknown (no /proc): a start no process has, so it is never
            // signalled rather than signalled blindly.
            .arg(start.map_or_else(String::new, |s| s.to_string()));
        cmd.set_no_response(true)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Finds dead workers and recovers them.
    pub async fn recover_dead(&self) -> Result<Vec<Recovered>, StoreError> {
        let dead = self.dead_workers().await?;
        self.recover(&dead).await
    }
}
