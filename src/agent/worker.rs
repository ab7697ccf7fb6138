//! A worker: one process of an agent that takes tasks from the agent's
//! inbox and runs them, following docs/PROTOCOL.md. [`run`] is its life
//! from start to stop; each step has a file of its own:
//!
//! - `registration`: **register** (agent hash, `agents` set, heartbeat),
//!   waiting out an earlier process with the same id and stopping the
//!   command it left behind.
//! - [`heartbeat`]: renew the heartbeat every [`HEARTBEAT_INTERVAL`] with a
//!   TTL of [`HEARTBEAT_TTL`] from a task of its own, so heartbeats go on
//!   while a command runs for hours: only a worker that is really gone has
//!   its work requeued; and fence a command whose worker cannot renew it.
//! - `serve`: the loop. **Wait** for the inbox with `BLMOVE inbox →
//!   claimed` and a short timeout ([`INBOX_WAIT`]) on a dedicated
//!   connection: no polling, and a message is in `claimed` (safe from a
//!   crash) before anything acts on it. **Claim** it with `claim.lua`: a
//!   task still assigned to this agent with that attempt becomes `running`;
//!   anything else is dropped, and direct messages are written to the
//!   worker's journal.
//! - `attempt`: **run** the command (see [`super::process`]) with the
//!   agent's timeout, fenced on the heartbeat, and **finish** with
//!   `finish.lua`: completed, retried after [`TASK_RETRY`], failed, or
//!   requeued (fenced) — or rejected, when the task moved on meanwhile.
//! - `control`: `control:<worker>` (`stop`, `shutdown`), read on another
//!   dedicated connection.
//! - `notes`: what the worker tells its [`Reporter`] and its journal.
//! - `orphan`: a worker whose `tt run` is gone.
//! - `reading`: what an attempt reads from its agent's output (session to
//!   resume, budget, facts, transcript).
//! - `redis_retry`: retrying a Redis call until it answers.
//!
//! A SIGINT/SIGTERM/SIGHUP (or a `shutdown` control message) stops the
//! running command's process group and leaves its task as it is (running,
//! in `claimed`) for the runner's recovery; the worker marks itself
//! stopped and exits 0. Told to step down by its heartbeat (its id taken
//! over, declared dead, or its records gone), it does the same and exits 1.
//! Redis errors after
//! start-up are reported and retried with backoff (`redis_retry`); the
//! worker does not exit over them, unless the `tt run` that started it is
//! gone ([`ORPHAN_PATIENCE`]).

mod attempt;
mod control;
pub mod heartbeat;
mod notes;
mod orphan;
mod reading;
mod redis_retry;
mod registration;
mod serve;
mod workspace;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::AgentError;
use super::config::AgentConfig;
use crate::state_dir::{journal_path, logs_dir};
use crate::store::{BlockingConn, RedisTarget, Store};
use control::{Controls, control_loop};
use heartbeat::{Pulse, heartbeat_loop};
use notes::Notes;
use registration::{identity, register};
use serve::Loop;

pub use attempt::TASK_RETRY;
pub use control::CONTROL_WAIT;
pub use heartbeat::{HEARTBEAT_INTERVAL, HEARTBEAT_TTL};
pub use notes::{Note, Reporter};
pub use orphan::{ORPHAN_PATIENCE, RUNNER_PID_ENV};
pub use serve::{BACKLOG_WAIT, INBOX_WAIT};

/// Everything a worker needs to run.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Worker id (`backend-1`).
    pub id: String,
    pub config: AgentConfig,
    pub town: String,
    /// The Redis, for the dedicated blocking connections (and `REDIS_URL`
    /// of the commands, when it is a URL).
    pub target: RedisTarget,
    /// Where `.tt/logs` is.
    pub project_dir: PathBuf,
    /// tasks.toml, passed to commands as `TT_FILE` so a `tt` they run finds
    /// the same town; `None` when there is no file.
    pub plan_file: Option<PathBuf>,
    /// Exit after one task has run.
    pub once: bool,
}

/// What a worker did, once it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Tasks it ran (whatever their outcome).
    pub tasks: u32,
}

/// Sleeps `d`, or less if shutdown comes first; returns whether it did.
async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Runs a worker until shutdown (or, with `once`, one task).
///
/// Fails only at start-up: Redis unreachable, the id held by a live
/// process. After that every problem is reported and retried.
pub async fn run(
    worker: Worker,
    store: Store,
    reporter: Arc<dyn Reporter>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary, AgentError> {
    let notes = Arc::new(Notes::new(
        reporter,
        &journal_path(&worker.project_dir, &worker.id),
    ));
    let identity = identity(&worker);
    // Connections first: a worker that registered must be able to serve.
    let mut inbox = BlockingConn::open(&store, &worker.target).await?;
    let control = BlockingConn::open(&store, &worker.target).await?;
    let registered = register(&store, &identity, &notes, &mut shutdown).await?;
    let pulse = Pulse::new(registered);

    let (control_tx, control_rx) = mpsc::channel(16);
    let heartbeat = tokio::spawn(heartbeat_loop(
        store.clone(),
        identity.clone(),
        pulse.clone(),
        notes.clone(),
        control_tx.clone(),
    ));
    let listener = tokio::spawn(control_loop(
        control,
        identity.id.clone(),
        control_tx,
        notes.clone(),
    ));

    let mut state = Loop {
        worker: &worker,
        store: &store,
        identity: &identity,
        notes: &notes,
        control: Controls::new(control_rx),
        shutdown,
        pulse: pulse.clone(),
        tasks: 0,
        logs: logs_dir(&worker.project_dir).display().to_string(),
    };
    // After `register` stopped any command an earlier process left.
    workspace::tidy(&worker).await;
    let idle = state.serve(&mut inbox).await;
    let tasks = state.tasks;

    listener.abort();
    heartbeat.abort();
    // A heartbeat in flight must not land after the worker says it stopped.
    let _ = heartbeat.await;
    // Closes the inbox connection, which ends a BLMOVE cut short.
    drop(inbox);
    if idle {
        match store.give_back(&identity).await {
            Ok(0) => {}
            Ok(count) => notes.emit(Note::GaveBack { count }),
            Err(e) => notes.emit(Note::RedisError {
                doing: "returning unclaimed messages",
                error: e.to_string(),
                retry_in: None,
            }),
        }
    }
    if let Err(e) = store.worker_stopped(&identity).await {
        // Without the record the heartbeat still expires within its TTL.
        notes.emit(Note::RedisError {
            doing: "marking the worker stopped",
            error: e.to_string(),
            retry_in: None,
        });
    }
    notes.emit(Note::Stopped { tasks });
    match pulse.stepped_down() {
        Some(why) => Err(AgentError::SteppedDown {
            id: identity.id.clone(),
            why,
        }),
        None => Ok(Summary { tasks }),
    }
}
