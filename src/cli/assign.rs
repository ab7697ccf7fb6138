//! `tt assign <agent> "<description>"`: an ad-hoc task, created pending
//! with `source = cli` and dispatched by the runner like any file task
//! (after every file task of its priority). A reload of tasks.toml never
//! cancels it: only tasks that came from the file can leave with it.
//!
//! `--depends-on` takes `<town>:<task>` like tasks.toml: this town's own
//! name is the local task (which must exist), another town's task is
//! waited for by the runner, and one that is not in Redis (yet) is a
//! warning, not an error — that town may sync later.

use serde_json::json;

use super::lookup::{SUPERVISOR, check_agent_name, check_task_id, find_task};
use super::task_view::TaskView;
use super::{CliError, Context, output};
use crate::Status;
use crate::crosstown;
use crate::graph::{Graph, Node, split_remote};
use crate::store::{Assigned, NewTask, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent that runs it.
    pub(super) agent: String,
    /// What to do (the prompt the agent gets).
    pub(super) description: String,
    /// Task id. Default: the next free `adhoc-<n>`.
    #[arg(long)]
    pub(super) id: Option<String>,
    /// Group it belongs to.
    #[arg(long)]
    pub(super) parent: Option<String>,
    /// Tags, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(super) tags: Vec<String>,
    /// Tasks that must complete first, comma-separated; `<town>:<task>`
    /// for a task of another town on the same Redis.
    #[arg(long, value_delimiter = ',')]
    pub(super) depends_on: Vec<String>,
    /// 0 (first) to 4 (last).
    #[arg(long, default_value_t = crate::plan::DEFAULT_PRIORITY,
          value_parser = clap::value_parser!(u8).range(0..=4))]
    pub(super) priority: u8,
    /// Print the created task as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let (store, id) = create(ctx, &args).await?;
    if args.json {
        let record = store.task(&id).await?;
        output::json(&json!(record));
        return Ok(0);
    }
    println!(
        "added {id} for `{}` (pending; `tt run` dispatches it)",
        args.agent
    );
    Ok(0)
}

/// Checks and creates the task; its id. `tt assign` and the MCP
/// `add_task` tool both add tasks here.
pub(super) async fn create(ctx: &Context, args: &Args) -> Result<(Store, String), CliError> {
    check_agent_name(&args.agent)?;
    if args.agent == SUPERVISOR {
        return Err(CliError::Usage {
            message: "`supervisor` is the runner itself; it runs no tasks".into(),
            help: "assign the task to an agent, or `tt send supervisor \"…\"` to leave a note"
                .into(),
        });
    }
    if args.description.trim().is_empty() {
        return Err(CliError::Usage {
            message: "the description is empty".into(),
            help: "it is what the agent is asked to do: `tt assign backend \"fix the login test\"`"
                .into(),
        });
    }
    if let Some(id) = &args.id {
        check_task_id(id)?;
    }
    let tags: Vec<String> = args
        .tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let store = ctx.store_or_start().await?;
    // `<own town>:<task>` is the local task, as in tasks.toml.
    let depends_on: Vec<String> = args
        .depends_on
        .iter()
        .map(|d| match split_remote(d) {
            Some((town, task)) if town == store.town() => task.to_string(),
            _ => d.clone(),
        })
        .collect();
    let (remote, local): (Vec<&String>, Vec<&String>) =
        depends_on.iter().partition(|d| split_remote(d).is_some());
    for d in &remote {
        check_remote(d)?;
    }
    // References must exist: a typo would otherwise make a dependency that
    // never blocks, or a group of one.
    let town = TaskView::new(store.tasks().await?);
    for r in args.parent.iter().chain(local) {
        check_task_id(r)?;
        if Some(r) == args.id.as_ref() {
            return Err(CliError::Usage {
                message: format!("task `{r}` cannot be its own parent or dependency"),
                help: "name another task in `--parent` / `--depends-on`".into(),
            });
        }
        find_task(&town, &store, r)?;
    }
    check_shape(&town, args, &depends_on)?;
    for d in remote {
        // Only a warning, so only a Redis that does not answer stops it.
        match crosstown::absent(&store, d).await {
            Ok(None) => {}
            Ok(Some(warning)) => eprintln!("warning: {warning}"),
            Err(e) if e.is_connection_error() => return Err(e.into()),
            Err(e) => eprintln!("warning: could not check `{d}`: {e}"),
        }
    }
    let task = NewTask {
        id: args.id.clone().unwrap_or_default(),
        description: args.description.clone(),
        agent: args.agent.clone(),
        tags,
        parent: args.parent.clone().unwrap_or_default(),
        depends_on,
        priority: args.priority,
    };
    let id = match store.assign(&task).await? {
        Assigned::Created { id } => id,
        Assigned::Exists { id } => {
            return Err(CliError::Usage {
                message: format!("task `{id}` already exists in town `{}`", store.town()),
                help: format!(
                    "choose another `--id`, or leave it out for the next `adhoc-<n>`; `tt task {id}` shows the existing one"
                ),
            });
        }
    };
    Ok((store, id))
}

/// Refuses a `<town>:<task>` dependency whose parts cannot be names, as
/// the file validator does.
fn check_remote(dep: &str) -> Result<(), CliError> {
    let Some((town, task)) = split_remote(dep) else {
        return Ok(());
    };
    // Town names and task ids follow one rule.
    let problem = crate::plan::town_name::problem;
    let why = problem(town)
        .map(|why| format!("the town part {why}"))
        .or_else(|| problem(task).map(|why| format!("the task part {why}")));
    match why {
        None => Ok(()),
        Some(why) => Err(CliError::Usage {
            message: format!(
                "`--depends-on` entry `{dep}` is not `<task>` or `<town>:<task>`: {why}"
            ),
            help: "a task of another town is `<town>:<task>`, both made of 1 to 128 of \
                   A-Z a-z 0-9 . _ -"
                .into(),
        }),
    }
}

/// What the file validator would refuse: a parent that is cancelled (the
/// task could never run) and a task that would wait for itself through
/// its dependencies and groups.
fn check_shape(town: &TaskView, args: &Args, depends_on: &[String]) -> Result<(), CliError> {
    if let Some(p) = &args.parent
        && let Some(i) = town.graph.index_of(p)
    {
        let cancelled = std::iter::once(i)
            .chain(town.graph.ancestors(i))
            .find(|&g| town.graph.status(g) == Status::Cancelled);
        if let Some(g) = cancelled {
            let group = &town.records[g].id;
            return Err(CliError::Usage {
                message: format!("cannot add a task to `{p}`: group `{group}` is cancelled"),
                help: format!(
                    "`tt retry {group}` brings the group back first, or add the task elsewhere"
                ),
            });
        }
    }
    let id = args.id.clone().unwrap_or_else(|| "(the new task)".into());
    let mut nodes = town.graph.nodes().to_vec();
    nodes.push(Node {
        id: id.clone(),
        parent: args.parent.clone(),
        depends_on: depends_on.to_vec(),
        has_agent: true,
        on_child_failure: Default::default(),
        status: Status::Pending,
        priority: args.priority,
        order: u64::MAX,
    });
    if Graph::new(nodes).has_wait_cycle() {
        let mut refs = Vec::new();
        if let Some(p) = &args.parent {
            refs.push(format!("--parent {p}"));
        }
        if !args.depends_on.is_empty() {
            refs.push(format!("--depends-on {}", args.depends_on.join(",")));
        }
        return Err(CliError::Usage {
            message: format!(
                "`{id}` would wait for itself: {} makes a cycle",
                refs.join(" with ")
            ),
            help: "a task cannot depend on its own group, or on a task that waits for that group"
                .into(),
        });
    }
    Ok(())
}
