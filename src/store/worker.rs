//! The worker's side of the protocol (docs/PROTOCOL.md): registering and
//! heartbeating (`scripts/worker.lua`), claiming what it took from an inbox
//! (`scripts/claim.lua`), reporting how an attempt ended
//! (`scripts/finish.lua`), and the two blocking reads — `BLMOVE` from the
//! inbox and `BLPOP` from the control list — on connections of their own
//! ([`BlockingConn`]).
//!
//! Message formats (inbox, control) are parsed here, next to the keys they
//! travel in, so the agent module deals in Rust values only.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::connection::{Connection, connect_blocking};
use super::script::{Declared, Kind, reply_as, script};
use super::{Facts, Keys, RedisTarget, Store, StoreError};

// The shared pieces in `scripts/lib/` go before the scripts that call
// them: lib/declared.lua finds the keys a script is given for what it
// reads (store/script.rs), lib/requeue.lua bounds the requeues of a task
// (both scripts that requeue), lib/claim.lua is the claim (a claim on its
// own, and a busy worker's next message in the call that reports the last
// one).
static WORKER: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/lib/requeue.lua"),
        "\n",
        include_str!("scripts/lib/usage.lua"),
        "\n",
        include_str!("scripts/worker.lua")
    ))
});
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/lib/claim.lua"),
        "\n",
        include_str!("scripts/claim.lua")
    ))
});
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/lib/requeue.lua"),
        "\n",
        include_str!("scripts/lib/claim.lua"),
        "\n",
        include_str!("scripts/lib/usage.lua"),
        "\n",
        include_str!("scripts/finish.lua")
    ))
});

/// Who a worker is, as its records in Redis say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Worker id (`backend-1`, `backend-<pid>`): keys `agent:`, `alive:`,
    /// `claimed:`, `control:`.
    pub id: String,
    /// Agent name: the inbox it reads and the `assigned_to` it claims.
    pub agent: String,
    pub pid: u32,
    pub host: String,
    /// Also takes ready tasks that have no agent.
    pub backlog: bool,
    /// Unique to this process (`pid@host/<start time>`), stored in the
    /// heartbeat key: tells this process from another with the same id.
    pub token: String,
}

/// Result of [`Store::register_worker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Registered. What an earlier process with this id left in
    /// `claimed:<worker>` was dealt with: `returned` unclaimed messages went
    /// back to their inbox, `requeued` tasks it had started went back to
    /// `pending` (the next dispatch is a new attempt).
    Ok { returned: u64, requeued: u64 },
    /// A live process holds the id; `holder` is its token.
    Busy { holder: String },
}

/// Where a raw message came from, which decides the `assigned_to` a task
/// must have to be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSource {
    /// `inbox:<agent>`: the task must be assigned to the agent.
    Inbox,
    /// `backlog`: the task must be assigned to no agent.
    Backlog,
}

/// A task to run, as [`Store::claim`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub id: String,
    pub attempt: u32,
    pub description: String,
    pub tags: Vec<String>,
    /// Empty when the task has no parent.
    pub parent: String,
    /// The task's own `retries` and `timeout`, overriding the agent's.
    pub retries: Option<u32>,
    pub timeout: Option<std::time::Duration>,
    /// What the task's previous attempt learned (empty for none): its
    /// session is what a retry resumes.
    pub previous: Facts,
    /// The task's own budget as stored (JSON, "" for none), overriding the
    /// agent's.
    pub budget: String,
}

/// What renewing a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    Alive,
    /// This process must stop (why).
    StepDown(String),
}

/// What [`Store::claim`] made of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: the task is now `running` on this worker.
    Run(ClaimedTask),
    /// Dropped without running: cancelled, reassigned, an old attempt.
    Stale {
        task: String,
        attempt: u32,
        reason: String,
    },
    /// A direct message (`tt send`): recorded, never run.
    Message { from: String, body: String },
    /// Unreadable: moved to `deadletter`.
    DeadLetter { reason: String },
}

/// How one attempt ended, for [`Store::finish`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report<'a> {
    pub worker: &'a str,
    /// The message as it sits in `claimed:<worker>`.
    pub raw: &'a str,
    pub task: &'a str,
    pub attempt: u32,
    /// The command's exit code, when it exited by itself.
    pub exit_code: Option<i32>,
    /// Why the attempt failed when not by its exit code (not started,
    /// timed out, stopped, killed by a signal).
    pub error: Option<&'a str>,
    /// The last bytes of the log.
    pub output: &'a str,
    pub log: &'a str,
    /// Attempts after the first that a failure may use.
    pub retries: u32,
    /// Wait before a retry is dispatched.
    pub backoff: Duration,
    /// The worker stopped the command itself because it could not renew its
    /// heartbeat: the attempt goes back to `pending` (as recovery would put
    /// it) instead of using up a retry.
    pub requeue: bool,
    /// What the attempt learned ([`Facts`]): stored on the task and on the
    /// event that ends the attempt.
    pub facts: Option<&'a Facts>,
}

/// What [`Store::finish`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Completed,
    /// Back to `pending`, not dispatched before `retry_at` (ms since the
    /// epoch, Redis time).
    Retry {
        retry_at: u64,
    },
    Failed,
    /// Back to `pending` for a new attempt, a retry not used up (a fenced
    /// attempt, [`Report::requeue`]).
    Requeued,
    /// The task moved on (cancelled, requeued to a new attempt): nothing
    /// changed but a `rejected` event.
    Stale {
        reason: String,
    },
}

/// A message on `control:<worker>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Stop this attempt's process.
    Stop { task: String, attempt: u32 },
    /// Stop the current process, then exit.
    Shutdown,
    /// Not a control message tt knows; ignored (kept for the log).
    Unknown(String),
}

impl Control {
    /// Parses a control message; anything unreadable is [`Control::Unknown`].
    pub fn parse(raw: &str) -> Self {
        #[derive(serde::Deserialize)]
        struct Msg {
            kind: String,
            task: Option<String>,
            attempt: Option<u32>,
        }
        match serde_json::from_str::<Msg>(raw) {
            Ok(m) if m.kind == "shutdown" => Control::Shutdown,
            Ok(Msg {
                kind,
                task: Some(task),
                attempt: Some(attempt),
            }) if kind == "stop" => Control::Stop { task, attempt },
            _ => Control::Unknown(raw.to_string()),
        }
    }
}

impl Store {
    /// The process group, and its leader's start time, of a command that an
    /// earlier process with this worker's id left running on this host when
    /// it died mid-task (no heartbeat, not a clean stop, a task in hand).
    /// Registering requeues that task, so the command must be stopped
    /// *before* registering.
    pub async fn orphaned_command(
        &self,
        w: &WorkerIdentity,
    ) -> Result<Option<(u32, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        type Fields = (
            Option<String>,
            Option<u32>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let ((host, pgid, start, state, task), alive): (Fields, bool) = redis::pipe()
            .cmd("HMGET")
            .arg(self.keys.agent(&w.id))
            .arg("host")
            .arg("command_pgid")
            .arg("command_start")
            .arg("state")
            .arg("task")
            .exists(self.keys.alive(&w.id))
            .query_async(&mut conn)
            .await?;
        let ours = host.as_deref() == Some(w.host.as_str());
        let died = !alive && state.as_deref() != Some("stopped") && task.is_some();
        let start = start.and_then(|s| s.parse().ok());
        Ok(pgid.zip(start).filter(|_| ours && died))
    }

    /// Registers a worker: agent hash, `agents` set, first heartbeat
    /// (`ttl`). Refused while another process holds the id. Work an earlier
    /// process with this id left in its claimed list is returned or
    /// requeued in the same step: once this worker is alive, the runner's
    /// recovery of dead workers would never see it.
    pub async fn register_worker(
        &self,
        w: &WorkerIdentity,
        ttl: Duration,
    ) -> Result<Registered, StoreError> {
        let reply = self
            .worker_op(&w.id, &w.agent, "register", |inv| {
                inv.arg(&w.agent)
                    .arg(w.pid)
                    .arg(&w.host)
                    .arg(if w.backlog { "1" } else { "0" })
                    .arg(millis(ttl))
                    .arg(&w.token);
            })
            .await?;
        match reply.as_slice() {
            [ok, returned, requeued] if ok == "ok" => Ok(Registered::Ok {
                returned: returned.parse().unwrap_or(0),
                requeued: requeued.parse().unwrap_or(0),
            }),
            [busy, holder] if busy == "busy" => Ok(Registered::Busy {
                holder: holder.clone(),
            }),
            _ => Err(self.unexpected("worker.lua register", &reply)),
        }
    }

    /// Renews the heartbeat for `ttl` and records its time in the agent
    /// hash.
    ///
    /// `Err(StepDown)`-like answers come back as [`Heartbeat::StepDown`]:
    /// another process took the id, this one was declared dead while it
    /// was cut off (its work requeued), or its records are gone (Redis lost
    /// its data); either way it must stop.
    pub async fn heartbeat(
        &self,
        w: &WorkerIdentity,
        ttl: Duration,
    ) -> Result<Heartbeat, StoreError> {
        let reply = self
            .worker_op(&w.id, &w.agent, "heartbeat", |inv| {
                inv.arg(millis(ttl)).arg(&w.token);
            })
            .await?;
        Ok(match reply.first().map(String::as_str) {
            Some("replaced") => Heartbeat::StepDown(format!(
                "another process registered as `{}` ({})",
                w.id,
                reply.get(1).map_or("?", String::as_str)
            )),
            Some("dead") => Heartbeat::StepDown(
                "declared dead while cut off from Redis; its task was requeued".into(),
            ),
            Some("gone") => Heartbeat::StepDown(
                "its records are gone from Redis (restarted without its data?); what it ran \
                 may be restored and run again"
                    .into(),
            ),
            _ => Heartbeat::Alive,
        })
    }

    /// Marks the worker stopped and drops its heartbeat, so the runner may
    /// recover what it leaves in `claimed` without waiting for a TTL.
    pub async fn worker_stopped(&self, w: &WorkerIdentity) -> Result<(), StoreError> {
        self.worker_op(&w.id, &w.agent, "stopped", |inv| {
            inv.arg(&w.token);
        })
        .await?;
        Ok(())
    }

    /// Returns what sits in the worker's claimed list to the head of the
    /// inbox (or backlog) it came from, keeping tasks it already started.
    /// For a worker that stops while idle: a `BLMOVE` cut short by the stop
    /// may have moved a message it will never claim. Returns how many went
    /// back.
    pub async fn give_back(&self, w: &WorkerIdentity) -> Result<u64, StoreError> {
        let reply = self
            .worker_op(&w.id, &w.agent, "give_back", |inv| {
                inv.arg(&w.agent);
            })
            .await?;
        match reply.as_slice() {
            [ok, n] if ok == "ok" => Ok(n.parse().unwrap_or(0)),
            _ => Err(self.unexpected("worker.lua give_back", &reply)),
        }
    }

    /// Recovers what a dead worker (no heartbeat) left in its claimed list:
    /// unclaimed messages go back to their inbox, tasks it had started go
    /// back to `pending` (event `requeued`; the next dispatch is a new
    /// attempt, so a late report of the old one is rejected). `agent` is
    /// the worker's agent name. `None` while the worker is alive: then
    /// nothing is touched.
    pub async fn recover_worker(
        &self,
        worker: &str,
        agent: &str,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let reply = self
            .worker_op(worker, agent, "recover", |inv| {
                inv.arg(agent);
            })
            .await?;
        match reply.as_slice() {
            [alive] if alive == "alive" => Ok(None),
            [ok, returned, requeued] if ok == "ok" => Ok(Some((
                returned.parse().unwrap_or(0),
                requeued.parse().unwrap_or(0),
            ))),
            _ => Err(self.unexpected("worker.lua recover", &reply)),
        }
    }

    /// Whether a worker's heartbeat is current.
    pub async fn worker_alive(&self, worker: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("EXISTS")
            .arg(self.keys.alive(worker))
            .query_async(&mut conn)
            .await?)
    }

    /// Moves the head of the inbox (or the backlog) into the worker's
    /// claimed list without waiting; `None` when it is empty. A worker that
    /// takes backlog work checks both between blocking reads of the inbox.
    pub async fn take_message(
        &self,
        w: &WorkerIdentity,
        source: MessageSource,
    ) -> Result<Option<String>, StoreError> {
        let from = match source {
            MessageSource::Inbox => self.keys.inbox(&w.agent),
            MessageSource::Backlog => self.keys.backlog(),
        };
        let mut conn = self.conn.clone();
        Ok(redis::cmd("LMOVE")
            .arg(from)
            .arg(self.keys.claimed(&w.id))
            .arg("LEFT")
            .arg("RIGHT")
            .query_async(&mut conn)
            .await?)
    }

    /// Claims a raw message that `w` moved into its claimed list from
    /// `source`. `again` repeats a claim whose reply was lost. `logs` is the
    /// worker's log directory (`<project>/.tt/logs`, "" for none): the
    /// attempt's log file in it is recorded with the task.
    pub async fn claim(
        &self,
        w: &WorkerIdentity,
        raw: &str,
        source: MessageSource,
        again: bool,
        logs: &str,
    ) -> Result<Claim, StoreError> {
        let assignee = match source {
            MessageSource::Inbox => w.agent.as_str(),
            MessageSource::Backlog => "",
        };
        let mut declared = Declared::new();
        if let Some(task) = task_named(raw) {
            declared.add(Kind::Task, &task);
        }
        let reply = self
            .run_declared(
                &CLAIM,
                "claim.lua",
                &mut declared,
                |inv| {
                    inv.key(self.keys.claimed(&w.id))
                        .key(self.keys.agent(&w.id))
                        .key(self.keys.events())
                        .key(self.keys.deadletter());
                },
                |inv| {
                    inv.arg(&w.id)
                        .arg(raw)
                        .arg(assignee)
                        .arg(if again { "1" } else { "0" })
                        .arg(logs);
                },
            )
            .await?;
        let parsed = self.parse_claim(&texts(reply_as(reply)?))?;
        self.settle(&w.id, raw, parsed).await
    }

    /// A claim as [`Store::parse_claim`] read it; an unreadable task is
    /// failed here (as a failed attempt, so it is not run and not left
    /// `running`) and handed out as dropped. Retrying the claim instead
    /// would find the task running and drop the message: the task would
    /// stay `running` for ever.
    async fn settle(
        &self,
        worker: &str,
        raw: &str,
        parsed: Result<Claim, Unreadable>,
    ) -> Result<Claim, StoreError> {
        let u = match parsed {
            Ok(claim) => return Ok(claim),
            Err(u) => u,
        };
        let error = format!(
            "{}; fix it with `redis-cli`, then `tt retry {}`",
            u.what, u.task
        );
        let report = Report {
            worker,
            raw,
            task: &u.task,
            attempt: u.attempt,
            exit_code: None,
            error: Some(&error),
            ..Report::default()
        };
        // Boxed: finish_and_take settles the claim it makes, through here.
        Box::pin(self.finish(&report, false)).await?;
        Ok(Claim::Stale {
            task: u.task,
            attempt: u.attempt,
            reason: u.what,
        })
    }

    /// Reads claim.lua's reply (each value with whether it was UTF-8).
    fn parse_claim(
        &self,
        reply: &[(String, bool)],
    ) -> Result<Result<Claim, Unreadable>, StoreError> {
        let text: Vec<String> = reply.iter().map(|(s, _)| s.clone()).collect();
        match text.as_slice() {
            [
                run,
                id,
                attempt,
                description,
                tags,
                parent,
                retries,
                timeout,
                previous,
                budget,
            ] if run == "run" => {
                let key = self.keys.task(id);
                let unreadable = |what: String| {
                    Ok(Err(Unreadable {
                        task: id.clone(),
                        attempt: attempt.parse().unwrap_or(0),
                        what: format!("`{key}` {what}"),
                    }))
                };
                // The fields in the order claim.lua answers them.
                let names = [
                    "",
                    "id",
                    "",
                    "description",
                    "tags",
                    "parent",
                    "retries",
                    "timeout",
                    "facts",
                    "budget",
                ];
                if let Some(((_, _), name)) = reply.iter().zip(names).find(|((_, ok), _)| !ok) {
                    return unreadable(format!("field `{name}` is not UTF-8"));
                }
                let Ok(attempt) = attempt.parse() else {
                    return unreadable(format!("attempt `{attempt}` is not a number"));
                };
                let tags = if tags.is_empty() {
                    Vec::new()
                } else {
                    match serde_json::from_str(tags) {
                        Ok(tags) => tags,
                        Err(e) => {
                            return unreadable(format!(
                                "field `tags` is not a JSON list of strings: {e}"
                            ));
                        }
                    }
                };
                Ok(Ok(Claim::Run(ClaimedTask {
                    id: id.clone(),
                    attempt,
                    description: description.clone(),
                    tags,
                    parent: parent.clone(),
                    retries: retries.parse().ok(),
                    timeout: timeout.parse().ok().map(std::time::Duration::from_millis),
                    previous: super::parse_facts(previous),
                    budget: budget.clone(),
                })))
            }
            [stale, reason, task, attempt] if stale == "stale" => Ok(Ok(Claim::Stale {
                task: task.clone(),
                attempt: attempt.parse().unwrap_or(0),
                reason: reason.clone(),
            })),
            [message, from, body] if message == "message" => Ok(Ok(Claim::Message {
                from: from.clone(),
                body: body.clone(),
            })),
            [dead, reason] if dead == "deadletter" => Ok(Ok(Claim::DeadLetter {
                reason: reason.clone(),
            })),
            _ => Err(self.unexpected("claim.lua", &text)),
        }
    }

    /// Records how an attempt ended: completed, retried, failed — or, if
    /// the task moved on meanwhile, rejected as stale.
    /// `again`: this repeats a report whose reply was lost; the outcome it
    /// already recorded is returned instead of a "stale" rejection.
    pub async fn finish(&self, r: &Report<'_>, again: bool) -> Result<Finish, StoreError> {
        Ok(self.finish_and_take(r, again, None, "").await?.0)
    }

    /// [`Store::finish`], and then, for `take`, the next message of its
    /// agent's inbox moved into its claimed list and claimed (as
    /// [`Store::claim`] with `logs`) in the same call: a busy worker's one
    /// round trip per task. `None` when the inbox was empty. A repeated
    /// report (`again`) hands out again the message the lost reply held.
    pub async fn finish_and_take(
        &self,
        r: &Report<'_>,
        again: bool,
        take: Option<&WorkerIdentity>,
        logs: &str,
    ) -> Result<(Finish, Option<(String, Claim)>), StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = FINISH.prepare_invoke();
        inv.key(self.keys.task(r.task))
            .key(self.keys.claimed(r.worker))
            .key(self.keys.agent(r.worker))
            .key(self.keys.events())
            .key(self.keys.usage())
            .key(self.keys.deadletter());
        if let Some(w) = take {
            inv.key(self.keys.inbox(&w.agent));
        }
        // The next message's task is not known before the script takes it:
        // when the claim asks for its key, the worker claims it in a call of
        // its own (below).
        Declared::new().apply(&self.keys, &mut inv);
        let reply: Vec<Vec<u8>> = inv
            .arg(r.worker)
            .arg(r.raw)
            .arg(r.task)
            .arg(r.attempt)
            .arg(r.exit_code.map(|c| c.to_string()).unwrap_or_default())
            .arg(r.error.unwrap_or(""))
            .arg(r.output)
            .arg(r.log)
            .arg(r.retries)
            .arg(millis(r.backoff))
            .arg(if again { "1" } else { "0" })
            .arg(take.map_or("", |w| w.agent.as_str()))
            .arg(logs)
            .arg(if r.requeue { "1" } else { "0" })
            .arg(super::facts_text(r.facts))
            .invoke_async(&mut conn)
            .await?;
        let reply = texts(reply);
        let text: Vec<String> = reply.iter().map(|(s, _)| s.clone()).collect();
        let (finish, rest) = match text.as_slice() {
            [requeued, rest @ ..] if requeued == "requeued" => (Finish::Requeued, rest),
            [done, rest @ ..] if done == "completed" => (Finish::Completed, rest),
            [failed, rest @ ..] if failed == "failed" => (Finish::Failed, rest),
            [retry, at, rest @ ..] if retry == "retry" => (
                Finish::Retry {
                    retry_at: at.parse().unwrap_or(0),
                },
                rest,
            ),
            [stale, reason, rest @ ..] if stale == "stale" => (
                Finish::Stale {
                    reason: reason.clone(),
                },
                rest,
            ),
            _ => return Err(self.unexpected("finish.lua", &text)),
        };
        let next = match (&reply[text.len() - rest.len()..], take) {
            ([], _) => None,
            ([(raw, _), (need, _), ..], Some(w)) if need == "need" => Some((
                raw.clone(),
                self.claim(w, raw, MessageSource::Inbox, again, logs)
                    .await?,
            )),
            ([(raw, _), claim @ ..], _) => {
                let parsed = self.parse_claim(claim)?;
                let worker = take.map_or(r.worker, |w| w.id.as_str());
                Some((raw.clone(), self.settle(worker, raw, parsed).await?))
            }
        };
        Ok((finish, next))
    }

    /// Runs operation `op` of worker.lua for `worker` of agent `agent`;
    /// `args` adds what follows the worker id.
    async fn worker_op(
        &self,
        worker: &str,
        agent: &str,
        op: &str,
        args: impl Fn(&mut redis::ScriptInvocation<'_>),
    ) -> Result<Vec<String>, StoreError> {
        let mut declared = Declared::new();
        declared.add(Kind::Inbox, agent);
        let reply = self
            .run_declared(
                &WORKER,
                &format!("worker.lua {op}"),
                &mut declared,
                |inv| {
                    inv.key(self.keys.agent(worker))
                        .key(self.keys.alive(worker))
                        .key(self.keys.claimed(worker))
                        .key(self.keys.events())
                        .key(self.keys.agents())
                        .key(self.keys.backlog())
                        .key(self.keys.usage());
                },
                |inv| {
                    inv.arg(op).arg(worker);
                    args(inv);
                },
            )
            .await?;
        reply_as(reply)
    }

    /// A script's reply that is none of the ones it gives.
    pub(super) fn unexpected(&self, script: &str, reply: &[String]) -> StoreError {
        StoreError::Corrupt {
            key: self.keys.prefix().to_string(),
            what: format!("{script} answered {reply:?}"),
        }
    }
}

/// A task claim.lua handed out that the worker cannot read (edited by
/// hand): it is failed rather than run.
struct Unreadable {
    task: String,
    attempt: u32,
    /// Names the key and the field.
    what: String,
}

/// The task an inbox message names, read as claim.lua reads it; `None`
/// for one that names none (the script then needs no task key, or asks).
fn task_named(raw: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    Some(v.get("task")?.as_str()?.to_string())
}

/// A script's reply as text, each value with whether it was UTF-8: a task
/// field holds whatever bytes were written into it.
fn texts(reply: Vec<Vec<u8>>) -> Vec<(String, bool)> {
    reply.into_iter().map(super::task::utf8_or_lossy).collect()
}

/// A connection of its own for one blocking loop (the inbox or the control
/// list): blocking reads on the shared connection would stall every other
/// command, and its 500 ms response timeout would fail them.
///
/// After an error for which [`StoreError::is_connection_error`] holds, the
/// next call connects again.
pub struct BlockingConn {
    target: RedisTarget,
    keys: Keys,
    conn: Option<Connection>,
}

impl BlockingConn {
    /// Connects for `store`'s town.
    pub async fn open(store: &Store, target: &RedisTarget) -> Result<Self, StoreError> {
        let mut this = Self {
            target: target.clone(),
            keys: store.keys.clone(),
            conn: None,
        };
        this.conn().await?;
        Ok(this)
    }

    async fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => connect_blocking(&self.target).await?,
        };
        Ok(self.conn.insert(conn))
    }

    /// The town's key names.
    pub(super) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs a blocking command; drops the connection when it failed, so the
    /// next call opens a new one.
    pub(super) async fn blocking<T: redis::FromRedisValue>(
        &mut self,
        cmd: redis::Cmd,
    ) -> Result<T, StoreError> {
        let conn = self.conn().await?;
        match cmd.query_async(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_connection_error() {
                    self.conn = None;
                }
                Err(e)
            }
        }
    }

    /// Waits up to `timeout` (which must not be zero: to Redis that means
    /// forever) for the head of `inbox:<agent>` and moves it to the tail of
    /// `claimed:<worker>` (`BLMOVE … LEFT RIGHT`): once moved, a crash
    /// cannot lose it.
    pub async fn next_message(
        &mut self,
        agent: &str,
        worker: &str,
        timeout: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(self.keys.inbox(agent))
            .arg(self.keys.claimed(worker))
            .arg("LEFT")
            .arg("RIGHT")
            .arg(blocking_timeout(timeout));
        self.blocking(cmd).await
    }

    /// Waits up to `timeout` (not zero) for the next message on
    /// `control:<worker>`.
    pub async fn next_control(
        &mut self,
        worker: &str,
        timeout: Duration,
    ) -> Result<Option<Control>, StoreError> {
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg(self.keys.control(worker))
            .arg(blocking_timeout(timeout));
        let popped: Option<(String, String)> = self.blocking(cmd).await?;
        Ok(popped.map(|(_, raw)| Control::parse(&raw)))
    }
}

/// A blocking command's timeout in seconds; at least a millisecond, as 0
/// would block forever.
fn blocking_timeout(d: Duration) -> f64 {
    d.max(Duration::from_millis(1)).as_secs_f64()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_parse() {
        assert_eq!(
            Control::parse(r#"{"kind":"stop","task":"a","attempt":2}"#),
            Control::Stop {
                task: "a".into(),
                attempt: 2
            }
        );
        assert_eq!(Control::parse(r#"{"kind":"shutdown"}"#), Control::Shutdown);
        for raw in [
            "nope",
            r#"{"kind":"stop"}"#,
            r#"{"kind":"stop","task":"a","attempt":-1}"#,
            r#"{"kind":"reboot"}"#,
        ] {
            assert_eq!(Control::parse(raw), Control::Unknown(raw.into()), "{raw}");
        }
    }
}
