//! What the plan checks at load for an agent with `workspace = "worktree"`:
//! a git new enough for the commands landing relies on, and a repository
//! around tasks.toml. A problem here is a diagnostic of the file, not a
//! failure in the middle of a run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::git::{Git, parse_version};

/// `git merge-tree --write-tree`, which every landing uses.
pub const MIN_GIT: (u32, u32) = (2, 38);
/// `git merge-tree --merge-base`, which replays commits for `land = "rebase"`.
pub const MIN_GIT_REBASE: (u32, u32) = (2, 40);

/// The installed git's `(major, minor)`, asked once per process; the error
/// says why there is none.
pub fn git_version() -> Result<(u32, u32), String> {
    static VERSION: OnceLock<Result<(u32, u32), String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = Git::at(Path::new("."))
                .output(&["--version"], None)
                .map_err(|e| e.message)?;
            parse_version(&out.stdout)
                .ok_or_else(|| format!("`git --version` said `{}`", out.stdout.trim()))
        })
        .clone()
}

/// The top directory of the git repository that contains `dir`.
pub fn repository_root(dir: &Path) -> Result<PathBuf, String> {
    let git = Git::at(dir);
    match git.output(&["rev-parse", "--show-toplevel"], None) {
        Ok(o) if o.code == 0 && !o.stdout.trim().is_empty() => Ok(PathBuf::from(o.stdout.trim())),
        Ok(o) if o.stderr.contains("not a git repository") => {
            Err(format!("`{}` is not in a git repository", dir.display()))
        }
        Ok(o) => Err(format!(
            "cannot find the git repository of `{}`: {}",
            dir.display(),
            o.stderr.trim()
        )),
        Err(e) => Err(e.message),
    }
}

/// Whether `name` can be a branch name.
pub fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && Git::at(Path::new(".")).succeeds(&["check-ref-format", &format!("refs/heads/{name}")])
}

/// Whether the repository at `dir` has a remote called `name`.
pub fn has_remote(dir: &Path, name: &str) -> bool {
    Git::at(dir).succeeds(&["remote", "get-url", name])
}

/// Whether git ignores `path` (relative to `dir`).
pub fn is_ignored(dir: &Path, path: &str) -> bool {
    Git::at(dir).succeeds(&["check-ignore", "-q", path])
}

/// `2.38` for messages.
pub fn show((major, minor): (u32, u32)) -> String {
    format!("{major}.{minor}")
}
