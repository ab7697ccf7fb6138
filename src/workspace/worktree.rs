//! A worker's worktree, `.tt/worktrees/<worker>`: created on first use and
//! reused afterwards (a checkout of a large repository costs seconds, and
//! its ignored build artefacts are worth keeping). Before each attempt,
//! what an earlier attempt left uncommitted is committed ([`salvage`]),
//! then the attempt gets a fresh branch from the current tip of `into`, so
//! a task that depends on another starts from its landed work.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::git::Git;
use super::mode::Land;
use super::state::{self, AttemptState};
use super::{lock, names, probe, salvage};

/// A checked workspace setting of an agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The branch work lands on; `None`: `tt/<town>`.
    pub into: Option<String>,
    pub land: Land,
    /// Ignored files copied from the repository's own checkout into each
    /// worktree, relative to the top of the repository.
    pub include: Vec<String>,
    /// A remote the attempt's branch is pushed to (with `land = "branch"`).
    pub push: Option<String>,
}

/// One worker's workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory of tasks.toml.
    pub project_dir: PathBuf,
    pub worker: String,
    pub town: String,
    pub options: Options,
}

/// An attempt, ready to run in its worktree.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub task: String,
    pub attempt: u32,
    /// The top of the worktree (`TT_WORKSPACE`).
    pub root: PathBuf,
    /// Where the command runs: the agent's `workdir`, inside the worktree.
    pub workdir: PathBuf,
    /// The attempt's branch (`TT_BRANCH`).
    pub branch: String,
    /// The tip of `into` it started from.
    pub base: String,
    pub into: String,
    /// The repository's own top directory.
    pub repo: PathBuf,
}

impl Workspace {
    /// `.tt/worktrees/<worker>`.
    pub fn dir(&self) -> PathBuf {
        crate::state_dir::worktrees_dir(&self.project_dir).join(&self.worker)
    }

    /// The branch work lands on.
    pub fn into_branch(&self) -> String {
        self.options
            .into
            .clone()
            .unwrap_or_else(|| names::town_branch(&self.town))
    }

    /// Makes the worktree ready for `task`'s `attempt`, to run the agent's
    /// command in `workdir` (an absolute directory in the repository's own
    /// checkout, which is mapped into the worktree). The error says what
    /// failed; the attempt then does not start.
    pub fn begin(&self, task: &str, attempt: u32, workdir: &Path) -> Result<Attempt, String> {
        let root = canonical(&probe::repository_root(&self.project_dir)?)?;
        let workdir = canonical(workdir)?;
        let inside = workdir.strip_prefix(&root).map_err(|_| {
            format!(
                "the agent's working directory `{}` is outside the git repository `{}`, so it has no place in a worktree",
                workdir.display(),
                root.display()
            )
        })?;
        let repo = Git::committing(&root);
        let into = self.into_branch();
        let tip = ensure_into(&repo, &into)?;
        let dir = self.dir();
        ensure_worktree(&repo, &self.project_dir, &dir, &tip)?;
        let wt = repo.in_dir(&dir);
        let previous = state::read(&dir);
        salvage::salvage(&wt, previous.as_ref(), &self.worker, &self.town).map_err(|e| {
            format!(
                "cannot keep what the last attempt left in `{}`: {e}",
                dir.display()
            )
        })?;
        if let Some(mut previous) = previous.filter(|p| p.landed.is_none()) {
            previous.landed = Some(false);
            state::write(&dir, &previous)?;
        }
        let branch = free_branch(
            &repo,
            &names::attempt_branch(&self.town, task, attempt),
            &tip,
        );
        wt.run(&["checkout", "--quiet", "--no-track", "-B", &branch, &tip])
            .map_err(|e| e.to_string())?;
        // What is neither committed nor ignored cannot be left from an
        // earlier attempt (salvage committed it), only made since.
        copy_includes(&wt, &root, &dir, &self.options.include)?;
        state::write(
            &dir,
            &AttemptState {
                task: task.to_string(),
                attempt,
                worker: self.worker.clone(),
                branch: branch.clone(),
                base: tip.clone(),
                into: into.clone(),
                landed: None,
                commit: None,
            },
        )?;
        Ok(Attempt {
            task: task.to_string(),
            attempt,
            workdir: if inside.as_os_str().is_empty() {
                dir.clone()
            } else {
                dir.join(inside)
            },
            root: dir,
            branch,
            base: tip,
            into,
            repo: root,
        })
    }
}

impl Workspace {
    /// At a worker's start: what an attempt of an earlier process with
    /// this id left uncommitted is committed at once (its task may be
    /// retried on another worker, and this one may get no task for long),
    /// and the worktree is left clean on a detached `HEAD`. Nothing to do
    /// without a worktree yet.
    pub fn tidy(&self) -> Result<(), String> {
        let dir = self.dir();
        if !dir.join(".git").is_file() {
            return Ok(());
        }
        let root = probe::repository_root(&self.project_dir)?;
        let wt = Git::committing(&root).in_dir(&dir);
        let previous = state::read(&dir);
        salvage::salvage(&wt, previous.as_ref(), &self.worker, &self.town)?;
        if let Some(mut previous) = previous.filter(|p| p.landed.is_none()) {
            previous.landed = Some(false);
            state::write(&dir, &previous)?;
        }
        wt.run(&["checkout", "--quiet", "--detach"])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn canonical(path: &Path) -> Result<PathBuf, String> {
    path.canonicalize()
        .map_err(|e| format!("cannot resolve `{}`: {e}", path.display()))
}

/// The tip of `into`, created from the repository's `HEAD` when the branch
/// does not exist yet.
fn ensure_into(repo: &Git, into: &str) -> Result<String, String> {
    let reference = format!("refs/heads/{into}");
    if let Some(tip) = repo.commit_of(&reference) {
        return Ok(tip);
    }
    let head = repo.commit_of("HEAD").ok_or_else(|| {
        format!(
            "the branch `{into}` does not exist and `HEAD` of `{}` names no commit to start it from: make a first commit, or set `into` to an existing branch",
            repo.dir().display()
        )
    })?;
    // Created only if still absent: another worker may be doing the same.
    let _ = repo.run(&["update-ref", &reference, &head, ""]);
    repo.commit_of(&reference)
        .ok_or_else(|| format!("cannot create the branch `{into}`"))
}

/// A registered, present worktree at `dir`, created at `tip` if needed.
fn ensure_worktree(repo: &Git, project_dir: &Path, dir: &Path, tip: &str) -> Result<(), String> {
    if is_worktree(dir) {
        return Ok(());
    }
    let _turn = lock::take(project_dir, "worktree")?;
    // Another worker of this project may have made it meanwhile.
    if is_worktree(dir) {
        return Ok(());
    }
    // Forget registrations whose directory is gone, so `add` may reuse it.
    repo.run(&["worktree", "prune"])
        .map_err(|e| e.to_string())?;
    if dir.exists() {
        // Not a worktree of this repository, but it may hold someone's
        // files: moved aside, never deleted.
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = dir.with_file_name(format!(
            "{}.orphaned-{secs}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::rename(dir, &aside).map_err(|e| {
            format!(
                "`{}` is not a worktree of this repository and cannot be moved aside: {e}",
                dir.display()
            )
        })?;
    }
    if let Some(parent) = dir.parent() {
        crate::state_dir::create_dir(parent)
            .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    }
    let path = dir.to_string_lossy();
    repo.run(&["worktree", "add", "--quiet", "--detach", &path, tip])
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn is_worktree(dir: &Path) -> bool {
    dir.join(".git").is_file()
        && Git::at(dir)
            .run(&["rev-parse", "--show-toplevel"])
            .is_ok_and(|t| Path::new(&t) == dir || canonical(dir).is_ok_and(|d| d == Path::new(&t)))
}

/// `wanted`, unless a branch of that name holds work that is not in
/// `tip` (an earlier run of the same attempt that did not land): then
/// the first free `wanted-2`, `wanted-3`, ….
fn free_branch(repo: &Git, wanted: &str, tip: &str) -> String {
    let usable = |name: &str| match repo.commit_of(&format!("refs/heads/{name}")) {
        None => true,
        Some(old) => repo.is_ancestor(&old, tip),
    };
    if usable(wanted) {
        return wanted.to_string();
    }
    (2..)
        .map(|k| format!("{wanted}-{k}"))
        .find(|name| usable(name))
        .unwrap_or_else(|| wanted.to_string())
}

/// Copies each `include` path (a file or a directory) from the
/// repository's own checkout into the worktree. Each must be ignored by
/// git: tt commits whatever is not, and secrets must not end up in a
/// commit.
fn copy_includes(wt: &Git, repo: &Path, worktree: &Path, include: &[String]) -> Result<(), String> {
    for rel in include {
        let from = repo.join(rel);
        if !from.exists() {
            continue;
        }
        if !wt.succeeds(&["check-ignore", "-q", rel]) {
            return Err(format!(
                "`{rel}` (in `include`) is not ignored by git, so tt would commit it: add it to `.gitignore`"
            ));
        }
        copy_path(&from, &worktree.join(rel)).map_err(|e| {
            format!(
                "cannot copy `{rel}` into the worktree `{}`: {e}",
                worktree.display()
            )
        })?;
    }
    Ok(())
}

fn copy_path(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_path(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to).map(|_| ())
    }
}
