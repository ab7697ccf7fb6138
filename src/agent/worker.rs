//! The worker loop: one process of an agent that takes tasks from the
//! agent's inbox and runs them, following docs/PROTOCOL.md.
//!
//! - **Register** (agent hash, `agents` set, heartbeat), then heartbeat
//!   every [`HEARTBEAT_INTERVAL`] with a TTL of [`HEARTBEAT_TTL`] from a
//!   task of its own, so heartbeats go on while a command runs for hours:
//!   only a worker that is really gone has its work requeued (see
//!   [`super::heartbeat`], which also fences a command whose worker cannot
//!   renew its heartbeat).
//! - **Wait** for the inbox with `BLMOVE inbox → claimed` and a short
//!   timeout ([`INBOX_WAIT`]) on a dedicated connection: no polling, and a
//!   message is in `claimed` (safe from a crash) before anything acts on it.
//! - **Claim** it with `claim.lua`: a task still assigned to this agent
//!   with that attempt becomes `running`; anything else is dropped, and
//!   direct messages are written to the worker's journal.
//! - **Run** the command (see [`super::process`]) while listening on
//!   `control:<worker>` (`stop`, `shutdown`) on another dedicated
//!   connection, with the agent's timeout.
//! - **Finish** with `finish.lua`: completed, retried after a backoff,
//!   failed, or requeued (fenced) — or rejected, when the task moved on
//!   meanwhile.
//!
//! A SIGINT/SIGTERM/SIGHUP (or a `shutdown` control message) stops the
//! running command's process group and leaves its task as it is (running,
//! in `claimed`) for the runner's recovery; the worker marks itself
//! stopped and exits 0. Told to step down by its heartbeat (its id taken
//! over, declared dead, or its records gone), it does the same and exits 1. Redis errors after
//! start-up are reported and retried with backoff; the worker does not exit
//! over them, unless the `tt run` that started it is gone
//! ([`ORPHAN_PATIENCE`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::AgentError;
use super::command::TaskVars;
use super::config::AgentConfig;
use super::heartbeat::{FENCE_CHECK, Pulse, fence_grace, heartbeat_loop};
use super::process::{self, Ending, Launch, STOP_GRACE, TAIL_BYTES};
use crate::store::{
    BlockingConn, Claim, ClaimedTask, Control, Finish, MessageSource, RedisTarget, Registered,
    Report, Store, StoreError, WorkerIdentity,
};

pub use super::heartbeat::{HEARTBEAT_INTERVAL, HEARTBEAT_TTL};
/// Longest single wait on the inbox; bounds how stale a silently broken
/// connection can get.
pub const INBOX_WAIT: Duration = Duration::from_secs(2);
/// The inbox wait of a worker that also takes backlog work, which it
/// checks between waits.
pub const BACKLOG_WAIT: Duration = Duration::from_secs(1);
/// Longest single wait on the control list.
pub const CONTROL_WAIT: Duration = Duration::from_secs(5);
/// First and longest pause before retrying after a Redis error. At most a
/// heartbeat interval: once Redis is back, a report that waited out an
/// outage gets through well before a runner that was cut off too starts
/// recovering (it waits a heartbeat TTL after reconnecting).
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = HEARTBEAT_INTERVAL;

/// Set by `tt run` on the workers it starts: its own pid.
pub const RUNNER_PID_ENV: &str = "TT_RUNNER_PID";
/// How long a worker whose `tt run` is gone keeps retrying Redis to report
/// or claim before it gives up and exits, leaving its task for recovery:
/// nobody supervises it any more, so it must not retry forever.
pub const ORPHAN_PATIENCE: Duration = Duration::from_secs(15);

/// Whether an orphaned worker (see [`runner_gone`]) has failed to reach
/// Redis for [`ORPHAN_PATIENCE`]; `since` is when its failures began.
fn orphan_gives_up(since: &mut Option<Instant>) -> bool {
    if !runner_gone() {
        *since = None;
        return false;
    }
    since.get_or_insert_with(Instant::now).elapsed() >= ORPHAN_PATIENCE
}

fn orphan_note(doing: &str) -> Note {
    Note::Stopping {
        why: format!(
            "gave up {doing}: the `tt run` that started this worker is gone and Redis has not \
             answered for {}; what it had is left for recovery",
            humantime::format_duration(ORPHAN_PATIENCE)
        ),
    }
}

/// Whether this worker was started by a `tt run` that is no longer its
/// parent (the runner died and the worker was re-parented).
fn runner_gone() -> bool {
    static RUNNER: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    let runner = RUNNER.get_or_init(|| {
        std::env::var(RUNNER_PID_ENV)
            .ok()
            .and_then(|p| p.parse().ok())
    });
    match runner {
        // SAFETY: getppid(2) has no preconditions.
        Some(pid) => i64::from(unsafe { libc::getppid() }) != *pid,
        None => false,
    }
}

/// Wait before a failed attempt is dispatched again: 2 s, doubling per
/// attempt, at most 5 minutes, with ±25 % jitter so tasks that failed
/// together (a flaky service) do not all come back at the same instant.
pub fn retry_backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(2);
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    let plain = (base * factor).min(Duration::from_secs(300));
    plain.mul_f64(0.75 + 0.5 * unit_random())
}

/// A number in [0, 1) from the process's randomly keyed hasher: enough for
/// jitter, without a random-number crate.
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Where one attempt's output goes: `<project>/.tt/logs/<task>/<attempt>.log`.
/// The ids `.` and `..` (valid, but path components) are spelled `%2E`,
/// and a character no valid id has (a hand-made Redis key) becomes `_`, so
/// the path never leaves `.tt/logs`.
pub fn task_log(project_dir: &Path, task: &str, attempt: u32) -> PathBuf {
    let dir = if task.is_empty() {
        "_".to_string()
    } else if task.bytes().all(|b| b == b'.') {
        task.replace('.', "%2E")
    } else {
        task.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    logs_dir(project_dir)
        .join(dir)
        .join(format!("{attempt}.log"))
}

/// A worker's own log (its journal): `<project>/.tt/logs/agents/<id>.log`.
pub fn journal_path(project_dir: &Path, worker: &str) -> PathBuf {
    logs_dir(project_dir)
        .join("agents")
        .join(format!("{worker}.log"))
}

fn logs_dir(project_dir: &Path) -> PathBuf {
    project_dir.join(".tt").join("logs")
}

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

/// Something worth telling whoever watches the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Registered {
        worker: String,
        agent: String,
        town: String,
        pid: u32,
        /// Unclaimed messages an earlier process with this id left, now
        /// back in the inbox.
        returned: u64,
        /// Tasks an earlier process with this id was running, now pending.
        requeued: u64,
    },
    /// Another process's heartbeat still holds the id.
    WaitingForId {
        worker: String,
        holder: String,
    },
    Started {
        task: String,
        attempt: u32,
        pid: u32,
        log: PathBuf,
    },
    Finished {
        task: String,
        attempt: u32,
        ending: Ending,
        result: Finish,
    },
    /// A stale inbox message, dropped without running.
    Dropped {
        task: String,
        attempt: u32,
        reason: String,
    },
    /// A direct message (`tt send`).
    Message {
        from: String,
        body: String,
    },
    DeadLetter {
        reason: String,
    },
    /// A control message that does not concern what runs now.
    IgnoredControl {
        what: String,
    },
    /// The command was stopped by a shutdown; its task is left running for
    /// the runner's recovery.
    LeftForRecovery {
        task: String,
        attempt: u32,
    },
    /// Inbox messages taken during shutdown, returned unclaimed.
    GaveBack {
        count: u64,
    },
    RedisError {
        doing: &'static str,
        error: String,
        /// `None`: not retried (at shutdown).
        retry_in: Option<Duration>,
    },
    RedisBack {
        doing: &'static str,
    },
    Stopping {
        why: String,
    },
    Stopped {
        tasks: u32,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Registered {
                worker,
                agent,
                town,
                pid,
                returned,
                requeued,
            } => {
                write!(
                    f,
                    "worker `{worker}` of agent `{agent}` is ready in town `{town}` (pid {pid})"
                )?;
                if *returned > 0 || *requeued > 0 {
                    write!(
                        f,
                        "; an earlier `{worker}` left work: {returned} message(s) back in the \
                         inbox, {requeued} task(s) requeued"
                    )?;
                }
                Ok(())
            }
            Note::WaitingForId { worker, holder } => write!(
                f,
                "worker id `{worker}` still has a live heartbeat ({holder}); waiting for it to expire"
            ),
            Note::Started {
                task,
                attempt,
                pid,
                log,
            } => write!(
                f,
                "started `{task}` attempt {attempt} (pid {pid}), log: {}",
                log.display()
            ),
            Note::Finished {
                task,
                attempt,
                ending,
                result,
            } => {
                let how = match ending {
                    Ending::Exited(code) => format!("exited with code {code}"),
                    Ending::NotStarted(why) => format!("did not start: {why}"),
                    other => other.error().unwrap_or_default(),
                };
                let then = match result {
                    Finish::Completed => "completed".to_string(),
                    Finish::Retry { .. } => "will be retried".to_string(),
                    Finish::Failed => "failed".to_string(),
                    Finish::Requeued => "requeued".to_string(),
                    Finish::Stale { reason } => format!("report rejected ({reason})"),
                };
                write!(f, "`{task}` attempt {attempt} {how}: {then}")
            }
            Note::Dropped {
                task,
                attempt,
                reason,
            } => write!(f, "dropped `{task}` attempt {attempt}: {reason}"),
            Note::Message { from, body } => write!(f, "[message from {from}] {body}"),
            Note::DeadLetter { reason } => write!(
                f,
                "moved an unreadable inbox message to the deadletter list: {reason}"
            ),
            Note::IgnoredControl { what } => write!(f, "ignored control message: {what}"),
            Note::LeftForRecovery { task, attempt } => write!(
                f,
                "stopped `{task}` attempt {attempt}; it is left for recovery"
            ),
            Note::GaveBack { count } => {
                write!(f, "returned {count} unclaimed message(s) to the inbox")
            }
            Note::RedisError {
                doing,
                error,
                retry_in,
            } => match retry_in {
                Some(pause) => write!(
                    f,
                    "Redis failed while {doing}: {error}; retrying in {}",
                    humantime::format_duration(*pause)
                ),
                None => write!(f, "Redis failed while {doing}: {error}"),
            },
            Note::RedisBack { doing } => write!(f, "Redis answers again ({doing})"),
            Note::Stopping { why } => write!(f, "stopping: {why}"),
            Note::Stopped { tasks } => write!(f, "stopped after {tasks} task(s)"),
        }
    }
}

/// Receives the worker's notes (the command line prints them).
pub trait Reporter: Send + Sync {
    fn report(&self, note: &Note);
}

/// What a worker did, once it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Tasks it ran (whatever their outcome).
    pub tasks: u32,
}

/// A shutdown signal that turns true on SIGINT, SIGTERM or SIGHUP.
pub fn shutdown_on_signals() -> Result<watch::Receiver<bool>, AgentError> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |source| AgentError::Io {
        what: "listen for signals".into(),
        source,
    };
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let mut hup = signal(SignalKind::hangup()).map_err(io)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(true);
        // Keep the sender: a dropped one reads as "shut down" too, but
        // only this one means it.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

/// Notes go to the reporter and, with a timestamp, to the worker's
/// journal — unless stdout already is the journal (a worker started by
/// `tt run` or `tt spawn`), where they would appear twice.
pub(super) struct Notes {
    reporter: Arc<dyn Reporter>,
    journal: Option<Mutex<File>>,
}

impl Notes {
    fn new(reporter: Arc<dyn Reporter>, journal: &Path) -> Self {
        let file = if stdout_is(journal) {
            None
        } else {
            crate::state_dir::open_log(journal).ok().map(Mutex::new)
        };
        Self {
            reporter,
            journal: file,
        }
    }

    pub(super) fn emit(&self, note: Note) {
        if let Some(journal) = &self.journal
            && let Ok(mut f) = journal.lock()
        {
            let now = humantime::format_rfc3339_seconds(SystemTime::now());
            let _ = writeln!(f, "{now} {note}");
        }
        self.reporter.report(&note);
    }
}

/// Whether this process's stdout is the file at `path`.
fn stdout_is(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata("/dev/fd/1"), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Growing pauses between retries of a failing Redis call.
pub(super) struct Backoff {
    next: Duration,
    pub(super) failing: bool,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Self {
            next: RETRY_MIN,
            failing: false,
        }
    }

    /// Records a failure; returns the pause before the next try.
    pub(super) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        self.failing = true;
        pause
    }

    /// Records a success; true when it ends a run of failures.
    pub(super) fn succeeded(&mut self) -> bool {
        self.next = RETRY_MIN;
        std::mem::replace(&mut self.failing, false)
    }
}

/// What waiting for the inbox brought.
enum Fetched {
    Message(String, MessageSource),
    /// Nothing in time, or a Redis error (after its pause).
    Nothing,
    /// Shut down while waiting.
    Stop,
}

/// How running one task ended for the loop.
enum Ran {
    /// Finished and reported; with the next message when the report took
    /// and claimed it.
    Done(Option<(String, Claim)>),
    /// Stopped by a shutdown: left for recovery, the worker exits.
    Interrupted,
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

fn identity(worker: &Worker) -> WorkerIdentity {
    let pid = std::process::id();
    let host = crate::os::hostname();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    WorkerIdentity {
        id: worker.id.clone(),
        agent: worker.config.name.clone(),
        pid,
        token: format!("{pid}@{host}/{started}"),
        host,
        backlog: worker.config.backlog,
    }
}

/// Registers, waiting out the heartbeat of an earlier process with the
/// same id (a restart right after a crash) but not a live one. Returns when
/// the registration that set the first heartbeat was sent
/// ([`crate::os::awake_clock`]).
async fn register(
    store: &Store,
    identity: &WorkerIdentity,
    notes: &Notes,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Duration, AgentError> {
    let deadline = Instant::now() + HEARTBEAT_TTL + Duration::from_secs(1);
    let mut told = false;
    loop {
        // The last process with this id died mid-task: its command must not
        // run alongside the retry that registering is about to requeue.
        if let Some((pgid, start)) = store.orphaned_command(identity).await? {
            crate::os::signal_group_if_same(pgid, start, libc::SIGKILL);
        }
        let sent = crate::os::awake_clock();
        match store.register_worker(identity, HEARTBEAT_TTL).await? {
            Registered::Ok { returned, requeued } => {
                notes.emit(Note::Registered {
                    worker: identity.id.clone(),
                    agent: identity.agent.clone(),
                    town: store.town().to_string(),
                    pid: identity.pid,
                    returned,
                    requeued,
                });
                return Ok(sent);
            }
            Registered::Busy { holder } => {
                if Instant::now() >= deadline {
                    return Err(AgentError::IdInUse {
                        id: identity.id.clone(),
                        holder,
                    });
                }
                if !told {
                    notes.emit(Note::WaitingForId {
                        worker: identity.id.clone(),
                        holder,
                    });
                    told = true;
                }
                if pause(shutdown, Duration::from_millis(250)).await {
                    return Err(AgentError::IdInUse {
                        id: identity.id.clone(),
                        holder: "gave up waiting at shutdown".into(),
                    });
                }
            }
        }
    }
}

async fn control_loop(
    mut conn: BlockingConn,
    worker: String,
    tx: mpsc::Sender<Control>,
    notes: Arc<Notes>,
) {
    let mut backoff = Backoff::new();
    loop {
        match conn.next_control(&worker, CONTROL_WAIT).await {
            Ok(message) => {
                if backoff.succeeded() {
                    notes.emit(Note::RedisBack {
                        doing: "control messages",
                    });
                }
                if let Some(message) = message
                    && tx.send(message).await.is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let retry_in = backoff.failed();
                notes.emit(Note::RedisError {
                    doing: "waiting for control messages",
                    error: e.to_string(),
                    retry_in: Some(retry_in),
                });
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Control messages, with those looked at early (to decide whether a
/// report may take the next task) kept for their turn, in order.
struct Controls {
    rx: mpsc::Receiver<Control>,
    early: std::collections::VecDeque<Control>,
}

impl Controls {
    fn new(rx: mpsc::Receiver<Control>) -> Self {
        Controls {
            rx,
            early: std::collections::VecDeque::new(),
        }
    }

    /// The next message. Cancel-safe: one kept early is returned at the
    /// first poll, or not taken at all.
    async fn recv(&mut self) -> Option<Control> {
        match self.early.pop_front() {
            Some(c) => Some(c),
            None => self.rx.recv().await,
        }
    }

    /// Whether a `shutdown` has arrived and is not handled yet.
    fn shutdown_waiting(&mut self) -> bool {
        while let Ok(c) = self.rx.try_recv() {
            self.early.push_back(c);
        }
        self.early.iter().any(|c| matches!(c, Control::Shutdown))
    }
}

/// The main loop's state.
struct Loop<'a> {
    worker: &'a Worker,
    store: &'a Store,
    identity: &'a WorkerIdentity,
    notes: &'a Notes,
    control: Controls,
    shutdown: watch::Receiver<bool>,
    /// The heartbeat's last renewal, which a running command is fenced on.
    pulse: Arc<Pulse>,
    tasks: u32,
    /// `<project>/.tt/logs`, where claim.lua records an attempt's log to be.
    logs: String,
}

impl Loop<'_> {
    /// Serves the inbox until shutdown or, with `once`, one task. Returns
    /// whether it stopped idle (nothing of its own left in `claimed` but
    /// what recovery takes care of).
    async fn serve(&mut self, inbox: &mut BlockingConn) -> bool {
        let mut backoff = Backoff::new();
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
                    let (raw, source) = match self.fetch(inbox, &mut backoff).await {
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
    async fn fetch(&mut self, inbox: &mut BlockingConn, backoff: &mut Backoff) -> Fetched {
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
                if backoff.succeeded() {
                    self.notes.emit(Note::RedisBack { doing: "inbox" });
                }
                let (raw, source) = found;
                Fetched::Message(raw, source)
            }
            Ok(None) => {
                if backoff.succeeded() {
                    self.notes.emit(Note::RedisBack { doing: "inbox" });
                }
                Fetched::Nothing
            }
            Err(e) => {
                let retry_in = backoff.failed();
                self.notes.emit(Note::RedisError {
                    doing: "waiting for the inbox",
                    error: e.to_string(),
                    retry_in: Some(retry_in),
                });
                // The loop's head notices a shutdown during the pause.
                pause(&mut self.shutdown, retry_in).await;
                Fetched::Nothing
            }
        }
    }

    /// Claims `raw`, retrying while Redis fails; `None` at shutdown.
    async fn claim(&mut self, raw: &str, source: MessageSource) -> Option<Claim> {
        let mut backoff = Backoff::new();
        let mut again = false;
        let mut orphaned = None;
        loop {
            match self
                .store
                .claim(self.identity, raw, source, again, &self.logs)
                .await
            {
                Ok(claim) => {
                    if backoff.succeeded() {
                        self.notes.emit(Note::RedisBack { doing: "claim" });
                    }
                    return Some(claim);
                }
                Err(e) => {
                    // The script may have run with its reply lost.
                    again = again || e.is_connection_error();
                    let retry_in = backoff.failed();
                    self.notes.emit(Note::RedisError {
                        doing: "claiming a message",
                        error: e.to_string(),
                        retry_in: Some(retry_in),
                    });
                    if orphan_gives_up(&mut orphaned) {
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

    async fn run_task(&mut self, task: ClaimedTask, raw: &str) -> Ran {
        let config = &self.worker.config;
        let log = task_log(&self.worker.project_dir, &task.id, task.attempt);
        let vars = TaskVars {
            id: task.id.clone(),
            description: task.description.clone(),
            tags: task.tags.clone(),
            parent: task.parent.clone(),
            attempt: task.attempt,
        };
        let argv = config.argv(&vars);
        let env = self.env(&task);
        let log = process::Log::open(&log);
        log.note(&format!(
            "task `{}` attempt {} on worker `{}`: running `{}` in {}",
            task.id,
            task.attempt,
            self.identity.id,
            config.program(),
            config.workdir.display()
        ));
        let launch = Launch {
            argv: &argv,
            env: &env,
            workdir: &config.workdir,
            log: &log,
        };
        let ending = match process::start(launch) {
            Err(why) => Ending::NotStarted(why),
            Ok(mut running) => {
                // Recorded so that if this worker dies, whoever recovers its
                // task on this host can stop the orphaned command first.
                // Raced with the fence in the loop below, not awaited before
                // it: a store still reconnecting must not hold the fence off.
                let (store, identity) = (self.store, self.identity);
                let record = store.record_command(&identity.id, running.pid(), running.start());
                tokio::pin!(record);
                let mut recorded = false;
                self.notes.emit(Note::Started {
                    task: task.id.clone(),
                    attempt: task.attempt,
                    pid: running.pid(),
                    log: log.path().to_path_buf(),
                });
                let mark = self.pulse.mark();
                let mut fence = tokio::time::interval(FENCE_CHECK);
                fence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let timeout = task.timeout.or(config.timeout);
                let timer = async {
                    match timeout {
                        Some(t) => tokio::time::sleep(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::pin!(timer);
                loop {
                    tokio::select! {
                        ending = running.wait() => break ending,
                        r = &mut record, if !recorded => {
                            recorded = true;
                            if let Err(e) = r {
                                self.notes.emit(Note::RedisError {
                                    doing: "recording the command's pid",
                                    error: e.to_string(),
                                    retry_in: None,
                                });
                            }
                        }
                        _ = fence.tick() => if let Some(silent) = self.pulse.lapsed(mark) {
                            // Recovery may requeue the task once the
                            // heartbeat expires: the command must be gone
                            // before that (see `heartbeat`).
                            log.note(&format!(
                                "no heartbeat renewed for {}; stopping its process group before the task can run elsewhere",
                                humantime::format_duration(round_ms(silent))
                            ));
                            running.stop(fence_grace(silent)).await;
                            break Ending::Fenced(round_ms(silent));
                        },
                        _ = &mut timer => {
                            let after = timeout.unwrap_or_default();
                            log.note(&format!(
                                "timed out after {}; stopping its process group",
                                humantime::format_duration(after)
                            ));
                            running.stop_by(STOP_GRACE, || self.pulse.kill_within()).await;
                            break Ending::TimedOut(after);
                        }
                        Some(message) = self.control.recv() => match message {
                            Control::Stop { task: t, attempt: a } if t == task.id && a == task.attempt => {
                                log.note("stop requested; stopping its process group");
                                running.stop_by(STOP_GRACE, || self.pulse.kill_within()).await;
                                break Ending::Stopped;
                            }
                            Control::Shutdown => {
                                self.notes.emit(Note::Stopping { why: "shutdown requested".into() });
                                return self.interrupted(&task, &log, &mut running).await;
                            }
                            other => self.notes.emit(Note::IgnoredControl { what: describe(&other) }),
                        },
                        _ = self.shutdown.changed() => {
                            self.notes.emit(Note::Stopping { why: "signal received".into() });
                            return self.interrupted(&task, &log, &mut running).await;
                        }
                    }
                }
            }
        };
        log.note(&match &ending {
            Ending::Exited(code) => format!("exited with code {code}"),
            other => other.error().unwrap_or_default(),
        });
        let output = log.tail(TAIL_BYTES);
        let log_text = log.path().display().to_string();
        let error = ending.error();
        let report = Report {
            worker: &self.identity.id,
            raw,
            task: &task.id,
            attempt: task.attempt,
            exit_code: ending.exit_code(),
            error: error.as_deref(),
            output: &output,
            log: &log_text,
            retries: task.retries.unwrap_or(config.retries),
            backoff: retry_backoff(task.attempt),
            requeue: matches!(ending, Ending::Fenced(_)),
        };
        let mut backoff = Backoff::new();
        let mut again = false;
        let mut orphaned = None;
        loop {
            // Not when this worker is about to stop: what it takes, it runs.
            // Nor when a `shutdown` (`tt kill`) is waiting: the next task
            // would be started only to be stopped and left for recovery.
            let take = (!self.worker.once
                && !*self.shutdown.borrow()
                && !runner_gone()
                && !self.control.shutdown_waiting())
            .then_some(self.identity);
            match self
                .store
                .finish_and_take(&report, again, take, &self.logs)
                .await
            {
                Ok((result, next)) => {
                    if backoff.succeeded() {
                        self.notes.emit(Note::RedisBack { doing: "finish" });
                    }
                    self.notes.emit(Note::Finished {
                        task: task.id.clone(),
                        attempt: task.attempt,
                        ending,
                        result,
                    });
                    return Ran::Done(next);
                }
                Err(e) => {
                    // The script may have run and only its reply been lost.
                    again = again || e.is_connection_error();
                    let retry_in = backoff.failed();
                    self.notes.emit(Note::RedisError {
                        doing: "reporting how the task ended",
                        error: e.to_string(),
                        retry_in: Some(retry_in),
                    });
                    // At shutdown, or orphaned and cut off, the report is
                    // given up: the task stays running in `claimed`, and
                    // recovery runs it again.
                    if orphan_gives_up(&mut orphaned) {
                        self.notes.emit(orphan_note(&format!(
                            "reporting `{}` attempt {}",
                            task.id, task.attempt
                        )));
                        return Ran::Interrupted;
                    }
                    if pause(&mut self.shutdown, retry_in).await {
                        return Ran::Interrupted;
                    }
                }
            }
        }
    }

    async fn interrupted(
        &self,
        task: &ClaimedTask,
        log: &process::Log,
        running: &mut process::Running,
    ) -> Ran {
        log.note("the worker is shutting down; stopping its process group");
        running
            .stop_by(STOP_GRACE, || self.pulse.kill_within())
            .await;
        log.note("stopped; the task is left for recovery");
        self.notes.emit(Note::LeftForRecovery {
            task: task.id.clone(),
            attempt: task.attempt,
        });
        Ran::Interrupted
    }

    /// The command's environment: the agent's `env`, then tt's variables
    /// (which win).
    fn env(&self, task: &ClaimedTask) -> Vec<(String, String)> {
        let w = self.worker;
        let mut env: Vec<(String, String)> = w
            .config
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend([
            ("TT_TOWN".to_string(), w.town.clone()),
            ("TT_AGENT".to_string(), w.id.clone()),
            ("TT_TASK_ID".to_string(), task.id.clone()),
            ("TT_TASK_DESCRIPTION".to_string(), task.description.clone()),
            ("TT_ATTEMPT".to_string(), task.attempt.to_string()),
        ]);
        if let RedisTarget::Url(url) = &w.target {
            env.push(("REDIS_URL".to_string(), url.clone()));
        }
        if let Some(file) = &w.plan_file {
            env.push(("TT_FILE".to_string(), file.display().to_string()));
        }
        env
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

/// `d` to whole milliseconds, for messages.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn describe(message: &Control) -> String {
    match message {
        Control::Stop { task, attempt } => {
            format!("stop `{task}` attempt {attempt}, which does not run here")
        }
        Control::Shutdown => "shutdown".into(),
        Control::Unknown(raw) => format!("unreadable: {raw}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_doubles_is_capped_and_jittered() {
        let within = |d: Duration, secs: f64| {
            let s = d.as_secs_f64();
            assert!(
                s >= secs * 0.75 && s <= secs * 1.25,
                "{s} not around {secs}"
            );
        };
        within(retry_backoff(1), 2.0);
        within(retry_backoff(2), 4.0);
        within(retry_backoff(3), 8.0);
        within(retry_backoff(50), 300.0);
        within(retry_backoff(0), 2.0);
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| retry_backoff(1).as_nanos()).collect();
        assert!(samples.len() > 1, "jitter varies");
    }

    #[test]
    fn log_paths() {
        let p = Path::new("/p");
        assert_eq!(
            task_log(p, "login", 2),
            Path::new("/p/.tt/logs/login/2.log")
        );
        assert_eq!(task_log(p, "..", 1), Path::new("/p/.tt/logs/%2E%2E/1.log"));
        assert_eq!(task_log(p, "a..b", 1), Path::new("/p/.tt/logs/a..b/1.log"));
        assert_eq!(task_log(p, "../x", 1), Path::new("/p/.tt/logs/.._x/1.log"));
        assert_eq!(task_log(p, "", 1), Path::new("/p/.tt/logs/_/1.log"));
        assert_eq!(
            journal_path(p, "dev-1"),
            Path::new("/p/.tt/logs/agents/dev-1.log")
        );
    }

    #[test]
    fn notes_read_well() {
        let n = Note::Message {
            from: "alice".into(),
            body: "hi there".into(),
        };
        assert_eq!(n.to_string(), "[message from alice] hi there");
        let n = Note::Finished {
            task: "t".into(),
            attempt: 1,
            ending: Ending::NotStarted("`claude` not found on PATH".into()),
            result: Finish::Failed,
        };
        assert_eq!(
            n.to_string(),
            "`t` attempt 1 did not start: `claude` not found on PATH: failed"
        );
    }

    #[tokio::test]
    async fn a_shutdown_seen_early_is_still_handled_in_its_turn() {
        let (tx, rx) = mpsc::channel(8);
        let mut controls = Controls::new(rx);
        assert!(!controls.shutdown_waiting());
        let stop = Control::Stop {
            task: "a".into(),
            attempt: 1,
        };
        tx.send(stop.clone()).await.unwrap();
        tx.send(Control::Shutdown).await.unwrap();
        assert!(controls.shutdown_waiting());
        assert!(controls.shutdown_waiting(), "looking again takes nothing");
        assert_eq!(controls.recv().await, Some(stop));
        assert_eq!(controls.recv().await, Some(Control::Shutdown));
        assert!(!controls.shutdown_waiting());
    }
}
