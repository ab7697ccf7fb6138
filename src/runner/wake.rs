//! What the runner's loop waits for, named: a [`Wake`] for each thing that
//! can happen, and [`Wakers`], which holds every source (the file watch,
//! the events feed, agent notes, the timers, signals) and waits on all of
//! them at once.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::event_feed::EventFeed;
use super::other_towns::TownBatch;
use super::supervisor::AgentNote;
use super::{ARCHIVE_INTERVAL, lease::LEASE_TTL};
use crate::os::{SignalStream, now_ms};
use crate::store::{Event, StoreError};
use crate::watch::Watcher;

/// Pause before a reload that failed because Redis was away is tried again.
const RELOAD_RETRY: Duration = Duration::from_secs(1);

/// One thing that happened, for the loop to handle.
#[derive(Debug)]
pub(super) enum Wake {
    /// tasks.toml was saved (a burst of notifications folded into one).
    Saved,
    /// A reload that Redis interrupted is due again.
    ReloadDue,
    /// New events in the stream.
    Events(Vec<Event>),
    /// Reading the events failed: some may have been missed.
    EventsFailed(StoreError),
    /// New events of another town that tasks here depend on (or what went
    /// wrong reading them).
    OtherTown(String, Result<Vec<Event>, StoreError>),
    /// An agent replica started, exited or cannot start.
    Agent(AgentNote),
    /// Time to renew the lease.
    LeaseDue,
    /// Time to look for dead workers.
    RecoveryDue,
    /// Time to move old events into the archive.
    ArchiveDue,
    /// A task waiting for its retry backoff (or a dispatch hold) is due.
    RetryDue,
    /// SIGTERM or SIGINT: stop.
    Signal,
}

/// Every source of [`Wake`]s.
pub(super) struct Wakers {
    /// Kept for its notifications in `saves`.
    _watcher: Watcher,
    saves: mpsc::UnboundedReceiver<()>,
    notes: mpsc::UnboundedReceiver<AgentNote>,
    pub(super) feed: EventFeed,
    others: mpsc::UnboundedReceiver<TownBatch>,
    pub(super) signals: Signals,
    lease: Interval,
    recovery: Interval,
    archiving: Interval,
}

impl Wakers {
    pub(super) async fn new(
        (watcher, saves): (Watcher, mpsc::UnboundedReceiver<()>),
        notes: mpsc::UnboundedReceiver<AgentNote>,
        feed: EventFeed,
        others: mpsc::UnboundedReceiver<TownBatch>,
        signals: Signals,
    ) -> Self {
        let mut lease = tokio::time::interval(LEASE_TTL / 3);
        lease.tick().await;
        let mut recovery = tokio::time::interval(crate::agent::worker::HEARTBEAT_INTERVAL);
        recovery.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut archiving = tokio::time::interval(ARCHIVE_INTERVAL);
        archiving.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            _watcher: watcher,
            saves,
            notes,
            feed,
            others,
            signals,
            lease,
            recovery,
            archiving,
        }
    }

    /// Waits for the next thing to happen. `retry_at` (ms since the epoch)
    /// is when a pass is due without any other news; `reload_pending` arms
    /// [`Wake::ReloadDue`].
    pub(super) async fn next(&mut self, retry_at: Option<u64>, reload_pending: bool) -> Wake {
        let retry_sleep = async {
            match retry_at {
                Some(at) => {
                    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = self.saves.recv() => {
                // Fold a burst of notifications into one reload.
                while self.saves.try_recv().is_ok() {}
                Wake::Saved
            }
            _ = tokio::time::sleep(RELOAD_RETRY), if reload_pending => Wake::ReloadDue,
            Some(batch) = self.feed.recv() => match batch {
                Ok(batch) => Wake::Events(batch),
                Err(e) => Wake::EventsFailed(e),
            },
            Some((town, batch)) = self.others.recv() => Wake::OtherTown(town, batch),
            Some(note) = self.notes.recv() => Wake::Agent(note),
            _ = self.lease.tick() => Wake::LeaseDue,
            _ = self.recovery.tick() => Wake::RecoveryDue,
            _ = self.archiving.tick() => Wake::ArchiveDue,
            _ = retry_sleep => Wake::RetryDue,
            _ = self.signals.recv() => Wake::Signal,
        }
    }
}

/// SIGTERM and SIGINT, caught from the moment they are installed: a signal
/// that arrives while the runner is busy elsewhere waits in its stream (a
/// listener made anew each turn would miss it).
pub(super) struct Signals {
    terminate: SignalStream,
    interrupt: SignalStream,
}

impl Signals {
    pub(super) fn install() -> Self {
        use tokio::signal::unix::SignalKind;
        Self {
            terminate: SignalStream::new(SignalKind::terminate()),
            interrupt: SignalStream::new(SignalKind::interrupt()),
        }
    }

    /// Returns once either has arrived.
    pub(super) async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
