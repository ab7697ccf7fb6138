//! Landing: when an attempt's command exits 0, what it left uncommitted is
//! committed (task id and description, trailers `Tt-Task`, `Tt-Attempt`,
//! `Tt-Agent`), and its commits land on `into`: a merge commit
//! (`land = "merge"`), the commits replayed on the tip (`"rebase"`), or
//! not at all (`"branch"`).
//!
//! Only refs move: trees come from `git merge-tree --write-tree`, commits
//! from `git commit-tree`, and `into` moves with `git update-ref <new>
//! <old>`, which fails if anything else moved it meanwhile. No checkout is
//! touched, and a branch that some worktree has checked out is refused
//! (moving it would leave that checkout out of step with its branch).
//! Landings of a town take turns on a lock file (`.tt/land.lock`), in the
//! order attempts finish. A conflict fails the attempt and keeps its
//! branch and commit.

use std::fmt;

use super::git::Git;
use super::lock;
use super::mode::Land;
use super::salvage::{self, commit_all, trailers};
use super::state::{self, AttemptState};
use super::worktree::{Attempt, Workspace};

/// How many times a landing starts again when `into` moved under it.
const RACES: u32 = 5;

/// What an attempt's end did with its work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Landed {
    pub branch: String,
    pub base: String,
    pub into: String,
    /// The attempt's last commit (its branch's tip).
    pub head: String,
    /// Whether its work is on `into` now.
    pub landed: bool,
    /// The commit on `into` that holds it.
    pub commit: Option<String>,
    /// `git diff --shortstat` of the attempt's work.
    pub diffstat: String,
    /// What happened, for the attempt's log.
    pub note: String,
}

/// Why an attempt's work did not land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandingError {
    /// Its changes conflict with what landed since it started.
    Conflict {
        /// The task whose landed work it conflicts with (or `into`).
        with: String,
        files: Vec<String>,
        branch: String,
    },
    /// Anything else: a branch checked out elsewhere, a git failure.
    Failed(String),
}

impl fmt::Display for LandingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LandingError::Conflict {
                with,
                files,
                branch,
            } => write!(
                f,
                "conflicts with `{with}` in {}; its work is kept on branch `{branch}`",
                files.join(", ")
            ),
            LandingError::Failed(why) => f.write_str(why),
        }
    }
}

impl From<String> for LandingError {
    fn from(why: String) -> Self {
        LandingError::Failed(why)
    }
}

impl From<super::GitError> for LandingError {
    fn from(e: super::GitError) -> Self {
        LandingError::Failed(e.to_string())
    }
}

impl Workspace {
    /// Ends an attempt. A command that failed (or never finished) has its
    /// changes kept by [`salvage`]; one that succeeded has them committed
    /// and landed. Either way the worktree is left clean on a detached
    /// `HEAD`, so its branch is free to move and the next attempt starts
    /// from a known state.
    pub fn finish(
        &self,
        a: &Attempt,
        succeeded: bool,
        description: &str,
    ) -> Result<Landed, LandingError> {
        let repo = Git::committing(&a.repo);
        let wt = repo.in_dir(&a.root);
        let mut record = state::read(&a.root).unwrap_or_else(|| AttemptState {
            task: a.task.clone(),
            attempt: a.attempt,
            worker: self.worker.clone(),
            branch: a.branch.clone(),
            base: a.base.clone(),
            into: a.into.clone(),
            landed: None,
            commit: None,
        });
        if !succeeded {
            salvage::salvage(&wt, Some(&record), &self.worker, &self.town)?;
        } else if !wt.changes()?.is_empty() {
            commit_all(&wt, &task_message(a, &self.worker, description))?;
        }
        let head = wt
            .commit_of("HEAD")
            .ok_or_else(|| format!("the worktree `{}` has no commit", a.root.display()))?;
        wt.run(&["checkout", "--quiet", "--detach"])?;
        // The agent may have switched branches: its branch is what it made.
        let branch_ref = format!("refs/heads/{}", a.branch);
        if repo.commit_of(&branch_ref).as_deref() != Some(head.as_str()) {
            repo.run(&["update-ref", &branch_ref, &head])?;
        }
        let mut landed = Landed {
            branch: a.branch.clone(),
            base: a.base.clone(),
            into: a.into.clone(),
            head: head.clone(),
            diffstat: repo
                .run(&["diff", "--shortstat", &a.base, &head])
                .unwrap_or_default(),
            ..Landed::default()
        };
        let result = if !succeeded {
            landed.note = format!("not landed; its work is kept on branch `{}`", a.branch);
            Ok(())
        } else if head == a.base {
            landed.note = "the attempt changed nothing: nothing to land".into();
            Ok(())
        } else {
            self.deliver(&repo, a, &mut landed, description)
        };
        record.landed = Some(landed.landed);
        record.commit = landed.commit.clone();
        state::write(&a.root, &record)?;
        result.map(|()| landed)
    }

    fn deliver(
        &self,
        repo: &Git,
        a: &Attempt,
        landed: &mut Landed,
        description: &str,
    ) -> Result<(), LandingError> {
        match self.options.land {
            Land::Branch => {
                landed.note = format!("left on branch `{}` (land = \"branch\")", a.branch);
            }
            Land::Merge | Land::Rebase => {
                let _turn = lock::take(&self.project_dir, "land")?;
                refuse_checked_out(repo, &a.into)?;
                let commit = match self.options.land {
                    Land::Rebase => rebase(repo, a, &self.worker)?,
                    _ => merge(repo, a, &landed.head, &self.worker, description)?,
                };
                landed.landed = true;
                landed.note = format!(
                    "landed on `{}` as {}",
                    a.into,
                    &commit[..commit.len().min(12)]
                );
                landed.commit = Some(commit);
            }
        }
        if let Some(remote) = &self.options.push {
            let spec = format!("refs/heads/{0}:refs/heads/{0}", a.branch);
            repo.run(&["push", "--quiet", remote, &spec])
                .map_err(|e| format!("cannot push branch `{}` to `{remote}`: {e}", a.branch))?;
            landed.note.push_str(&format!("; pushed to `{remote}`"));
        }
        Ok(())
    }
}

/// The message of tt's commit of what a successful attempt left.
fn task_message(a: &Attempt, worker: &str, description: &str) -> String {
    let mut lines = description.trim().lines();
    let subject = lines.next().unwrap_or("").trim();
    let subject = if subject.is_empty() {
        a.task.clone()
    } else {
        format!("{}: {}", a.task, shorten(subject, 72))
    };
    let body: Vec<&str> = lines.collect();
    let body = body.join("\n");
    let body = body.trim();
    let mut message = subject;
    if !body.is_empty() {
        message.push_str("\n\n");
        message.push_str(body);
    }
    message.push_str("\n\n");
    message.push_str(&trailers(&a.task, a.attempt, worker));
    message.push('\n');
    message
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// An error when some worktree (the user's own checkout included) has
/// `branch` checked out.
fn refuse_checked_out(repo: &Git, branch: &str) -> Result<(), String> {
    let list = repo
        .run(&["worktree", "list", "--porcelain"])
        .map_err(|e| e.to_string())?;
    let wanted = format!("branch refs/heads/{branch}");
    let mut path = "";
    for line in list.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            path = p;
        } else if line == wanted {
            return Err(format!(
                "cannot land on `{branch}`: it is checked out in `{path}`, and moving it would leave that checkout behind its branch; switch that checkout to another branch (`git switch --detach`), or set `into` to a branch nobody has checked out"
            ));
        }
    }
    Ok(())
}

/// The tree of merging `theirs` into `ours` (with `base` as the merge
/// base when given), or the conflicted files.
fn merge_tree(
    repo: &Git,
    ours: &str,
    theirs: &str,
    base: Option<&str>,
) -> Result<Result<String, Vec<String>>, String> {
    let base_arg = base.map(|b| format!("--merge-base={b}"));
    let mut args = vec!["merge-tree", "--write-tree", "--name-only", "--no-messages"];
    if let Some(b) = &base_arg {
        args.push(b);
    }
    args.extend([ours, theirs]);
    let out = repo.output(&args, None).map_err(|e| e.to_string())?;
    let mut lines = out.stdout.lines();
    let tree = lines.next().unwrap_or("").trim().to_string();
    match out.code {
        0 => Ok(Ok(tree)),
        1 => {
            let mut files: Vec<String> = lines
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            files.dedup();
            Ok(Err(files))
        }
        code => Err(format!(
            "`git merge-tree` failed (exit code {code}): {}",
            out.stderr.trim()
        )),
    }
}

/// Which task's landed work since `base` last touched `files`: the
/// `Tt-Task` of the newest such commit on `tip`, else `into` itself.
fn conflicting_task(repo: &Git, base: &str, tip: &str, files: &[String], into: &str) -> String {
    let range = format!("{base}..{tip}");
    let mut args = vec![
        "log",
        "--format=%(trailers:key=Tt-Task,valueonly,separator=%x2C)",
        &range,
        "--",
    ];
    args.extend(files.iter().map(String::as_str));
    repo.run(&args)
        .ok()
        .and_then(|out| {
            out.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| into.to_string())
}

fn conflict(repo: &Git, a: &Attempt, tip: &str, files: Vec<String>) -> LandingError {
    LandingError::Conflict {
        with: conflicting_task(repo, &a.base, tip, &files, &a.into),
        files,
        branch: a.branch.clone(),
    }
}

/// Moves `into` from `old` to `new`; false when it was not at `old` any more.
fn advance(repo: &Git, into: &str, new: &str, old: &str) -> bool {
    repo.succeeds(&["update-ref", &format!("refs/heads/{into}"), new, old])
}

fn tip_of(repo: &Git, into: &str) -> Result<String, String> {
    repo.commit_of(&format!("refs/heads/{into}"))
        .ok_or_else(|| format!("the branch `{into}` is gone"))
}

/// A merge commit of `head` into the tip of `into`.
fn merge(
    repo: &Git,
    a: &Attempt,
    head: &str,
    worker: &str,
    description: &str,
) -> Result<String, LandingError> {
    let subject = description.trim().lines().next().unwrap_or("").trim();
    let message = format!(
        "Land {}{}\n\nMerge branch '{}' into {}\n\n{}\n",
        a.task,
        if subject.is_empty() {
            String::new()
        } else {
            format!(": {}", shorten(subject, 64))
        },
        a.branch,
        a.into,
        trailers(&a.task, a.attempt, worker)
    );
    for _ in 0..RACES {
        let tip = tip_of(repo, &a.into)?;
        let tree = if repo.is_ancestor(&tip, head) {
            repo.run(&["rev-parse", &format!("{head}^{{tree}}")])?
        } else {
            match merge_tree(repo, &tip, head, None)? {
                Ok(tree) => tree,
                Err(files) => return Err(conflict(repo, a, &tip, files)),
            }
        };
        let commit = repo.run_env(
            &["commit-tree", &tree, "-p", &tip, "-p", head, "-F", "-"],
            &[],
            Some(&message),
        )?;
        if advance(repo, &a.into, &commit, &tip) {
            return Ok(commit);
        }
    }
    Err(LandingError::Failed(format!(
        "`{}` kept moving while this attempt landed; try again",
        a.into
    )))
}

/// The attempt's commits (along their first parents) replayed one by one
/// on the tip of `into`, each keeping its author and message, with tt's
/// trailers added where it has none. The attempt's branch then points at
/// the replayed commits, so it reads as landed.
fn rebase(repo: &Git, a: &Attempt, worker: &str) -> Result<String, LandingError> {
    let range = format!("{}..refs/heads/{}", a.base, a.branch);
    let commits: Vec<String> = repo
        .run(&["rev-list", "--reverse", "--first-parent", &range])?
        .lines()
        .map(str::to_string)
        .collect();
    let head = repo
        .commit_of(&format!("refs/heads/{}", a.branch))
        .unwrap_or_default();
    for _ in 0..RACES {
        let tip = tip_of(repo, &a.into)?;
        let mut new = tip.clone();
        for c in &commits {
            let parent = repo.run(&["rev-parse", &format!("{c}^1")])?;
            let tree = match merge_tree(repo, &new, c, Some(&parent))? {
                Ok(tree) => tree,
                Err(files) => return Err(conflict(repo, a, &tip, files)),
            };
            let info = repo.run(&["log", "-1", "--format=%an%x00%ae%x00%aD%x00%B", c])?;
            let mut parts = info.splitn(4, '\0');
            let (name, email, date, body) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let mut message = body.trim_end().to_string();
            if !message.contains("Tt-Task:") {
                message.push_str("\n\n");
                message.push_str(&trailers(&a.task, a.attempt, worker));
            }
            message.push('\n');
            new = repo.run_env(
                &["commit-tree", &tree, "-p", &new, "-F", "-"],
                &[
                    ("GIT_AUTHOR_NAME", name),
                    ("GIT_AUTHOR_EMAIL", email),
                    ("GIT_AUTHOR_DATE", date),
                ],
                Some(&message),
            )?;
        }
        if advance(repo, &a.into, &new, &tip) {
            let _ = repo.run(&[
                "update-ref",
                &format!("refs/heads/{}", a.branch),
                &new,
                &head,
            ]);
            return Ok(new);
        }
    }
    Err(LandingError::Failed(format!(
        "`{}` kept moving while this attempt landed; try again",
        a.into
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> Attempt {
        Attempt {
            task: "login".into(),
            attempt: 2,
            root: "/w".into(),
            workdir: "/w".into(),
            branch: "tt/shop@login/2".into(),
            base: "abc".into(),
            into: "tt/shop".into(),
            repo: "/r".into(),
        }
    }

    #[test]
    fn tt_s_commit_names_the_task_and_carries_the_trailers() {
        let m = task_message(&attempt(), "coder-1", "Implement login\n\nWith tests.\n");
        assert_eq!(
            m,
            "login: Implement login\n\nWith tests.\n\nTt-Task: login\nTt-Attempt: 2\nTt-Agent: coder-1\n"
        );
        let m = task_message(&attempt(), "coder-1", "  ");
        assert!(m.starts_with("login\n\nTt-Task: login\n"), "{m}");
        let long = "x".repeat(100);
        let m = task_message(&attempt(), "c", &long);
        assert_eq!(
            m.lines().next().unwrap().chars().count(),
            "login: ".len() + 72
        );
    }

    #[test]
    fn a_conflict_names_the_task_and_the_files() {
        let e = LandingError::Conflict {
            with: "signup".into(),
            files: vec!["src/a.rs".into(), "README".into()],
            branch: "tt/shop@login/2".into(),
        };
        assert_eq!(
            e.to_string(),
            "conflicts with `signup` in src/a.rs, README; its work is kept on branch `tt/shop@login/2`"
        );
    }
}
