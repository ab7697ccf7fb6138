//! A worker whose `tt run` is gone: it was started by a runner (which set
//! [`RUNNER_PID_ENV`]) that is no longer its parent. Nobody supervises it
//! any more, so it stops taking work and gives up on Redis after
//! [`ORPHAN_PATIENCE`] instead of retrying forever.

use std::time::Duration;

use tokio::time::Instant;

use super::Note;

/// Set by `tt run` on the workers it starts: its own pid.
pub const RUNNER_PID_ENV: &str = "TT_RUNNER_PID";

/// How long a worker whose `tt run` is gone keeps retrying Redis to report
/// or claim before it gives up and exits, leaving its task for recovery:
/// nobody supervises it any more, so it must not retry forever.
pub const ORPHAN_PATIENCE: Duration = Duration::from_secs(15);

/// Whether an orphaned worker (see [`runner_gone`]) has failed to reach
/// Redis for [`ORPHAN_PATIENCE`]; `since` is when its failures began.
pub(super) fn orphan_gives_up(since: &mut Option<Instant>) -> bool {
    if !runner_gone() {
        *since = None;
        return false;
    }
    since.get_or_insert_with(Instant::now).elapsed() >= ORPHAN_PATIENCE
}

pub(super) fn orphan_note(doing: &str) -> Note {
    Note::Stopping {
        why: format!(
            "gave up {doing}: the `tt run` that started this worker is gone and Redis has not \
             answered for {}; what it had is left for recovery",
            humantime::format_duration(ORPHAN_PATIENCE)
        ),
    }
}

/// Whether this worker was started by a `tt run` that is no longer its
/// parent (the runner died and the worker was re-parented).
pub(super) fn runner_gone() -> bool {
    static RUNNER: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    let runner = RUNNER.get_or_init(|| {
        std::env::var(RUNNER_PID_ENV)
            .ok()
            .and_then(|p| p.parse().ok())
    });
    match runner {
        // SAFETY: getppid(2) has no preconditions.
        Some(pid) => i64::from(unsafe { libc::getppid() }) != *pid,
        None => false,
    }
}
