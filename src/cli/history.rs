//! `tt history`: the town's events stream, oldest first, one line each
//! (time, kind, task, agent, attempt, detail); `--follow` then waits for
//! new events and prints them as they come, until Ctrl-C.
//!
//! Times are UTC (RFC 3339), from the server clock the scripts read. The
//! stream is capped at about 100 000 events, so older ones are gone.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::cancel::{check_task_id, find_task};
use super::tasks::Town;
use super::{CliError, Context};
use crate::store::{Event, EventFollower, RedisTarget};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this task's events.
    #[arg(long)]
    task: Option<String>,
    /// After the history, wait for new events and print them (Ctrl-C stops).
    #[arg(long)]
    follow: bool,
    /// How many past events to show (the newest ones).
    #[arg(long, short = 'n', default_value_t = 100)]
    limit: usize,
    /// One JSON object per line (JSON Lines), also while following.
    #[arg(long)]
    json: bool,
    /// Write every event still in the stream (or of `--task`) to FILE as
    /// JSON Lines, oldest first: an audit log to commit next to tasks.toml.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["follow", "limit"])]
    export: Option<std::path::PathBuf>,
}

/// More than the stream ever holds (it is capped near 100 000).
const EVERYTHING: usize = 10_000_000;

/// How long one `XREAD BLOCK` waits before asking again: it only bounds
/// how long a dead connection goes unnoticed, nothing is polled.
pub(super) const BLOCK: Duration = Duration::from_secs(10);

/// Pause before reopening a dropped blocking connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The Redis that [`Context::store`] connects to, for the dedicated
/// blocking connection of a follow loop.
pub(super) fn follow_target(ctx: &Context) -> Result<RedisTarget, CliError> {
    let (_, url) = ctx.peek_town()?;
    Ok(ctx.target(url.as_deref()))
}

/// Waits for the next events; a dropped connection is reopened (the
/// stream keeps what arrived meanwhile), any other error ends the wait.
pub(super) async fn next_events(follower: &mut EventFollower) -> Result<Vec<Event>, CliError> {
    loop {
        match follower.next(BLOCK).await {
            Ok(events) => return Ok(events),
            Err(e) if e.is_connection_error() => {
                eprintln!("lost the connection to Redis ({e}); reconnecting…");
                tokio::time::sleep(RECONNECT_DELAY).await;
                match follower.reconnect().await {
                    Ok(()) => {}
                    Err(e) if e.is_connection_error() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    if let Some(task) = &args.task {
        check_task_id(task)?;
        let town = Town::new(store.tasks().await?);
        find_task(&town, &store, task)?;
    }
    if let Some(path) = &args.export {
        let (events, _) = store
            .recent_events(EVERYTHING, args.task.as_deref())
            .await?;
        let mut text = String::with_capacity(events.len() * 160);
        for e in &events {
            text.push_str(&event_json(e).to_string());
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|source| CliError::Io {
            what: format!("cannot write `{}`", path.display()),
            source,
        })?;
        println!("wrote {} events to {}", events.len(), path.display());
        return Ok(0);
    }
    let (events, last) = store
        .recent_events(args.limit, args.task.as_deref())
        .await?;
    if events.is_empty() && args.limit > 0 && !args.follow && !args.json {
        match &args.task {
            Some(t) => println!("no events of `{t}` yet"),
            None => println!("no events in town `{}` yet", store.town()),
        }
    }
    for e in &events {
        print_event(e, args.json);
    }
    if !args.follow {
        return Ok(0);
    }
    let mut follower = EventFollower::open(&store, &follow_target(ctx)?, &last).await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let events = tokio::select! {
            events = next_events(&mut follower) => events?,
            _ = &mut ctrl_c => return Ok(0),
        };
        for e in events
            .iter()
            .filter(|e| args.task.as_deref().is_none_or(|t| e.task == t))
        {
            print_event(e, args.json);
        }
    }
}

fn print_event(e: &Event, json: bool) {
    if json {
        println!("{}", event_json(e));
    } else {
        println!("{}", crate::escape::escape(&event_line(e)));
    }
}

/// `2026-11-03T10:00:01.234Z  dispatched  login  backend  #1  detail`
pub(super) fn event_line(e: &Event) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let attempt = match e.attempt.as_str() {
        "" | "0" => "-".to_string(),
        n => format!("#{n}"),
    };
    let line = format!(
        "{}  {:<10}  {:<16}  {:<12}  {:<3}  {}",
        time(e.at),
        e.kind,
        dash(&e.task),
        dash(&e.agent),
        attempt,
        detail(e)
    );
    line.trim_end().to_string()
}

fn time(at_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

/// The fields beyond the common five: a message as `from ann: body`, the
/// rest as `key=value`, quoted when the value has spaces.
fn detail(e: &Event) -> String {
    if e.kind == "message"
        && let Some(body) = e.field("body")
    {
        let from = e.field("from").unwrap_or("?");
        let urgent = if e.field("urgent") == Some("1") {
            " (urgent)"
        } else {
            ""
        };
        return format!("from {from}{urgent}: {}", super::output::short(body, 200));
    }
    e.extra
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let v = super::output::short(v, 120);
            if v.contains(' ') {
                format!("{k}={v:?}")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An event as one JSON object: stream id, the common fields (attempt and
/// `at` as numbers), an RFC 3339 `time`, and every other field.
pub(super) fn event_json(e: &Event) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(e.id));
    m.insert("kind".into(), json!(e.kind));
    m.insert("task".into(), json!(e.task));
    m.insert("agent".into(), json!(e.agent));
    m.insert("attempt".into(), json!(e.attempt.parse::<u64>().ok()));
    m.insert("at".into(), json!(e.at));
    m.insert("time".into(), json!(time(e.at)));
    for (k, v) in &e.extra {
        m.entry(k.clone()).or_insert_with(|| json!(v));
    }
    Value::Object(m)
}
