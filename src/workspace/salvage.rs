//! Nothing lost: what a dead attempt (killed, timed out, stopped,
//! cancelled, or a worker that died) left uncommitted in its worktree is
//! committed on that attempt's branch, marked `Tt-Landed: no`, before the
//! worktree is used again. The commit is never landed; its branch stays
//! until `tt workspaces prune` finds it merged, and `git log --grep
//! "Tt-Landed: no"` finds every such commit.

use std::time::{SystemTime, UNIX_EPOCH};

use super::git::Git;
use super::names;
use super::state::AttemptState;

/// The trailers that make tt's commits findable by task.
pub fn trailers(task: &str, attempt: u32, worker: &str) -> String {
    format!("Tt-Task: {task}\nTt-Attempt: {attempt}\nTt-Agent: {worker}")
}

/// Commits every change in the worktree of `wt` — tracked, and untracked
/// but not ignored — on the branch checked out there (or, on a detached
/// `HEAD`, on a new branch, so the commit is on one). Returns the commit,
/// or `None` when there was nothing to commit.
pub fn salvage(
    wt: &Git,
    last: Option<&AttemptState>,
    worker: &str,
    town: &str,
) -> Result<Option<String>, String> {
    clear_stale_lock(wt);
    if wt.changes().map_err(|e| e.to_string())?.is_empty() {
        return Ok(None);
    }
    if !wt.succeeds(&["symbolic-ref", "-q", "HEAD"]) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let branch = format!(
            "{}salvage/{}-{secs}",
            names::attempt_prefix(town),
            names::component(worker)
        );
        wt.run(&["checkout", "--quiet", "-b", &branch])
            .map_err(|e| e.to_string())?;
    }
    let message = match last {
        Some(s) => format!(
            "{}: unfinished work of attempt {} (not landed)\n\nLeft uncommitted when the attempt ended without finishing;\ncommitted by tt before worker `{worker}` reused its worktree.\n\n{}\nTt-Landed: no\n",
            s.task,
            s.attempt,
            trailers(&s.task, s.attempt, worker)
        ),
        None => format!(
            "uncommitted work found in the worktree of `{worker}` (not landed)\n\nTt-Agent: {worker}\nTt-Landed: no\n"
        ),
    };
    commit_all(wt, &message)?;
    Ok(wt.commit_of("HEAD"))
}

/// Removes the index lock a git killed with its attempt left behind:
/// salvage runs only once the attempt's process group is gone, so no git
/// of tt's holds it, and without this every later attempt would fail.
fn clear_stale_lock(wt: &Git) {
    if let Ok(dir) = wt.run(&["rev-parse", "--absolute-git-dir"]) {
        let lock = std::path::Path::new(&dir).join("index.lock");
        if lock.is_file() {
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// `git add -A` and a commit with `message`, without hooks: a hook of the
/// repository must not keep tt from keeping work.
pub fn commit_all(wt: &Git, message: &str) -> Result<(), String> {
    wt.run(&["add", "-A"]).map_err(|e| e.to_string())?;
    wt.run_env(
        &[
            "commit",
            "--quiet",
            "--no-verify",
            "--allow-empty-message",
            "-F",
            "-",
        ],
        &[],
        Some(message),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}
