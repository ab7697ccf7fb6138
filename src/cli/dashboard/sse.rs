//! `GET /api/events`: the town's event stream as server-sent events, one
//! `message` per event with its stream id as the SSE id and its JSON (as
//! `tt history --json` prints it) as data.
//!
//! A client that reconnects sends `Last-Event-ID` (browsers do it by
//! themselves) and gets every event after it; `?after=<id>` does the same
//! for a first connection. Without either, it starts with what happens
//! next. A dropped Redis connection is opened again without ending the
//! response.
//!
//! With `?tasks=1` (the page) the stream also carries the tasks as the
//! graph draws them ([`TaskFeed`]): an `event: tasks` with all of them
//! first, then one after each batch of events with those that changed.
//! These have no id, so a client resumes after the last event all the same.
//! The tasks also change with the other towns they depend on: their
//! streams are followed too (read-only), and what their events change in
//! the tasks comes as a `tasks` event of its own.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream;

use tokio::sync::mpsc;

use super::api::ApiError;
use super::server::Shared;
use super::task_feed::TaskFeed;
use crate::cli::CliError;
use crate::crosstown::TownEvents;
use crate::store::{Event, EventFollower, StoreError, stream_position};

/// How long one blocking read waits: it bounds how long a dead Redis
/// connection goes unnoticed; the keep-alive comments keep proxies and
/// browsers from timing out meanwhile.
const BLOCK: Duration = Duration::from_secs(5);

/// Pause before a dropped Redis connection is opened again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(serde::Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    /// Anything but `0`: also send the tasks ([`TaskFeed`]).
    tasks: Option<String>,
}

/// What one response follows: the events, and the tasks when asked.
struct Following {
    /// This town's events, read by a task of its own ([`read_own`]).
    own: mpsc::UnboundedReceiver<Result<Vec<Event>, StoreError>>,
    /// With `?tasks=1`: the other towns the tasks depend on, whose events
    /// change why they wait.
    others: Option<TownEvents>,
    /// `Some` with `?tasks=1`; the inner `None` after an error, so that
    /// the next batch reads the town again and sends it whole.
    feed: Option<Option<TaskFeed>>,
    queue: VecDeque<SseEvent>,
    /// The id of the last event sent, or the one the response follows from.
    last: String,
}

fn tasks_item(v: &serde_json::Value) -> SseEvent {
    SseEvent::default().event("tasks").data(v.to_string())
}

/// Reads this town's events in a task of its own, so that waiting on other
/// towns too never cancels a read half-way: one message per batch, and the
/// error that ends the response. A dropped Redis connection is opened
/// again; the task ends once the response is gone.
fn read_own(
    mut follower: EventFollower,
) -> mpsc::UnboundedReceiver<Result<Vec<Event>, StoreError>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while !tx.is_closed() {
            match follower.next(BLOCK).await {
                Ok(events) if events.is_empty() => {}
                Err(e) if e.is_connection_error() => tokio::time::sleep(RECONNECT_DELAY).await,
                read => {
                    let end = read.is_err();
                    if tx.send(read).is_err() || end {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Waits for another town's events; never, when none is followed.
async fn other_towns_moved(others: &mut Option<TownEvents>) {
    match others {
        Some(others) => {
            others.next().await;
        }
        None => std::future::pending().await,
    }
}

impl Following {
    /// Follows the other towns the feed names now; what a town newly
    /// followed did before is read at once.
    async fn follow_others(&mut self, store: &crate::store::Store) {
        let (Some(Some(feed)), Some(others)) = (&mut self.feed, &mut self.others) else {
            return;
        };
        let towns = feed.other_towns();
        let towns: Vec<&str> = towns.iter().map(String::as_str).collect();
        if others.follow(&towns).await.unwrap_or(false)
            && let Ok(Some(v)) = feed.others_changed(store, &self.last).await
        {
            self.queue.push_back(tasks_item(&v));
        }
    }

    /// Takes a batch of this town's events: each as a message, then what
    /// they changed in the tasks.
    async fn own_events(&mut self, store: &crate::store::Store, events: Vec<Event>) {
        for e in &events {
            self.queue.push_back(
                SseEvent::default()
                    .id(e.id.clone())
                    .data(e.to_json().to_string()),
            );
        }
        let Some(last) = events.last().map(|e| e.id.clone()) else {
            return;
        };
        self.last = last;
        let Some(feed) = &mut self.feed else { return };
        let update = match feed {
            Some(current) => current.follow(store, &events).await,
            None => match TaskFeed::read(store).await {
                Ok(fresh) => {
                    let whole = fresh.whole(&self.last);
                    *feed = Some(fresh);
                    Ok(Some(whole))
                }
                Err(e) => Err(e),
            },
        };
        match update {
            Ok(Some(v)) => self.queue.push_back(tasks_item(&v)),
            Ok(None) => {}
            // Read whole with the next batch.
            Err(_) => *feed = None,
        }
        self.follow_others(store).await;
    }

    /// After another town's events: the tasks that changed with them.
    async fn other_events(&mut self, store: &crate::store::Store) {
        if let Some(Some(feed)) = &mut self.feed {
            match feed.others_changed(store, &self.last).await {
                Ok(Some(v)) => self.queue.push_back(tasks_item(&v)),
                Ok(None) => {}
                Err(_) => self.feed = Some(None),
            }
        }
        self.follow_others(store).await;
    }
}

pub async fn events(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.after)
        .filter(|id| !id.is_empty());
    let after = match resume {
        Some(id) if stream_position(&id).is_some() => id,
        Some(id) => {
            return Err(ApiError::from(CliError::Usage {
                message: format!("`{id}` is not an event id"),
                help: "event ids are stream ids such as `1700000000000-0`".into(),
            }));
        }
        None => s.store.last_event_id().await?,
    };
    let follower = EventFollower::open(&s.store, &s.target, &after).await?;
    let mut state = Following {
        own: read_own(follower),
        others: None,
        feed: None,
        queue: VecDeque::new(),
        last: after.clone(),
    };
    if q.tasks.is_some_and(|t| t != "0") {
        let feed = TaskFeed::read(&s.store).await?;
        state.queue.push_back(tasks_item(&feed.whole(&after)));
        state.feed = Some(Some(feed));
        state.others = Some(TownEvents::new(&s.store, &s.target));
        state.follow_others(&s.store).await;
    }
    let items = stream::unfold((s, state), |(s, mut f)| async move {
        loop {
            if let Some(item) = f.queue.pop_front() {
                return Some((Ok::<_, Infallible>(item), (s, f)));
            }
            tokio::select! {
                read = f.own.recv() => match read {
                    Some(Ok(events)) => f.own_events(&s.store, events).await,
                    // The browser reconnects with the last id it got.
                    Some(Err(_)) | None => return None,
                },
                () = other_towns_moved(&mut f.others) => f.other_events(&s.store).await,
            }
        }
    });
    Ok(Sse::new(items).keep_alive(KeepAlive::default()))
}
