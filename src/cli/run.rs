//! `tt run`: the live runner, and how its progress is printed.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::dashboard::{self, Dashboard};
use super::live::{self, Screen};
use super::{CliError, Context, output};
use crate::Status;
use crate::escape::escape;
use crate::runner::{self, AgentNote, Options, RunSummary, RunnerNote};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exit when nothing is pending, assigned or running: 0 if every task
    /// completed, 1 if any failed or can never run.
    #[arg(long)]
    until_done: bool,
    /// Do not start the agents declared in `[agents]` (run them elsewhere
    /// with `tt agent <name>`).
    #[arg(long)]
    no_agents: bool,
    /// If another runner holds the town, wait for it instead of exiting.
    #[arg(long)]
    wait: bool,
    /// At shutdown (Ctrl-C, SIGTERM), how long agents get to stop their
    /// commands before they are killed, like `10s` or `1m`.
    #[arg(long, default_value = "10s", value_parser = super::time::duration_arg)]
    grace: std::time::Duration,
    /// Serve the dashboard too (`tt dashboard`), on ADDR (default
    /// 127.0.0.1:7777; port 0 picks a free one). Its URL is the first line.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = super::dashboard::DEFAULT_ADDR)]
    dashboard: Option<std::net::SocketAddr>,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let plan = ctx.load_plan()?;
    let town = ctx.town(plan.town.name.as_deref());
    let target = ctx.target(plan.town.redis_url.as_deref());
    output::print_warnings(&plan.warnings);
    let (usage_target, usage_town) = (target.clone(), town.clone());
    let opts = Options {
        file: ctx.file.clone(),
        project_dir: ctx.project_dir.clone(),
        town,
        target,
        until_done: args.until_done,
        no_agents: args.no_agents,
        wait: args.wait,
        grace: args.grace,
    };
    let dashboard = match args.dashboard {
        Some(addr) => {
            let store = crate::store::Store::open(&opts.target, &opts.town).await?;
            let d = Dashboard::bind(ctx.clone(), store, opts.target.clone(), addr, false).await?;
            dashboard::announce(&d);
            Some(tokio::spawn(d.serve()))
        }
        None => None,
    };
    let file_name = plan.file_name();
    let tty = std::io::stdout().is_terminal();
    let screen = Arc::new(Mutex::new(Screen::default()));
    let dirty = Arc::new(Notify::new());
    let drawer = if tty {
        // Its own connection, so drawing never delays dispatch.
        let store = crate::store::Store::open(&opts.target, &opts.town).await?;
        Some(tokio::spawn(live::keep_drawing(
            store,
            screen.clone(),
            dirty.clone(),
        )))
    } else {
        None
    };
    let print = |line: String| match screen.lock() {
        Ok(mut s) if tty => s.line(&line),
        _ => println!("{}", escape(&line)),
    };
    // Handed over, not kept: a 100k-task plan is tens of MiB the runner
    // drops once it is in Redis (README "Performance").
    let summary = runner::run(opts, plan, |r| {
        // A new question rings the terminal's bell once: someone is needed.
        let bell = tty && matches!(&r, RunnerNote::Event(e) if e.kind == "asked");
        if let Some(line) = report_line(&file_name, r) {
            print(line);
        }
        if bell {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\x07");
            let _ = out.flush();
        }
        dirty.notify_one();
    })
    .await;
    if let Some(d) = drawer {
        d.abort();
    }
    if let Some(d) = dashboard {
        d.abort();
    }
    if let Ok(mut s) = screen.lock() {
        s.finish();
    }
    let summary = summary?;
    print_summary(&summary);
    print_usage(&usage_target, &usage_town).await;
    if summary.interrupted || !args.until_done {
        return Ok(0);
    }
    Ok(if summary.failed.is_empty() && summary.stuck.is_empty() {
        0
    } else {
        1
    })
}

fn time() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The line a report prints on stdout, if any (problems go to stderr here).
fn report_line(file: &str, r: RunnerNote) -> Option<String> {
    let what = match r {
        RunnerNote::Started {
            town,
            counts,
            agents,
        } => {
            format!("town `{town}`: {file}: {counts}; {agents} agent(s) declared")
        }
        RunnerNote::Reloaded(c) if c.restored > 0 => format!(
            "reloaded {file}: +{} ~{} -{}; {} restored (their records were missing from Redis)",
            c.added, c.changed, c.removed, c.restored
        ),
        RunnerNote::Reloaded(c) => format!(
            "reloaded {file}: +{} ~{} -{}",
            c.added, c.changed, c.removed
        ),
        RunnerNote::Invalid(e) => {
            eprintln!(
                "{} {file} is invalid; the last good plan keeps running",
                time()
            );
            output::print_load_error(e);
            return None;
        }
        RunnerNote::Migrated(m) => super::migrate::describe(&m),
        RunnerNote::FileGone => format!("{file} is gone; the last good plan keeps running"),
        RunnerNote::Event(e) => match e.kind.as_str() {
            "dispatched" => format!(
                "dispatched {} to {} (attempt {})",
                e.task,
                if e.agent.is_empty() {
                    "the backlog"
                } else {
                    &e.agent
                },
                e.attempt
            ),
            "started" => format!("started {} on {} (attempt {})", e.task, e.agent, e.attempt),
            "completed" => format!("completed {} on {}{}", e.task, e.agent, reported(&e)),
            "failed" => format!(
                "FAILED {} on {} ({}){}",
                e.task,
                e.agent,
                why_it_failed(&e),
                reported(&e)
            ),
            "retried" => format!(
                "{} failed on {} ({}); retrying{}",
                e.task,
                e.agent,
                why_it_failed(&e),
                reported(&e)
            ),
            // Fenced attempts are requeued too: the event says why.
            "requeued" => match e.field("reason").filter(|r| !r.is_empty()) {
                Some(why) => format!(
                    "requeued {} ({})",
                    e.task,
                    why.strip_prefix("requeued: ").unwrap_or(why)
                ),
                None => format!("requeued {} (its worker {} died)", e.task, e.agent),
            },
            "cancelled" => format!("cancelled {}", e.task),
            "removed" => format!("removed {} from the plan", e.task),
            "changed" if e.field("from").is_some() => format!(
                "{} is now {} ({})",
                e.task,
                e.field("status").unwrap_or("?"),
                e.field("reason").unwrap_or("")
            ),
            "rejected" => format!("rejected a stale report for {} from {}", e.task, e.agent),
            "asked" => format!(
                "QUESTION from {} on {}: {} — `tt answer {} …`",
                e.agent,
                e.task,
                e.field("question").unwrap_or(""),
                e.task
            ),
            "answered" => format!("answered {}: {}", e.task, e.field("answer").unwrap_or("")),
            "unasked" => format!(
                "question on {} withdrawn ({})",
                e.task,
                e.field("reason").unwrap_or("")
            ),
            "progress" => format!(
                "{} on {}: {}",
                e.task,
                e.agent,
                e.field("progress").unwrap_or("")
            ),
            "corrupt" => format!(
                "FAILED {}: {} (not run)",
                e.task,
                e.field("reason").unwrap_or("corrupt record")
            ),
            "message" if e.agent != super::lookup::SUPERVISOR => {
                format!("message for {}: {}", e.agent, e.field("body").unwrap_or(""))
            }
            _ => return None,
        },
        RunnerNote::Agent(note) => match note {
            AgentNote::Started { id, pid } => format!("agent {id} started (pid {pid})"),
            AgentNote::Exited {
                id,
                status,
                restart_in: Some(d),
            } => {
                format!(
                    "agent {id} exited ({status}); restarting in {:.1}s",
                    d.as_secs_f32()
                )
            }
            AgentNote::Exited {
                id,
                status,
                restart_in: None,
            } => format!("agent {id} stopped ({status})"),
            AgentNote::CannotStart {
                id,
                agent,
                why,
                retry_in,
            } => format!(
                "agent {id} cannot start: {why} (tasks of `{agent}` wait; trying again in {}s)",
                retry_in.as_secs()
            ),
            AgentNote::SpawnFailed { id, error } => {
                eprintln!("{} agent {id}: {}", time(), escape(&error.to_string()));
                return None;
            }
        },
        RunnerNote::Corrupt { task, what } => {
            eprintln!(
                "{} task {task} is not run until its record is fixed: {what}",
                time()
            );
            return None;
        }
        RunnerNote::ArchiveFailed(e) => {
            eprintln!(
                "{} cannot archive old events (the stream's cap may trim them): {e}",
                time()
            );
            return None;
        }
        RunnerNote::RedisTrouble { doing, error } => {
            eprintln!(
                "{} Redis trouble: {doing} failed, retrying: {}",
                time(),
                escape(&error.to_string())
            );
            return None;
        }
        RunnerNote::LeaseRepaired(note) => {
            eprintln!("{} {note}", time());
            return None;
        }
        RunnerNote::Message(m) => format!("message to supervisor from {m}"),
        RunnerNote::BudgetReached(why) => why,
        RunnerNote::Remote(note) => note.to_string(),
        RunnerNote::WaitingForLease(holder) => {
            format!("waiting for the runner lease held by {holder}")
        }
        RunnerNote::Recovered(r) => format!(
            "worker {} is dead: {} task(s) requeued, {} message(s) returned",
            r.worker, r.requeued, r.returned
        ),
    };
    Some(format!("{} {what}", time()))
}

/// How an attempt failed, from its `failed` or `retried` event: its exit
/// code, or the reason when there is none (a timeout, a program that could
/// not start).
fn why_it_failed(e: &crate::store::Event) -> String {
    match (
        e.field("exit_code").filter(|c| !c.is_empty()),
        e.field("reason").filter(|r| !r.is_empty()),
    ) {
        // A reason beyond the exit code (the agent's output reported an
        // error, went over budget) says more than the code.
        (Some(code), Some(reason)) if !reason.starts_with("exited with code") => {
            format!("exit {code}: {reason}")
        }
        (Some(code), _) => format!("exit {code}"),
        (None, Some(reason)) => reason.to_string(),
        (None, None) => "no exit code".into(),
    }
}

/// What the attempt's agent reported, for its line: ` — $0.04, session
/// …: <the first line of its result>`; empty when it reported nothing.
fn reported(e: &crate::store::Event) -> String {
    let Some(facts) = e.field("facts").map(crate::store::parse_facts) else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(c) = facts.get("cost_usd").and_then(|v| v.as_f64()) {
        parts.push(crate::agent::budget::usd(c));
    }
    let tokens = |k: &str| facts.get(k).and_then(|v| v.as_u64());
    if let (Some(i), Some(o)) = (tokens("input_tokens"), tokens("output_tokens")) {
        parts.push(format!("{i} in / {o} out tokens"));
    }
    if let Some(s) = facts.get("session").and_then(|v| v.as_str()) {
        parts.push(format!("session {s}"));
    }
    let result = facts
        .get("result")
        .and_then(|v| v.as_str())
        .and_then(|r| r.lines().find(|l| !l.trim().is_empty()))
        .map(|l| output::short(l, 100));
    match (parts.is_empty(), result) {
        (true, None) => String::new(),
        (true, Some(r)) => format!(" — {r}"),
        (false, None) => format!(" — {}", parts.join(", ")),
        (false, Some(r)) => format!(" — {}: {r}", parts.join(", ")),
    }
}

/// The town's spending after a run, when its agents reported any.
async fn print_usage(target: &crate::store::RedisTarget, town: &str) {
    let Ok(store) = crate::store::Store::open(target, town).await else {
        return;
    };
    let Ok(u) = store.usage().await else {
        return;
    };
    if u.total.attempts == 0 {
        return;
    }
    let one = |t: &crate::store::Totals| {
        format!(
            "{}, {} in / {} out tokens",
            crate::agent::budget::usd(t.cost_usd),
            t.input_tokens,
            t.output_tokens
        )
    };
    let agents: Vec<String> = u
        .agents
        .iter()
        .map(|(name, t)| format!("{name} {}", one(t)))
        .collect();
    println!(
        "{} spent: {} over {} attempt(s){}",
        time(),
        one(&u.total),
        u.total.attempts,
        if agents.is_empty() {
            String::new()
        } else {
            format!(" ({})", agents.join("; "))
        }
    );
}

fn print_summary(s: &RunSummary) {
    let n = |st: Status| s.counts.get(&st).copied().unwrap_or(0);
    println!(
        "{} summary: {} completed, {} failed, {} cancelled, {} pending, {} queued, {} running{}",
        time(),
        n(Status::Completed),
        n(Status::Failed),
        n(Status::Cancelled),
        n(Status::Pending),
        n(Status::Assigned),
        n(Status::Running),
        if s.interrupted { " (interrupted)" } else { "" }
    );
    if !s.failed.is_empty() {
        println!("failed: {}", s.failed.join(", "));
    }
    if !s.interrupted {
        for (id, why) in &s.stuck {
            println!("not run: {id} — {}", escape(why));
        }
    }
}
