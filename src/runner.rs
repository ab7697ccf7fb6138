//! `tt run`: keep the town moving. One async loop reacts to what happens —
//! saves of tasks.toml, transitions in the events stream, agent processes
//! exiting, timers (lease renewal, recovery, archiving, retry backoff),
//! signals; each a [`wake::Wake`] handed to its function — and after each,
//! dispatches whatever became ready ([`pass`]). Nothing polls: the loop
//! sleeps until one of them happens.
//!
//! One runner per town: a lease key with a TTL, renewed well before it
//! expires ([`lease`]). A second runner is refused (or waits with `--wait`).
//!
//! The folder holds the runner's concepts: [`lease`], [`event_feed`] (the
//! events it follows), [`other_towns`] (the towns its tasks depend on,
//! followed read-only), [`pass`] (one dispatch pass and `--until-done`),
//! [`plan_file`] (reloads and resyncs), [`recovery`] (dead workers),
//! [`summary`] (how a run ended), [`supervisor`] (agent processes) and
//! [`wake`] (what the loop waits for).

mod event_feed;
mod lease;
mod other_towns;
mod pass;
mod plan_file;
mod recovery;
mod summary;
mod supervisor;
mod town_budget;
mod wake;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use lease::LEASE_TTL;
pub use other_towns::RemoteNote;
pub use summary::RunSummary;
pub use supervisor::AgentNote;

use event_feed::EventFeed;
use other_towns::OtherTowns;
use pass::Pass;
use plan_file::{empty_plan, only_agents};
use recovery::Contact;
use supervisor::Supervisor;
use wake::{Signals, Wake, Wakers};

use crate::dispatch::Snapshot;
use crate::os::now_ms;
use crate::plan::{LoadError, Plan};
use crate::reload;
use crate::store::{Archive, Event, Migration, RedisTarget, Store, StoreError, SyncCounts};
use crate::sync::{self, Adopt, Claim};
use crate::watch::{self, WatchError};

/// Events the runner leaves in the stream when it archives the older ones
/// (every [`ARCHIVE_INTERVAL`]): far below the cap the scripts keep
/// (`MAXLEN ~ 100000`), so bursts between two archivings are not trimmed.
const ARCHIVE_KEEP: u64 = 10_000;

/// How often the runner moves old events into the archive (one `XLEN` when
/// there is nothing to move).
const ARCHIVE_INTERVAL: Duration = Duration::from_secs(2);

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
pub enum RunnerNote {
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
    /// The town was written by an older tt and its keys were moved to the
    /// hash-tagged layout before anything else ran.
    Migrated(Migration),
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
    /// What is known of a task of another town that tasks here depend on
    /// changed (it completed, failed, appeared …).
    Remote(RemoteNote),
    /// Redis could not be reached or answered with an error while `doing`
    /// something the runner tries again (reading events, reloading): the
    /// run goes on and catches up once Redis is back.
    RedisTrouble {
        doing: &'static str,
        error: StoreError,
    },
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

struct Runner<F: FnMut(RunnerNote)> {
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
    /// The plan fingerprint of this runner's last full push: the `synced`
    /// event of its own push needs no read (it marked what it wrote).
    own_plan_fp: String,
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
    /// The agent processes this runner started.
    agents: Supervisor,
    /// Whether Redis has answered steadily enough to judge heartbeats.
    contact: Contact,
    /// When a pass is due without other news (ms since the epoch): the
    /// next retry backoff to end, or the end of a dispatch hold.
    retry_wake: Option<u64>,
    /// Until when (ms) nothing is dispatched: see [`Runner::events_failed`].
    dispatch_hold: u64,
    /// A reload that Redis interrupted, to try again.
    reload_pending: bool,
    archive: Archive,
    /// Archiving failed, and was reported (once until it works again).
    archive_failed: bool,
    /// The other towns tasks here depend on, followed read-only.
    others: OtherTowns,
    /// Where their readers send; handed to the loop's [`Wakers`].
    others_rx: Option<mpsc::UnboundedReceiver<other_towns::TownBatch>>,
}

/// Runs `plan` (loaded from `opts.file` by the caller, which needed its
/// `[town]` to fill `opts`) until done (`--until-done`), interrupted, or a
/// fatal error.
pub async fn run<F: FnMut(RunnerNote)>(
    opts: Options,
    plan: Plan,
    mut report: F,
) -> Result<RunSummary, RunError> {
    // First: from here on a SIGTERM or Ctrl-C is a clean stop (lease
    // released, agents stopped), never the default death.
    let mut signals = Signals::install();
    let store = Store::open(&opts.target, &opts.town).await?;
    // Before the lease: an older runner still holding the town's old
    // lease refuses the migration, and so this run.
    if let Some(m) = store.migrate_if_old().await? {
        report(RunnerNote::Migrated(m));
    }
    let holder = lease::holder();
    if !lease::take(
        &store,
        &holder,
        &opts.town,
        opts.wait,
        &mut signals,
        &mut report,
    )
    .await?
    {
        return Ok(RunSummary {
            interrupted: true,
            ..Default::default()
        });
    }
    let (note_tx, notes) = mpsc::unbounded_channel();
    let agents =
        Supervisor::new(&opts.file, &opts.town, &opts.project_dir, note_tx).grace(opts.grace);
    let archive = Archive::of(&opts.project_dir, &opts.town);
    let (others_tx, others_rx) = mpsc::unbounded_channel();
    let others = OtherTowns::new(opts.target.clone(), others_tx);
    let mut runner = Runner {
        opts,
        store,
        plan,
        last_load: reload::LastLoad::default(),
        holder,
        report,
        snapshot: None,
        dirty: HashSet::new(),
        own_plan_fp: String::new(),
        cannot_start: HashMap::new(),
        resync: false,
        corrupt: HashMap::new(),
        plan_ids: HashSet::new(),
        await_save: false,
        budget: Default::default(),
        agents,
        contact: Contact::default(),
        retry_wake: None,
        dispatch_hold: 0,
        reload_pending: false,
        archive,
        archive_failed: false,
        others,
        others_rx: Some(others_rx),
    };
    let result = runner.main_loop(notes, signals).await;
    let _ = runner.store.release_lease(&runner.holder).await;
    result
}

impl<F: FnMut(RunnerNote)> Runner<F> {
    async fn main_loop(
        &mut self,
        notes: mpsc::UnboundedReceiver<AgentNote>,
        signals: Signals,
    ) -> Result<RunSummary, RunError> {
        // Watching starts before the first push, and the file is read again
        // once the agents are up (in `turns`): a save made while `tt run`
        // starts is reloaded, not lost.
        let saves = watch::watch(&self.opts.file)?;
        self.push_first().await?;
        if !self.opts.no_agents {
            self.agents.apply(&self.plan.agents).await;
        }
        // Events arrive on a dedicated blocking connection, read by a task
        // of its own so the loop can wait on everything at once.
        let feed = EventFeed::start(&self.store, &self.opts.target).await?;
        let others = self
            .others_rx
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let mut wakers = Wakers::new(saves, notes, feed, others, signals).await;
        let outcome = self.turns(&mut wakers).await;
        wakers.feed.stop();
        // Agents finish or stop their commands; what they had claimed is
        // left for recovery, never marked done.
        self.agents.stop_all().await;
        outcome
    }

    /// Pushes the plan the caller loaded, and says the run started.
    async fn push_first(&mut self) -> Result<(), RunError> {
        let pushed = sync::push_full(&self.store, &self.plan, Adopt::No, Claim::Keep).await?;
        if let Some(e) = &pushed.archive_error {
            (self.report)(RunnerNote::ArchiveFailed(e.to_string()));
        }
        self.plan_ids = self.plan.tasks.iter().map(|t| t.id.clone()).collect();
        self.own_plan_fp.clone_from(&pushed.plan_fp);
        self.last_load
            .loaded(&self.plan, pushed.fingerprints, pushed.plan_fp);
        self.plan = only_agents(std::mem::replace(&mut self.plan, empty_plan()));
        (self.report)(RunnerNote::Started {
            town: self.opts.town.clone(),
            counts: pushed.counts,
            agents: self.plan.agents.len(),
        });
        Ok(())
    }

    /// The loop: a pass, then wait for what happens next and handle it.
    async fn turns(&mut self, wakers: &mut Wakers) -> Result<RunSummary, RunError> {
        // A save between the CLI's load and the watch start raised no event:
        // compare the file with what was pushed once (unchanged: one read).
        match self.reload().await {
            Ok(_) => {}
            Err(RunError::Store(e)) if e.is_connection_error() => self.reload_pending = true,
            Err(e) => return Err(e),
        }
        loop {
            match self.pass().await? {
                Pass::Again => continue,
                Pass::Done(summary) => {
                    let report = &mut self.report;
                    wakers
                        .feed
                        .catch_up(&self.store, |e| report(RunnerNote::Event(e)))
                        .await;
                    return Ok(self.explain(summary));
                }
                Pass::Wait => {}
            }
            let wake = wakers.next(self.retry_wake, self.reload_pending).await;
            if let Some(summary) = self.handle(wake).await? {
                return Ok(summary);
            }
        }
    }

    /// Hands a wake to its function; a summary when the run ends.
    async fn handle(&mut self, wake: Wake) -> Result<Option<RunSummary>, RunError> {
        match wake {
            Wake::Saved => self.saved().await?,
            Wake::ReloadDue => self.reload_again().await?,
            Wake::Events(batch) => self.events(batch).await?,
            Wake::EventsFailed(e) => self.events_failed(e),
            Wake::OtherTown(town, batch) => self.others.on_batch(&town, batch),
            Wake::Agent(note) => self.agent_note(note),
            Wake::LeaseDue => self.renew_lease().await?,
            Wake::RecoveryDue => self.recovery_due().await?,
            Wake::ArchiveDue => self.archive_due().await?,
            Wake::RetryDue => {}
            Wake::Signal => return self.final_summary(true).await.map(Some),
        }
        Ok(None)
    }

    /// tasks.toml was saved: reload it.
    async fn saved(&mut self) -> Result<(), RunError> {
        self.await_save = false;
        match self.reload().await {
            Ok(_) => self.reload_pending = false,
            // Redis away: keep the last plan and try again soon.
            Err(RunError::Store(e)) if e.is_connection_error() => {
                self.reload_pending = true;
                self.redis_trouble("reloading", e);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Tries an interrupted reload again, reading the file only once Redis
    /// answers.
    async fn reload_again(&mut self) -> Result<(), RunError> {
        let reloaded = match self.store.ping().await {
            Ok(()) => self.reload().await,
            Err(e) => Err(e.into()),
        };
        match reloaded {
            Ok(_) => self.reload_pending = false,
            Err(RunError::Store(e)) if e.is_connection_error() => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn events(&mut self, batch: Vec<Event>) -> Result<(), RunError> {
        match self.on_events(batch).await {
            Err(RunError::Store(e)) if e.is_connection_error() => {
                self.redis_trouble("reading supervisor messages", e);
                Ok(())
            }
            other => other,
        }
    }

    /// Reading events failed: events may have been missed, and the server
    /// may be a new, empty one, so the plan is restored and the town read
    /// again.
    fn events_failed(&mut self, e: StoreError) {
        self.snapshot = None;
        self.resync = true;
        // A worker whose task record Redis lost stops its command within a
        // heartbeat TTL of its last renewal (docs/PROTOCOL.md "Fencing"):
        // the restored task must not start elsewhere before that.
        let ttl = crate::agent::worker::HEARTBEAT_TTL;
        self.dispatch_hold = now_ms() + ttl.as_millis() as u64;
        self.redis_trouble("reading events", e);
    }

    fn agent_note(&mut self, note: AgentNote) {
        if let AgentNote::CannotStart { agent, why, .. } = &note {
            self.cannot_start.insert(agent.clone(), why.clone());
        }
        (self.report)(RunnerNote::Agent(note));
    }

    /// Moves old events into the archive; a failure is reported once until
    /// archiving works again.
    async fn archive_due(&mut self) -> Result<(), RunError> {
        match self.store.archive_events(&self.archive, ARCHIVE_KEEP).await {
            Ok(_) => self.archive_failed = false,
            Err(e) if e.is_connection_error() => {}
            Err(e) => {
                if !self.archive_failed {
                    (self.report)(RunnerNote::ArchiveFailed(e.to_string()));
                }
                self.archive_failed = true;
            }
        }
        Ok(())
    }

    fn redis_trouble(&mut self, doing: &'static str, error: StoreError) {
        (self.report)(RunnerNote::RedisTrouble { doing, error });
    }
}
