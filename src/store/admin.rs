//! What the operator commands do to a town: read agents and inboxes
//! (`tt status`, `tt list`, `tt inbox`; the runner too: which agents are
//! live, and the notes sent to it), and change state
//! (`tt assign`, `tt send`, `tt kill`, `tt prune`, `tt cancel`,
//! `tt retry`). Every change is one Lua script in `scripts/`, so it checks
//! and writes atomically and records its event in the same step.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;
use serde::Serialize;

use super::script::{Declared, Kind, reply_as, script};
use super::sync::score;
use super::{Store, StoreError};
use crate::Status;

// Built once: `Script::new` hashes the source (SHA1) every time it runs.
// lib/declared.lua goes before the scripts that ask for keys they find
// they need (store/script.rs).
static ASSIGN: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/assign.lua")
    ))
});
static SEND: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/send.lua")));
static KILL: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/kill.lua")));
static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/prune.lua")
    ))
});
static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/cancel.lua")
    ))
});
static RETRY: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/retry.lua")));

/// Orders of ad-hoc tasks start here, after every file task (a file would
/// need 10^11 entries to reach it) and below the priority step of
/// [`score`], so priority still comes first.
pub const ADHOC_ORDER_BASE: u64 = 100_000_000_000;

/// One worker as its agent hash and heartbeat key describe it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    /// Worker id (`backend-1`).
    pub id: String,
    /// Agent name (`backend`): whose inbox it reads.
    pub name: String,
    /// State as users see it: `dead` when the heartbeat key expired
    /// (unless the worker said it stopped), else what the worker wrote.
    pub state: String,
    /// What the worker wrote in `state`.
    pub recorded_state: Option<String>,
    pub task: Option<String>,
    pub attempt: Option<u32>,
    pub pid: Option<u32>,
    pub host: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started: Option<u64>,
    /// Last heartbeat, milliseconds since the Unix epoch.
    pub heartbeat: Option<u64>,
    /// Takes backlog work (tasks with no agent).
    pub backlog: bool,
    /// The heartbeat key exists.
    pub alive: bool,
}

impl AgentInfo {
    fn from_hash(id: &str, mut h: HashMap<String, String>, alive: bool) -> Self {
        let mut take = |f: &str| h.remove(f).filter(|v| !v.is_empty());
        let recorded_state = take("state");
        let state = match recorded_state.as_deref() {
            Some("stopped") => "stopped".to_string(),
            _ if !alive => "dead".to_string(),
            Some(s) => s.to_string(),
            None => "unknown".to_string(),
        };
        AgentInfo {
            name: take("name").unwrap_or_else(|| agent_name_of(id).to_string()),
            task: take("task"),
            attempt: take("attempt").and_then(|v| v.parse().ok()),
            pid: take("pid").and_then(|v| v.parse().ok()),
            host: take("host"),
            started: take("started").and_then(|v| v.parse().ok()),
            heartbeat: take("heartbeat").and_then(|v| v.parse().ok()),
            backlog: take("backlog").is_some_and(|v| v == "1" || v == "true"),
            id: id.to_string(),
            recorded_state,
            state,
            alive,
        }
    }
}

/// The agent name of a worker id that carries none: `backend-2` →
/// `backend`, as workers are named `<agent>-<n>` or `<agent>-<pid>`.
pub fn agent_name_of(worker: &str) -> &str {
    match worker.rsplit_once('-') {
        Some((name, n))
            if !name.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => worker,
    }
}

/// A task for `tt assign`.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    /// Empty: the next free `adhoc-<n>`.
    pub id: String,
    pub description: String,
    pub agent: String,
    pub tags: Vec<String>,
    /// Empty: none.
    pub parent: String,
    pub depends_on: Vec<String>,
    pub priority: u8,
}

/// What `tt assign` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assigned {
    Created {
        id: String,
    },
    /// A task with this id exists already; nothing changed.
    Exists {
        id: String,
    },
}

/// One entry of an inbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InboxEntry {
    Task {
        task: String,
        attempt: u32,
    },
    Message {
        from: String,
        body: String,
    },
    /// Not a message tt reads (a worker moves it to the dead-letter list).
    Unreadable {
        raw: String,
    },
}

impl InboxEntry {
    pub fn parse(raw: &str) -> Self {
        let unreadable = || InboxEntry::Unreadable {
            raw: raw.to_string(),
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) else {
            return unreadable();
        };
        let text = |f: &str| v.get(f).and_then(serde_json::Value::as_str);
        match text("kind") {
            Some("task") => match (text("task"), v.get("attempt").and_then(|a| a.as_u64())) {
                (Some(task), Some(attempt)) => InboxEntry::Task {
                    task: task.to_string(),
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                },
                _ => unreadable(),
            },
            Some("message") => InboxEntry::Message {
                from: text("from").unwrap_or("?").to_string(),
                body: text("body").unwrap_or_default().to_string(),
            },
            _ => unreadable(),
        }
    }
}

/// What `tt kill` did to one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KillOutcome {
    /// Told to shut down; its state is `stopping` until it exits.
    Killed,
    /// No such worker.
    Missing,
    /// It had stopped already.
    Stopped,
    /// Its heartbeat expired: nothing runs to read a shutdown message.
    Dead,
}

/// One worker `tt prune` looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub worker: String,
    pub agent: String,
    /// `stopped` or `dead`.
    pub state: String,
    /// False: kept because its claimed list still holds work.
    pub removed: bool,
    /// Removed: messages dropped with the inbox of its agent's last worker.
    /// Kept: entries in its claimed list.
    pub count: u64,
}

/// What `tt cancel` did to one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelOutcome {
    pub id: String,
    /// Status before; `None` when the task does not exist.
    pub before: Option<Status>,
    pub cancelled: bool,
}

impl Store {
    /// The server's clock in milliseconds since the Unix epoch: ages are
    /// measured against it, like every time the scripts record.
    pub async fn now_ms(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// The ids of every worker registered in the town, in no order.
    pub async fn worker_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.agents();
        redis::cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| super::error::name_key(e, &key, "set"))
    }

    /// Every worker registered in the town, by id.
    pub async fn agents(&self) -> Result<Vec<AgentInfo>, StoreError> {
        let mut ids = self.worker_ids().await?;
        ids.sort();
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hgetall(self.keys.agent(id));
                pipe.exists(self.keys.alive(id));
            }
            let replies: Vec<(HashMap<String, String>, bool)> = pipe.query_async(&mut conn).await?;
            for (id, (hash, alive)) in chunk.iter().zip(replies) {
                out.push(AgentInfo::from_hash(id, hash, alive));
            }
        }
        Ok(out)
    }

    /// Names of agents with at least one worker whose heartbeat is alive.
    pub async fn live_agent_names(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let workers = self.worker_ids().await?;
        if workers.is_empty() {
            return Ok(Default::default());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for w in &workers {
            pipe.hget(self.keys.agent(w), "name")
                .exists(self.keys.alive(w));
        }
        let replies: Vec<(Option<String>, bool)> = pipe.query_async(&mut conn).await?;
        Ok(replies
            .into_iter()
            .filter(|(_, alive)| *alive)
            .filter_map(|(name, _)| name)
            .collect())
    }

    /// Creates an ad-hoc task: pending, `source = cli`, ordered after every
    /// file task. A reload never cancels it (sync only removes tasks it has
    /// a fingerprint of).
    pub async fn assign(&self, task: &NewTask) -> Result<Assigned, StoreError> {
        // A default id is only known once the script has read the counter:
        // it asks for that task's key.
        let mut declared = Declared::new();
        if !task.id.is_empty() {
            declared.add(Kind::Task, &task.id);
        }
        let reply = self
            .run_declared(
                &ASSIGN,
                "assign.lua",
                &mut declared,
                |inv| {
                    inv.key(self.keys.adhoc_counter())
                        .key(self.keys.tasks())
                        .key(self.keys.events());
                },
                |inv| {
                    inv.arg(&task.id)
                        .arg(&task.description)
                        .arg(&task.agent)
                        .arg(json_list(&task.tags))
                        .arg(&task.parent)
                        .arg(json_list(&task.depends_on))
                        .arg(task.priority)
                        .arg(score(task.priority, 0))
                        .arg(ADHOC_ORDER_BASE);
                },
            )
            .await?;
        let (created, id): (i64, String) = reply_as(reply)?;
        if created != 1 {
            return Ok(Assigned::Exists { id });
        }
        self.add_town().await?;
        Ok(Assigned::Created { id })
    }

    /// Puts a direct message into `agent`'s inbox, at the head when
    /// `urgent`, and records a `message` event. Returns the inbox length.
    pub async fn send(
        &self,
        agent: &str,
        from: &str,
        body: &str,
        urgent: bool,
    ) -> Result<u64, StoreError> {
        let msg = serde_json::json!({ "kind": "message", "from": from, "body": body }).to_string();
        let mut conn = self.conn.clone();
        Ok(SEND
            .key(self.keys.inbox(agent))
            .key(self.keys.events())
            .arg(agent)
            .arg(msg)
            .arg(if urgent { "1" } else { "0" })
            .arg(from)
            .arg(body)
            .invoke_async(&mut conn)
            .await?)
    }

    /// What waits in `agent`'s inbox, head first.
    pub async fn inbox(&self, agent: &str) -> Result<Vec<InboxEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.inbox(agent))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        Ok(raw.iter().map(|r| InboxEntry::parse(r)).collect())
    }

    /// Number of entries waiting in an agent's inbox.
    pub async fn inbox_len(&self, agent: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("LLEN")
            .arg(self.keys.inbox(agent))
            .query_async(&mut conn)
            .await?)
    }

    /// Drains the runner's own inbox (`tt send supervisor …`).
    pub async fn take_supervisor_messages(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.inbox(super::keys::SUPERVISOR);
        let (items, _): (Vec<String>, i64) = redis::pipe()
            .atomic()
            .cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        Ok(items)
    }

    /// Tells these workers to shut down (a `shutdown` control message,
    /// state `stopping`, event `killed`); workers that are missing, stopped
    /// or dead are left alone.
    pub async fn kill(&self, workers: &[String]) -> Result<Vec<KillOutcome>, StoreError> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut invocation = KILL.prepare_invoke();
        invocation.key(self.keys.events());
        for w in workers {
            invocation
                .key(self.keys.agent(w))
                .key(self.keys.alive(w))
                .key(self.keys.control(w))
                .arg(w);
        }
        let out: Vec<String> = invocation.invoke_async(&mut conn).await?;
        Ok(out
            .iter()
            .map(|o| match o.as_str() {
                "killed" => KillOutcome::Killed,
                "stopped" => KillOutcome::Stopped,
                "dead" => KillOutcome::Dead,
                _ => KillOutcome::Missing,
            })
            .collect())
    }

    /// Forgets stopped and dead workers (see `scripts/prune.lua`).
    pub async fn prune(&self) -> Result<Vec<Pruned>, StoreError> {
        // The workers as read now; the script reads the set again and asks
        // for the keys of any worker (or inbox) not declared here.
        let mut declared = Declared::new();
        for w in self.worker_ids().await? {
            for kind in [Kind::Agent, Kind::Alive, Kind::Claimed, Kind::Control] {
                declared.add(kind, &w);
            }
            declared.add(Kind::Inbox, agent_name_of(&w));
        }
        let reply = self
            .run_declared(
                &PRUNE,
                "prune.lua",
                &mut declared,
                |inv| {
                    inv.key(self.keys.agents()).key(self.keys.events());
                },
                |_| {},
            )
            .await?;
        let out: Vec<(String, String, String, String, u64)> = reply_as(reply)?;
        let mut pruned: Vec<Pruned> = out
            .into_iter()
            .map(|(worker, agent, state, outcome, count)| Pruned {
                worker,
                agent,
                state,
                removed: outcome == "pruned",
                count,
            })
            .collect();
        pruned.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(pruned)
    }

    /// Cancels `(task id, reason)` pairs in order: each one not yet
    /// final becomes `cancelled`, a running one's worker gets a `stop`
    /// control message, an assigned one leaves its inbox.
    pub async fn cancel(
        &self,
        tasks: &[(String, String)],
    ) -> Result<Vec<CancelOutcome>, StoreError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        // Which worker to stop, or inbox to clear, is known once the
        // script has read the tasks: it asks for those keys.
        let mut declared = Declared::new();
        for (id, _) in tasks {
            declared.add(Kind::Task, id);
        }
        let reply = self
            .run_declared(
                &CANCEL,
                "cancel.lua",
                &mut declared,
                |inv| {
                    inv.key(self.keys.events()).key(self.keys.backlog());
                },
                |inv| {
                    for (id, reason) in tasks {
                        inv.arg(id).arg(reason);
                    }
                },
            )
            .await?;
        let out: Vec<(String, i64)> = reply_as(reply)?;
        Ok(tasks
            .iter()
            .zip(out)
            .map(|((id, _), (before, cancelled))| CancelOutcome {
                id: id.clone(),
                before: Status::parse(&before),
                cancelled: cancelled == 1,
            })
            .collect())
    }

    /// Puts failed or cancelled tasks back to pending (error, exit code and
    /// retry time cleared, attempt kept). Returns, per id, the status it
    /// had, or `None` when it was left alone.
    pub async fn retry(&self, ids: &[String]) -> Result<Vec<Option<Status>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut invocation = RETRY.prepare_invoke();
        invocation.key(self.keys.events());
        for id in ids {
            invocation.key(self.keys.task(id)).arg(id);
        }
        let out: Vec<String> = invocation.invoke_async(&mut conn).await?;
        Ok(out.iter().map(|s| Status::parse(s)).collect())
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_come_from_worker_ids() {
        assert_eq!(agent_name_of("backend-1"), "backend");
        assert_eq!(agent_name_of("db-admin-12345"), "db-admin");
        assert_eq!(agent_name_of("backend"), "backend");
        assert_eq!(agent_name_of("-1"), "-1");
        assert_eq!(agent_name_of("x-"), "x-");
    }

    #[test]
    fn inbox_entries_parse_leniently() {
        assert_eq!(
            InboxEntry::parse(r#"{"kind":"task","task":"a","attempt":2}"#),
            InboxEntry::Task {
                task: "a".into(),
                attempt: 2
            }
        );
        assert_eq!(
            InboxEntry::parse(r#"{"kind":"message","from":"ann","body":"hi"}"#),
            InboxEntry::Message {
                from: "ann".into(),
                body: "hi".into()
            }
        );
        for raw in ["nope", r#"{"kind":"task"}"#, "[]"] {
            assert_eq!(
                InboxEntry::parse(raw),
                InboxEntry::Unreadable { raw: raw.into() }
            );
        }
    }

    #[test]
    fn dead_is_decided_by_the_heartbeat_key() {
        let h = |state: &str| HashMap::from([("state".to_string(), state.to_string())]);
        assert_eq!(AgentInfo::from_hash("a-1", h("idle"), true).state, "idle");
        assert_eq!(
            AgentInfo::from_hash("a-1", h("working"), false).state,
            "dead"
        );
        assert_eq!(
            AgentInfo::from_hash("a-1", h("stopped"), false).state,
            "stopped"
        );
        assert_eq!(AgentInfo::from_hash("a-1", h("idle"), true).name, "a");
    }
}
