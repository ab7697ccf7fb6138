//! Running git as a process: `git -C <dir> …` with a clean environment
//! (no `GIT_DIR` or `GIT_WORK_TREE` of a hook that started tt), a stable
//! language for the output tt reads, no hooks, and, for the commits tt makes, an
//! identity when the repository and the user configured none — tt must be
//! able to commit on a build machine nobody set up.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Name and address of commits tt makes where git has none configured.
pub const FALLBACK_NAME: &str = "tinytown";
pub const FALLBACK_EMAIL: &str = "tinytown@localhost";

/// Variables that would point git at another repository than `dir`.
const REPOSITORY_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
];

/// A git command that failed: what ran, where, and what git said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitError {
    pub args: String,
    pub dir: PathBuf,
    pub message: String,
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`git {}` in {} failed: {}",
            self.args,
            self.dir.display(),
            self.message
        )
    }
}

impl std::error::Error for GitError {}

/// What a git command printed, and how it exited.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// git, run in one directory.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// `-c user.name=…` / `-c user.email=…` where none is configured.
    identity: Vec<String>,
}

impl Git {
    /// git in `dir`, committing as whoever git is configured to.
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            identity: Vec::new(),
        }
    }

    /// git in `dir`, with tt's fallback name and address for whichever of
    /// `user.name` and `user.email` is not configured there.
    pub fn committing(dir: &Path) -> Self {
        let mut git = Self::at(dir);
        for (key, fallback) in [("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL)] {
            let set = git
                .output(&["config", "--get", key], None)
                .is_ok_and(|o| o.code == 0 && !o.stdout.trim().is_empty());
            if !set {
                git.identity.push("-c".into());
                git.identity.push(format!("{key}={fallback}"));
            }
        }
        git
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The same settings, in another directory.
    pub fn in_dir(&self, dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            identity: self.identity.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        // No hooks on tt's own checkouts and commits: a `post-checkout`
        // of the repository must not run (or fail) in tt's bookkeeping.
        cmd.arg("-C")
            .arg(&self.dir)
            .args(["-c", "core.hooksPath=/dev/null"])
            .args(&self.identity)
            .args(args);
        for var in REPOSITORY_VARS {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn error(&self, args: &[&str], message: String) -> GitError {
        GitError {
            args: args.join(" "),
            dir: self.dir.clone(),
            message,
        }
    }

    /// Runs git and returns how it went, whatever its exit code; an error
    /// only when git cannot be run at all. `env` is set on top.
    pub fn output_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Result<Output, GitError> {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().map_err(|e| {
            self.error(
                args,
                match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        "`git` not found on PATH: install git 2.38 or newer".into()
                    }
                    _ => format!("cannot start git: {e}"),
                },
            )
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .map_err(|e| self.error(args, format!("cannot write to git: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| self.error(args, format!("lost track of git: {e}")))?;
        Ok(Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    pub fn output(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, GitError> {
        self.output_env(args, &[], stdin)
    }

    /// Runs git; its stdout, trimmed, when it exits 0, else an error with
    /// what it said.
    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        self.run_env(args, &[], None)
    }

    pub fn run_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Result<String, GitError> {
        let out = self.output_env(args, env, stdin)?;
        if out.code == 0 {
            return Ok(out.stdout.trim().to_string());
        }
        let said = out.stderr.trim();
        let said = if said.is_empty() {
            out.stdout.trim()
        } else {
            said
        };
        Err(self.error(
            args,
            format!("exit code {}: {}", out.code, first_lines(said, 6)),
        ))
    }

    /// Whether git exits 0.
    pub fn succeeds(&self, args: &[&str]) -> bool {
        self.output(args, None).is_ok_and(|o| o.code == 0)
    }

    /// The commit `rev` names, if it names one.
    pub fn commit_of(&self, rev: &str) -> Option<String> {
        let spec = format!("{rev}^{{commit}}");
        self.output(&["rev-parse", "--verify", "--quiet", &spec], None)
            .ok()
            .filter(|o| o.code == 0)
            .map(|o| o.stdout.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        self.succeeds(&["merge-base", "--is-ancestor", ancestor, descendant])
    }

    /// Uncommitted changes: `git status --porcelain` lines (tracked changes
    /// and untracked files that are not ignored).
    pub fn changes(&self) -> Result<Vec<String>, GitError> {
        Ok(self
            .run(&["status", "--porcelain", "--untracked-files=all"])?
            .lines()
            .map(str::to_string)
            .collect())
    }
}

fn first_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().take(n).collect();
    lines.join("; ")
}

/// `(major, minor)` of `git version 2.47.3`-like text.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.trim().strip_prefix("git version ")?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("git version 2.47.3\n"), Some((2, 47)));
        assert_eq!(
            parse_version("git version 2.39.5 (Apple Git-154)"),
            Some((2, 39))
        );
        assert_eq!(parse_version("git version 2.38.0.windows.1"), Some((2, 38)));
        assert_eq!(parse_version("hub version 1"), None);
    }
}
