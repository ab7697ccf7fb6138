//! The town's events as the commands read them: the whole history (the
//! archive under `.tt/events/`, then the stream) for `tt history` and
//! `tt task`, and the live follow for `tt history --follow` and
//! `tt status --watch`, which outlives a dropped connection.

use std::time::Duration;

use super::{CliError, Context};
use crate::store::{
    Archive, Event, EventFollower, HistoryLoss, RedisTarget, Store, stream_position,
};

/// More than the stream ever holds (it is capped near 100 000).
const EVERYTHING: usize = 10_000_000;

/// How long one `XREAD BLOCK` waits before asking again: it only bounds
/// how long a dead connection goes unnoticed, nothing is polled.
const BLOCK: Duration = Duration::from_secs(10);

/// Pause before a dropped blocking connection is opened again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The Redis that [`Context::store`] connects to, for the dedicated
/// blocking connection of a follow loop.
pub(super) fn follow_target(ctx: &Context) -> Result<RedisTarget, CliError> {
    let (_, url) = ctx.peek_town()?;
    Ok(ctx.target(url.as_deref()))
}

/// Waits for the next events; a dropped connection is opened again by the
/// next read (the stream keeps what arrived meanwhile), any other error
/// ends the wait.
pub(super) async fn next_events(follower: &mut EventFollower) -> Result<Vec<Event>, CliError> {
    loop {
        match follower.next(BLOCK).await {
            Ok(events) => return Ok(events),
            Err(e) if e.is_connection_error() => {
                eprintln!("lost the connection to Redis ({e}); reconnecting…");
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The town's whole history (of `task`, if given), oldest first: the
/// archive under `.tt/events/` (what a runner moved out of the capped
/// stream), then the stream, skipping what the archive already holds; and
/// how many events are gone.
pub(super) async fn full_history(
    ctx: &Context,
    store: &Store,
    task: Option<&str>,
) -> Result<(Vec<Event>, HistoryLoss), CliError> {
    let archive = Archive::of(&ctx.project_dir, store.town());
    let mut events = archive.read(task)?;
    let (stream, _) = store.recent_events(EVERYTHING, task).await?;
    append_after(&mut events, stream);
    Ok((events, store.history_loss().await?))
}

/// Appends `newer` to `events`, leaving out what `events` already ends
/// with (archived, and not yet trimmed from the stream).
pub(super) fn append_after(events: &mut Vec<Event>, newer: Vec<Event>) {
    let last = events.last().and_then(|e| stream_position(&e.id));
    events.extend(
        newer
            .into_iter()
            .filter(|e| last.is_none_or(|l| stream_position(&e.id).is_some_and(|i| i > l))),
    );
}
