//! The embedded default Redis: one private `redis-server` per project,
//! started on first use and stopped by `tt down`.
//!
//! When neither `REDIS_URL` nor `[town] redis_url` names a Redis, `tt` runs
//! its own under the project's state directory `.tt/`:
//!
//! ```text
//! .tt/                 mode 0700
//!   redis.sock         the unix socket (or see redis.sock.path)
//!   redis.sock.path    where the socket really is, for `redis-cli -s "$(cat …)"`
//!   redis.pid          pid of the daemon
//!   redis.log          its log
//!   redis.lock         flock held while one `tt` starts or stops the server
//!   redis/             mode 0700: the append-only file
//! ```
//!
//! - **A unix socket, no TCP port** (`--port 0`): nothing else on the machine
//!   or the network can reach the server, there is no port to pick or to
//!   collide with between projects, and no password to manage. Agents of the
//!   same project on the same machine connect through the socket; other
//!   machines need a real Redis and `REDIS_URL`.
//! - **Mode 0700** on `.tt/`, on the data directory and on the socket
//!   (`--unixsocketperm 700`): the socket is the only access control, so only
//!   the owner may connect, and task descriptions and logs stay private.
//! - **AOF** (`--appendonly yes --appendfsync everysec`, no RDB snapshots):
//!   task state must survive a crash or a reboot, losing at most about one
//!   second of writes; `SHUTDOWN` flushes it completely.
//! - The server is a daemon (`--daemonize yes`), not a child of `tt`, so it
//!   outlives the command that started it and every later `tt` reuses it.
//!   Concurrent starters take an exclusive `flock` on `redis.lock`, so two
//!   `tt` processes starting at once start one server.
//! - Unix socket paths are limited to about 104 bytes (`sun_path`). When
//!   `.tt/redis.sock` would be longer, the socket lives in
//!   `/tmp/tt-<uid>-<hash of the state directory>/` (mode 0700, checked to be
//!   ours) instead; `.tt/redis.sock.path` records where.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, ConnectionAddr, ErrorKind, ServerErrorKind};

use super::StoreError;
use super::error::{is_error_reply, log_tail};

const SOCKET: &str = "redis.sock";
const SOCKET_RECORD: &str = "redis.sock.path";
const PIDFILE: &str = "redis.pid";
const LOGFILE: &str = "redis.log";
const LOCKFILE: &str = "redis.lock";
const DATA_DIR: &str = "redis";

/// The longest socket path we use directly. `sun_path` holds 108 bytes on
/// Linux and 104 on macOS, including the terminating NUL; stay below both.
const MAX_SOCKET_PATH: usize = 100;

/// How long a fresh server may take to answer its first PING.
const START_DEADLINE: Duration = Duration::from_secs(5);
/// How long a server that answers `LOADING` may take to load its AOF.
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SHUTDOWN or SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How long to wait for another `tt` that holds `redis.lock`; it holds it
/// at most for one start (or stop) deadline.
const LOCK_DEADLINE: Duration = Duration::from_secs(15);
/// Interval of the bounded polls above. Neither a daemon's exit, nor its
/// socket appearing, nor a flock held by another process can be awaited.
const POLL: Duration = Duration::from_millis(25);
/// Connect and response timeout of one liveness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How to find `redis-server`: by default, `redis-server` on `$PATH`.
///
/// Tests (and packagers) use it to point at another program or search path
/// without changing the process environment.
#[derive(Debug, Clone)]
pub struct Launcher {
    program: OsString,
    search_path: Option<OsString>,
}

impl Default for Launcher {
    fn default() -> Self {
        Self {
            program: OsString::from("redis-server"),
            search_path: None,
        }
    }
}

impl Launcher {
    /// The program to run: a name looked up in the search path, or a path
    /// (anything with a `/`) used as is.
    pub fn program(mut self, program: impl Into<OsString>) -> Self {
        self.program = program.into();
        self
    }

    /// Directories to search, in `$PATH` syntax, instead of `$PATH`.
    pub fn search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// The executable to run, if there is one.
    fn find(&self) -> Option<PathBuf> {
        let program = Path::new(&self.program);
        if self.program.as_bytes().contains(&b'/') {
            return is_executable(program).then(|| program.to_path_buf());
        }
        let search = self
            .search_path
            .clone()
            .or_else(|| std::env::var_os("PATH"))?;
        std::env::split_paths(&search)
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where the embedded server of `state_dir` listens.
///
/// A pure function of the state directory's path, so every `tt` process of
/// the project finds the same socket: `<state_dir>/redis.sock` when that is
/// short enough for a unix socket, else
/// `/tmp/tt-<uid>-<hash of the canonical state_dir>/redis.sock`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    let dir = normalize(state_dir);
    let direct = dir.join(SOCKET);
    if direct.as_os_str().len() <= MAX_SOCKET_PATH {
        direct
    } else {
        fallback_dir(&dir).join(SOCKET)
    }
}

/// `/tmp` itself, not `$TMPDIR`: `$TMPDIR` can be long (macOS puts it under
/// `/var/folders/…`), which is the very problem the fallback solves. The uid
/// keeps users apart, the hash keeps projects apart.
fn fallback_dir(canonical_state_dir: &Path) -> PathBuf {
    let hash = fnv1a(canonical_state_dir.as_os_str().as_bytes());
    PathBuf::from(format!(
        "/tmp/tt-{}-{:012x}",
        uid(),
        hash & 0xffff_ffff_ffff
    ))
}

/// FNV-1a: a hash that never changes between Rust versions or machines
/// (unlike `DefaultHasher`), so the fallback socket path stays put.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The absolute, canonical form of `dir`, even when it does not exist yet:
/// the longest existing ancestor is canonicalized and the rest appended, so
/// the answer does not change when `ensure_running` creates the directory.
fn normalize(dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut existing = absolute.as_path();
    let mut missing: Vec<&OsStr> = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return missing.iter().rev().fold(canonical, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Whether the embedded server of `state_dir` has ever started: its data
/// directory holds the append-only file it creates at start. A stopped
/// server's town is still there to read (the next command starts it).
pub fn has_data(state_dir: &Path) -> bool {
    std::fs::read_dir(state_dir.join(DATA_DIR)).is_ok_and(|mut entries| entries.next().is_some())
}

/// Whether the embedded server of `state_dir` answers on its socket.
pub async fn is_running(state_dir: &Path) -> bool {
    probe(&socket_path(state_dir)).await != Probe::Down
}

/// Makes sure the embedded server of `state_dir` runs, starting it if
/// needed, and returns its socket path. Uses `redis-server` from `$PATH`.
pub async fn ensure_running(state_dir: &Path) -> Result<PathBuf, StoreError> {
    ensure_running_with(state_dir, &Launcher::default()).await
}

/// [`ensure_running`] with an explicit way to find `redis-server`.
pub async fn ensure_running_with(
    state_dir: &Path,
    launcher: &Launcher,
) -> Result<PathBuf, StoreError> {
    let dir = prepare_state_dir(state_dir)?;
    let sock = socket_path(&dir);

    // Fast path without the lock: the server usually runs already.
    if probe(&sock).await != Probe::Down {
        wait_ready(&dir, &sock, START_DEADLINE).await?;
        record_socket(&dir, &sock)?;
        return Ok(sock);
    }

    let _lock = DirLock::acquire(&dir).await?;
    // Another `tt` may have started it while we waited for the lock.
    if probe(&sock).await != Probe::Down {
        wait_ready(&dir, &sock, START_DEADLINE).await?;
        record_socket(&dir, &sock)?;
        return Ok(sock);
    }

    // A live server of ours that does not answer on our socket is hung, or
    // listens on the old socket of a project directory that was moved. Two
    // servers must never write one AOF, so stop it before starting another.
    if let Some(pid) = owned_server_pid(&dir) {
        tracing::warn!(pid, "embedded redis-server does not answer; stopping it");
        signal(pid, libc::SIGTERM);
        if !wait_stopped(&sock, Some(pid), STOP_DEADLINE).await {
            return Err(StoreError::ServerStart {
                reason: format!(
                    "an earlier server (pid {pid}) does not answer on `{}` and ignores SIGTERM",
                    sock.display()
                ),
                log_tail: read_log_tail(&dir),
                dir,
            });
        }
    }

    prepare_socket_dir(&dir, &sock)?;
    // A pid file left by a server that died (kill -9, reboot) would make the
    // new one look as if it had exited before writing its own.
    if owned_server_pid(&dir).is_none() {
        let _ = std::fs::remove_file(dir.join(PIDFILE));
    }
    start(&dir, &sock, launcher).await?;
    wait_ready(&dir, &sock, START_DEADLINE).await?;
    record_socket(&dir, &sock)?;
    Ok(sock)
}

/// Stops the embedded server of `state_dir`, flushing its AOF, and returns
/// whether one was running.
///
/// Asks with `SHUTDOWN` over the socket; if the server does not exit within
/// the deadline (or does not answer at all but its pid file names a live
/// server of ours), sends SIGTERM, which redis also handles as a clean
/// shutdown.
pub async fn stop(state_dir: &Path) -> Result<bool, StoreError> {
    let dir = normalize(state_dir);
    if !dir.is_dir() {
        return Ok(false);
    }
    let sock = socket_path(&dir);
    let _lock = DirLock::acquire(&dir).await?;

    let pid = owned_server_pid(&dir);
    let answered = probe(&sock).await != Probe::Down;
    if answered {
        shutdown(&sock).await;
        if wait_stopped(&sock, pid, STOP_DEADLINE).await {
            remove_socket_dir(&dir, &sock);
            return Ok(true);
        }
    }
    if let Some(pid) = pid {
        signal(pid, libc::SIGTERM);
        if wait_stopped(&sock, Some(pid), STOP_DEADLINE).await {
            remove_socket_dir(&dir, &sock);
            return Ok(true);
        }
        return Err(StoreError::ServerStop {
            reason: format!("pid {pid} is still running after SHUTDOWN and SIGTERM"),
            log_tail: read_log_tail(&dir),
            dir,
        });
    }
    if answered {
        return Err(StoreError::ServerStop {
            reason: format!(
                "the server on `{}` ignores SHUTDOWN and `redis.pid` names no live server",
                sock.display()
            ),
            log_tail: read_log_tail(&dir),
            dir,
        });
    }
    Ok(false)
}

/// Creates the state directory and the data directory with mode 0700 (and
/// tightens them if they exist), and returns the canonical state directory.
fn prepare_state_dir(state_dir: &Path) -> Result<PathBuf, StoreError> {
    private_dir(state_dir)?;
    let dir = state_dir.canonicalize().map_err(|source| StoreError::Io {
        what: format!("resolve `{}`", state_dir.display()),
        source,
    })?;
    private_dir(&dir.join(DATA_DIR))?;
    Ok(dir)
}

fn private_dir(dir: &Path) -> Result<(), StoreError> {
    crate::state_dir::secure(dir).map_err(|source| StoreError::Io {
        what: format!("make `{}` private (mode 0700)", dir.display()),
        source,
    })
}

/// For a socket in the `/tmp` fallback, creates its directory with mode
/// 0700 and refuses one that another user made: `/tmp` is shared, and a
/// directory someone else controls could hand us their socket.
fn prepare_socket_dir(state_dir: &Path, sock: &Path) -> Result<(), StoreError> {
    let dir = fallback_dir(state_dir);
    if sock.parent() != Some(dir.as_path()) {
        return Ok(()); // inside the state directory, already private
    }
    let dir = dir.as_path();
    let io_err = |what: &str, source| StoreError::Io {
        what: format!("{what} `{}`", dir.display()),
        source,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create", e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io_err("read", e))?;
    if !meta.is_dir() || meta.uid() != uid() {
        return Err(io_err(
            "use socket directory",
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "it is not a directory owned by the current user; remove it",
            ),
        ));
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("make private (mode 0700)", e))?;
    }
    Ok(())
}

/// Removes the `/tmp` fallback directory of a stopped server, if it is
/// empty (the server removes its socket on shutdown), so `tt down` leaves
/// nothing behind in `/tmp`.
fn remove_socket_dir(dir: &Path, sock: &Path) {
    let fallback = fallback_dir(dir);
    if sock.parent() == Some(fallback.as_path()) {
        let _ = std::fs::remove_dir(fallback);
    }
}

/// Writes `redis.sock.path` when it is missing or out of date. It is for
/// people and scripts; `tt` itself always computes [`socket_path`].
fn record_socket(dir: &Path, sock: &Path) -> Result<(), StoreError> {
    let record = dir.join(SOCKET_RECORD);
    let mut contents = sock.as_os_str().as_bytes().to_vec();
    contents.push(b'\n');
    if std::fs::read(&record).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    std::fs::write(&record, contents).map_err(|source| StoreError::Io {
        what: format!("write `{}`", record.display()),
        source,
    })
}

/// Runs `redis-server --daemonize yes`; returns once the daemon forked.
async fn start(dir: &Path, sock: &Path, launcher: &Launcher) -> Result<(), StoreError> {
    let program = launcher.find().ok_or_else(|| StoreError::NoRedisServer {
        program: launcher.program.to_string_lossy().into_owned(),
    })?;

    // A socket file left by a crashed server would make it look taken.
    match std::fs::remove_file(sock) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StoreError::Io {
                what: format!("remove the stale socket `{}`", sock.display()),
                source,
            });
        }
    }

    tracing::debug!(program = %program.display(), socket = %sock.display(), "starting redis-server");
    let mut command = tokio::process::Command::new(&program);
    command
        .arg("--port")
        .arg("0")
        .arg("--unixsocket")
        .arg(sock)
        .arg("--unixsocketperm")
        .arg("700")
        .arg("--dir")
        .arg(dir.join(DATA_DIR))
        .arg("--appendonly")
        .arg("yes")
        .arg("--appendfsync")
        .arg("everysec")
        .arg("--save")
        .arg("")
        .arg("--daemonize")
        .arg("yes")
        .arg("--pidfile")
        .arg(dir.join(PIDFILE))
        .arg("--logfile")
        .arg(dir.join(LOGFILE))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());

    // The foreground process only parses its arguments and forks, and the
    // daemon points its stdio at /dev/null, so this returns quickly; the
    // deadline guards against a program that is not really redis-server.
    let output = match tokio::time::timeout(START_DEADLINE, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) => {
            return Err(StoreError::Io {
                what: format!("run `{}`", program.display()),
                source,
            });
        }
        Err(_) => {
            return Err(StoreError::ServerStart {
                reason: format!(
                    "`{}` did not return within {START_DEADLINE:?}",
                    program.display()
                ),
                log_tail: read_log_tail(dir),
                dir: dir.to_path_buf(),
            });
        }
    };
    if !output.status.success() {
        // Argument errors go to stdout/stderr, not to the log file.
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let tail = match log_tail(&text, 20) {
            t if t.is_empty() => read_log_tail(dir),
            t => t,
        };
        return Err(StoreError::ServerStart {
            reason: format!("`{}` exited with {}", program.display(), output.status),
            log_tail: tail,
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Waits until the server answers PING with PONG: [`START_DEADLINE`] for
/// the socket to answer, longer while the server reports it is loading.
async fn wait_ready(dir: &Path, sock: &Path, deadline: Duration) -> Result<(), StoreError> {
    let started = Instant::now();
    loop {
        let elapsed = started.elapsed();
        match probe(sock).await {
            Probe::Ready => return Ok(()),
            Probe::Loading if elapsed < LOAD_DEADLINE => {}
            Probe::Down if elapsed < deadline => {
                // Fail fast when the daemon already died (e.g. a bad AOF);
                // no pid file yet just means it has not got that far.
                if let Some(pid) = read_pid(dir)
                    && !crate::os::pid_alive(pid)
                {
                    return Err(StoreError::ServerStart {
                        reason: format!("the server (pid {pid}) exited"),
                        log_tail: read_log_tail(dir),
                        dir: dir.to_path_buf(),
                    });
                }
            }
            state => {
                return Err(StoreError::ServerStart {
                    reason: match state {
                        Probe::Loading => format!("still loading its data after {LOAD_DEADLINE:?}"),
                        _ => format!("no answer on `{}` within {deadline:?}", sock.display()),
                    },
                    log_tail: read_log_tail(dir),
                    dir: dir.to_path_buf(),
                });
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `pid` (if known) has exited and the socket stops answering.
async fn wait_stopped(sock: &Path, pid: Option<i32>, deadline: Duration) -> bool {
    let started = Instant::now();
    loop {
        let exited = pid.is_none_or(|pid| !crate::os::pid_alive(pid));
        if exited && probe(sock).await == Probe::Down {
            return true;
        }
        if started.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Nothing answers.
    Down,
    /// A server answers but is still loading its AOF: it is running, and
    /// starting another one would be wrong.
    Loading,
    /// PONG.
    Ready,
}

async fn probe(sock: &Path) -> Probe {
    if !sock.exists() {
        return Probe::Down;
    }
    let Ok(client) = redis::Client::open(ConnectionAddr::Unix(sock.to_path_buf())) else {
        return Probe::Down;
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PROBE_TIMEOUT))
        .set_response_timeout(Some(PROBE_TIMEOUT));
    let Ok(mut conn) = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    else {
        return Probe::Down;
    };
    match redis::cmd("PING").query_async::<String>(&mut conn).await {
        Ok(_) => Probe::Ready,
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading) => Probe::Loading,
        // Any other error reply still comes from a live server.
        Err(e) if is_error_reply(&e) => Probe::Ready,
        Err(_) => Probe::Down,
    }
}

/// Sends SHUTDOWN. The server closes the connection instead of answering,
/// so errors are expected; whether it worked is judged by waiting for it.
async fn shutdown(sock: &Path) {
    let Ok(client) = redis::Client::open(ConnectionAddr::Unix(sock.to_path_buf())) else {
        return;
    };
    // The server fsyncs the AOF before it exits; give it longer than the
    // default 500 ms response timeout to refuse (and say why).
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PROBE_TIMEOUT))
        .set_response_timeout(Some(STOP_DEADLINE));
    if let Ok(mut conn) = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        && let Err(e) = redis::cmd("SHUTDOWN").query_async::<()>(&mut conn).await
        && is_error_reply(&e)
    {
        tracing::warn!(error = %e, "redis-server refused SHUTDOWN");
    }
}

fn read_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join(PIDFILE)).ok()?;
    text.trim().parse::<i32>().ok().filter(|pid| *pid > 0)
}

/// The pid from `redis.pid`, if that process is alive and is the embedded
/// server of this very state directory. A pid file can outlive its server
/// (a crash, a reboot) and its pid be reused, or be copied along with the
/// project; signalling such a pid would hit an unrelated process.
fn owned_server_pid(dir: &Path) -> Option<i32> {
    let pid = read_pid(dir)?;
    if !crate::os::pid_alive(pid) {
        return None;
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if proc_dir.is_dir() {
        // Linux: redis-server chdirs into its data directory (`--dir`), and
        // the kernel follows that directory when the project is moved.
        let cwd = std::fs::read_link(proc_dir.join("cwd")).ok()?;
        return (cwd == dir.join(DATA_DIR)).then_some(pid);
    }
    // Elsewhere: at least make sure it is a redis or valkey server.
    let output = std::process::Command::new("ps")
        .args(["-o", "comm=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    let comm = String::from_utf8_lossy(&output.stdout);
    (comm.contains("redis-server") || comm.contains("valkey-server")).then_some(pid)
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: sending a signal has no memory-safety preconditions; the pid
    // was checked to be our server by `owned_server_pid`.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn read_log_tail(dir: &Path) -> String {
    std::fs::read(dir.join(LOGFILE))
        .map(|bytes| log_tail(&String::from_utf8_lossy(&bytes), 20))
        .unwrap_or_default()
}

/// An exclusive `flock` on `<state_dir>/redis.lock`, released on drop (when
/// the file closes) or when the process dies, so a crash never leaves the
/// project locked. The descriptor is close-on-exec, so the daemon we start
/// does not inherit the lock.
struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Polls a non-blocking flock until [`LOCK_DEADLINE`]: a blocking flock
    /// in a blocking thread could not be given up on timeout, and would
    /// keep the runtime from shutting down.
    async fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCKFILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Io {
                what: format!("open `{}`", path.display()),
                source,
            })?;
        let started = Instant::now();
        loop {
            // SAFETY: the descriptor is valid for the lifetime of `file`.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self { _file: file });
            }
            let err = io::Error::last_os_error();
            let busy =
                err.kind() == io::ErrorKind::WouldBlock || err.kind() == io::ErrorKind::Interrupted;
            if !busy {
                return Err(StoreError::Io {
                    what: format!("lock `{}`", path.display()),
                    source: err,
                });
            }
            if started.elapsed() >= LOCK_DEADLINE {
                return Err(StoreError::Io {
                    what: format!(
                        "lock `{}`: another tt process holds it (starting or stopping the server)",
                        path.display()
                    ),
                    source: io::Error::new(io::ErrorKind::TimedOut, "lock wait timed out"),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_state_dirs_hold_their_socket() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(socket_path(dir.path()), canonical.join("redis.sock"));
    }

    #[test]
    fn long_state_dirs_put_the_socket_under_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("x".repeat(120)).join(".tt");
        let sock = socket_path(&long);
        assert!(sock.starts_with("/tmp/"), "{}", sock.display());
        assert!(sock.as_os_str().len() <= MAX_SOCKET_PATH);
        // The same before and after the directory exists.
        std::fs::create_dir_all(&long).unwrap();
        assert_eq!(socket_path(&long), sock);
        // Another project gets another socket.
        assert_ne!(socket_path(&dir.path().join("y".repeat(120))), sock);
    }

    #[test]
    fn fnv1a_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn launcher_finds_programs_only_on_its_search_path() {
        let empty = tempfile::tempdir().unwrap();
        let launcher = Launcher::default().search_path(empty.path());
        assert_eq!(launcher.find(), None);
        let launcher = Launcher::default().program("/nonexistent/redis-server");
        assert_eq!(launcher.find(), None);
        let launcher = Launcher::default()
            .program("sh")
            .search_path("/bin:/usr/bin");
        assert!(launcher.find().is_some());
    }
}
