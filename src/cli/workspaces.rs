//! `tt workspaces`: every worktree under `.tt/worktrees` with its worker,
//! task, branch, uncommitted changes, size on disk and whether its branch
//! landed; `tt workspaces prune [--force]`: remove what is safe to remove
//! (see [`crate::workspace::listing`]).

use std::collections::HashSet;

use serde_json::json;

use super::{CliError, Context, output};
use crate::workspace::{self, names};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Print the worktrees as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Remove the worktrees of workers that no longer exist and the
    /// attempt branches whose work landed.
    ///
    /// A worktree with changes in no commit is kept unless `--force`; a
    /// branch whose work is not on the town's branch is always kept.
    ///
    /// Examples:
    ///   tt workspaces prune
    ///   tt workspaces prune --force
    #[command(verbatim_doc_comment)]
    Prune {
        /// Also remove worktrees of gone workers that hold uncommitted changes.
        #[arg(long)]
        force: bool,
        /// Print what was removed and kept as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    match args.action {
        None => list(ctx, args.json),
        Some(Action::Prune { force, json }) => prune(ctx, force, json).await,
    }
}

fn list(ctx: &Context, json: bool) -> Result<u8, CliError> {
    let all = workspace::list(&ctx.project_dir);
    if json {
        output::json(&json!(all));
        return Ok(0);
    }
    if all.is_empty() {
        println!(
            "no worktrees in .tt/worktrees (agents with `workspace = \"worktree\"` make one per worker)"
        );
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|w| {
            let task = match (&w.task, w.attempt) {
                (Some(t), Some(a)) => format!("{t} #{a}"),
                _ => "-".into(),
            };
            let state = if !w.registered {
                "not a worktree".to_string()
            } else if w.changes == 0 {
                "clean".to_string()
            } else {
                format!("dirty ({} changes)", w.changes)
            };
            let landed = match w.landed {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            vec![
                w.worker.clone(),
                task,
                w.branch.clone().unwrap_or_else(|| "-".into()),
                state,
                size(w.size),
                landed.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["WORKER", "TASK", "BRANCH", "STATE", "SIZE", "LANDED"],
            &rows
        )
    );
    Ok(0)
}

async fn prune(ctx: &Context, force: bool, json: bool) -> Result<u8, CliError> {
    let settings = ctx.load_settings()?;
    let town = ctx.town(settings.town.name.as_deref());
    let mut declared = HashSet::new();
    let mut intos = vec![
        settings
            .town
            .workspace
            .into
            .clone()
            .unwrap_or_else(|| names::town_branch(&town)),
    ];
    for (name, spec) in &settings.agents {
        for k in 1..=spec.count.unwrap_or(1).max(1) {
            declared.insert(format!("{name}-{k}"));
        }
        if let Some(into) = spec.workspace.over(&settings.town.workspace).into {
            intos.push(into);
        }
    }
    // A worker started by hand (`tt agent`) exists while it is alive.
    let mut alive = HashSet::new();
    if let Ok(store) = ctx.store().await {
        for w in workspace::list(&ctx.project_dir) {
            if !declared.contains(&w.worker) && store.worker_alive(&w.worker).await? {
                alive.insert(w.worker);
            }
        }
    }
    let exists = |w: &str| declared.contains(w) || alive.contains(w);
    let done =
        workspace::prune(&ctx.project_dir, &town, &intos, &exists, force).map_err(|message| {
            CliError::Usage {
                message,
                help: "`tt workspaces prune` works in the git repository of tasks.toml".into(),
            }
        })?;
    if json {
        output::json(&json!(done));
        return Ok(0);
    }
    if done.is_empty() {
        println!("nothing to prune");
    }
    for p in &done {
        let verb = if p.removed { "removed" } else { "kept" };
        println!("{verb} {} `{}`: {}", p.kind, p.name, p.why);
    }
    Ok(0)
}

/// Bytes for people: `812 B`, `4.2 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
