//! The serve loop: wait for the next message of the inbox (or backlog),
//! claim it, and run what the claim gives ([`super::attempt`]) or note what
//! it drops, until shutdown or, with `once`, one task.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::attempt::Ran;
use super::control::{Controls, describe};
use super::heartbeat::Pulse;
use super::notes::{Note, Notes};
use super::orphan::{orphan_note, runner_gone};
use super::redis_retry::RedisRetry;
use super::{Worker, pause};
use crate::store::{
    BlockingConn, Claim, Control, MessageSource, Store, StoreError, WorkerIdentity,
};

/// Longest single wait on the inbox; bounds how stale a silently broken
/// connection can get.
pub const INBOX_WAIT: Duration = Duration::from_secs(2);

/// The inbox wait of a worker that also takes backlog work, which it
/// checks between waits.
pub const BACKLOG_WAIT: Duration = Duration::from_secs(1);

/// What waiting for the inbox brought.
enum Fetched {
    Message(String, MessageSource),
    /// Nothing in time, or a Redis error (after its pause).
    Nothing,
    /// Shut down while waiting.
    Stop,
}

/// The serve loop's state, which `attempt` runs each attempt on.
pub(super) struct Loop<'a> {
    pub(super) worker: &'a Worker,
    pub(super) store: &'a Store,
    pub(super) identity: &'a WorkerIdentity,
    pub(super) notes: &'a Notes,
    pub(super) control: Controls,
    pub(super) shutdown: watch::Receiver<bool>,
    /// The heartbeat's last renewal, which a running command is fenced on.
    pub(super) pulse: Arc<Pulse>,
    pub(super) tasks: u32,
    /// `<project>/.tt/logs`, where claim.lua records an attempt's log to be.
    pub(super) logs: String,
}

impl Loop<'_> {
    /// Serves the inbox until shutdown or, with `once`, one task. Returns
    /// whether it stopped idle (nothing of its own left in `claimed` but
    /// what recovery takes care of).
    pub(super) async fn serve(&mut self, inbox: &mut BlockingConn) -> bool {
        let mut redis = RedisRetry::new(self.notes);
        // The next message, when the last report already took and claimed it.
        let mut handed: Option<(String, Claim)> = None;
        loop {
            let stop = if *self.shutdown.borrow() {
                Some("signal received")
            } else if runner_gone() {
                // Started by a `tt run` that died (kill -9): finish what we
                // had (done by now), then make way for the replica the next
                // runner starts under this id.
                Some("the `tt run` that started this worker is gone")
            } else {
                None
            };
            if let Some(why) = stop {
                self.notes.emit(Note::Stopping { why: why.into() });
                if let Some((_, Claim::Run(task))) = handed {
                    // Claimed but not started: recovery requeues it.
                    self.notes.emit(Note::LeftForRecovery {
                        task: task.id,
                        attempt: task.attempt,
                    });
                }
                return true;
            }
            let (raw, claim) = match handed.take() {
                Some(next) => next,
                None => {
                    let (raw, source) = match self.fetch(inbox, &mut redis).await {
                        Fetched::Message(raw, source) => (raw, source),
                        Fetched::Nothing => continue,
                        Fetched::Stop => return true,
                    };
                    let Some(claim) = self.claim(&raw, source).await else {
                        // Shut down before the claim went through: the message
                        // is still in `claimed`, and goes back unless it was
                        // started.
                        return true;
                    };
                    (raw, claim)
                }
            };
            match claim {
                Claim::Run(task) => {
                    self.tasks += 1;
                    match self.run_task(task, &raw).await {
                        Ran::Done(_) if self.worker.once => {
                            self.notes.emit(Note::Stopping {
                                why: "ran one task (--once)".into(),
                            });
                            return true;
                        }
                        Ran::Done(next) => handed = next,
                        Ran::Interrupted => return false,
                    }
                }
                Claim::Stale {
                    task,
                    attempt,
                    reason,
                } => self.notes.emit(Note::Dropped {
                    task,
                    attempt,
                    reason,
                }),
                Claim::Message { from, body } => self.notes.emit(Note::Message { from, body }),
                Claim::DeadLetter { reason } => self.notes.emit(Note::DeadLetter { reason }),
            }
        }
    }

    /// Waits for the next message of the inbox (or backlog), retrying with
    /// a pause after a Redis error.
    async fn fetch(&mut self, inbox: &mut BlockingConn, redis: &mut RedisRetry<'_>) -> Fetched {
        let next = {
            let fetch = next_message(self.store, self.identity, inbox);
            tokio::pin!(fetch);
            // Keep one fetch in flight across control messages: a
            // dropped BLMOVE may still move a message on the server.
            loop {
                tokio::select! {
                    got = &mut fetch => break got,
                    _ = self.shutdown.changed() => {
                        self.notes.emit(Note::Stopping { why: "signal received".into() });
                        return Fetched::Stop;
                    }
                    Some(message) = self.control.recv() => match message {
                        Control::Shutdown => {
                            self.notes.emit(Note::Stopping { why: "shutdown requested".into() });
                            return Fetched::Stop;
                        }
                        other => self.notes.emit(Note::IgnoredControl { what: describe(&other) }),
                    },
                }
            }
        };
        match next {
            Ok(Some(found)) => {
                redis.answered("inbox");
                let (raw, source) = found;
                Fetched::Message(raw, source)
            }
            Ok(None) => {
                redis.answered("inbox");
                Fetched::Nothing
            }
            Err(e) => {
                let retry_in = redis.failed("waiting for the inbox", &e);
                // The loop's head notices a shutdown during the pause.
                pause(&mut self.shutdown, retry_in).await;
                Fetched::Nothing
            }
        }
    }

    /// Claims `raw`, retrying while Redis fails; `None` at shutdown.
    async fn claim(&mut self, raw: &str, source: MessageSource) -> Option<Claim> {
        let mut redis = RedisRetry::new(self.notes);
        loop {
            match self
                .store
                .claim(self.identity, raw, source, redis.again(), &self.logs)
                .await
            {
                Ok(claim) => {
                    redis.answered("claim");
                    return Some(claim);
                }
                Err(e) => {
                    let retry_in = redis.failed("claiming a message", &e);
                    if redis.orphan_gives_up() {
                        self.notes.emit(orphan_note("claiming a message"));
                        return None;
                    }
                    if pause(&mut self.shutdown, retry_in).await {
                        return None;
                    }
                }
            }
        }
    }
}

/// The next message from the inbox, or from the backlog for a worker that
/// takes backlog work; `None` when nothing came in time.
async fn next_message(
    store: &Store,
    identity: &WorkerIdentity,
    inbox: &mut BlockingConn,
) -> Result<Option<(String, MessageSource)>, StoreError> {
    let id = &identity.id;
    let agent = &identity.agent;
    if !identity.backlog {
        let raw = inbox.next_message(agent, id, INBOX_WAIT).await?;
        return Ok(raw.map(|raw| (raw, MessageSource::Inbox)));
    }
    // The agent's own inbox first, then the backlog, then a short blocking
    // wait on the inbox before looking at the backlog again.
    if let Some(raw) = store.take_message(identity, MessageSource::Inbox).await? {
        return Ok(Some((raw, MessageSource::Inbox)));
    }
    if let Some(raw) = store.take_message(identity, MessageSource::Backlog).await? {
        return Ok(Some((raw, MessageSource::Backlog)));
    }
    let raw = inbox.next_message(agent, id, BACKLOG_WAIT).await?;
    Ok(raw.map(|raw| (raw, MessageSource::Inbox)))
}
