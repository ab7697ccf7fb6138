//! An attempt's workspace, for `run_task`: with `workspace = "worktree"`
//! the command runs in the worker's worktree on the attempt's branch
//! (`TT_WORKSPACE`, `TT_BRANCH`), and how it ended decides what becomes of
//! its work (landed, or kept in a commit); see [`crate::workspace`].
//! Git runs on the blocking pool: a landing may take a while on a large
//! repository, and the heartbeat must go on meanwhile.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::Worker;
use crate::agent::process::{Ending, Log};
use crate::store::{ClaimedTask, Facts};
use crate::workspace::{Attempt, LandingError, Workspace};

/// Where an attempt runs.
pub(super) enum Place {
    /// The agent's `workdir`, shared by its workers.
    Shared,
    Worktree(Box<(Workspace, Attempt)>),
    /// The worktree could not be made ready; the message says why.
    Failed(String),
}

impl Place {
    /// The command's working directory.
    pub(super) fn workdir(&self, shared: &Path) -> PathBuf {
        match self {
            Place::Worktree(w) => w.1.workdir.clone(),
            _ => shared.to_path_buf(),
        }
    }

    /// What the command is told about its workspace.
    pub(super) fn env(&self) -> Vec<(String, String)> {
        match self {
            Place::Worktree(w) => vec![
                ("TT_WORKSPACE".into(), w.1.root.display().to_string()),
                ("TT_BRANCH".into(), w.1.branch.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// Why the attempt cannot start, if it cannot.
    pub(super) fn failure(&self) -> Option<String> {
        match self {
            Place::Failed(why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// The worker's workspace, when it has a worktree.
fn workspace_of(worker: &Worker) -> Option<Workspace> {
    let options = worker.config.workspace.clone()?;
    Some(Workspace {
        project_dir: worker.project_dir.clone(),
        worker: worker.id.clone(),
        town: worker.town.clone(),
        options,
    })
}

/// At start: commits what an earlier process with this id left in its
/// worktree ([`Workspace::tidy`]). A failure comes back at the next
/// attempt, which then says why it cannot start.
pub(super) async fn tidy(worker: &Worker) {
    if let Some(ws) = workspace_of(worker) {
        let _ = tokio::task::spawn_blocking(move || ws.tidy()).await;
    }
}

/// Makes the worker's worktree ready for the attempt, when it has one.
pub(super) async fn prepare(worker: &Worker, task: &ClaimedTask, log: &Log) -> Place {
    let Some(ws) = workspace_of(worker) else {
        return Place::Shared;
    };
    let (id, attempt, workdir) = (task.id.clone(), task.attempt, worker.config.workdir.clone());
    let ready = ws.clone();
    let begun = tokio::task::spawn_blocking(move || ready.begin(&id, attempt, &workdir)).await;
    match begun {
        Ok(Ok(a)) => {
            log.note(&format!(
                "worktree {} on branch `{}` from `{}` at {}",
                a.root.display(),
                a.branch,
                a.into,
                short(&a.base)
            ));
            Place::Worktree(Box::new((ws, a)))
        }
        Ok(Err(why)) => failed(log, &why),
        Err(e) => failed(log, &e.to_string()),
    }
}

/// Ends the attempt's workspace: lands the work of a command that
/// succeeded, keeps the work of one that did not. A landing that fails
/// (a conflict) turns a success into [`Ending::NotLanded`].
pub(super) async fn conclude(
    place: &Place,
    task: &ClaimedTask,
    ending: Ending,
    log: &Log,
    facts: &mut Facts,
) -> Ending {
    let Place::Worktree(w) = place else {
        return ending;
    };
    let (ws, a) = (&w.0, &w.1);
    let succeeded = ending.succeeded();
    let (ws, a2, description) = (ws.clone(), a.clone(), task.description.clone());
    let finished =
        tokio::task::spawn_blocking(move || ws.finish(&a2, succeeded, &description)).await;
    let finished = finished.unwrap_or_else(|e| Err(LandingError::Failed(e.to_string())));
    facts.insert("branch".into(), json!(a.branch));
    facts.insert("base".into(), json!(a.base));
    facts.insert("into".into(), json!(a.into));
    match finished {
        Ok(landed) => {
            log.note(&landed.note);
            facts.insert("landed".into(), json!(landed.landed));
            facts.insert("head".into(), json!(landed.head));
            if let Some(commit) = &landed.commit {
                facts.insert("commit".into(), json!(commit));
            }
            if !landed.diffstat.is_empty() {
                facts.insert("diffstat".into(), json!(landed.diffstat));
            }
            ending
        }
        Err(e) => {
            log.note(&format!("not landed: {e}"));
            facts.insert("landed".into(), json!(false));
            if let LandingError::Conflict { with, files, .. } = &e {
                facts.insert("conflicts_with".into(), json!(with));
                facts.insert("conflicts".into(), json!(files));
            }
            if succeeded {
                Ending::NotLanded(e.to_string())
            } else {
                ending
            }
        }
    }
}

/// A worker shutting down mid-attempt keeps what the command left, in a
/// commit on the attempt's branch, and leaves the worktree clean.
pub(super) async fn abandon(place: &Place, task: &ClaimedTask, log: &Log) {
    let mut facts = Facts::new();
    let _ = conclude(place, task, Ending::Stopped, log, &mut facts).await;
}

fn failed(log: &Log, why: &str) -> Place {
    let why = format!("cannot prepare the worktree: {why}");
    log.note(&why);
    Place::Failed(why)
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
