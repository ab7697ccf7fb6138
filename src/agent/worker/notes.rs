//! What a worker tells: [`Note`]s, to its [`Reporter`] (the command line
//! prints them) and, with a timestamp, to its journal
//! (`.tt/logs/agents/<worker>.log`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::agent::process::Ending;
use crate::store::Finish;

/// Something worth telling whoever watches the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Registered {
        worker: String,
        agent: String,
        town: String,
        pid: u32,
        /// Unclaimed messages an earlier process with this id left, now
        /// back in the inbox.
        returned: u64,
        /// Tasks an earlier process with this id was running, now pending.
        requeued: u64,
    },
    /// Another process's heartbeat still holds the id.
    WaitingForId {
        worker: String,
        holder: String,
    },
    Started {
        task: String,
        attempt: u32,
        pid: u32,
        log: PathBuf,
    },
    Finished {
        task: String,
        attempt: u32,
        ending: Ending,
        result: Finish,
    },
    /// A stale inbox message, dropped without running.
    Dropped {
        task: String,
        attempt: u32,
        reason: String,
    },
    /// A direct message (`tt send`).
    Message {
        from: String,
        body: String,
    },
    DeadLetter {
        reason: String,
    },
    /// A control message that does not concern what runs now.
    IgnoredControl {
        what: String,
    },
    /// The command was stopped by a shutdown; its task is left running for
    /// the runner's recovery.
    LeftForRecovery {
        task: String,
        attempt: u32,
    },
    /// Inbox messages taken during shutdown, returned unclaimed.
    GaveBack {
        count: u64,
    },
    RedisError {
        doing: &'static str,
        error: String,
        /// `None`: not retried (at shutdown).
        retry_in: Option<Duration>,
    },
    RedisBack {
        doing: &'static str,
    },
    Stopping {
        why: String,
    },
    Stopped {
        tasks: u32,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Registered {
                worker,
                agent,
                town,
                pid,
                returned,
                requeued,
            } => {
                write!(
                    f,
                    "worker `{worker}` of agent `{agent}` is ready in town `{town}` (pid {pid})"
                )?;
                if *returned > 0 || *requeued > 0 {
                    write!(
                        f,
                        "; an earlier `{worker}` left work: {returned} message(s) back in the \
                         inbox, {requeued} task(s) requeued"
                    )?;
                }
                Ok(())
            }
            Note::WaitingForId { worker, holder } => write!(
                f,
                "worker id `{worker}` still has a live heartbeat ({holder}); waiting for it to expire"
            ),
            Note::Started {
                task,
                attempt,
                pid,
                log,
            } => write!(
                f,
                "started `{task}` attempt {attempt} (pid {pid}), log: {}",
                log.display()
            ),
            Note::Finished {
                task,
                attempt,
                ending,
                result,
            } => {
                let how = match ending {
                    Ending::Exited(code) => format!("exited with code {code}"),
                    Ending::NotStarted(why) => format!("did not start: {why}"),
                    other => other.error().unwrap_or_default(),
                };
                let then = match result {
                    Finish::Completed => "completed".to_string(),
                    Finish::Retry { .. } => "will be retried".to_string(),
                    Finish::Failed => "failed".to_string(),
                    Finish::Requeued => "requeued".to_string(),
                    Finish::Stale { reason } => format!("report rejected ({reason})"),
                };
                write!(f, "`{task}` attempt {attempt} {how}: {then}")
            }
            Note::Dropped {
                task,
                attempt,
                reason,
            } => write!(f, "dropped `{task}` attempt {attempt}: {reason}"),
            Note::Message { from, body } => write!(f, "[message from {from}] {body}"),
            Note::DeadLetter { reason } => write!(
                f,
                "moved an unreadable inbox message to the deadletter list: {reason}"
            ),
            Note::IgnoredControl { what } => write!(f, "ignored control message: {what}"),
            Note::LeftForRecovery { task, attempt } => write!(
                f,
                "stopped `{task}` attempt {attempt}; it is left for recovery"
            ),
            Note::GaveBack { count } => {
                write!(f, "returned {count} unclaimed message(s) to the inbox")
            }
            Note::RedisError {
                doing,
                error,
                retry_in,
            } => match retry_in {
                Some(pause) => write!(
                    f,
                    "Redis failed while {doing}: {error}; retrying in {}",
                    humantime::format_duration(*pause)
                ),
                None => write!(f, "Redis failed while {doing}: {error}"),
            },
            Note::RedisBack { doing } => write!(f, "Redis answers again ({doing})"),
            Note::Stopping { why } => write!(f, "stopping: {why}"),
            Note::Stopped { tasks } => write!(f, "stopped after {tasks} task(s)"),
        }
    }
}

/// Receives the worker's notes (the command line prints them).
pub trait Reporter: Send + Sync {
    fn report(&self, note: &Note);
}

/// Notes go to the reporter and, with a timestamp, to the worker's
/// journal — unless stdout already is the journal (a worker started by
/// `tt run` or `tt spawn`), where they would appear twice.
pub(super) struct Notes {
    reporter: Arc<dyn Reporter>,
    journal: Option<Mutex<File>>,
}

impl Notes {
    pub(super) fn new(reporter: Arc<dyn Reporter>, journal: &Path) -> Self {
        let file = if stdout_is(journal) {
            None
        } else {
            crate::state_dir::open_log(journal).ok().map(Mutex::new)
        };
        Self {
            reporter,
            journal: file,
        }
    }

    pub(super) fn emit(&self, note: Note) {
        if let Some(journal) = &self.journal
            && let Ok(mut f) = journal.lock()
        {
            let now = humantime::format_rfc3339_seconds(SystemTime::now());
            let _ = writeln!(f, "{now} {note}");
        }
        self.reporter.report(&note);
    }
}

/// Whether this process's stdout is the file at `path`.
fn stdout_is(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata("/dev/fd/1"), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_read_well() {
        let n = Note::Message {
            from: "alice".into(),
            body: "hi there".into(),
        };
        assert_eq!(n.to_string(), "[message from alice] hi there");
        let n = Note::Finished {
            task: "t".into(),
            attempt: 1,
            ending: Ending::NotStarted("`claude` not found on PATH".into()),
            result: Finish::Failed,
        };
        assert_eq!(
            n.to_string(),
            "`t` attempt 1 did not start: `claude` not found on PATH: failed"
        );
    }
}
