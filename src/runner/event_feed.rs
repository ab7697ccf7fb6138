//! The events the runner follows: a reader task of its own waits on the
//! stream ([`EventFollower`], a blocking connection that is opened again
//! after an error) and hands batches to the loop ([`EventFeed`]); the
//! runner takes each batch into its snapshot, so a pass re-reads only the
//! tasks an event did not say enough about.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{RunError, Runner, RunnerNote};
use crate::Status;
use crate::dispatch::Transition;
use crate::store::{Event, EventFollower, RedisTarget, Store, StoreError, stream_position};

/// Longest a finishing `--until-done` waits for the events it has not
/// printed yet.
const CATCH_UP: Duration = Duration::from_secs(2);

/// How long one `XREAD BLOCK` waits before asking again: it only bounds
/// how long a dead connection goes unnoticed, nothing is polled.
const READ_BLOCK: Duration = Duration::from_secs(5);

/// Pause after a failed read before the next one.
const READ_RETRY: Duration = Duration::from_millis(500);

/// Pause after a failed connection before the next attempt.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

pub(super) type Batch = Result<Vec<Event>, StoreError>;

/// A task that reads `follower` until `tx` is closed, sending each batch
/// of new events, or what went wrong, as `wrap` makes it; after an error
/// it pauses, and the follower connects again.
pub(super) fn read_into<T: Send + 'static>(
    mut follower: EventFollower,
    tx: mpsc::UnboundedSender<T>,
    wrap: impl Fn(Batch) -> T + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let connected = follower.is_connected();
            match follower.next(READ_BLOCK).await {
                Ok(batch) => {
                    if !batch.is_empty() && tx.send(wrap(Ok(batch))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if tx.send(wrap(Err(e))).is_err() {
                        return;
                    }
                    tokio::time::sleep(if connected { READ_RETRY } else { CONNECT_RETRY }).await;
                }
            }
        }
    })
}

/// Batches of new events (or what went wrong reading them), from a reader
/// task that runs until the feed is dropped: the loop waits on the feed
/// and everything else at once, and a read in flight is never cancelled
/// half-way.
pub(super) struct EventFeed {
    batches: mpsc::UnboundedReceiver<Batch>,
    /// The newest event taken from the feed.
    seen: String,
    reader: tokio::task::JoinHandle<()>,
}

impl EventFeed {
    /// Follows the town from its newest event now.
    pub(super) async fn start(store: &Store, target: &RedisTarget) -> Result<Self, StoreError> {
        let after = store.last_event_id().await?;
        let follower = EventFollower::lazy(store, target, &after);
        let (tx, batches) = mpsc::unbounded_channel::<Batch>();
        let reader = read_into(follower, tx, |batch| batch);
        Ok(Self {
            batches,
            seen: after,
            reader,
        })
    }

    /// The next batch, noting its last event as seen. Cancel-safe.
    pub(super) async fn recv(&mut self) -> Option<Batch> {
        let batch = self.batches.recv().await;
        if let Some(Ok(events)) = &batch
            && let Some(last) = events.last()
        {
            self.seen.clone_from(&last.id);
        }
        batch
    }

    /// Hands `report` the events the reader has not delivered yet, up to
    /// the newest one in the stream now: a run that ends right after a
    /// pass (`--until-done` with work queued for an agent nobody runs)
    /// still prints what that pass dispatched. Bounded by [`CATCH_UP`], as
    /// the reader may be reconnecting.
    pub(super) async fn catch_up(&mut self, store: &Store, mut report: impl FnMut(Event)) {
        let Ok(newest) = store.last_event_id().await else {
            return;
        };
        let newest = stream_position(&newest).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        while stream_position(&self.seen).unwrap_or_default() < newest {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(Some(Ok(batch))) => batch.into_iter().for_each(&mut report),
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Stops the reader task.
    pub(super) fn stop(&self) {
        self.reader.abort();
    }
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<F: FnMut(RunnerNote)> Runner<F> {
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

    /// A sync's one event for what it wrote. The tasks it added have no
    /// event of their own (changed and removed ones do, and are re-read
    /// as they come), so a sync that added any, unless it was this
    /// runner's own push, makes the next pass read the whole town.
    fn on_synced(&mut self, e: &Event) {
        let added = e.field("added").and_then(|v| v.parse::<u64>().ok());
        let own = e.field("plan_fp") == Some(self.own_plan_fp.as_str());
        if added != Some(0) && !own {
            self.snapshot = None;
        }
    }

    /// Takes a batch of events in: the snapshot follows them, each is
    /// reported, and notes to the supervisor are drained.
    pub(super) async fn on_events(&mut self, batch: Vec<Event>) -> Result<(), RunError> {
        let mut messages = false;
        for e in batch {
            if e.kind == "synced" {
                self.on_synced(&e);
            } else if !e.task.is_empty() && !self.follow(&e) {
                self.dirty.insert(e.task.clone());
            }
            if e.kind == "message" && e.agent == crate::store::keys::SUPERVISOR {
                messages = true;
            }
            (self.report)(RunnerNote::Event(e));
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
                (self.report)(RunnerNote::Message(body));
            }
        }
        Ok(())
    }
}
