//! The environment of every process a test or a benchmark starts: the
//! caller's own environment minus what would steer the child into someone
//! else's state.
//!
//! Tests and benchmarks run wherever a developer or tinytown itself runs
//! them: inside a `tt` task, the worker's `TT_FILE`, `TT_TOWN`, `REDIS_URL`
//! … would point a test's `tt` at the outer town (so the check pipeline
//! started itself again, recursively), and a `git` hook's `GIT_DIR` would
//! point a test's `git` at the outer repository. Every child therefore
//! starts from [`command`]; `tests/support` uses it for `tt` itself and the
//! benchmarks include this file too, so there is one list.

use std::ffi::OsStr;
use std::process::Command;

/// Whether an inherited variable named `name` must not reach a child:
/// tinytown's own (`TT_*`), the Redis it talks to (`REDIS_URL`, and
/// `REDISCLI_AUTH`, the password `redis-cli` reads) and git's (`GIT_*`).
pub fn is_leaked(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("TT_")
        || name.starts_with("GIT_")
        || name == "REDIS_URL"
        || name == "REDISCLI_AUTH"
}

/// A [`Command`] for `program` whose environment is this process's minus
/// every variable [`is_leaked`] names. Variables the caller sets afterwards
/// with `.env(…)` are passed as usual.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if is_leaked(&name) {
            command.env_remove(name);
        }
    }
    command
}
