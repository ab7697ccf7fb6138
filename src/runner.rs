//! `tt run`: keep the town moving. One async loop reacts to three things —
//! saves of tasks.toml, transitions in the events stream, agent processes
//! exiting — and after each, dispatches whatever became ready. Nothing
//! polls: the loop sleeps in a blocking `XREAD`, a file watch and timers
//! (lease renewal, retry backoff).
//!
//! One runner per town: a lease key with a TTL, renewed well before it
//! expires. A second runner is refused (or waits with `--wait`).

mod supervisor;
mod town_budget;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use supervisor::AgentNote;
use supervisor::Supervisor;

use crate::Status;
use crate::dispatch::{AgentSlot, Snapshot, Transition};
use crate::os::{SignalStream, hostname, now_ms, release_free_memory};
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
    /// The town spent its `[town] max_cost_usd`: no new attempts are
    /// dispatched (said once until it is lifted).
    BudgetReached(String),
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
/// and report first. Times are [`crate::os::awake_clock`]'s, and a gap
/// between answers longer than a recovery interval and [`Contact::SLOW`]
/// counts as contact lost: a runner that was frozen or suspended (with its
/// workers, whose keys expired meanwhile) judges nothing on its first tick.
#[derive(Debug, Default)]
struct Contact {
    /// Since when Redis has answered promptly; `None` after trouble.
    since: Option<Duration>,
    /// When Redis last answered promptly.
    last: Option<Duration>,
}

impl Contact {
    /// An answer longer than this counts as trouble.
    const SLOW: Duration = Duration::from_secs(1);
    /// Longest gap between answers that is not trouble: one recovery
    /// interval, and a slow answer.
    const GAP: Duration = crate::agent::worker::HEARTBEAT_INTERVAL.saturating_add(Self::SLOW);

    fn lost(&mut self) {
        self.since = None;
    }

    /// A call sent at `asked` ([`crate::os::awake_clock`]) was answered now.
    fn answered(&mut self, asked: Duration) {
        self.answered_at(asked, crate::os::awake_clock());
    }

    fn answered_at(&mut self, asked: Duration, now: Duration) {
        let slow = now.saturating_sub(asked) > Self::SLOW;
        let gap = self.last.is_some_and(|l| now.saturating_sub(l) > Self::GAP);
        if self.since.is_none() || slow || gap {
            self.since = Some(now);
        }
        self.last = Some(now);
    }

    fn steady(&self) -> bool {
        self.steady_at(crate::os::awake_clock())
    }

    fn steady_at(&self, now: Duration) -> bool {
        self.since
            .is_some_and(|t| now.saturating_sub(t) >= crate::agent::worker::HEARTBEAT_TTL)
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
    /// The task ids of the last plan that loaded: `--until-done` is not
    /// done while one of them has no record (Redis lost it) and the file
    /// cannot be loaded to restore it.
    plan_ids: HashSet<String>,
    /// A resync could not load the file while records of the plan were
    /// missing: `--until-done` waits for the next save rather than read
    /// the file again on every pass.
    await_save: bool,
    /// The town's budget as this runner last recorded it, and why dispatch
    /// stops when it is spent (`town_budget`).
    budget: town_budget::TownBudget,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reloaded {
    /// Redis was written.
    Wrote,
    /// The file loaded and Redis already held it.
    Nothing,
    /// The file could not be loaded (gone, mid-save, invalid): the last
    /// good plan stays.
    NotLoaded,
}

/// Runs `plan` (loaded from `opts.file` by the caller, which needed its
/// `[town]` to fill `opts`) until done (`--until-done`), interrupted, or a
/// fatal error.
pub async fn run<F: FnMut(Report)>(
    opts: Options,
    plan: Plan,
    mut report: F,
) -> Result<Summary, RunError> {
    // First: from here on a SIGTERM or Ctrl-C is a clean stop (lease
    // released, agents stopped), never the default death.
    let mut signals = Signals::install();
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
                tokio::select! {
                    _ = tokio::time::sleep(LEASE_TTL / 3) => {}
                    _ = signals.recv() => return Ok(Summary {
                        counts: HashMap::new(),
                        failed: Vec::new(),
                        stuck: Vec::new(),
                        interrupted: true,
                    }),
                }
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
        plan_ids: HashSet::new(),
        await_save: false,
        budget: Default::default(),
    };
    let result = runner.main_loop(signals).await;
    let _ = runner.store.release_lease(&runner.holder).await;
    result
}

impl<F: FnMut(Report)> Runner<F> {
    async fn main_loop(&mut self, mut signals: Signals) -> Result<Summary, RunError> {
        // Watching starts before the first push, and the file is read again
        // once the agents are up (below): a save made while `tt run` starts
        // is reloaded, not lost.
        let (_watcher, mut saves) = watch::watch(&self.opts.file)?;
        let pushed = sync::push_full(&self.store, &self.plan, Adopt::No, Claim::Keep).await?;
        let counts = pushed.counts;
        if let Some(e) = &pushed.archive_error {
            (self.report)(Report::ArchiveFailed(e.to_string()));
        }
        self.plan_ids = self.plan.tasks.iter().map(|t| t.id.clone()).collect();
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
        let mut archiving = tokio::time::interval(ARCHIVE_INTERVAL);
        archiving.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let archive = crate::store::Archive::of(&self.opts.project_dir, &self.opts.town);
        let mut archive_failed = false;
        let mut retry_wake: Option<u64> = None;
        // Until when (ms) nothing is dispatched: see the event reader's
        // error below.
        let mut dispatch_hold: u64 = 0;
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
            // Only once Redis answers: during an outage the event reader
            // fails every second, and each resync reads and parses the file.
            if self.resync && self.store.ping().await.is_ok() {
                match self.resync(&mut agents).await {
                    Ok(_) => {}
                    Err(RunError::Store(e)) if e.is_connection_error() => {}
                    Err(e) => break Err(e),
                }
            }
            // Held after the event reader failed (see there).
            let held = now_ms() < dispatch_hold;
            if held {
                retry_wake = Some(dispatch_hold);
            }
            let dispatched = !held
                && match self.dispatch().await {
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
                // A spent town budget leaves ready work where it is: only
                // work in flight goes on.
                let spent = self.budget.stopped().is_some();
                let moves = |live: &HashSet<String>| match spent {
                    true => s.in_flight_active(&slots, live),
                    false => s.active(&slots, live),
                };
                let busy = moves(&HashSet::new());
                let live = if busy {
                    HashSet::new()
                } else {
                    self.store.live_agent_names().await.unwrap_or_default()
                };
                if !busy && !moves(&live) {
                    // Nothing moves: done, unless Redis lost records of the
                    // plan (then they are pending again, and run).
                    let finished = match spent {
                        // What waits for the budget is stuck (`explain`).
                        true => self.summary(s, &HashMap::new(), &HashSet::new(), false),
                        false => self.summary(s, &slots, &live, false),
                    };
                    // A file that did not load is read again at its next
                    // save, not on every pass.
                    let resynced = if self.await_save {
                        Ok(Reloaded::NotLoaded)
                    } else {
                        self.resync(&mut agents).await
                    };
                    match resynced {
                        Ok(Reloaded::Nothing) => done = Some(finished),
                        Ok(Reloaded::NotLoaded) if self.plan_present() => done = Some(finished),
                        // Records are gone and the file cannot restore
                        // them: not done; the next save reloads.
                        Ok(Reloaded::NotLoaded) => self.await_save = true,
                        Ok(Reloaded::Wrote) => continue,
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
                    self.await_save = false;
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
                    // Read the file again only once Redis answers.
                    let reload = async {
                        self.store.ping().await?;
                        self.reload(&mut agents).await
                    };
                    match reload.await {
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
                        // A worker whose task record Redis lost stops its
                        // command within a heartbeat TTL of its last
                        // renewal (docs/PROTOCOL.md "Fencing"): the restored
                        // task must not start elsewhere before that.
                        let ttl = crate::agent::worker::HEARTBEAT_TTL;
                        dispatch_hold = now_ms() + ttl.as_millis() as u64;
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
                _ = signals.recv() => break self.final_summary(true).await,
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
        let asked = crate::os::awake_clock();
        let dead = self.store.dead_workers().await?;
        contact.answered(asked);
        if dead.is_empty() || !contact.steady() {
            return Ok(());
        }
        for r in self.store.recover(&dead).await? {
            if let Some((pgid, start)) = r.orphan_on(&hostname()) {
                crate::os::signal_group_if_same(pgid, start, libc::SIGKILL);
            }
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
            if let Some(stop) = self.budget.stopped()
                && snapshot
                    .graph
                    .index_of(id)
                    .is_some_and(|i| snapshot.graph.is_ready(i))
            {
                *why = stop.to_string();
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
        if self.town_budget_spent().await? {
            self.snapshot = Some(snapshot);
            return Ok(None);
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
    /// every task an event named was most of a busy runner's round trips
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

    /// Whether every task of the last plan that loaded has a record in the
    /// snapshot.
    fn plan_present(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| {
            self.plan_ids
                .iter()
                .all(|id| s.graph.index_of(id).is_some())
        })
    }

    /// Pushes the file in full, whatever the reload state says: restores
    /// records Redis lost (`sync::push_full` counts them).
    async fn resync(&mut self, agents: &mut Supervisor) -> Result<Reloaded, RunError> {
        self.resync = true;
        self.last_load = reload::LastLoad::default();
        let wrote = self.reload(agents).await?;
        self.resync = false;
        Ok(wrote)
    }

    /// Reloads the file after a save.
    async fn reload(&mut self, agents: &mut Supervisor) -> Result<Reloaded, RunError> {
        let text = match plan::read_plan(&self.opts.file) {
            Ok(t) => t,
            Err(LoadError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                // Mid-save (delete and recreate) or really gone: keep the
                // last plan; the next save reloads.
                (self.report)(Report::FileGone);
                return Ok(Reloaded::NotLoaded);
            }
            Err(e) => {
                (self.report)(Report::Invalid(e));
                return Ok(Reloaded::NotLoaded);
            }
        };
        // An empty file is a write in place caught between its truncation
        // and its data (saves reload without a debounce now): as a plan it
        // would cancel every task. The writer's close reloads again.
        if text.is_empty() {
            return Ok(Reloaded::NotLoaded);
        }
        // One edited task is applied on its own (`reload`); the rest is
        // loaded and pushed in full.
        let (text, fp) = match self
            .last_load
            .apply_edit(&self.store, &self.opts.file, text)
            .await?
        {
            Edit::Unchanged => return Ok(Reloaded::Nothing),
            Edit::Applied { counts, touched } => {
                self.dirty.extend(touched);
                (self.report)(Report::Reloaded(counts));
                return Ok(Reloaded::Nothing);
            }
            Edit::Full { text, digest } => (text, digest),
        };
        let plan = match plan::load(&self.opts.file, text) {
            Ok(p) => p,
            Err(e) => {
                (self.report)(Report::Invalid(e));
                // Remember it so the same broken text is not reported twice.
                self.last_load.failed(fp);
                return Ok(Reloaded::NotLoaded);
            }
        };
        let sync::Pushed {
            counts,
            touched,
            fingerprints,
            plan_fp,
            archive_error,
        } = sync::push_full(&self.store, &plan, Adopt::No, Claim::Keep).await?;
        if let Some(e) = archive_error {
            (self.report)(Report::ArchiveFailed(e.to_string()));
        }
        let wrote = !touched.is_empty();
        // The next pass must judge touched tasks by their new definition,
        // not wait for their events; a reload so large is read in full.
        if counts.added + counts.changed + counts.removed > RELOAD_REREAD {
            self.snapshot = None;
        } else {
            self.dirty.extend(touched);
        }
        self.last_load.loaded(&plan, fingerprints, plan_fp);
        self.plan_ids = plan.tasks.iter().map(|t| t.id.clone()).collect();
        self.plan = only_agents(plan);
        // A replica that cannot start failed to load this same file: one
        // that loads now may have been fixed (a `workdir` created), so its
        // agent counts as runnable again, and says so again if still broken.
        self.cannot_start.clear();
        if !self.opts.no_agents {
            agents.apply(&self.plan.agents).await;
        }
        release_free_memory();
        // A resync that found everything in place is no news.
        if wrote || !self.resync {
            (self.report)(Report::Reloaded(counts));
        }
        Ok(if wrote {
            Reloaded::Wrote
        } else {
            Reloaded::Nothing
        })
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
/// the rest of the small tables). The tasks live in Redis and the snapshot;
/// their specs with spans, and the source (kept once, in `Runner::text`),
/// were most of a 100k-task runner's memory (README "Performance").
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

/// SIGTERM and SIGINT, caught from the moment they are installed: a signal
/// that arrives while the runner is busy elsewhere waits in its stream (a
/// listener made anew each turn would miss it).
struct Signals {
    terminate: SignalStream,
    interrupt: SignalStream,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::SignalKind;
        Self {
            terminate: SignalStream::new(SignalKind::terminate()),
            interrupt: SignalStream::new(SignalKind::interrupt()),
        }
    }

    /// Returns once either has arrived.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_is_steady_only_after_a_ttl_of_prompt_answers_without_a_gap() {
        let s = Duration::from_secs;
        let ttl = crate::agent::worker::HEARTBEAT_TTL;
        let mut c = Contact::default();
        c.answered_at(s(100), s(100));
        assert!(!c.steady_at(s(100)));
        for t in (102..=110).step_by(2) {
            c.answered_at(s(t), s(t));
        }
        assert!(c.steady_at(s(110)));
        // A freeze: the next answer is prompt, but long after the last.
        c.answered_at(s(140), s(140));
        assert!(!c.steady_at(s(140)), "a gap is trouble");
        assert!(c.steady_at(s(140) + ttl));
    }
}
