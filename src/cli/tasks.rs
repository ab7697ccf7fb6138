//! `tt tasks` and `tt task <id>`: what Redis holds, with statuses and
//! readiness from the same graph dispatch uses.

use serde_json::Value;

use super::attempt::{self, Attempt};
use super::feed::full_history;
use super::lookup::{check_task_id, find_task};
use super::task_view::TaskView;
use super::{CliError, Context, output};
use crate::Status;
use crate::graph::Readiness;
use crate::store::{LIGHT_FIELDS, Store};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only tasks with this status (pending, assigned, running, completed, failed, cancelled).
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// Only tasks for this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only tasks with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Task id.
    id: String,
    /// Print a JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not a status; use one of: {}",
            Status::ALL.map(Status::as_str).join(", ")
        )
    })
}

/// Which tasks `tt tasks` lists (every one, when nothing is set).
#[derive(Debug, Default, Clone)]
pub(super) struct Filter {
    pub status: Option<Status>,
    pub agent: Option<String>,
    pub tag: Option<String>,
}

impl Filter {
    /// The tasks of `town` it keeps, in the order they are stored.
    fn matching(&self, town: &TaskView) -> Vec<usize> {
        (0..town.records.len())
            .filter(|&i| {
                let r = &town.records[i];
                self.status.is_none_or(|s| town.graph.status(i) == s)
                    && self
                        .agent
                        .as_deref()
                        .is_none_or(|a| r.agent.as_deref() == Some(a))
                    && self
                        .tag
                        .as_deref()
                        .is_none_or(|t| r.tags.iter().any(|x| x == t))
            })
            .collect()
    }
}

/// What `tt tasks --json` prints: every full record `filter` keeps, with
/// its status as users see it (the dashboard's `GET /api/tasks`).
pub(super) async fn list_json(store: &Store, filter: &Filter) -> Result<Value, CliError> {
    let mut town = TaskView::new(store.tasks().await?);
    town.read_other_towns(store).await?;
    Ok(Value::Array(
        filter
            .matching(&town)
            .into_iter()
            .map(|i| town.json(i))
            .collect(),
    ))
}

pub async fn list(ctx: &Context, args: ListArgs) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let filter = Filter {
        status: args.status,
        agent: args.agent,
        tag: args.tag,
    };
    if args.json {
        output::json(&list_json(&store, &filter).await?);
        return Ok(0);
    }
    // The table shows descriptions; the rest of the text is not read.
    let mut fields = LIGHT_FIELDS.to_vec();
    fields.extend(["description", "tags"]);
    let town = TaskView::new(store.tasks_with(&fields).await?);
    let shown = filter.matching(&town);
    if shown.is_empty() {
        if town.records.is_empty() {
            println!(
                "no tasks in town `{}` — push a plan with `tt sync push`",
                store.town()
            );
        } else {
            println!("no tasks match");
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|&i| {
            let r = &town.records[i];
            let mut status = town.graph.status(i).to_string();
            if r.corrupt.is_some() {
                status = "corrupt".into();
            } else if town.graph.is_group(i) {
                let p = town.graph.progress(i);
                status = format!("{status} {}/{}", p.completed, p.total);
            }
            vec![
                r.id.clone(),
                status,
                r.agent.clone().unwrap_or_else(|| "-".into()),
                r.parent.clone().unwrap_or_else(|| "-".into()),
                output::short(&r.description, 60),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["ID", "STATUS", "AGENT", "PARENT", "DESCRIPTION"], &rows)
    );
    Ok(0)
}

/// One task read for `tt task`: the town's graph with this task's record
/// read whole, its index, and its attempts checked against the workers.
pub(super) struct Detail {
    pub town: TaskView,
    pub i: usize,
    pub attempts: Vec<Attempt>,
}

impl Detail {
    pub(super) async fn read(ctx: &Context, store: &Store, id: &str) -> Result<Self, CliError> {
        check_task_id(id)?;
        // The graph needs every task's shape; only this one is read whole.
        let mut town = TaskView::new(store.tasks_with(&LIGHT_FIELDS).await?);
        town.read_other_towns(store).await?;
        let i = find_task(&town, store, id)?;
        if let Some(full) = store.task(id).await? {
            town.records[i] = full;
        }
        let (events, _) = full_history(ctx, store, Some(id)).await?;
        let mut attempts = attempt::from_events(&events);
        if attempts.iter().any(|a| a.outcome == "running") {
            attempt::settle(&mut attempts, &town.records[i], &store.agents().await?);
        }
        Ok(Self { town, i, attempts })
    }

    /// What `tt task --json` prints (the dashboard's `GET /api/tasks/<id>`).
    pub(super) fn json(&self) -> Value {
        let mut v = self.town.json(self.i);
        v["attempts"] = serde_json::to_value(&self.attempts).unwrap_or(Value::Null);
        v
    }
}

pub async fn show(ctx: &Context, args: ShowArgs) -> Result<u8, CliError> {
    let store = ctx.store().await?;
    let detail = Detail::read(ctx, &store, &args.id).await?;
    if args.json {
        output::json(&detail.json());
        return Ok(0);
    }
    let Detail { town, i, attempts } = detail;
    let r = &town.records[i];
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    field("id", r.id.clone());
    let mut status = town.graph.status(i).to_string();
    if let Readiness::Waiting(w) = town.graph.readiness(i) {
        status = format!("{status} — {w}");
    }
    field("status", status);
    if town.graph.is_group(i) {
        let p = town.graph.progress(i);
        field(
            "progress",
            format!(
                "{}/{} done, {} failed, {} running, {} queued",
                p.completed, p.total, p.failed, p.running, p.queued
            ),
        );
    }
    field(
        "agent",
        r.agent.clone().unwrap_or_else(|| "- (backlog)".into()),
    );
    if let Some(p) = &r.parent {
        field("parent", p.clone());
    }
    if !r.depends_on.is_empty() {
        field("depends_on", r.depends_on.join(", "));
    }
    if !r.tags.is_empty() {
        field("tags", r.tags.join(", "));
    }
    field("priority", format!("P{}", r.priority));
    field("attempt", r.attempt.to_string());
    field("source", format!("{:?}", r.source).to_lowercase());
    if let Some(w) = &r.worker {
        field("worker", w.clone());
    }
    if let Some(c) = r.exit_code {
        field("exit code", c.to_string());
    }
    if let Some(e) = &r.error {
        field("error", e.clone());
    }
    if let Some(reason) = &r.reason {
        field("reason", reason.clone());
    }
    if let Some(facts) = attempts
        .iter()
        .rev()
        .map(|a| &a.facts)
        .find(|f| f.contains_key("branch"))
    {
        for (k, v) in workspace_fields(facts) {
            field(k, v);
        }
    }
    if let Some(what) = &r.corrupt {
        field("corrupt", format!("{what} (not run until fixed)"));
    }
    if let Some(q) = &r.question {
        let mut text = q.text.clone();
        if !q.choices.is_empty() {
            text.push_str(&format!(" [choices: {}]", q.choices.join(" / ")));
        }
        field("question", format!("{text} — `tt answer {} …`", r.id));
    }
    if let Some(p) = &r.progress {
        field("reported", format!("{} (attempt {})", p.text, p.attempt));
    }
    if let Some(o) = r.output.as_deref().filter(|o| !o.trim().is_empty()) {
        out.push_str(&format!("output (tail):\n{}\n", indent(o)));
    }
    if !attempts.is_empty() {
        let here = crate::os::hostname();
        let rows: Vec<Vec<String>> = attempts
            .iter()
            .map(|a| {
                vec![
                    format!("#{}", a.attempt),
                    a.worker.clone().unwrap_or_else(|| "-".into()),
                    a.outcome.clone(),
                    a.exit_code.clone().unwrap_or_else(|| "-".into()),
                    a.duration_ms
                        .map_or("-".into(), |d| format!("{:.1}s", d as f64 / 1000.0)),
                    attempt::log_location(a, &r.id, &ctx.project_dir, &here),
                ]
            })
            .collect();
        out.push_str("\nattempts:\n");
        out.push_str(&output::table(
            &["ATTEMPT", "WORKER", "OUTCOME", "EXIT", "TOOK", "LOG"],
            &rows,
        ));
        let reported: Vec<String> = attempts.iter().filter_map(attempt::facts_text).collect();
        if !reported.is_empty() {
            out.push_str("\nwhat the agent reported:\n");
            for r in reported {
                out.push_str(&format!("{}\n", indent(&r)));
            }
        }
    }
    if !r.description.is_empty() {
        out.push_str(&format!("\n{}\n", r.description));
    }
    print!("{}", crate::escape::escape(&out));
    Ok(0)
}

/// The workspace of the latest attempt that had one: its branch, whether
/// and where it landed, and its diffstat.
fn workspace_fields(facts: &crate::store::Facts) -> Vec<(&'static str, String)> {
    let text = |k: &str| {
        facts
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut out = vec![("branch", text("branch"))];
    let into = text("into");
    let landed = match (facts.get("landed").and_then(Value::as_bool), text("commit")) {
        (Some(true), commit) if !commit.is_empty() => {
            format!("on `{into}` as {}", &commit[..commit.len().min(12)])
        }
        (Some(true), _) => format!("on `{into}`"),
        (Some(false), _) if text("head") == text("base") && !text("head").is_empty() => {
            "nothing to land (no changes)".to_string()
        }
        (Some(false), _) => "no (its work is on the branch)".to_string(),
        (None, _) => "-".to_string(),
    };
    out.push(("landed", landed));
    let diffstat = text("diffstat");
    if !diffstat.is_empty() {
        out.push(("diffstat", diffstat));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
