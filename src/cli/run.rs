//! `tt run`: the live runner, and how its progress is printed.

use std::io::IsTerminal;

use super::{CliError, Context, output};
use crate::Status;
use crate::runner::{self, AgentNote, Options, Report, Summary};

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
    #[arg(long, default_value = "10s", value_parser = parse_grace)]
    grace: std::time::Duration,
}

fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    crate::plan::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration (try `10s` or `1m`)"))
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let plan = ctx.load_plan()?;
    let town = ctx.town(plan.town.name.as_deref());
    let target = ctx.target(plan.town.redis_url.as_deref());
    for w in &plan.warnings {
        output::print_diagnostic(w.clone());
    }
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
    let file_name = plan.file_name();
    let tty = std::io::stdout().is_terminal();
    let summary = runner::run(opts, |r| print_report(&file_name, tty, r)).await?;
    print_summary(&summary);
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

fn print_report(file: &str, _tty: bool, r: Report) {
    match r {
        Report::Started {
            town,
            counts,
            agents,
        } => {
            println!(
                "{} town `{town}`: {file}: {counts}; {agents} agent(s) declared",
                time()
            );
        }
        Report::Reloaded(c) => println!(
            "{} reloaded {file}: +{} ~{} -{}",
            time(),
            c.added,
            c.changed,
            c.removed
        ),
        Report::Invalid(e) => {
            eprintln!(
                "{} {file} is invalid; the last good plan keeps running",
                time()
            );
            output::print_diagnostic(e);
        }
        Report::FileGone => println!(
            "{} {file} is gone; the last good plan keeps running",
            time()
        ),
        Report::Event(e) => {
            let what = match e.kind.as_str() {
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
                "completed" => format!("completed {} on {}", e.task, e.agent),
                "failed" => format!(
                    "FAILED {} on {} (exit {})",
                    e.task,
                    e.agent,
                    e.field("exit_code").unwrap_or("?")
                ),
                "retried" => format!("{} failed on {}; retrying", e.task, e.agent),
                "cancelled" => format!("cancelled {}", e.task),
                "removed" => format!("removed {} from the plan", e.task),
                "changed" if e.field("from").is_some() => format!(
                    "{} is now {} ({})",
                    e.task,
                    e.field("status").unwrap_or("?"),
                    e.field("reason").unwrap_or("")
                ),
                "rejected" => format!("rejected a stale report for {} from {}", e.task, e.agent),
                "message" if e.agent != "supervisor" => {
                    format!("message for {}: {}", e.agent, e.field("body").unwrap_or(""))
                }
                _ => return,
            };
            println!("{} {what}", time());
        }
        Report::Agent(note) => match note {
            AgentNote::Started { id, pid } => println!("{} agent {id} started (pid {pid})", time()),
            AgentNote::Exited {
                id,
                status,
                restart_in,
            } => match restart_in {
                Some(d) => println!(
                    "{} agent {id} exited ({status}); restarting in {:.1}s",
                    time(),
                    d.as_secs_f32()
                ),
                None => println!("{} agent {id} stopped", time()),
            },
            AgentNote::SpawnFailed { id, error } => eprintln!("{} agent {id}: {error}", time()),
        },
        Report::Message(m) => println!("{} message to supervisor from {m}", time()),
        Report::WaitingForLease(holder) => {
            println!("{} waiting for the runner lease held by {holder}", time())
        }
        Report::Recovered(r) => println!(
            "{} worker {} is dead: {} task(s) requeued, {} message(s) returned",
            time(),
            r.worker,
            r.requeued,
            r.returned
        ),
        Report::Progress(_) => {}
    }
}

fn print_summary(s: &Summary) {
    let n = |st: Status| s.counts.get(&st).copied().unwrap_or(0);
    println!(
        "{} summary: {} completed, {} failed, {} cancelled, {} pending, {} running{}",
        time(),
        n(Status::Completed),
        n(Status::Failed),
        n(Status::Cancelled),
        n(Status::Pending),
        n(Status::Running) + n(Status::Assigned),
        if s.interrupted { " (interrupted)" } else { "" }
    );
    if !s.failed.is_empty() {
        println!("failed: {}", s.failed.join(", "));
    }
    if !s.interrupted {
        for (id, why) in &s.stuck {
            println!("not run: {id} — {why}");
        }
    }
}
