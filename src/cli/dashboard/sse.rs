//! `GET /api/events`: the town's event stream as server-sent events, one
//! `message` per event with its stream id as the SSE id and its JSON (as
//! `tt history --json` prints it) as data.
//!
//! A client that reconnects sends `Last-Event-ID` (browsers do it by
//! themselves) and gets every event after it; `?after=<id>` does the same
//! for a first connection. Without either, it starts with what happens
//! next. A dropped Redis connection is opened again without ending the
//! response.

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
use crate::cli::CliError;
use crate::store::{Event, EventFollower, stream_position};

/// How long one blocking read waits: it bounds how long a dead Redis
/// connection goes unnoticed; the keep-alive comments keep proxies and
/// browsers from timing out meanwhile.
const BLOCK: Duration = Duration::from_secs(5);

/// Pause before a dropped Redis connection is opened again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(serde::Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
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
    let items = stream::unfold(
        (follower, VecDeque::<Event>::new()),
        |(mut follower, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    let item = SseEvent::default()
                        .id(e.id.clone())
                        .data(e.to_json().to_string());
                    return Some((Ok::<_, Infallible>(item), (follower, queue)));
                }
                match follower.next(BLOCK).await {
                    Ok(events) => queue.extend(events),
                    Err(e) if e.is_connection_error() => {
                        tokio::time::sleep(RECONNECT_DELAY).await;
                    }
                    // The browser reconnects with the last id it got.
                    Err(_) => return None,
                }
            }
        },
    );
    Ok(Sse::new(items).keep_alive(KeepAlive::default()))
}
