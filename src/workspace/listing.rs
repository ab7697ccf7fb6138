//! What `tt workspaces` shows, and what `tt workspaces prune` removes.
//!
//! Prune is safe by construction: it removes the worktree of a worker that
//! no longer exists only when everything in it is in a commit on some
//! branch, and an attempt branch only when its work is on `into` (so a
//! `land = "branch"` branch, or one whose attempt conflicted, stays).
//! `--force` removes such worktrees all the same; branches with work that
//! is nowhere else are never removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::git::Git;
use super::names;
use super::state::{self, AttemptState};

/// One worktree under `.tt/worktrees`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceInfo {
    pub worker: String,
    pub path: PathBuf,
    /// Whether git knows it as a worktree of the repository.
    pub registered: bool,
    pub task: Option<String>,
    pub attempt: Option<u32>,
    /// The branch checked out, else the last attempt's.
    pub branch: Option<String>,
    /// Changes that are in no commit (`git status --porcelain` lines).
    pub changes: usize,
    /// Bytes on disk, build artefacts included.
    pub size: u64,
    /// Whether the last attempt's branch is on its `into`; `None` while
    /// it runs or when unknown.
    pub landed: Option<bool>,
    pub into: Option<String>,
}

/// What prune did with one worktree or branch.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// `worktree` or `branch`.
    pub kind: &'static str,
    pub name: String,
    pub removed: bool,
    pub why: String,
}

/// Every worktree directory of the project, by worker.
pub fn list(project_dir: &Path) -> Vec<WorkspaceInfo> {
    let dir = crate::state_dir::worktrees_dir(project_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<WorkspaceInfo> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| info(&e.path()))
        .collect();
    out.sort_by(|a, b| a.worker.cmp(&b.worker));
    out
}

fn info(path: &Path) -> WorkspaceInfo {
    let worker = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let git = Git::at(path);
    let registered = path.join(".git").is_file()
        && git
            .run(&["rev-parse", "--show-toplevel"])
            .is_ok_and(|top| same_dir(Path::new(&top), path));
    let last = state::read(path);
    let checked_out = registered
        .then(|| git.run(&["symbolic-ref", "-q", "--short", "HEAD"]).ok())
        .flatten();
    let changes = if registered {
        git.changes().map_or(0, |c| c.len())
    } else {
        0
    };
    let landed = last.as_ref().and_then(|s| landed_state(&git, s));
    WorkspaceInfo {
        worker,
        path: path.to_path_buf(),
        registered,
        task: last.as_ref().map(|s| s.task.clone()),
        attempt: last.as_ref().map(|s| s.attempt),
        branch: checked_out.or_else(|| last.as_ref().map(|s| s.branch.clone())),
        changes,
        size: disk_size(path),
        landed,
        into: last.as_ref().map(|s| s.into.clone()),
    }
}

/// Whether the last attempt's work is on `into`: what its end recorded,
/// or, later, whether its branch is merged.
fn landed_state(git: &Git, s: &AttemptState) -> Option<bool> {
    let landed = s.landed?;
    if landed {
        return Some(true);
    }
    let tip = git.commit_of(&format!("refs/heads/{}", s.branch))?;
    Some(tip != s.base && git.is_ancestor(&tip, &format!("refs/heads/{}", s.into)))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || a.canonicalize().ok() == b.canonicalize().ok()
}

/// Bytes of the files under `path`, not following symlinks.
pub fn disk_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| disk_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// Removes the worktrees of workers for which `exists` says no, and the
/// attempt branches of `town` whose work is on one of `intos`.
pub fn prune(
    project_dir: &Path,
    town: &str,
    intos: &[String],
    exists: &dyn Fn(&str) -> bool,
    force: bool,
) -> Result<Vec<Pruned>, String> {
    let root = super::probe::repository_root(project_dir)?;
    let repo = Git::at(&root);
    // No worker adds a worktree while the list is pruned.
    let _turn = super::lock::take(project_dir, "worktree")?;
    let mut done = Vec::new();
    for w in list(project_dir) {
        if exists(&w.worker) {
            continue;
        }
        let mut kept = |why: String| {
            done.push(Pruned {
                kind: "worktree",
                name: w.worker.clone(),
                removed: false,
                why,
            })
        };
        if !w.registered {
            kept(format!(
                "`{}` is not a worktree of this repository; look at it and remove it by hand",
                w.path.display()
            ));
            continue;
        }
        let wt = Git::at(&w.path);
        if !force && w.changes > 0 {
            kept(format!(
                "{} uncommitted change{} (`tt workspaces prune --force` removes them)",
                w.changes,
                if w.changes == 1 { "" } else { "s" }
            ));
            continue;
        }
        let on_a_branch = wt.commit_of("HEAD").is_none_or(|head| {
            wt.run(&[
                "for-each-ref",
                "--contains",
                &head,
                "--count=1",
                "refs/heads/",
            ])
            .is_ok_and(|out| !out.is_empty())
        });
        if !force && !on_a_branch {
            kept(
                "its `HEAD` is a commit on no branch (`tt workspaces prune --force` removes it)"
                    .into(),
            );
            continue;
        }
        let path = w.path.to_string_lossy().into_owned();
        let mut args = vec!["worktree", "remove"];
        if force {
            args.push("--force");
        }
        args.push(&path);
        match repo.run(&args) {
            Ok(_) => {
                state::remove(&w.path);
                done.push(Pruned {
                    kind: "worktree",
                    name: w.worker.clone(),
                    removed: true,
                    why: "its worker no longer exists".into(),
                });
            }
            Err(e) => kept(e.to_string()),
        }
    }
    let _ = repo.run(&["worktree", "prune"]);
    done.extend(prune_branches(&repo, town, intos)?);
    Ok(done)
}

fn prune_branches(repo: &Git, town: &str, intos: &[String]) -> Result<Vec<Pruned>, String> {
    let prefix = format!("refs/heads/{}", names::attempt_prefix(town));
    let refs = repo
        .run(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads/tt/",
        ])
        .map_err(|e| e.to_string())?;
    let checked_out: HashSet<String> = repo
        .run(&["worktree", "list", "--porcelain"])
        .map_err(|e| e.to_string())?
        .lines()
        .filter_map(|l| l.strip_prefix("branch ").map(str::to_string))
        .collect();
    let tips: Vec<String> = intos
        .iter()
        .filter_map(|i| repo.commit_of(&format!("refs/heads/{i}")))
        .collect();
    let mut done = Vec::new();
    for line in refs.lines() {
        let Some((name, oid)) = line.split_once(' ') else {
            continue;
        };
        // for-each-ref matches whole components only; `tt/<town>@` is not one.
        if !name.starts_with(&prefix) {
            continue;
        }
        let short = name.trim_start_matches("refs/heads/").to_string();
        if checked_out.contains(name) {
            continue;
        }
        // A branch equal to a tip holds nothing of its own (an attempt
        // that changed nothing) and is landed as much as any.
        if !tips.iter().any(|tip| repo.is_ancestor(oid, tip)) {
            continue;
        }
        let removed = repo.succeeds(&["update-ref", "-d", name, oid]);
        done.push(Pruned {
            kind: "branch",
            name: short,
            removed,
            why: if removed {
                "its work is on the town's branch".into()
            } else {
                "it moved while being pruned".into()
            },
        });
    }
    Ok(done)
}
