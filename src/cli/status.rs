//! `tt status`: the town at a glance — task counts (groups derived from
//! their children), group progress, workers, the runner, and why pending
//! tasks wait, all from the same graph dispatch uses.
//!
//! `--watch` redraws whenever an event arrives: it blocks on the events
//! stream (`XREAD BLOCK`), it does not poll. Heartbeat ages and expired
//! heartbeats produce no event, so a quiet town is also redrawn each time
//! a blocking read of [`super::feed`] times out. The events of the other
//! towns this town's tasks depend on (`<town>:<task>`) redraw too: a
//! dependant's wait changes when they do.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::agent_view::{agent_json, current_task};
use super::attention::Attention;
use super::feed::{follow_target, next_events};
use super::task_view::TaskView;
use super::time::{ago, duration};
use super::{CliError, Context, output};
use crate::Status;
use crate::agent::budget::usd;
use crate::crosstown::{self, Cycle, TownEvents};
use crate::graph::{Readiness, Wait};
use crate::store::{AgentInfo, EventFollower, LIGHT_FIELDS, RunnerLease, Store, Totals, Usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Redraw whenever something happens, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// Print one JSON object (with `--watch`, one line per redraw).
    #[arg(long)]
    json: bool,
}

/// Waiting tasks listed in text; the rest are counted.
const WAITING_SHOWN: usize = 20;

/// Least time between two `--watch` drawings: a burst of events (a reload,
/// a dispatch wave) is read as one batch after it, not redrawn per event —
/// each drawing reads every task.
const MIN_REDRAW: Duration = Duration::from_millis(250);

/// Everything one drawing of `tt status` needs, read at one moment (also
/// the dashboard's `GET /api/town`).
pub(super) struct Overview {
    town: String,
    now: u64,
    tasks: TaskView,
    agents: Vec<AgentInfo>,
    runner: Option<RunnerLease>,
    usage: Usage,
    attention: Attention,
    /// Cycles of waits through this town and others (`a:x` → `b:y` → `a:x`).
    cycles: Vec<Cycle>,
}

impl Overview {
    pub(super) async fn read(store: &Store) -> Result<Self, CliError> {
        // Counts, progress and readiness only: no text is read, except of
        // the few tasks that need a person or run.
        let mut tasks = TaskView::new(store.tasks_with(&LIGHT_FIELDS).await?);
        let mut towns = tasks.read_other_towns(store).await?;
        let cycles = crosstown::cycle::find(store, store.town(), &tasks.graph, &mut towns).await?;
        Ok(Overview {
            cycles,
            town: store.town().to_string(),
            now: store.now_ms().await?,
            attention: Attention::read(store, &tasks).await?,
            tasks,
            agents: store.agents().await?,
            runner: store.runner_lease().await?,
            usage: store.usage().await?,
        })
    }

    fn count(&self, s: Status) -> usize {
        (0..self.tasks.records.len())
            .filter(|&i| self.tasks.graph.status(i) == s)
            .count()
    }

    fn ready(&self) -> usize {
        (0..self.tasks.records.len())
            .filter(|&i| self.tasks.graph.readiness(i) == Readiness::Ready)
            .count()
    }

    fn groups(&self) -> Vec<usize> {
        (0..self.tasks.records.len())
            .filter(|&i| self.tasks.graph.is_group(i))
            .collect()
    }

    /// Pending tasks that wait, with why, in dispatch order. A group
    /// without an agent is left out: it never runs, its progress says all.
    fn waiting(&self) -> Vec<(usize, Wait)> {
        let g = &self.tasks.graph;
        let mut ids: Vec<usize> = (0..self.tasks.records.len()).collect();
        g.sort_dispatch_order(&mut ids);
        ids.into_iter()
            .filter_map(|i| match g.readiness(i) {
                Readiness::Waiting(Wait::GroupWithoutAgent) => None,
                Readiness::Waiting(w) => Some((i, w)),
                _ => None,
            })
            .collect()
    }

    /// Why a task waits, in words; a wait on a corrupt record says so
    /// (the graph counts such a record as failed).
    fn why(&self, w: &Wait) -> String {
        if let Wait::Blocked { task, .. } = w
            && let Some(j) = self.tasks.graph.index_of(task)
            && self.tasks.records[j].corrupt.is_some()
        {
            return format!("blocked: {task} has a corrupt record (see below)");
        }
        w.to_string()
    }

    /// Records that hold what tt never writes, with what is wrong.
    fn corrupt(&self) -> Vec<(&str, &str)> {
        self.tasks
            .records
            .iter()
            .filter_map(|r| Some((r.id.as_str(), r.corrupt.as_deref()?)))
            .collect()
    }

    /// What `tt status --json` prints.
    pub(super) fn json(&self) -> Value {
        let g = &self.tasks.graph;
        let counts: serde_json::Map<String, Value> = Status::ALL
            .iter()
            .map(|&s| (s.as_str().to_string(), json!(self.count(s))))
            .collect();
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|i| {
                let p = g.progress(i);
                json!({
                    "id": self.tasks.records[i].id,
                    "status": g.status(i),
                    "completed": p.completed,
                    "failed": p.failed,
                    "running": p.running,
                    "queued": p.queued,
                    "total": p.total,
                })
            })
            .collect();
        let waiting: Vec<Value> = self
            .waiting()
            .into_iter()
            .map(|(i, w)| json!({ "id": self.tasks.records[i].id, "reason": self.why(&w) }))
            .collect();
        json!({
            "town": self.town,
            "needs_you": self.attention.json(self.now),
            "tasks": self.tasks.records.len(),
            "counts": counts,
            "ready": self.ready(),
            "groups": groups,
            "agents": self.agents.iter().map(|a| agent_json(a, self.now)).collect::<Vec<_>>(),
            "runner": self.runner,
            "usage": self.usage,
            "budget_reached": self.usage.budget_reached(),
            "waiting": waiting,
            "cycles": self.cycles.iter().map(|c| &c.0).collect::<Vec<_>>(),
            "corrupt": self
                .corrupt()
                .into_iter()
                .map(|(id, what)| json!({ "id": id, "problem": what }))
                .collect::<Vec<_>>(),
        })
    }

    fn text(&self) -> String {
        let g = &self.tasks.graph;
        let mut out = format!("town {} · {} tasks\n", self.town, self.tasks.records.len());
        if self.tasks.records.is_empty() {
            out.push_str("  no tasks yet — `tt sync push` or `tt run` loads tasks.toml\n");
        } else {
            let counts: Vec<String> = Status::ALL
                .iter()
                .map(|&s| format!("{s} {}", self.count(s)))
                .collect();
            out.push_str(&format!("  {}\n", counts.join(" · ")));
            // What the runner would send next, in its order: the same
            // readiness function and ordering dispatch uses.
            let next = self.tasks.graph.ready();
            if !next.is_empty() {
                let ids: Vec<&str> = next
                    .iter()
                    .take(10)
                    .map(|&i| self.tasks.records[i].id.as_str())
                    .collect();
                let more = next.len().saturating_sub(ids.len());
                let tail = if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "  {} ready to dispatch, in order: {}{tail}\n",
                    next.len(),
                    ids.join(", ")
                ));
            }
        }
        out.push_str(&format!("runner  {}\n", self.runner_text(self.ready() > 0)));
        if !self.attention.is_empty() {
            out.push_str("\nneeds you\n");
            out.push_str(&rows_text(&self.attention.rows(self.now)));
        }

        let groups = self.groups();
        if !groups.is_empty() {
            out.push_str("\ngroups\n");
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|&i| {
                    let p = g.progress(i);
                    let mut more = Vec::new();
                    if p.running > 0 {
                        more.push(format!("{} running", p.running));
                    }
                    if p.queued > 0 {
                        more.push(format!("{} queued", p.queued));
                    }
                    if p.failed > 0 {
                        more.push(format!("{} failed", p.failed));
                    }
                    let more = if more.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", more.join(", "))
                    };
                    vec![
                        self.tasks.records[i].id.clone(),
                        format!("{}/{} done{more}", p.completed, p.total),
                        g.status(i).to_string(),
                    ]
                })
                .collect();
            out.push_str(&rows_text(&rows));
        }

        out.push_str("\nagents\n");
        if self.agents.is_empty() {
            out.push_str("  none registered\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .agents
                .iter()
                .map(|a| {
                    vec![
                        a.id.clone(),
                        a.state.clone(),
                        current_task(a),
                        a.heartbeat.map_or_else(
                            || "no heartbeat".into(),
                            |h| format!("heartbeat {}", ago(self.now, h)),
                        ),
                        self.attention
                            .progress_of(&a.id)
                            .unwrap_or_default()
                            .to_string(),
                    ]
                })
                .collect();
            out.push_str(&rows_text(&rows));
        }

        out.push_str(&usage_text(&self.usage));

        let waiting = self.waiting();
        if !waiting.is_empty() {
            out.push_str("\nwaiting\n");
            let rows: Vec<Vec<String>> = waiting
                .iter()
                .take(WAITING_SHOWN)
                .map(|(i, w)| vec![self.tasks.records[*i].id.clone(), self.why(w)])
                .collect();
            out.push_str(&rows_text(&rows));
            if waiting.len() > WAITING_SHOWN {
                out.push_str(&format!(
                    "  … and {} more (`tt tasks --status pending`)\n",
                    waiting.len() - WAITING_SHOWN
                ));
            }
        }
        if !self.cycles.is_empty() {
            out.push_str(
                "\nwarning: dependency cycle across towns (these tasks wait for each other \
                 and never run: remove one `depends_on` in the cycle)\n",
            );
            for c in &self.cycles {
                out.push_str(&format!("  {c}\n"));
            }
        }
        let corrupt = self.corrupt();
        if !corrupt.is_empty() {
            out.push_str(
                "\ncorrupt records (not run, their dependants wait: fix the field with \
                 `redis-cli`, or delete the key and `tt sync push` writes it again)\n",
            );
            let rows: Vec<Vec<String>> = corrupt
                .iter()
                .map(|(id, what)| vec![id.to_string(), what.to_string()])
                .collect();
            out.push_str(&rows_text(&rows));
        }
        out
    }

    fn runner_text(&self, work_waits: bool) -> String {
        let Some(r) = &self.runner else {
            return if work_waits {
                "none — start `tt run` to dispatch ready tasks".into()
            } else {
                "none".into()
            };
        };
        // `tt run` names itself `<host>:<pid>`: say it once, readably.
        let mut s = match (&r.host, r.pid) {
            (Some(h), Some(p)) => format!("pid {p} on {h}"),
            _ if r.id.is_empty() => "?".to_string(),
            _ => r.id.clone(),
        };
        if let Some(since) = r.since {
            s.push_str(&format!(
                ", for {}",
                duration(self.now.saturating_sub(since))
            ));
        }
        s
    }
}

/// What the agents spent, overall and per agent, and the town's budget;
/// nothing before any attempt reported usage.
fn usage_text(u: &Usage) -> String {
    let mut out = String::new();
    if u.total.attempts == 0 && u.max_cost_usd.is_none() {
        return out;
    }
    out.push_str("\nusage\n");
    let mut rows = vec![totals_row("town", &u.total)];
    rows.extend(u.agents.iter().map(|(name, t)| totals_row(name, t)));
    out.push_str(&rows_text(&rows));
    if let Some(max) = u.max_cost_usd {
        if u.budget_reached() {
            out.push_str(&format!(
                "  town budget reached: {} of {} — no new attempts are dispatched \
                 (raise `[town] max_cost_usd` to go on)\n",
                usd(u.total.cost_usd),
                usd(max)
            ));
        } else {
            out.push_str(&format!(
                "  town budget: {} of {} spent\n",
                usd(u.total.cost_usd),
                usd(max)
            ));
        }
    }
    out
}

fn totals_row(name: &str, t: &Totals) -> Vec<String> {
    let mut tokens = format!("{} in / {} out tokens", t.input_tokens, t.output_tokens);
    if t.cache_read_tokens > 0 || t.cache_write_tokens > 0 {
        tokens.push_str(&format!(
            " (cache {} read, {} written)",
            t.cache_read_tokens, t.cache_write_tokens
        ));
    }
    vec![
        name.to_string(),
        usd(t.cost_usd),
        tokens,
        format!("{} attempt(s)", t.attempts),
    ]
}

/// Rows as aligned columns, indented, without a header.
fn rows_text(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let header = vec![""; cols];
    output::table(&header, rows)
        .lines()
        .skip(1)
        .map(|l| format!("  {l}\n"))
        .collect()
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    if !args.watch {
        draw(&Overview::read(&store).await?, args.json);
        return Ok(0);
    }
    // Follow from the newest event *before* the first drawing, so nothing
    // that happens while drawing goes unseen.
    let (_, last) = store.recent_events(0, None).await?;
    let target = follow_target(ctx)?;
    let follower = EventFollower::open(&store, &target, &last).await?;
    let mut own = own_events(follower);
    // The other towns this town waits on: their events redraw too.
    let mut others = TownEvents::new(&store, &target);
    let clear = !args.json && std::io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut shown = String::new();
    let mut drawn: Option<Instant> = None;
    loop {
        if let Some(rest) = drawn.and_then(|d| MIN_REDRAW.checked_sub(d.elapsed())) {
            tokio::time::sleep(rest).await;
        }
        drawn = Some(Instant::now());
        // Every town a drawing names is followed before it is read: what
        // a town newly named did since the read that named it is read
        // again at once.
        let snap = loop {
            let snap = Overview::read(&store).await?;
            if !others.follow(&snap.tasks.graph.remote_towns()).await? {
                break snap;
            }
        };
        let text = if args.json {
            snap.json().to_string()
        } else {
            snap.text()
        };
        // A timeout with nothing new draws again only if the text changed
        // (an age ticked over, a heartbeat expired).
        if text != shown {
            if clear {
                print!("\x1b[H\x1b[2J");
            } else if !shown.is_empty() && !args.json {
                println!("---");
            }
            if args.json {
                println!("{text}");
            } else {
                print!("{}", crate::escape::escape(&text));
            }
            let _ = std::io::stdout().flush();
            shown = text;
        }
        tokio::select! {
            read = own.recv() => match read {
                Some(read) => read?,
                None => return Ok(0),
            },
            _ = others.next() => {}
            _ = &mut ctrl_c => return Ok(0),
        }
    }
}

/// This town's events, read by a task of its own so that waiting on other
/// towns too never cancels a read half-way: one message per batch (or
/// timeout), and the error that ends the follow.
fn own_events(mut follower: EventFollower) -> mpsc::UnboundedReceiver<Result<(), CliError>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let read = next_events(&mut follower).await.map(|_| ());
            let end = read.is_err();
            if tx.send(read).is_err() || end {
                return;
            }
        }
    });
    rx
}

fn draw(snap: &Overview, json: bool) {
    if json {
        output::json(&snap.json());
    } else {
        print!("{}", crate::escape::escape(&snap.text()));
    }
}
