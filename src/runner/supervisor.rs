//! Starting, watching and stopping the agent processes `tt run` owns.
//!
//! Each replica (`backend-1`, `backend-2`, …) is a child `tt agent` process
//! in its own process group, so a Ctrl-C in the terminal reaches the runner
//! alone and the runner decides the order of shutdown. A replica that exits
//! is restarted after a pause (`RESTART`, see [`crate::backoff`]) that
//! doubles while it keeps failing fast and starts over once it ran
//! `HEALTHY_AFTER`; one that cannot start (bad input) is tried again after
//! `CANNOT_START_WAIT`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::backoff::{Backoff, Policy};
use crate::os::{signal_group, signal_process};
use crate::plan::AgentSpec;

/// Pauses before a replica that exited is started again.
const RESTART: Policy = Policy::doubling(Duration::from_millis(500), Duration::from_secs(30));
/// Pause before a replica that could not start is tried again: what it
/// lacks (a `workdir`, a setting) is fixed by a person, not by time.
const CANNOT_START_WAIT: Duration = RESTART.max;
/// `tt agent`'s exit code for bad input (see `AgentError::exit_code`).
const BAD_INPUT: i32 = 2;
/// A replica that ran this long is considered healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How long a replica gets to finish after SIGTERM before SIGKILL, unless
/// `tt run --grace` says otherwise.
pub const GRACE: Duration = Duration::from_secs(10);

/// Something the supervisor wants the runner to report.
#[derive(Debug, Clone)]
pub enum AgentNote {
    Started {
        id: String,
        pid: u32,
    },
    Exited {
        id: String,
        status: String,
        restart_in: Option<Duration>,
    },
    SpawnFailed {
        id: String,
        error: String,
    },
    /// The replica exited as `tt agent` does on bad input (exit 2: a
    /// `workdir` that is gone, a bad setting): restarting it at once would
    /// fail the same way, so it is tried again only after `retry_in`.
    CannotStart {
        id: String,
        /// The agent's name (`backend` for `backend-1`).
        agent: String,
        /// What the replica said, from its log.
        why: String,
        retry_in: Duration,
    },
}

struct Replica {
    stop: watch::Sender<bool>,
    /// Kill the process with this pid (its heartbeat expired: hung or cut
    /// off) and start a fresh one; a kick for another pid is stale.
    kick: mpsc::UnboundedSender<u32>,
    task: tokio::task::JoinHandle<()>,
}

/// The agent processes of one runner.
pub struct Supervisor {
    exe: PathBuf,
    file: PathBuf,
    town: String,
    /// Where each replica's journal is ([`crate::state_dir::journal_path`]):
    /// its output goes there too.
    project_dir: PathBuf,
    specs: HashMap<String, AgentSpec>,
    replicas: HashMap<String, Replica>,
    notes: mpsc::UnboundedSender<AgentNote>,
    grace: Duration,
}

impl Supervisor {
    pub fn new(
        file: &Path,
        town: &str,
        project_dir: &Path,
        notes: mpsc::UnboundedSender<AgentNote>,
    ) -> Self {
        Self {
            // Agents are this same binary in `tt agent` mode.
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tt")),
            file: file.to_path_buf(),
            town: town.to_string(),
            project_dir: project_dir.to_path_buf(),
            specs: HashMap::new(),
            replicas: HashMap::new(),
            notes,
            grace: GRACE,
        }
    }

    /// How long replicas get to stop before they are killed.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Brings the running replicas in line with the declared agents:
    /// starts new ones, restarts changed ones, stops removed ones.
    pub async fn apply(&mut self, agents: &[(String, AgentSpec)]) {
        let wanted: HashMap<String, AgentSpec> = agents.iter().cloned().collect();
        let changed: Vec<String> = self
            .specs
            .iter()
            .filter(|(name, spec)| wanted.get(*name) != Some(spec))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &changed {
            let ids: Vec<String> = self
                .replicas
                .keys()
                .filter(|id| replica_of(id) == Some(name.as_str()))
                .cloned()
                .collect();
            for id in ids {
                self.stop_one(&id).await;
            }
            self.specs.remove(name);
        }
        for (name, spec) in agents {
            if self.specs.contains_key(name) {
                continue;
            }
            for k in 1..=spec.count.unwrap_or(1).max(1) {
                self.start_one(name, &format!("{name}-{k}"));
            }
            self.specs.insert(name.clone(), spec.clone());
        }
    }

    fn start_one(&mut self, name: &str, id: &str) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (kick_tx, kick_rx) = mpsc::unbounded_channel();
        let mut cmd = Command::new(&self.exe);
        cmd.arg("agent")
            .arg(name)
            .arg("--id")
            .arg(id)
            .arg("-f")
            .arg(&self.file)
            .arg("--town")
            .arg(&self.town)
            .env(
                crate::agent::worker::RUNNER_PID_ENV,
                std::process::id().to_string(),
            )
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        let log = crate::state_dir::journal_path(&self.project_dir, id);
        let task = tokio::spawn(keep_running(
            cmd,
            self.grace,
            (name.to_string(), id.to_string()),
            log,
            stop_rx,
            kick_rx,
            self.notes.clone(),
        ));
        self.replicas.insert(
            id.to_string(),
            Replica {
                stop: stop_tx,
                kick: kick_tx,
                task,
            },
        );
    }

    async fn stop_one(&mut self, id: &str) {
        if let Some(r) = self.replicas.remove(id) {
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
    }

    /// Whether this worker id is one of ours.
    pub fn owns(&self, id: &str) -> bool {
        self.replicas.contains_key(id)
    }

    /// Kills a replica's process group and starts it again, if the replica
    /// still is the process `pid` that recovery found dead: a replica
    /// started since (it may not have registered yet) is never touched.
    pub fn kick(&self, id: &str, pid: Option<u32>) {
        if let (Some(r), Some(pid)) = (self.replicas.get(id), pid) {
            let _ = r.kick.send(pid);
        }
    }

    /// Stops every replica (SIGTERM, then SIGKILL after [`GRACE`]).
    pub async fn stop_all(&mut self) {
        for r in self.replicas.values() {
            let _ = r.stop.send(true);
        }
        for (_, r) in self.replicas.drain() {
            let _ = r.task.await;
        }
        self.specs.clear();
    }
}

fn replica_of(id: &str) -> Option<&str> {
    id.rsplit_once('-').map(|(name, _)| name)
}

async fn keep_running(
    mut cmd: Command,
    grace: Duration,
    (agent, id): (String, String),
    log: PathBuf,
    mut stop: watch::Receiver<bool>,
    mut kick: mpsc::UnboundedReceiver<u32>,
    notes: mpsc::UnboundedSender<AgentNote>,
) {
    let mut restarts = Backoff::new(RESTART);
    'replica: loop {
        if *stop.borrow() {
            return;
        }
        // Where this process's own output begins, to quote it if it fails.
        let log_from = std::fs::metadata(&log).map_or(0, |m| m.len());
        let spawned = open_log(&log).and_then(|(out, err)| {
            cmd.stdout(out).stderr(err);
            cmd.spawn()
        });
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = notes.send(AgentNote::SpawnFailed {
                    id: id.clone(),
                    error: e.to_string(),
                });
                if wait_or_stop(&mut stop, restarts.failed()).await {
                    return;
                }
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        let _ = notes.send(AgentNote::Started {
            id: id.clone(),
            pid,
        });
        let started = tokio::time::Instant::now();
        let status = loop {
            tokio::select! {
                status = child.wait() => {
                    // A worker exits 0 only when told to (`tt kill`): respect it.
                    // Anything else is a crash, and crashes are restarted.
                    if matches!(&status, Ok(s) if s.success()) {
                        let _ = notes.send(AgentNote::Exited { id: id.clone(), status: "exited 0 (killed?)".into(), restart_in: None });
                        return;
                    }
                    if matches!(&status, Ok(s) if s.code() == Some(BAD_INPUT)) {
                        let _ = notes.send(AgentNote::CannotStart {
                            id: id.clone(),
                            agent: agent.clone(),
                            why: failure_of(&log, log_from),
                            retry_in: CANNOT_START_WAIT,
                        });
                        if wait_or_stop(&mut stop, CANNOT_START_WAIT).await {
                            return;
                        }
                        restarts.reset();
                        continue 'replica;
                    }
                    break status.map_or_else(|e| e.to_string(), |s| s.to_string());
                }
                Some(dead) = kick.recv() => {
                    // Kicks queued for an earlier process of this id are stale.
                    if dead != pid {
                        continue;
                    }
                    signal_group(pid, libc::SIGKILL);
                    let _ = child.wait().await;
                    break "killed: heartbeat expired".to_string();
                }
                _ = stop.changed() => {
                    terminate(&mut child, pid, grace).await;
                    let _ = notes.send(AgentNote::Exited { id: id.clone(), status: "stopped".into(), restart_in: None });
                    return;
                }
            }
        };
        // Only a replica that keeps failing fast backs off further.
        if started.elapsed() >= HEALTHY_AFTER {
            restarts.reset();
        }
        let restart_in = restarts.failed();
        let _ = notes.send(AgentNote::Exited {
            id: id.clone(),
            status,
            restart_in: Some(restart_in),
        });
        if wait_or_stop(&mut stop, restart_in).await {
            return;
        }
    }
}

/// Sleeps `d` unless told to stop first; returns whether to stop.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// SIGTERM to the replica (it stops its command and leaves the task for
/// recovery), SIGKILL to its process group if it outlives `grace`. The
/// SIGTERM goes to the worker alone, not its group: a command the worker
/// is spawning is in that group until it takes its own, and a SIGTERM
/// there would end the attempt as killed (a failure) instead of
/// interrupted.
async fn terminate(child: &mut tokio::process::Child, pid: u32, grace: Duration) {
    if let Ok(pid) = i32::try_from(pid) {
        signal_process(pid, libc::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// What a replica that failed at start-up said: the error and help lines
/// of what it wrote to `log` from byte `from` on (`tt agent` prints a
/// diagnostic there), as one line.
fn failure_of(log: &Path, from: u64) -> String {
    let text = std::fs::read(log)
        .ok()
        .and_then(|b| {
            b.get(usize::try_from(from).unwrap_or(usize::MAX)..)
                .map(<[u8]>::to_vec)
        })
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let plain = strip_ansi(&text);
    let lines: Vec<&str> = plain
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("x ")
                .or_else(|| l.strip_prefix("× "))
                .or_else(|| l.strip_prefix("Error: "))
                .or_else(|| l.strip_prefix("help: "))
        })
        .collect();
    if lines.is_empty() {
        return match plain.lines().map(str::trim).rfind(|l| !l.is_empty()) {
            Some(last) => last.to_string(),
            None => format!("it exited with code {BAD_INPUT}; see {}", log.display()),
        };
    }
    lines.join("; ")
}

/// `text` without terminal colour sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn open_log(path: &Path) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let out = crate::state_dir::open_log(path)?;
    let err = out.try_clone()?;
    Ok((out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica that is `sleep 60` instead of `tt agent`.
    fn replica(
        dir: &Path,
    ) -> (
        watch::Sender<bool>,
        mpsc::UnboundedSender<u32>,
        mpsc::UnboundedReceiver<AgentNote>,
        tokio::task::JoinHandle<()>,
    ) {
        let mut cmd = Command::new("sleep");
        cmd.arg("60").stdin(Stdio::null()).process_group(0);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (kick_tx, kick_rx) = mpsc::unbounded_channel();
        let (note_tx, note_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(keep_running(
            cmd,
            Duration::from_secs(5),
            ("w".into(), "w-1".into()),
            dir.join("w-1.log"),
            stop_rx,
            kick_rx,
            note_tx,
        ));
        (stop_tx, kick_tx, note_rx, task)
    }

    async fn next(notes: &mut mpsc::UnboundedReceiver<AgentNote>) -> AgentNote {
        tokio::time::timeout(Duration::from_secs(30), notes.recv())
            .await
            .expect("a note in time")
            .expect("the supervisor is running")
    }

    #[tokio::test]
    async fn a_kick_for_an_earlier_process_never_kills_the_current_replica() {
        let dir = tempfile::tempdir().unwrap();
        let (stop, kick, mut notes, task) = replica(dir.path());
        let AgentNote::Started { pid: first, .. } = next(&mut notes).await else {
            panic!("not started");
        };
        // Recovery found an earlier process of `w-1` dead.
        kick.send(first + 100_000).unwrap();
        // The kick for the current one is handled after it, in order.
        kick.send(first).unwrap();
        match next(&mut notes).await {
            AgentNote::Exited { status, .. } => assert!(status.contains("heartbeat"), "{status}"),
            other => panic!("{other:?}"),
        }
        let AgentNote::Started { pid: second, .. } = next(&mut notes).await else {
            panic!("not restarted");
        };
        assert_ne!(first, second);
        // A kick queued for the first process again (a late recovery) does
        // not touch the second.
        kick.send(first).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            crate::os::pid_alive(second as i32),
            "the new replica was killed"
        );
        stop.send(true).unwrap();
        task.await.unwrap();
        assert!(
            matches!(next(&mut notes).await, AgentNote::Exited { status, .. } if status == "stopped")
        );
    }
}
