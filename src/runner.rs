//! `tt run`: keep the town moving. One async loop reacts to three things —
//! saves of tasks.toml, transitions in the events stream, agent processes
//! exiting — and after each, dispatches whatever became ready. Nothing
//! polls: the loop sleeps in a blocking `XREAD`, a file watch and timers
//! (lease renewal, retry backoff).
//!
//! One runner per town: a lease key with a TTL, renewed well before it
//! expires. A second runner is refused (or waits with `--wait`).

mod supervisor;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use supervisor::AgentNote;
use supervisor::Supervisor;

use crate::Status;
use crate::dispatch::{AgentSlot, Snapshot, Transition};
use crate::os::{hostname, now_ms};
use crate::plan::{self, LoadError, Plan};
use crate::reload::{self, Edit};
use crate::store::{Event, LIGHT_FIELDS, RedisTarget, Store, StoreError, SyncCounts, connection};
use crate::sync::{self, Adopt, Claim};
use crate::watch::{self, WatchError};

/// Pause before a reload that failed because Redis was away is tried again.
const RELOAD_RETRY: Duration = Duration::from_secs(1);
/// Longest a finishing `--until-done` waits for the events it has not
/// printed yet.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Events the runner leaves in the stream when it archives the older ones
/// (every [`ARCHIVE_INTERVAL`]): far below the cap the scripts keep
/// (`MAXLEN ~ 100000`), so bursts between two archivings are not trimmed.
const ARCHIVE_KEEP: u64 = 10_000;

/// How often the runner moves old events into the archive (one `XLEN` when
/// there is nothing to move).
const ARCHIVE_INTERVAL: Duration = Duration::from_secs(2);

/// How long the lease lives without renewal; renewed every third of it.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// Tasks touched by one reload above which the runner re-reads the town
/// instead of following events: well under the events stream's cap
/// (`MAXLEN ~ 100000`), so no event of a smaller reload is trimmed unread.
const RELOAD_REREAD: u64 = 20_000;

pub struct Options {
    pub file: PathBuf,
    pub project_dir: PathBuf,
    pub town: String,
    pub target: RedisTarget,
    /// Exit when nothing is pending, assigned or running.
    pub until_done: bool,
    /// Do not start the `[agents]` of the file.
    pub no_agents: bool,
    /// Wait for another runner's lease instead of refusing.
    pub wait: bool,
    /// How long agents get to stop at shutdown before they are killed.
    pub grace: Duration,
}

/// What the runner tells its caller (the CLI prints it).
#[derive(Debug)]
pub enum Report {
    Started {
        town: String,
        counts: SyncCounts,
        agents: usize,
    },
    Reloaded(SyncCounts),
    /// A save that does not validate: the last good plan keeps running.
    Invalid(LoadError),
    FileGone,
    Event(Event),
    Agent(AgentNote),
    /// `tt send supervisor …`
    Message(String),
    WaitingForLease(String),
    /// A dead worker's work was put back.
    Recovered(crate::store::Recovered),
    /// A task record holds what tt never writes: the task is not run until
    /// it is fixed. Reported once per task and problem.
    Corrupt {
        task: String,
        what: String,
    },
    /// The lease held a value no runner can renew or release; what was
    /// done about it.
    LeaseRepaired(String),
    /// Old events could not be moved into the archive (said once until it
    /// works again).
    ArchiveFailed(String),
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub counts: HashMap<Status, usize>,
    pub failed: Vec<String>,
    /// Pending tasks that can never run (blocked, or no agent for them).
    pub stuck: Vec<(String, String)>,
    pub interrupted: bool,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] LoadError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Watch(#[from] WatchError),
    #[error("town `{town}` already has a runner: {holder}")]
    #[diagnostic(
        code(tt::run::lease),
        help(
            "one `tt run` dispatches for a town at a time; stop the other one, pass `--wait` to take over when it stops, or use `--town` for a separate town"
        )
    )]
    LeaseHeld { town: String, holder: String },
    #[error("lost the runner lease of town `{town}` to {holder}")]
    #[diagnostic(
        code(tt::run::lease_lost),
        help("another `tt run` took over this town; this one stops dispatching")
    )]
    LeaseLost { town: String, holder: String },
}

fn lease_holder() -> String {
    let host = hostname();
    serde_json::json!({
        "id": format!("{host}:{}", std::process::id()),
        "host": host,
        "pid": std::process::id(),
        "since": now_ms(),
    })
    .to_string()
}

/// Whether a lease value names a process on this host that no longer runs.
fn holder_is_dead_here(value: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(value) else {
        return false;
    };
    let (Some(host), Some(pid)) = (v["host"].as_str(), v["pid"].as_u64()) else {
        return false;
    };
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if host != hostname() || pid <= 0 || pid == std::process::id() as libc::pid_t {
        return false;
    }
    !crate::os::pid_alive(pid)
}

/// Describes a lease value for messages.
fn describe_holder(value: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(v) => format!(
            "pid {} on {}",
            v["pid"].as_u64().unwrap_or(0),
            v["host"].as_str().unwrap_or("?")
        ),
        Err(_) => value.to_string(),
    }
}

/// Whether this runner's view of heartbeats can be trusted. A heartbeat
/// that expired while the runner itself could not reach Redis (an outage, a
/// Redis that hung, a partition of this host) says nothing about its worker:
/// the worker could not renew it either, and is likely renewing it now with
/// an undelivered report in hand. So dead workers are recovered only once
/// the runner has had prompt answers for a whole heartbeat TTL — which also
/// holds from the runner's start — giving every live worker time to renew
/// and report first.
#[derive(Debug, Default)]
struct Contact {
    /// Since when Redis has answered promptly; `None` after trouble.
    since: Option<tokio::time::Instant>,
}

impl Contact {
    /// An answer longer than this counts as trouble.
    const SLOW: Duration = Duration::from_secs(1);

    fn lost(&mut self) {
        self.since = None;
    }

    /// A call sent at `asked` was answered now.
    fn answered(&mut self, asked: tokio::time::Instant) {
        if self.since.is_none() || asked.elapsed() > Self::SLOW {
            self.since = Some(tokio::time::Instant::now());
        }
    }

    fn steady(&self) -> bool {
        self.since
            .is_some_and(|t| t.elapsed() >= crate::agent::worker::HEARTBEAT_TTL)
    }
}

struct Runner<F: FnMut(Report)> {
    opts: Options,
    store: Store,
    plan: Plan,
    /// What is kept of the texts loaded: the last good one, for incremental
    /// reloads of one edited task, and digests to skip unchanged saves.
    last_load: reload::LastLoad,
    holder: String,
    report: F,
    /// The town as dispatch sees it, kept between passes; `None` means read
    /// it all again (at start, and after anything that may have lost events).
    snapshot: Option<Snapshot>,
    /// Tasks named by events since the last pass: the only records re-read.
    dirty: HashSet<String>,
    /// Declared agents whose replicas cannot start, with what they said:
    /// their tasks can never run until the plan changes, so `--until-done`
    /// does not wait for them.
    cannot_start: HashMap<String, String>,
    /// Redis may have lost records of the plan (events were missed, or
    /// dispatch found a record gone): push the file in full before the
    /// next pass, which restores them.
    resync: bool,
    /// Corrupt records seen (id → what is wrong), each reported once and
    /// named in the summary.
    corrupt: HashMap<String, String>,
}

/// Runs `plan` (loaded from `opts.file` by the caller, which needed its
/// `[town]` to fill `opts`) until done (`--until-done`), interrupted, or a
/// fatal error.
pub async fn run<F: FnMut(Report)>(
    opts: Options,
    plan: Plan,
    mut report: F,
) -> Result<Summary, RunError> {
    let last_load = reload::LastLoad::default();
    let store = Store::open(&opts.target, &opts.town).await?;
    let holder = lease_holder();
    // A lease that no runner could renew or release (garbage, no expiry)
    // would refuse every runner for ever.
    if let Some(note) = store.repair_lease(LEASE_TTL).await? {
        report(Report::LeaseRepaired(note));
    }
    loop {
        match store.acquire_lease(&holder, LEASE_TTL).await? {
            None => break,
            // A runner on this machine that died without releasing it
            // (kill -9): no need to wait for the TTL.
            Some(other)
                if holder_is_dead_here(&other)
                    && store.take_over_lease(&other, &holder, LEASE_TTL).await? =>
            {
                break;
            }
            Some(other) if opts.wait => {
                report(Report::WaitingForLease(describe_holder(&other)));
                tokio::time::sleep(LEASE_TTL / 3).await;
            }
            Some(other) => {
                return Err(RunError::LeaseHeld {
                    town: opts.town.clone(),
                    holder: describe_holder(&other),
                });
            }
        }
    }
    let mut runner = Runner {
        opts,
        store,
        plan,
        last_load,
        holder,
        report,
        snapshot: None,
        dirty: HashSet::new(),
        cannot_start: HashMap::new(),
        resync: false,
        corrupt: HashMap::new(),
    };
    let result = runner.main_loop().await;
    let _ = runner.store.release_lease(&runner.holder).await;
    result
}

impl<F: FnMut(Report)> Runner<F> {
    async fn main_loop(&mut self) -> Result<Summary, RunError> {
        // Watching starts before the first push, and the file is read again
        // once the agents are up (below): a save made while `tt run` starts
        // is reloaded, not lost.
        let (_watcher, mut saves) = watch::watch(&self.opts.file)?;
        let pushed = sync::push_full(&self.store, &self.plan, Adopt::No, Claim::Keep).await?;
        let counts = pushed.counts;
        self.last_load
            .loaded(&self.plan, pushed.fingerprints, pushed.plan_fp);
        self.plan = only_agents(std::mem::replace(&mut self.plan, empty_plan()));
        (self.report)(Report::Started {
            town: self.opts.town.clone(),
            counts,
            agents: self.plan.agents.len(),
        });

        let (note_tx, mut notes) = mpsc::unbounded_channel();
        let mut agents = Supervisor::new(
            &self.opts.file,
            &self.opts.town,
            &self.opts.project_dir,
            note_tx,
        )
        .grace(self.opts.grace);
        if !self.opts.no_agents {
            agents.apply(&self.plan.agents).await;
        }

        // Events arrive on a dedicated blocking connection, read by a task
        // of its own so the loop below can wait on everything at once.
        let (ev_tx, mut events) = mpsc::unbounded_channel::<Result<Vec<Event>, StoreError>>();
        // The newest event this loop has taken from the reader.
        let mut seen;
        let reader = {
            let store = self.store.clone();
            let target = self.opts.target.clone();
            let mut after = store.last_event_id().await?;
            seen = after.clone();
            tokio::spawn(async move {
                let mut conn = None;
                loop {
                    if conn.is_none() {
                        match connection::connect_blocking(&target).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                if ev_tx.send(Err(e)).is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                continue;
                            }
                        }
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    match store.read_events(c, &after, Duration::from_secs(5)).await {
                        Ok(batch) => {
                            if let Some(last) = batch.last() {
                                after = last.id.clone();
                            }
                            if !batch.is_empty() && ev_tx.send(Ok(batch)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            conn = None;
                            if ev_tx.send(Err(e)).is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            })
        };

        let mut lease = tokio::time::interval(LEASE_TTL / 3);
        lease.tick().await;
        // Heartbeat keys expire silently (keyspace notifications are off on
        // many servers), so dead workers are looked for on a timer: one
        // SMEMBERS and a pipeline, every heartbeat interval.
        let mut recovery = tokio::time::interval(crate::agent::worker::HEARTBEAT_INTERVAL);
        recovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut terminate = signal(tokio::signal::unix::SignalKind::terminate());
        // Made once: a listener made anew each turn would miss a Ctrl-C that
        // arrives while the loop is busy elsewhere.
        let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt());
        let mut archiving = tokio::time::interval(ARCHIVE_INTERVAL);
        archiving.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let archive = crate::store::Archive::of(&self.opts.project_dir, &self.opts.town);
        let mut archive_failed = false;
        let mut retry_wake: Option<u64> = None;
        // A save between the CLI's load and the watch start raised no event:
        // compare the file with what was pushed once (unchanged: one read).
        let (mut reload_pending, mut startup_error) = match self.reload(&mut agents).await {
            Ok(_) => (false, None),
            Err(RunError::Store(e)) if e.is_connection_error() => (true, None),
            Err(e) => (false, Some(e)),
        };
        let mut contact = Contact::default();
        let outcome = loop {
            if let Some(e) = startup_error.take() {
                break Err(e);
            }
            if self.resync {
                match self.resync(&mut agents).await {
                    Ok(_) => {}
                    Err(RunError::Store(e)) if e.is_connection_error() => {}
                    Err(e) => break Err(e),
                }
            }
            let dispatched = match self.dispatch().await {
                Ok(next) => {
                    retry_wake = next;
                    true
                }
                Err(e) if e.is_connection_error() => {
                    contact.lost();
                    false
                }
                Err(e) => break Err(e.into()),
            };
            let mut done = None;
            if self.opts.until_done
                && dispatched
                && let Some(s) = &self.snapshot
            {
                // Live workers only add to what may go on, so the check
                // that usually settles it needs no Redis round trips.
                let slots = self.runnable_slots();
                let busy = s.active(&slots, &HashSet::new());
                let live = if busy {
                    HashSet::new()
                } else {
                    self.store.live_agent_names().await.unwrap_or_default()
                };
                if !busy && !s.active(&slots, &live) {
                    // Nothing moves: done, unless Redis lost records of the
                    // plan (then they are pending again, and run).
                    let finished = self.summary(s, &slots, &live, false);
                    match self.resync(&mut agents).await {
                        Ok(false) => done = Some(finished),
                        Ok(true) => continue,
                        Err(RunError::Store(e)) if e.is_connection_error() => {}
                        Err(e) => break Err(e),
                    }
                }
            }
            if let Some(summary) = done {
                self.catch_up(&mut events, &mut seen).await;
                break Ok(self.explain(summary));
            }
            let retry_sleep = async {
                match retry_wake {
                    Some(at) => {
                        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(()) = saves.recv() => {
                    // Fold a burst of notifications into one reload.
                    while saves.try_recv().is_ok() {}
                    match self.reload(&mut agents).await {
                        Ok(_) => reload_pending = false,
                        // Redis away: keep the last plan and try again soon.
                        Err(RunError::Store(e)) if e.is_connection_error() => {
                            reload_pending = true;
                            self.report_redis_trouble("reloading", &e);
                        }
                        Err(e) => break Err(e),
                    }
                }
                _ = tokio::time::sleep(RELOAD_RETRY), if reload_pending => {
                    match self.reload(&mut agents).await {
                        Ok(_) => reload_pending = false,
                        Err(RunError::Store(e)) if e.is_connection_error() => {}
                        Err(e) => break Err(e),
                    }
                }
                Some(batch) = events.recv() => match batch {
                    Ok(batch) => match self.on_events(noting_last(&mut seen, batch)).await {
                        Ok(()) => {}
                        Err(RunError::Store(e)) if e.is_connection_error() => {
                            self.report_redis_trouble("reading supervisor messages", &e);
                        }
                        Err(e) => break Err(e),
                    },
                    Err(e) => {
                        // Events may have been missed, and the server may
                        // be a new, empty one: restore the plan, read the
                        // town again.
                        self.snapshot = None;
                        self.resync = true;
                        (self.report)(Report::Agent(AgentNote::SpawnFailed {
                        id: "events".into(),
                        error: format!("reading events failed, retrying: {e}"),
                    }));
                    }
                },
                Some(note) = notes.recv() => {
                    if let AgentNote::CannotStart { agent, why, .. } = &note {
                        self.cannot_start.insert(agent.clone(), why.clone());
                    }
                    (self.report)(Report::Agent(note));
                }
                _ = lease.tick() => {
                    match self.store.acquire_lease(&self.holder, LEASE_TTL).await {
                        Ok(None) => {}
                        Ok(Some(other)) => break Err(RunError::LeaseLost { town: self.opts.town.clone(), holder: describe_holder(&other) }),
                        // Redis away: keep going, the connection manager reconnects.
                        Err(e) if e.is_connection_error() => contact.lost(),
                        Err(e) => break Err(e.into()),
                    }
                }
                _ = recovery.tick() => match self.recover(&mut contact, &agents).await {
                    Ok(()) => {}
                    Err(e) if e.is_connection_error() => contact.lost(),
                    Err(e) => break Err(e.into()),
                },
                _ = archiving.tick() => match self.store.archive_events(&archive, ARCHIVE_KEEP).await {
                    Ok(_) => archive_failed = false,
                    Err(e) if e.is_connection_error() => {}
                    Err(e) => {
                        if !archive_failed {
                            (self.report)(Report::ArchiveFailed(e.to_string()));
                        }
                        archive_failed = true;
                    }
                },
                _ = retry_sleep => {}
                _ = interrupt.recv() => break self.final_summary(true).await,
                _ = terminate.recv() => break self.final_summary(true).await,
            }
        };
        reader.abort();
        // Agents finish or stop their commands; what they had claimed is
        // left for recovery, never marked done.
        agents.stop_all().await;
        outcome
    }

    /// Reports the events the reader has not delivered yet, up to the
    /// newest one in the stream now: a run that ends right after a pass
    /// (`--until-done` with work queued for an agent nobody runs) still
    /// prints what that pass dispatched. Bounded by [`CATCH_UP`], as the
    /// reader may be reconnecting.
    async fn catch_up(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Result<Vec<Event>, StoreError>>,
        seen: &mut String,
    ) {
        let Ok(newest) = self.store.last_event_id().await else {
            return;
        };
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        while stream_position(seen) < stream_position(&newest) {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Ok(batch))) => {
                    for e in noting_last(seen, batch) {
                        (self.report)(Report::Event(e));
                    }
                }
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    async fn final_summary(&self, interrupted: bool) -> Result<Summary, RunError> {
        let live = self.store.live_agent_names().await.unwrap_or_default();
        match self.store.tasks().await {
            Ok(records) => Ok(summary(
                &Snapshot::new(records),
                &self.slots(),
                &live,
                interrupted,
            )),
            // Stopping while Redis is away: the last view is good enough.
            Err(e) if e.is_connection_error() => Ok(match &self.snapshot {
                Some(s) => summary(s, &self.slots(), &live, interrupted),
                None => summary(
                    &Snapshot::new(Vec::new()),
                    &self.slots(),
                    &live,
                    interrupted,
                ),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Recovers dead workers' work, once this runner has reached Redis
    /// steadily for a heartbeat TTL (see [`Contact`]).
    async fn recover(
        &mut self,
        contact: &mut Contact,
        agents: &Supervisor,
    ) -> Result<(), StoreError> {
        let asked = tokio::time::Instant::now();
        let dead = self.store.dead_workers().await?;
        contact.answered(asked);
        if dead.is_empty() || !contact.steady() {
            return Ok(());
        }
        for r in self.store.recover(&dead).await? {
            r.stop_orphan(&hostname());
            if agents.owns(&r.worker) {
                agents.kick(&r.worker, r.pid);
            }
            (self.report)(Report::Recovered(r));
        }
        Ok(())
    }

    fn report_redis_trouble(&mut self, doing: &str, e: &StoreError) {
        (self.report)(Report::Agent(AgentNote::SpawnFailed {
            id: "redis".into(),
            error: format!("{doing} failed, will retry: {e}"),
        }));
    }

    /// [`Runner::slots`] without the agents that cannot start.
    fn runnable_slots(&self) -> HashMap<String, AgentSlot> {
        let mut slots = self.slots();
        slots.retain(|name, _| !self.cannot_start.contains_key(name));
        slots
    }

    /// Names the agent that cannot start as the reason its stuck tasks wait.
    fn explain(&self, mut s: Summary) -> Summary {
        let Some(snapshot) = &self.snapshot else {
            return s;
        };
        for (id, why) in &mut s.stuck {
            let agent = snapshot.graph.index_of(id).and_then(|i| snapshot.agent(i));
            if let Some((agent, reason)) = agent.and_then(|a| self.cannot_start.get_key_value(a)) {
                *why = format!("agent `{agent}` cannot start: {reason}");
            }
        }
        s
    }

    /// Window and backlog flag of every declared agent.
    fn slots(&self) -> HashMap<String, AgentSlot> {
        self.plan
            .agents
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    AgentSlot {
                        window: a.prefetch.unwrap_or(1).max(1) * a.count.unwrap_or(1).max(1),
                        backlog: a.backlog.unwrap_or(false),
                    },
                )
            })
            .collect()
    }

    /// One dispatch pass. Re-reads only the records events named since the
    /// last pass (all of them the first time), so its cost follows what
    /// changed, not the size of the town. Returns when the next task waiting
    /// for its retry backoff becomes due.
    async fn dispatch(&mut self) -> Result<Option<u64>, StoreError> {
        // Taken out, so an error below leaves `None`: the next pass reads
        // everything again rather than trust a half-updated view.
        let mut snapshot = match self.snapshot.take() {
            Some(mut s) => {
                if !self.dirty.is_empty() {
                    let ids: Vec<String> = self.dirty.drain().collect();
                    let records = self.store.records_with(&ids, &LIGHT_FIELDS).await?;
                    self.note_corrupt(&records);
                    s.refresh(records);
                }
                s
            }
            None => {
                self.dirty.clear();
                let records = self.store.tasks_with(&LIGHT_FIELDS).await?;
                self.note_corrupt(&records);
                let s = Snapshot::new(records);
                release_free_memory();
                s
            }
        };
        let doomed = snapshot.fail_fast();
        if !doomed.is_empty() {
            self.store.cancel(&doomed).await?;
            let ids: Vec<String> = doomed.into_iter().map(|(id, _)| id).collect();
            snapshot.refresh(self.store.records_with(&ids, &LIGHT_FIELDS).await?);
        }
        let (batch, next_retry) = snapshot.plan_dispatch(&self.slots(), now_ms());
        let mut lost = false;
        if !batch.is_empty() {
            let out = self.store.dispatch(&batch).await?;
            for id in out.sent {
                // The `dispatched` event brings the full record later.
                snapshot.set_status(&id, Status::Assigned);
            }
            lost = !out.missing.is_empty();
        }
        if lost {
            // Restore what the file has from it, then read the town again:
            // a record that is gone and not in the file (`tt assign`) must
            // leave the snapshot rather than be offered on every pass.
            self.resync = true;
        } else {
            self.snapshot = Some(snapshot);
        }
        Ok(next_retry)
    }

    /// Reports each corrupt record once, and forgets those fixed since.
    fn note_corrupt(&mut self, records: &[crate::store::TaskRecord]) {
        for r in records {
            match &r.corrupt {
                Some(what) if self.corrupt.get(&r.id) != Some(what) => {
                    self.corrupt.insert(r.id.clone(), what.clone());
                    (self.report)(Report::Corrupt {
                        task: r.id.clone(),
                        what: what.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    self.corrupt.remove(&r.id);
                }
            }
        }
    }

    /// [`summary`], with corrupt records named as such rather than failed.
    fn summary(
        &self,
        s: &Snapshot,
        agents: &HashMap<String, AgentSlot>,
        live: &HashSet<String>,
        interrupted: bool,
    ) -> Summary {
        let mut out = summary(s, agents, live, interrupted);
        out.failed.retain(|id| match self.corrupt.get(id) {
            Some(what) => {
                out.stuck.push((
                    id.clone(),
                    format!("corrupt record, not run: {what}; fix it with `redis-cli`"),
                ));
                false
            }
            None => true,
        });
        out
    }

    /// Takes what an event says into the snapshot when the event says all
    /// of it; returns false when the task must be read again. Re-reading
    /// every task an event names would be most of a busy runner's round
    /// trips; therefore a task is read again only when its event falls short
    /// (README "Performance").
    fn follow(&mut self, e: &Event) -> bool {
        let Some(snapshot) = self.snapshot.as_mut() else {
            // A full read comes next anyway.
            return true;
        };
        let Ok(attempt) = e.attempt.parse::<u32>() else {
            return false;
        };
        match e.kind.as_str() {
            // This runner's own dispatch, recorded when the script returned.
            "dispatched" => snapshot.dispatched(&e.task, attempt),
            // Worker and recovery transitions: the scripts that emit them
            // set the status (and a retry's time) and nothing else.
            "started" | "completed" | "failed" | "retried" | "requeued" => {
                let Some(status) = e.field("status").and_then(Status::parse) else {
                    return false;
                };
                snapshot.apply(&Transition {
                    task: &e.task,
                    attempt,
                    status,
                    retry_at: e.field("retry_at").and_then(|v| v.parse().ok()),
                })
            }
            _ => false,
        }
    }

    async fn on_events(&mut self, batch: Vec<Event>) -> Result<(), RunError> {
        let mut messages = false;
        for e in batch {
            if !e.task.is_empty() && !self.follow(&e) {
                self.dirty.insert(e.task.clone());
            }
            if e.kind == "message" && e.agent == "supervisor" {
                messages = true;
            }
            (self.report)(Report::Event(e));
        }
        if messages {
            for m in self.store.take_supervisor_messages().await? {
                let body = serde_json::from_str::<serde_json::Value>(&m)
                    .ok()
                    .and_then(|v| {
                        let from = v["from"].as_str().unwrap_or("?").to_string();
                        v["body"].as_str().map(|b| format!("{from}: {b}"))
                    })
                    .unwrap_or(m);
                (self.report)(Report::Message(body));
            }
        }
        Ok(())
    }

    /// Pushes the file in full, whatever the reload state says: restores
    /// records Redis lost (`sync::push_full` counts them). Returns whether
    /// anything was written.
    async fn resync(&mut self, agents: &mut Supervisor) -> Result<bool, RunError> {
        self.resync = true;
        self.last_load = reload::LastLoad::default();
        let wrote = self.reload(agents).await?;
        self.resync = false;
        Ok(wrote)
    }

    /// Reloads the file after a save; returns whether Redis was written.
    async fn reload(&mut self, agents: &mut Supervisor) -> Result<bool, RunError> {
        let text = match plan::read_plan(&self.opts.file) {
            Ok(t) => t,
            Err(LoadError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                // Mid-save (delete and recreate) or really gone: keep the
                // last plan; the next save reloads.
                (self.report)(Report::FileGone);
                return Ok(false);
            }
            Err(e) => {
                (self.report)(Report::Invalid(e));
                return Ok(false);
            }
        };
        // An empty file is a write in place caught between its truncation
        // and its data (saves reload without a debounce now): as a plan it
        // would cancel every task. The writer's close reloads again.
        if text.is_empty() {
            return Ok(false);
        }
        // One edited task is applied on its own (`reload`); the rest is
        // loaded and pushed in full.
        let (text, fp) = match self
            .last_load
            .apply_edit(&self.store, &self.opts.file, text)
            .await?
        {
            Edit::Unchanged => return Ok(false),
            Edit::Applied { counts, touched } => {
                self.dirty.extend(touched);
                (self.report)(Report::Reloaded(counts));
                return Ok(false);
            }
            Edit::Full { text, digest } => (text, digest),
        };
        let plan = match plan::load(&self.opts.file, text) {
            Ok(p) => p,
            Err(e) => {
                (self.report)(Report::Invalid(e));
                // Remember it so the same broken text is not reported twice.
                self.last_load.failed(fp);
                return Ok(false);
            }
        };
        let sync::Pushed {
            counts,
            touched,
            fingerprints,
            plan_fp,
        } = sync::push_full(&self.store, &plan, Adopt::No, Claim::Keep).await?;
        let wrote = !touched.is_empty();
        // The next pass must judge touched tasks by their new definition,
        // not wait for their events; a reload so large is read in full.
        if counts.added + counts.changed + counts.removed > RELOAD_REREAD {
            self.snapshot = None;
        } else {
            self.dirty.extend(touched);
        }
        self.last_load.loaded(&plan, fingerprints, plan_fp);
        self.plan = only_agents(plan);
        // A changed agent is started again; one still broken says so again.
        self.cannot_start.clear();
        if !self.opts.no_agents {
            agents.apply(&self.plan.agents).await;
        }
        release_free_memory();
        // A resync that found everything in place is no news.
        if wrote || !self.resync {
            (self.report)(Report::Reloaded(counts));
        }
        Ok(wrote)
    }
}

/// `batch`, after noting in `seen` the id of its last event.
fn noting_last(seen: &mut String, batch: Vec<Event>) -> Vec<Event> {
    if let Some(last) = batch.last() {
        seen.clone_from(&last.id);
    }
    batch
}

/// Where a stream id (`<ms>-<seq>`) is in its stream, to compare two.
fn stream_position(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn summary(
    s: &Snapshot,
    agents: &HashMap<String, AgentSlot>,
    live: &std::collections::HashSet<String>,
    interrupted: bool,
) -> Summary {
    let mut failed = Vec::new();
    let mut stuck = Vec::new();
    for i in 0..s.len() {
        if s.graph.status(i) == Status::Failed && !s.graph.is_group(i) {
            failed.push(s.id(i).to_string());
        } else if let Some(why) = s.stuck_reason(i, agents, live) {
            stuck.push((s.id(i).to_string(), why));
        }
    }
    Summary {
        counts: s.counts(),
        failed,
        stuck,
        interrupted,
    }
}

/// What the runner keeps of a plan once it is in Redis: `[agents]` (and
/// the rest of the small tables). The tasks live in Redis and the snapshot,
/// and their specs with spans, with the source (kept once, in
/// `Runner::last_load`), would be most of a 100k-task runner's memory;
/// therefore they are dropped once pushed (README "Performance").
fn only_agents(mut plan: Plan) -> Plan {
    plan.tasks = Vec::new();
    plan.warnings = Vec::new();
    plan.source = std::sync::Arc::new(String::new());
    plan
}

fn empty_plan() -> Plan {
    Plan {
        path: PathBuf::new(),
        source: std::sync::Arc::new(String::new()),
        town: Default::default(),
        meta: Default::default(),
        agents: Vec::new(),
        tasks: Vec::new(),
        warnings: Vec::new(),
    }
}

/// Hands memory freed after a burst back to the OS. Loading a 100k-task
/// plan peaks at ~350 MiB of parse trees that are dropped at once, and
/// glibc keeps such pages in the heap, so an idle runner would stay at the
/// peak; therefore the free pages are handed back (README "Performance").
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A signal stream, or one that never fires if the platform refuses it.
fn signal(kind: tokio::signal::unix::SignalKind) -> SignalStream {
    SignalStream(tokio::signal::unix::signal(kind).ok())
}

struct SignalStream(Option<tokio::signal::unix::Signal>);

impl SignalStream {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
