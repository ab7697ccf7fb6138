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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream;

use super::api::ApiError;
use super::server::Shared;
use super::task_feed::TaskFeed;
use crate::cli::CliError;
use crate::store::{EventFollower, stream_position};

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
    follower: EventFollower,
    /// `Some` with `?tasks=1`; the inner `None` after an error, so that
    /// the next batch reads the town again and sends it whole.
    feed: Option<Option<TaskFeed>>,
    queue: VecDeque<SseEvent>,
}

fn tasks_item(v: &serde_json::Value) -> SseEvent {
    SseEvent::default().event("tasks").data(v.to_string())
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
    let mut queue = VecDeque::new();
    let feed = if q.tasks.is_some_and(|t| t != "0") {
        let feed = TaskFeed::read(&s.store).await?;
        queue.push_back(tasks_item(&feed.whole(&after)));
        Some(Some(feed))
    } else {
        None
    };
    let state = Following {
        follower,
        feed,
        queue,
    };
    let items = stream::unfold((s, state), |(s, mut f)| async move {
        loop {
            if let Some(item) = f.queue.pop_front() {
                return Some((Ok::<_, Infallible>(item), (s, f)));
            }
            let events = match f.follower.next(BLOCK).await {
                Ok(events) => events,
                Err(e) if e.is_connection_error() => {
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
                // The browser reconnects with the last id it got.
                Err(_) => return None,
            };
            for e in &events {
                f.queue.push_back(
                    SseEvent::default()
                        .id(e.id.clone())
                        .data(e.to_json().to_string()),
                );
            }
            let Some(feed) = &mut f.feed else { continue };
            let Some(after) = events.last().map(|e| e.id.clone()) else {
                continue;
            };
            let update = match feed {
                Some(current) => current.follow(&s.store, &events).await,
                None => match TaskFeed::read(&s.store).await {
                    Ok(fresh) => {
                        let whole = fresh.whole(&after);
                        *feed = Some(fresh);
                        Ok(Some(whole))
                    }
                    Err(e) => Err(e),
                },
            };
            match update {
                Ok(Some(v)) => f.queue.push_back(tasks_item(&v)),
                Ok(None) => {}
                // Read whole with the next batch.
                Err(_) => *feed = None,
            }
        }
    });
    Ok(Sse::new(items).keep_alive(KeepAlive::default()))
}
