//! Running one attempt's command as a process of its own.
//!
//! The command runs in a new process group (its pid is the group id), so
//! stopping it — on a timeout, a `stop` control message or the worker's own
//! shutdown — signals everything it started, not just the first process:
//! SIGTERM to the group, then SIGKILL to what is left after a grace period.
//! A terminal's Ctrl-C reaches only the worker's group; the worker decides
//! what happens to the command.
//!
//! stdin is closed (`/dev/null`): agents run non-interactively, and a
//! prompt nobody answers must fail, not hang. stdout and stderr are
//! appended to the attempt's log file, and lines of tt's own start with
//! `[tt]`; a command whose output tt reads ([`Launch::capture`]) writes
//! its stdout into a pipe instead, which the worker copies into the log
//! as it reads it ([`super::adapter::stream`]). A command that cannot
//! start is an [`Ending`] like any other.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long a stopped command has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a stop asks again how long the command may still run.
const STOP_CHECK: Duration = Duration::from_millis(250);
/// How much of the end of the log is kept with the task as its output.
pub const TAIL_BYTES: u64 = 2048;

/// One attempt's command line and surroundings.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// Program and arguments, already substituted; never through a shell.
    pub argv: &'a [String],
    /// Set on top of the worker's own environment, later entries winning.
    pub env: &'a [(String, String)],
    pub workdir: &'a Path,
    /// Where stdout and stderr go.
    pub log: &'a Log,
    /// stdout goes to a pipe ([`Running::take_stdout`]) instead of the
    /// log, for the worker to read (and log) as it is written.
    pub capture: bool,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Exited by itself with this code.
    Exited(i32),
    /// Killed by a signal tt did not send.
    Signaled(i32),
    /// Ran longer than its timeout and was stopped.
    TimedOut(Duration),
    /// Stopped on request (`stop` control message).
    Stopped,
    /// Stopped by the worker itself after this long without renewing its
    /// heartbeat (self-fencing): the task may be requeued at any moment.
    Fenced(Duration),
    /// Stopped because it went over its budget (the reason says by how
    /// much: `over budget: $0.52 of $0.50`).
    OverBudget(String),
    /// Exited with this code, but its output said the run failed.
    AgentFailed { code: i32, why: String },
    /// Never started; the message says why.
    NotStarted(String),
    /// Exited 0, but its work could not land (`workspace = "worktree"`):
    /// the message says why, e.g. `conflicts with <task> in <files>`.
    NotLanded(String),
}

impl Ending {
    /// The exit code, when the command exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Ending::Exited(code) | Ending::AgentFailed { code, .. } => Some(*code),
            // It did exit 0; the error says why the attempt failed anyway.
            Ending::NotLanded(_) => Some(0),
            _ => None,
        }
    }

    /// Why the attempt failed, unless its exit code says it all.
    pub fn error(&self) -> Option<String> {
        match self {
            Ending::Exited(_) => None,
            Ending::Signaled(sig) => Some(format!("killed by signal {sig}")),
            Ending::TimedOut(after) => Some(format!(
                "timed out after {}",
                humantime::format_duration(*after)
            )),
            Ending::Stopped => Some("stopped on request".into()),
            Ending::Fenced(silent) => Some(format!(
                "stopped by its worker, which could not renew its heartbeat for {} \
                 (Redis unreachable, or the worker stalled)",
                humantime::format_duration(*silent)
            )),
            Ending::NotStarted(why) | Ending::NotLanded(why) => Some(why.clone()),
            Ending::OverBudget(why) | Ending::AgentFailed { why, .. } => Some(why.clone()),
        }
    }

    pub fn succeeded(&self) -> bool {
        *self == Ending::Exited(0)
    }

    fn of(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(sig)) => Ending::Signaled(sig),
            // Neither: not on unix.
            (None, None) => Ending::Signaled(0),
        }
    }
}

/// A started command.
pub struct Running {
    child: Child,
    /// Process group id: the child's pid.
    pgid: i32,
    /// When it started ([`crate::os::process_start`]), if known.
    start: Option<u64>,
    done: bool,
    /// The pipe of a captured stdout, until taken.
    stdout: Option<tokio::process::ChildStdout>,
}

/// An attempt's log file: tt's own lines, the command's stdout and stderr,
/// and the output tail all go through this one handle. An open per line
/// would be a large share of a short task's file work; therefore the file
/// is opened once per attempt.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    /// Opened for reading (the tail) and appending; the error says why not.
    file: Result<File, String>,
}

impl Log {
    /// Opens (creating it and its directory) the log at `path`. A failure
    /// is kept: the attempt then cannot start, and says why.
    pub fn open(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            file: open_log(path),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the file, to append to it from elsewhere.
    pub fn share(&self) -> Option<File> {
        self.file.as_ref().ok().and_then(|f| f.try_clone().ok())
    }

    /// Appends a line of tt's own (`[tt] …`). Best effort: the log is for
    /// people, and a full disk must not stop the worker.
    pub fn note(&self, line: &str) {
        if let Ok(mut f) = self.file.as_ref() {
            // One write, so the line is not interleaved with the command's.
            let _ = f.write_all(format!("[tt] {line}\n").as_bytes());
        }
    }

    /// The last `max` bytes as text (cut at a character boundary, invalid
    /// UTF-8 replaced); empty if it cannot be read.
    pub fn tail(&self, max: u64) -> String {
        match &self.file {
            Ok(f) => tail_of(f, max),
            Err(_) => String::new(),
        }
    }
}

/// Starts the command. The error is the reason it could not start, ready
/// to be recorded (and already written to the log when the log exists).
pub fn start(launch: Launch<'_>) -> Result<Running, String> {
    let log = launch.log;
    let fail = |why: String| {
        log.note(&why);
        Err(why)
    };
    let file = match &log.file {
        Ok(file) => file,
        Err(why) => return Err(why.clone()),
    };
    let Some(program) = launch.argv.first() else {
        return fail("the command is empty".into());
    };
    let (out, err) = match (file.try_clone(), file.try_clone()) {
        (Ok(_), Ok(err)) if launch.capture => (Stdio::piped(), Stdio::from(err)),
        (Ok(out), Ok(err)) => (Stdio::from(out), Stdio::from(err)),
        (Err(e), _) | (_, Err(e)) => return fail(format!("cannot share the log file: {e}")),
    };
    let mut cmd = Command::new(program);
    cmd.args(&launch.argv[1..])
        .current_dir(launch.workdir)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        // The runner's pid is for this worker only: a `tt agent` a task
        // starts has another parent and would take its runner for gone.
        .env_remove(super::worker::RUNNER_PID_ENV)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    match cmd.spawn() {
        Ok(mut child) => {
            let stdout = child.stdout.take();
            let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
                return fail(format!("`{program}` exited before tt saw its pid"));
            };
            Ok(Running {
                child,
                pgid: pid,
                start: crate::os::process_start(pid.unsigned_abs()),
                done: false,
                stdout,
            })
        }
        // Checked only now, not before every start: a missing directory
        // fails the spawn (ENOENT) like a missing program would.
        Err(_) if !launch.workdir.is_dir() => fail(format!(
            "the working directory `{}` does not exist",
            launch.workdir.display()
        )),
        Err(e) => fail(spawn_error(program, &e)),
    }
}

fn spawn_error(program: &str, e: &std::io::Error) -> String {
    let is_path = program.contains('/');
    match e.kind() {
        std::io::ErrorKind::NotFound if is_path => format!("`{program}` does not exist"),
        std::io::ErrorKind::NotFound => {
            format!("`{program}` not found on PATH: install it, or fix the agent's `cli`/`command`")
        }
        std::io::ErrorKind::PermissionDenied => format!("`{program}` is not executable"),
        _ => format!("cannot start `{program}`: {e}"),
    }
}

fn open_log(path: &Path) -> Result<File, String> {
    crate::state_dir::open_log(path)
        .map_err(|e| format!("cannot open the log `{}`: {e}", path.display()))
}

impl Running {
    /// The process id (and process group id).
    pub fn pid(&self) -> u32 {
        self.pgid.unsigned_abs()
    }

    /// When the command's process started, in the kernel's clock ticks
    /// since boot: with the pid, it names this process and no later one.
    pub fn start(&self) -> Option<u64> {
        self.start
    }

    /// The pipe of a captured stdout ([`Launch::capture`]), once.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.stdout.take()
    }

    /// Waits for the command to exit. Cancel-safe: dropping the future
    /// leaves the command running, to wait again or stop.
    pub async fn wait(&mut self) -> Ending {
        let status = self.child.wait().await;
        self.done = true;
        match status {
            Ok(status) => Ending::of(status),
            Err(e) => Ending::NotStarted(format!("lost track of the process: {e}")),
        }
    }

    /// Stops the whole process group: SIGTERM, up to `grace` for it to
    /// go, then SIGKILL for whatever is left. Returns once the command
    /// itself has exited.
    pub async fn stop(&mut self, grace: Duration) {
        self.stop_by(grace, || Duration::MAX).await;
    }

    /// [`Running::stop`], with SIGKILL sent as soon as `left()` — how long
    /// the command may still run, asked again as the grace goes by — is
    /// zero: a worker's heartbeat bounds every stop, not only the fence.
    pub async fn stop_by(&mut self, grace: Duration, left: impl Fn() -> Duration) {
        let started = Instant::now();
        let remaining = || grace.saturating_sub(started.elapsed()).min(left());
        self.signal(libc::SIGTERM);
        loop {
            let wait = remaining();
            if wait.is_zero() {
                self.signal(libc::SIGKILL);
                let _ = self.child.wait().await;
                break;
            }
            // In short steps: `left` may shrink faster than this clock
            // runs (it counts time the machine was suspended).
            if tokio::time::timeout(wait.min(STOP_CHECK), self.child.wait())
                .await
                .is_ok()
            {
                break;
            }
        }
        self.done = true;
        // The command is gone; give the rest of its group what is left of
        // the grace to exit on SIGTERM too, then kill it.
        while !remaining().is_zero() && self.group_exists() {
            tokio::time::sleep(Duration::from_millis(50).min(remaining())).await;
        }
        self.signal(libc::SIGKILL);
    }

    fn signal(&self, sig: libc::c_int) {
        crate::os::signal_group(self.pgid.unsigned_abs(), sig);
    }

    fn group_exists(&self) -> bool {
        crate::os::group_exists(self.pgid.unsigned_abs())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Never leave a command behind when the worker gives up on it
        // (a panic, an early return).
        if !self.done {
            self.signal(libc::SIGKILL);
        }
    }
}

fn tail_of(f: &File, max: u64) -> String {
    use std::os::unix::fs::FileExt;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max);
    // Positioned reads: the offset the command's output shares stays as is.
    let mut buf = vec![0; usize::try_from(len - start).unwrap_or(0)];
    let mut filled = 0;
    while filled < buf.len() {
        match f.read_at(&mut buf[filled..], start + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return String::new(),
        }
    }
    buf.truncate(filled);
    // Skip the continuation bytes of a character cut in half.
    let start = buf
        .iter()
        .position(|b| (b & 0xC0) != 0x80)
        .unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let d = dir();
        let p = d.path().join("log");
        std::fs::write(&p, "aé".repeat(1000)).unwrap();
        let t = Log::open(&p).tail(5);
        assert!(
            t.len() <= 5 && t.ends_with('é') && !t.contains('\u{FFFD}'),
            "{t:?}"
        );
        std::fs::write(&p, "short").unwrap();
        assert_eq!(Log::open(&p).tail(TAIL_BYTES), "short");
        // `log` is a file, so nothing can be created under it.
        let unusable = Log::open(&p.join("1.log"));
        assert_eq!(unusable.tail(10), "");
        unusable.note("goes nowhere, and does not fail");
    }

    #[tokio::test]
    async fn notes_and_output_share_the_log_in_order() {
        let d = dir();
        let log = Log::open(&d.path().join("logs/t/1.log"));
        log.note("before");
        let cmd = argv(&["sh", "-c", "echo out; echo err >&2"]);
        let mut run = start(Launch {
            argv: &cmd,
            env: &[],
            workdir: d.path(),
            log: &log,
            capture: false,
        })
        .unwrap();
        assert_eq!(run.wait().await, Ending::Exited(0));
        log.note("after");
        let text = "[tt] before\nout\nerr\n[tt] after\n";
        assert_eq!(log.tail(TAIL_BYTES), text);
        assert_eq!(std::fs::read_to_string(log.path()).unwrap(), text);
        // A retry's log is a new file in the same directory.
        let again = Log::open(&d.path().join("logs/t/2.log"));
        again.note("second");
        assert_eq!(again.tail(TAIL_BYTES), "[tt] second\n");
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_named() {
        let d = dir();
        let log = Log::open(&d.path().join("1.log"));
        let cmd = argv(&["true"]);
        let gone = d.path().join("gone");
        let why = match start(Launch {
            argv: &cmd,
            env: &[],
            workdir: &gone,
            log: &log,
            capture: false,
        }) {
            Err(why) => why,
            Ok(_) => panic!("started"),
        };
        assert!(why.starts_with("the working directory"), "{why}");
        assert!(log.tail(TAIL_BYTES).contains("does not exist"));
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_exit_codes_come_back() {
        let d = dir();
        let log = Log::open(&d.path().join("logs/t/1.log"));
        let env = [("TT_X".to_string(), "from env".to_string())];
        let cmd = argv(&["sh", "-c", "echo out; echo err >&2; echo \"$TT_X\"; exit 3"]);
        let mut run = start(Launch {
            argv: &cmd,
            env: &env,
            workdir: d.path(),
            log: &log,
            capture: false,
        })
        .unwrap();
        assert_eq!(run.wait().await, Ending::Exited(3));
        assert_eq!(log.tail(TAIL_BYTES), "out\nerr\nfrom env\n");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_ending_not_a_crash() {
        let d = dir();
        let log = Log::open(&d.path().join("1.log"));
        let cmd = argv(&["tt-no-such-program-xyz", "a"]);
        let why = match start(Launch {
            argv: &cmd,
            env: &[],
            workdir: d.path(),
            log: &log,
            capture: false,
        }) {
            Err(why) => why,
            Ok(_) => panic!("started"),
        };
        assert!(
            why.starts_with("`tt-no-such-program-xyz` not found on PATH"),
            "{why}"
        );
        assert!(log.tail(TAIL_BYTES).contains("not found on PATH"));
    }

    #[tokio::test]
    async fn stop_ends_the_whole_group() {
        let d = dir();
        let log = Log::open(&d.path().join("1.log"));
        let pidfile = d.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let cmd = argv(&["sh", "-c", &script]);
        let mut run = start(Launch {
            argv: &cmd,
            env: &[],
            workdir: d.path(),
            log: &log,
            capture: false,
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild: i32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "no grandchild");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let started = Instant::now();
        run.stop(STOP_GRACE).await;
        assert!(
            started.elapsed() < STOP_GRACE,
            "sh and sleep exit on SIGTERM"
        );
        // Gone, or a zombie waiting for init.
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z"), "{stat}");
    }
}
