//! `tt plan`: validate and show the plan — groups as a tree, dependency
//! waves, order per agent, counts — without touching Redis.

use std::collections::BTreeMap;

use serde_json::json;

use super::plan_picture::{self, Shown};
use super::task_view::TaskView;
use super::{CliError, Context, output};
use crate::crosstown;
use crate::escape::escape;
use crate::graph::{Graph, RemoteState, split_remote};
use crate::plan::{Absent, LoadError, Plan, Problem, remote_cycle, unknown_remote};
use crate::store::LIGHT_FIELDS;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the plan (or its problems) as JSON (`--format json`).
    #[arg(long)]
    json: bool,
    /// What to print: the text summary, JSON, or the graph as Mermaid or
    /// Graphviz DOT (with each task's status when the town is in Redis).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Mermaid,
    Dot,
}

pub async fn run(ctx: &Context, mut args: Args) -> Result<u8, CliError> {
    if args.json {
        args.format = Format::Json;
    }
    let json_out = args.format == Format::Json;
    let plan = match ctx.load_plan() {
        Ok(p) => p,
        Err(CliError::Plan(e @ LoadError::Invalid { .. })) if json_out => {
            let problems: Vec<_> = crate::plan::Problem::to_json_all(e.problems());
            output::json(&json!({ "valid": false, "problems": problems }));
            return Ok(2);
        }
        Err(e) => return Err(e),
    };
    output::print_warnings(&plan.warnings);
    let mut graph = Graph::from_plan(&plan);
    let others = OtherTowns::check(ctx, &plan, &mut graph).await;
    if !json_out {
        output::print_warnings(&others.warnings);
        if let Some(why) = &others.unchecked {
            eprintln!("{}", escape(why));
        }
    }
    if matches!(args.format, Format::Mermaid | Format::Dot) {
        let statuses = town_statuses(ctx).await;
        let shown: Vec<Shown<'_>> = plan
            .tasks
            .iter()
            .map(|t| Shown {
                id: &t.id,
                depends_on: &t.depends_on,
                status: statuses
                    .as_ref()
                    .and_then(|view| view.graph.index_of(&t.id).map(|i| view.graph.status(i))),
            })
            .collect();
        let text = if args.format == Format::Mermaid {
            plan_picture::mermaid(&graph, &shown)
        } else {
            plan_picture::dot(&graph, &shown)
        };
        print!("{text}");
        return Ok(0);
    }
    let view = View::new(&plan, &graph, &others);
    if json_out {
        output::json(&view.json(ctx.town(plan.town.name.as_deref())));
    } else {
        print!(
            "{}",
            escape(&view.text(&ctx.town(plan.town.name.as_deref())))
        );
    }
    Ok(0)
}

/// The town's tasks as Redis holds them, when there is a town to read
/// (a picture without statuses is still a picture: no town, or a Redis
/// that does not answer, is not an error here).
async fn town_statuses(ctx: &Context) -> Option<TaskView> {
    let store = ctx.store().await.ok()?;
    let records = store.tasks_with(&LIGHT_FIELDS).await.ok()?;
    (!records.is_empty()).then(|| TaskView::new(records))
}

/// What `tt plan` found of the other towns the plan depends on
/// (`<town>:<task>`): it looks in Redis when it can, and a dependency that
/// is not there (yet) is a warning, never an error — that town may sync
/// later.
struct OtherTowns {
    /// `unknown-remote` warnings, one per dependency not found.
    warnings: Vec<Problem>,
    /// Why Redis could not be asked, when it could not.
    unchecked: Option<String>,
    /// Per town read: whether it exists.
    exists: BTreeMap<String, bool>,
}

impl OtherTowns {
    /// Reads the other towns `graph` depends on, filling in their tasks'
    /// states, and warns of those that are missing.
    async fn check(ctx: &Context, plan: &Plan, graph: &mut Graph) -> Self {
        let mut out = OtherTowns {
            warnings: Vec::new(),
            unchecked: None,
            exists: BTreeMap::new(),
        };
        let towns: Vec<String> = graph.remote_towns().into_iter().map(String::from).collect();
        if towns.is_empty() {
            return out;
        }
        let own = ctx.town(plan.town.name.as_deref());
        let read = match ctx.store().await {
            Ok(store) => match crosstown::read_towns(&store, graph).await {
                Ok(mut read) => {
                    crosstown::cycle::find(&store, &own, graph, &mut read)
                        .await
                        .map(|cycles| (read, cycles))
                }
                Err(e) => Err(e),
            }
            .map_err(|e| e.to_string()),
            Err(CliError::NoTown { .. }) => Err(
                "this project has no Redis yet; both towns must use the same one (`REDIS_URL` or `[town] redis_url`)"
                    .to_string(),
            ),
            Err(e) => Err(e.to_string()),
        };
        let (read, cycles) = match read {
            Ok(read) => read,
            Err(why) => {
                out.unchecked = Some(format!(
                    "note: could not check whether town{} {} and the tasks named there exist: {why}",
                    plural(towns.len()),
                    towns
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                return out;
            }
        };
        crosstown::fill(graph, &read);
        for (t, task) in plan.tasks.iter().enumerate() {
            for (k, dep) in task.depends_on.iter().enumerate() {
                let Some((town, id)) = split_remote(dep) else {
                    continue;
                };
                let Some(other) = read.get(town) else {
                    continue;
                };
                if other.state(id) != RemoteState::Missing {
                    continue;
                }
                let absent = if other.exists() {
                    Absent::Task
                } else {
                    Absent::Town
                };
                out.warnings.extend(unknown_remote(plan, t, k, absent));
            }
        }
        for c in &cycles {
            out.warnings.extend(remote_cycle(plan, &own, &c.0));
        }
        out.exists = read
            .iter()
            .filter(|(t, _)| graph.remote_towns().contains(&t.as_str()))
            .map(|(t, o)| (t.clone(), o.exists()))
            .collect();
        out
    }
}

struct View<'a> {
    plan: &'a Plan,
    graph: &'a Graph,
    others: &'a OtherTowns,
    waves: Vec<Vec<usize>>,
    /// Agent (or "(backlog)") → tasks in dispatch order.
    per_agent: BTreeMap<String, Vec<usize>>,
}

const BACKLOG: &str = "(backlog)";

impl<'a> View<'a> {
    fn new(plan: &'a Plan, graph: &'a Graph, others: &'a OtherTowns) -> Self {
        let waves = graph.waves();
        let mut per_agent: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for wave in &waves {
            for &i in wave {
                let agent = if graph.is_group(i) {
                    plan.tasks[i].agent.as_deref()
                } else {
                    plan.agent_for(&plan.tasks[i])
                };
                per_agent
                    .entry(agent.unwrap_or(BACKLOG).to_string())
                    .or_default()
                    .push(i);
            }
        }
        Self {
            plan,
            graph,
            others,
            waves,
            per_agent,
        }
    }

    fn id(&self, i: usize) -> &str {
        &self.plan.tasks[i].id
    }

    fn ids(&self, list: &[usize]) -> Vec<&str> {
        list.iter().map(|&i| self.id(i)).collect()
    }

    fn groups(&self) -> Vec<usize> {
        (0..self.graph.len())
            .filter(|&i| self.graph.is_group(i) && self.graph.parent(i).is_none())
            .collect()
    }

    fn text(&self, town: &str) -> String {
        let plan = self.plan;
        let n_groups = (0..self.graph.len())
            .filter(|&i| self.graph.is_group(i))
            .count();
        let mut out = format!(
            "{}: valid — {} task{}, {} group{}, {} agent{} declared, town `{town}`\n",
            plan.file_name(),
            plan.tasks.len(),
            plural(plan.tasks.len()),
            n_groups,
            plural(n_groups),
            plan.agents.len(),
            plural(plan.agents.len()),
        );
        if let Some(d) = &plan.meta.description {
            out.push_str(&format!("{d}\n"));
        }
        let groups = self.groups();
        if !groups.is_empty() {
            out.push_str("\nGroups:\n");
            for g in groups {
                self.tree(&mut out, g, "  ", "  ");
            }
        }
        out.push_str("\nWaves (what can run together, if every task succeeds):\n");
        if self.waves.is_empty() {
            out.push_str("  nothing left to run\n");
        }
        for (k, wave) in self.waves.iter().enumerate() {
            out.push_str(&format!("  {:>3}  {}\n", k + 1, self.ids(wave).join(", ")));
        }
        if !self.per_agent.is_empty() {
            out.push_str("\nOrder per agent:\n");
            let width = self.per_agent.keys().map(|k| k.len()).max().unwrap_or(0);
            for (agent, list) in &self.per_agent {
                out.push_str(&format!(
                    "  {agent:<width$}  {}\n",
                    self.ids(list).join(" → ")
                ));
            }
        }
        let remote: Vec<&str> = self.graph.remote_ids().collect();
        if !remote.is_empty() {
            out.push_str("\nOther towns (tasks here wait until these complete):\n");
            let width = remote.iter().map(|r| r.len()).max().unwrap_or(0);
            for id in remote {
                let waiting = self.ids(self.graph.remote_dependants(id)).join(", ");
                let state = match self.graph.remote_state(id) {
                    Some(RemoteState::Unknown) | None => String::new(),
                    Some(state) => format!(" ({state})"),
                };
                out.push_str(&format!("  {id:<width$}  ← {waiting}{state}\n"));
            }
        }
        let done = (0..self.graph.len())
            .filter(|&i| self.graph.status(i) == crate::Status::Completed)
            .count();
        if done > 0 {
            out.push_str(&format!("\n{done} already completed in the file\n"));
        }
        out
    }

    fn tree(&self, out: &mut String, i: usize, first: &str, rest: &str) {
        let t = &self.plan.tasks[i];
        let mut line = format!("{first}{}", t.id);
        if self.graph.is_group(i) {
            match &t.agent {
                Some(a) => line.push_str(&format!("  (join step on {a})")),
                None => line.push_str("  (group)"),
            }
        }
        if !t.depends_on.is_empty() {
            line.push_str(&format!("  after {}", t.depends_on.join(", ")));
        }
        out.push_str(&line);
        out.push('\n');
        let children = self.graph.children(i);
        // Iterative would be needed only for absurd depths; groups are
        // shallow in practice, and `tt plan` is a human view, so cap it.
        if rest.len() > 200 {
            if !children.is_empty() {
                out.push_str(&format!("{rest}… {} more levels\n", children.len()));
            }
            return;
        }
        for (k, &c) in children.iter().enumerate() {
            let last = k + 1 == children.len();
            let (f, r) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            self.tree(out, c, &format!("{rest}{f}"), &format!("{rest}{r}"));
        }
    }

    fn json(&self, town: String) -> serde_json::Value {
        let plan = self.plan;
        let tasks: Vec<_> = plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({
                    "id": t.id,
                    "description": t.description,
                    "agent": if self.graph.is_group(i) { t.agent.clone() } else { plan.agent_for(t).map(String::from) },
                    "parent": t.parent,
                    "depends_on": t.depends_on,
                    "tags": t.tags,
                    "priority": t.effective_priority(),
                    "status": self.graph.status(i),
                    "group": self.graph.is_group(i),
                })
            })
            .collect();
        let groups: Vec<_> = (0..self.graph.len())
            .filter(|&i| self.graph.is_group(i))
            .map(|g| json!({ "id": self.id(g), "children": self.ids(self.graph.children(g)) }))
            .collect();
        let waves: Vec<_> = self.waves.iter().map(|w| self.ids(w)).collect();
        let per_agent: BTreeMap<_, _> = self
            .per_agent
            .iter()
            .map(|(a, l)| (a.clone(), self.ids(l)))
            .collect();
        let mut warnings: Vec<_> = crate::plan::Problem::to_json_all(&plan.warnings);
        warnings.extend(crate::plan::Problem::to_json_all(&self.others.warnings));
        let other_towns: Vec<_> = self
            .graph
            .remote_ids()
            .map(|id| {
                let (town, task) = split_remote(id).unwrap_or(("", id));
                let status = match self.graph.remote_state(id) {
                    Some(RemoteState::Is(s)) => json!(s),
                    _ => json!(null),
                };
                json!({
                    "id": id,
                    "town": town,
                    "task": task,
                    "dependants": self.ids(self.graph.remote_dependants(id)),
                    "town_exists": self.others.exists.get(town),
                    "task_exists": self.others.exists.get(town).map(|_| self.graph.remote_state(id) != Some(RemoteState::Missing)),
                    "status": status,
                })
            })
            .collect();
        json!({
            "valid": true,
            "file": plan.file_name(),
            "town": town,
            "counts": { "tasks": plan.tasks.len(), "groups": groups.len(), "agents": plan.agents.len(), "waves": waves.len() },
            "tasks": tasks,
            "groups": groups,
            "waves": waves,
            "order": per_agent,
            "problems": warnings,
            "other_towns": other_towns,
            "other_towns_unchecked": self.others.unchecked,
        })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
