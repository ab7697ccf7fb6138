//! `tt history`: the town's events stream, oldest first, one line each
//! (time, kind, task, agent, attempt, detail); `--follow` then waits for
//! new events and prints them as they come, until Ctrl-C.
//!
//! Times are UTC (RFC 3339), from the server clock the scripts read. The
//! stream is capped at about 100 000 events; `tt run` moves older ones into
//! the archive under `.tt/events/` ([`crate::store::Archive`]), which
//! `--export`, `--task` and a `--limit` longer than the stream read too.
//! Events the cap trimmed before anyone archived them are counted and
//! said to be gone.

use serde_json::Value;

use super::feed::{append_after, follow_target, full_history, next_events};
use super::lookup::{check_task_id, find_task};
use super::task_view::TaskView;
use super::{CliError, Context};
use crate::store::{Archive, Event, EventFollower, HistoryLoss};

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

/// What to say about events that are gone, if any are.
fn loss_note(loss: HistoryLoss) -> Option<String> {
    match loss.trimmed {
        Some(0) => None,
        Some(n) => Some(format!(
            "{n} older events were trimmed by the events stream's cap (about 100,000) \
             before a `tt run` archived them: they are gone"
        )),
        None => None,
    }
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    if let Some(task) = &args.task {
        check_task_id(task)?;
        let town = TaskView::new(store.tasks().await?);
        find_task(&town, &store, task)?;
    }
    if let Some(path) = &args.export {
        let (events, loss) = full_history(ctx, &store, args.task.as_deref()).await?;
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
        if let Some(note) = loss_note(loss) {
            eprintln!("warning: {note}; they are not in the export");
        }
        return Ok(0);
    }
    let (mut events, last) = store
        .recent_events(args.limit, args.task.as_deref())
        .await?;
    if events.len() < args.limit {
        // The rest may be in the archive.
        let archive = Archive::of(&ctx.project_dir, store.town());
        let mut older = archive.read(args.task.as_deref())?;
        append_after(&mut older, std::mem::take(&mut events));
        events = older.split_off(older.len().saturating_sub(args.limit));
        if events.len() < args.limit
            && !args.json
            && let Some(note) = loss_note(store.history_loss().await?)
        {
            println!("({note})");
        }
    }
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
        crate::store::event_time(e.at),
        e.kind,
        dash(&e.task),
        dash(&e.agent),
        attempt,
        detail(e)
    );
    line.trim_end().to_string()
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

/// An event as one JSON object ([`Event::to_json`]).
pub(super) fn event_json(e: &Event) -> Value {
    e.to_json()
}
