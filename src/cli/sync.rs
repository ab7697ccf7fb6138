//! `tt sync push` and `tt sync pull`.

use std::collections::HashMap;

use serde_json::json;
use toml_edit::DocumentMut;

use super::{CliError, Context, output};
use crate::sync::{self, Adopt, Claim};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Reconcile tasks.toml into Redis, writing only what changed.
    ///
    /// Prints one line: `+3 added ~1 changed -2 removed =95 unchanged`.
    Push {
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
        /// Replace the town's plan even if it came from another tasks.toml
        /// (another host or path), and make this file its plan from now on.
        #[arg(long)]
        take_over: bool,
    },
    /// Write each task's status from Redis back into tasks.toml, keeping
    /// comments, order and formatting, so progress can be committed.
    Pull {
        /// Print what changed as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(ctx: &Context, cmd: Command) -> Result<u8, CliError> {
    match cmd {
        Command::Push { json, take_over } => push(ctx, json, take_over).await,
        Command::Pull { json } => pull(ctx, json).await,
    }
}

async fn push(ctx: &Context, json: bool, take_over: bool) -> Result<u8, CliError> {
    let plan = ctx.load_plan()?;
    output::print_warnings(&plan.warnings);
    let phase = crate::profile::phase("connect");
    let store = ctx.store_for(&plan).await?;
    drop(phase);
    let claim = if take_over {
        Claim::TakeOver
    } else {
        Claim::Keep
    };
    let pushed = sync::push_full(&store, &plan, Adopt::No, claim).await?;
    if let Some(e) = &pushed.archive_error {
        eprintln!(
            "warning: old events were not moved into the archive first, so the stream's cap \
             may trim them (`tt history` counts what is gone): {e}"
        );
    }
    let counts = pushed.counts;
    // The process ends with this command: freeing every task's strings
    // one by one (~0.1 s at 100k tasks) would only delay the exit.
    let file = plan.file_name();
    std::mem::forget(plan);
    std::mem::forget(pushed);
    if json {
        output::json(&json!({ "town": store.town(), "counts": counts }));
    } else {
        println!("{file}: {counts}");
    }
    print_profile();
    Ok(0)
}

/// The phases `TT_PROFILE=1` recorded, on stderr.
fn print_profile() {
    if crate::profile::enabled() {
        for (name, took) in crate::profile::take() {
            eprintln!("profile: {name:<28} {:>9.1} ms", took.as_secs_f64() * 1e3);
        }
    }
}

async fn pull(ctx: &Context, json: bool) -> Result<u8, CliError> {
    let plan = ctx.load_plan()?;
    let store = ctx.store_for(&plan).await?;
    let records = store.tasks().await?;
    let status: HashMap<&str, &str> = records
        .iter()
        .map(|r| (r.id.as_str(), r.status.as_str()))
        .collect();
    let text = plan.source.as_str();
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| CliError::Usage {
            message: format!("cannot edit `{}`: {e}", ctx.file.display()),
            help: "the file changed while pulling; run `tt sync pull` again".into(),
        })?;
    let mut changes = Vec::new();
    if let Some(tasks) = doc
        .get_mut("tasks")
        .and_then(|t| t.as_array_of_tables_mut())
    {
        for table in tasks.iter_mut() {
            let Some(id) = table.get("id").and_then(|v| v.as_str()).map(String::from) else {
                continue;
            };
            let Some(&now) = status.get(id.as_str()) else {
                continue;
            };
            let before = table
                .get("status")
                .and_then(|v| v.as_str())
                .map(String::from);
            let unchanged = match before.as_deref() {
                Some(b) => b == now,
                // No status in the file means pending: keep the file quiet.
                None => now == "pending",
            };
            if unchanged {
                continue;
            }
            match table.get_mut("status").and_then(|i| i.as_value_mut()) {
                Some(v) => {
                    // Keep the comment and spacing around the value.
                    let decor = v.decor().clone();
                    *v = toml_edit::Value::from(now);
                    *v.decor_mut() = decor;
                }
                None => {
                    table.insert("status", toml_edit::value(now));
                }
            }
            changes.push(json!({ "id": id, "from": before, "to": now }));
        }
    }
    if !changes.is_empty() {
        // Record in Redis that the file states these statuses *before* the
        // file says so: a `tt run` watching it then reloads a plan Redis
        // already has, instead of taking the pulled statuses as edits.
        let text = doc.to_string();
        let pulled = crate::plan::load(&ctx.file, text.clone())?;
        sync::push(&store, &pulled, Adopt::Yes).await?;
        write_atomically(&ctx.file, &text)?;
    }
    if json {
        output::json(&json!({ "file": plan.file_name(), "changed": changes }));
    } else {
        println!(
            "{}: {} status{} pulled from town `{}`",
            plan.file_name(),
            changes.len(),
            if changes.len() == 1 { "" } else { "es" },
            store.town()
        );
    }
    Ok(0)
}

/// Replaces the file through a rename so a reader (or `tt run`'s watcher)
/// never sees half a file. A symlinked plan is written through the link:
/// the rename replaces the file it points to, and the link stays.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    let io = |what: String| move |source| CliError::Io { what, source };
    let target;
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) {
        target = std::fs::canonicalize(path)
            .map_err(io(format!("cannot follow the link `{}`", path.display())))?;
        target.as_path()
    } else {
        path
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tt-tmp"));
    std::fs::write(&tmp, text).map_err(io(format!("cannot write `{}`", tmp.display())))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(io(format!("cannot replace `{}`", path.display())))
}
