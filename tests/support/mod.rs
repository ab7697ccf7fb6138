//! What every integration test uses: a private `redis-server` per test
//! ([`RedisServer`]), a fluent runner of the real `tt` binary ([`Tt`]), one
//! for a `tt` in the background ([`Running`]), a whole town — plan, Redis,
//! agents — built in one expression ([`Scenario`]),
//! [`wait_until`] for conditions that become true eventually, [`command`]
//! for every other child (one environment, nothing of an outer `tt` or
//! git), [`FileReads`] to know `tt run` read a save, and [`processes_in`]
//! to find what a project left running.
//!
//! Tests talk to a real Redis, never a mock: tt's value is in how it uses
//! Redis. Each test gets its own server on a unix socket in a temp dir, so
//! tests run in parallel without sharing state, and nothing listens on TCP.

// Each test module uses a different part of the harness.
#![allow(dead_code)]

mod child_env;
pub mod cluster;
mod file_reads;
pub mod proxy;
mod scenario;

pub use child_env::{command, is_leaked};
pub use file_reads::FileReads;
pub use scenario::{Scenario, Town};

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The key `rest` of `town` (`key("shop", "task:login")`), named by the
/// one place that names keys, so no test spells the layout.
pub fn key(town: &str, rest: &str) -> String {
    format!("{}{rest}", tinytown::store::Keys::new(town).prefix())
}

/// How long a private server may take to answer its first PING.
const SERVER_START: Duration = Duration::from_secs(10);

/// Polls `f` every 20 ms until it returns true; panics with `what` if it has
/// not after `deadline`. For conditions that become true eventually — never
/// sleep and hope instead.
pub fn wait_until(deadline: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        if started.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` runs: it exists and is not a zombie (a zombie
/// runs no more, whoever reaps it).
pub fn pid_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name.
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Every live process (pid, command line) whose working directory is
/// `dir` or below it, or whose command line names it: what a project's
/// `tt` left running (workers run in the project, the embedded
/// `redis-server` in `.tt/redis`). Zombies are not counted.
pub fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The state follows the parenthesised command name.
            if stat.rsplit_once(") ")?.1.starts_with('Z') {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let inside =
                std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir));
            (inside || cmdline.contains(&needle)).then_some((pid, cmdline))
        })
        .collect()
}

/// A private `redis-server` for one test: unix socket in a temp dir, no TCP
/// port, no persistence. Killed and reaped on drop.
pub struct RedisServer {
    child: Child,
    socket: PathBuf,
    /// Extra arguments, kept to start the same server again.
    args: Vec<String>,
    // Dropped after the child is killed (fields drop in order, after Drop).
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    ///
    /// Panics if `redis-server` is not installed: tests need a real Redis
    /// and never skip silently.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`RedisServer::start`] with extra arguments, e.g.
    /// `["--requirepass", "secret"]`.
    pub fn start_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt-redis-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("redis.sock");
        let args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let child = Self::spawn(dir.path(), &socket, &args);
        let mut server = Self {
            child,
            socket,
            dir,
            args,
        };
        server.wait_ready();
        server
    }

    fn spawn(dir: &Path, socket: &Path, extra_args: &[String]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("redis.log"))
            .unwrap();
        let child = command("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server not found on PATH: install it (apt-get install redis-server) \
                 — tests need a real Redis"
            ),
            Err(e) => panic!("cannot run redis-server: {e}"),
        }
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "redis-server exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            if self.try_ping() {
                return;
            }
            if started.elapsed() >= SERVER_START {
                panic!(
                    "redis-server did not answer within {SERVER_START:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9` of the server: no clean shutdown, nothing flushed beyond
    /// what its own persistence settings already wrote.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same socket, directory and arguments
    /// (so with `--appendonly yes` it reloads its data).
    pub fn start_again(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        self.child = Self::spawn(self.dir.path(), &self.socket, &self.args);
        self.wait_ready();
    }

    fn try_ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
            return false;
        };
        // A server started with `--requirepass` answers NOAUTH: it is up.
        match redis::cmd("PING").query::<String>(&mut conn) {
            Ok(_) => true,
            // Still reading its append-only file: not ready for commands.
            Err(e) if e.code() == Some("LOADING") => false,
            Err(e) => matches!(
                e.kind(),
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
            ),
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// `redis+unix:///…/redis.sock`, as `REDIS_URL` or for
    /// [`tinytown::store::RedisTarget::Url`].
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A synchronous connection, for assertions.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Every key matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.conn())
            .unwrap();
        keys.sort();
        keys
    }

    /// Every element of list `key`, head first.
    pub fn lrange(&self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(&mut self.conn())
            .unwrap()
    }

    pub fn exists(&self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query(&mut self.conn())
            .unwrap()
    }

    /// `INFO <section>` as `field → value`.
    pub fn info(&self, section: &str) -> Vec<(String, String)> {
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.conn())
            .unwrap();
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    fn info_u64(&self, section: &str, field: &str) -> u64 {
        self.info(section)
            .into_iter()
            .find(|(k, _)| k == field)
            .unwrap_or_else(|| panic!("INFO {section} has no `{field}`"))
            .1
            .parse()
            .unwrap()
    }

    /// Commands the server has processed, including the harness's own
    /// (each helper call adds its INFO/KEYS).
    pub fn commands_processed(&self) -> u64 {
        self.info_u64("stats", "total_commands_processed")
    }

    /// How often command `name` (lowercase; `config|get` for subcommands)
    /// was called, from `INFO commandstats`.
    pub fn command_calls(&self, name: &str) -> u64 {
        let field = format!("cmdstat_{}", name.to_ascii_lowercase());
        self.info("commandstats")
            .into_iter()
            .find(|(k, _)| *k == field)
            .and_then(|(_, v)| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Calls of every command that can write, so a test can assert that
    /// something (a no-op `tt sync push`) wrote nothing: compare before and
    /// after. Scripts (`EVAL`, `EVALSHA`, `FCALL`) and `EXEC` count as
    /// writes whatever they do; read-only scripts should use `EVALSHA_RO`.
    pub fn write_calls(&self) -> u64 {
        let stats = self.info("commandstats");
        stats
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("cmdstat_")?;
                WRITE_COMMANDS.contains(&name).then_some(v)
            })
            .filter_map(|v| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    }

    /// Changes to the data since the server started (redis' dirty counter,
    /// `rdb_changes_since_last_save`; never reset, as this server does not
    /// save): unlike [`RedisServer::write_calls`] it also sees writes inside
    /// scripts, and ignores write commands that changed nothing.
    pub fn changes(&self) -> u64 {
        self.info_u64("persistence", "rdb_changes_since_last_save")
    }
}

/// Commands that can modify data (lowercase, as in `INFO commandstats`).
const WRITE_COMMANDS: &[&str] = &[
    "append",
    "blmove",
    "blpop",
    "brpop",
    "brpoplpush",
    "copy",
    "decr",
    "decrby",
    "del",
    "eval",
    "evalsha",
    "exec",
    "expire",
    "expireat",
    "fcall",
    "getdel",
    "getex",
    "getset",
    "hdel",
    "hincrby",
    "hincrbyfloat",
    "hmset",
    "hset",
    "hsetnx",
    "incr",
    "incrby",
    "linsert",
    "lmove",
    "lpop",
    "lpush",
    "lpushx",
    "lrem",
    "lset",
    "ltrim",
    "mset",
    "msetnx",
    "persist",
    "pexpire",
    "pexpireat",
    "psetex",
    "rename",
    "renamenx",
    "rpop",
    "rpoplpush",
    "rpush",
    "rpushx",
    "sadd",
    "set",
    "setex",
    "setnx",
    "smove",
    "spop",
    "srem",
    "unlink",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup|create",
    "xgroup|destroy",
    "xtrim",
    "zadd",
    "zincrby",
    "zpopmax",
    "zpopmin",
    "zrem",
    "zremrangebyrank",
    "zremrangebyscore",
];

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the embedded server of `state_dir` (if one runs) from any context,
/// including a `Drop` inside a `#[tokio::test]`: a runtime cannot be
/// entered from within another, so this runs one on its own thread.
pub fn stop_embedded(state_dir: &Path) {
    let state_dir = state_dir.to_path_buf();
    let stopped = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(tinytown::store::server::stop(&state_dir))
    })
    .join();
    if let Ok(Err(e)) = stopped {
        eprintln!("could not stop the embedded redis-server: {e}");
    }
}

/// A run of the real `tt` binary in a temp project directory, built up
/// fluently:
///
/// ```ignore
/// Tt::new()
///     .file("tasks.toml", "…")
///     .redis(&server)
///     .args(["sync", "push"])
///     .run()
///     .success()
///     .stdout_contains("pushed");
/// ```
///
/// The inherited environment loses what [`command`] removes (`TT_*`,
/// `REDIS_URL`, `GIT_*` …) and gets `NO_COLOR=1` and `CI=true`, so neither a
/// developer's shell nor an outer `tt` task leaks into a test. An embedded server that `tt` starts in the project is
/// stopped on drop.
pub struct Tt {
    dir: TempDir,
    cwd: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
}

impl Default for Tt {
    fn default() -> Self {
        Self::new()
    }
}

impl Tt {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt-test-")
            .tempdir_in("/tmp")
            .unwrap();
        let env: Vec<(OsString, Option<OsString>)> = vec![
            ("NO_COLOR".into(), Some("1".into())),
            ("CI".into(), Some("true".into())),
        ];
        Self {
            cwd: dir.path().to_path_buf(),
            dir,
            args: Vec::new(),
            env,
            stdin: None,
        }
    }

    /// Writes `contents` to `rel_path` in the project (creating parent
    /// directories), now.
    pub fn file(self, rel_path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Self {
        self.write(rel_path, contents);
        self
    }

    /// [`Tt::file`] without giving up the runner, to change a file between
    /// runs.
    pub fn write(&self, rel_path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.dir.path().join(rel_path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, contents).unwrap();
    }

    /// Reads a file of the project.
    pub fn read(&self, rel_path: impl AsRef<Path>) -> String {
        std::fs::read_to_string(self.dir.path().join(rel_path)).unwrap()
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Points `tt` at `server` through `REDIS_URL`.
    pub fn redis(self, server: &RedisServer) -> Self {
        self.env("REDIS_URL", server.url())
    }

    /// Runs in `rel_path` inside the project instead of its root.
    pub fn current_dir(mut self, rel_path: impl AsRef<Path>) -> Self {
        self.cwd = self.dir.path().join(rel_path);
        self
    }

    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Self {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    /// Waits until `rel_path` holds a process id (a test command's
    /// `echo $$ > file`; the file exists a moment before the pid is in it)
    /// and returns it.
    #[track_caller]
    pub fn wait_pid(&self, rel_path: impl AsRef<Path>) -> i32 {
        let path = self.dir.path().join(rel_path);
        let mut pid = 0;
        wait_until(
            RUN_DEADLINE,
            &format!("a pid is in {}", path.display()),
            || {
                pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                pid > 0
            },
        );
        pid
    }

    /// The project directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configured command, to spawn a long-running `tt` (e.g. `tt run`)
    /// yourself. Its stdio is inherited unless you set it.
    pub fn command(&self) -> Command {
        self.command_with(&self.args)
    }

    fn command_with(&self, args: &[OsString]) -> Command {
        let mut command = command(env!("CARGO_BIN_EXE_tt"));
        command.args(args).current_dir(&self.cwd);
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }

    /// Runs `tt` with the arguments given so far and waits for it.
    pub fn run(&self) -> Output {
        self.execute(self.command())
    }

    /// Runs `tt` with `args` instead of those given so far (same project,
    /// same environment): for several commands in one project.
    pub fn run_with<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self.execute(self.command_with(&args))
    }

    /// [`Tt::run_with`], killed (and the test failed, naming the command)
    /// if it has not exited within [`RUN_DEADLINE`]: for a command that
    /// must end by itself, so a hang fails instead of stalling the suite.
    #[track_caller]
    pub fn run_bounded<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut command = self.command_with(&args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = format!("{command:?}");
        let child = command.spawn().unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let Ok(output) = rx.recv_timeout(RUN_DEADLINE) else {
            // SAFETY: kill(2) on our own child, not reaped while it runs.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            panic!("`{shown}` did not finish within {RUN_DEADLINE:?}");
        };
        let output = output.unwrap();
        Output {
            command: shown,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn execute(&self, mut command: Command) -> Output {
        command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(input) = &self.stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Output {
            command: format!("{command:?}"),
            // Killed by a signal: no exit code.
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Drop for Tt {
    fn drop(&mut self) {
        let state_dir = self.dir.path().join(".tt");
        if state_dir.join("redis.pid").exists() {
            stop_embedded(&state_dir);
        }
    }
}

/// What a run of `tt` did. The assertions print everything on failure.
pub struct Output {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn success(self) -> Self {
        self.code(0)
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        if self.code != code {
            panic!("expected exit code {code}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn stdout_contains(self, needle: &str) -> Self {
        if !self.stdout.contains(needle) {
            panic!("expected stdout to contain {needle:?}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn stderr_contains(self, needle: &str) -> Self {
        if !self.stderr.contains(needle) {
            panic!("expected stderr to contain {needle:?}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn stdout_lacks(self, needle: &str) -> Self {
        if self.stdout.contains(needle) {
            panic!("expected stdout not to contain {needle:?}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn stderr_lacks(self, needle: &str) -> Self {
        if self.stderr.contains(needle) {
            panic!("expected stderr not to contain {needle:?}\n{self}");
        }
        self
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// How long a background `tt` gets to reach a state or exit, and a
/// bounded run ([`Tt::run_bounded`]) to finish.
pub const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// A `tt` command (`tt run`, `tt agent`, `--follow`, `--watch` …) in the
/// background, its stdout and stderr in one file of the project
/// ([`Running::start`] picks `run.out`, `run-2.out` … so several can run at
/// once) that tests read while it runs. Stdin is closed. On drop it gets
/// SIGTERM (so a runner or worker stops its commands), then SIGKILL if it
/// lingers.
pub struct Running {
    child: Child,
    out: PathBuf,
}

impl Running {
    pub fn start(tt: &Tt, args: &[&str]) -> Self {
        let name = (1..)
            .map(|n| match n {
                1 => "run.out".to_owned(),
                n => format!("run-{n}.out"),
            })
            .find(|name| !tt.dir().join(name).exists())
            .unwrap_or_default();
        Self::start_env(tt, args, &[], &name)
    }

    /// [`Running::start`] with extra environment variables, its output in
    /// `out` of the project.
    pub fn start_env(tt: &Tt, args: &[&str], env: &[(&str, &str)], out: &str) -> Self {
        let out = tt.dir().join(out);
        let file = std::fs::File::create(&out).unwrap();
        let err = file.try_clone().unwrap();
        let mut cmd = tt.command();
        cmd.envs(env.iter().copied());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap();
        Running { child, out }
    }

    /// The process id of the `tt` command.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far, stdout and stderr interleaved.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until it printed `needle`.
    #[track_caller]
    pub fn wait_output(&self, needle: &str) {
        self.wait_output_until(&format!("tt prints {needle:?}"), |out| out.contains(needle));
    }

    /// Waits until its output satisfies `done`; fails at once, with the
    /// output, if it exits before.
    #[track_caller]
    pub fn wait_output_until(&self, what: &str, done: impl Fn(&str) -> bool) {
        let started = Instant::now();
        loop {
            let exited = self.has_exited();
            // Read after the exit check: what it printed before exiting counts.
            let output = self.output();
            if done(&output) {
                return;
            }
            if exited {
                panic!("tt exited before {what}:\n{output}");
            }
            if started.elapsed() >= RUN_DEADLINE {
                panic!("timed out after {RUN_DEADLINE:?} waiting until {what}:\n{output}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it has exited, without reaping it (so [`Running::wait_exit`]
    /// still gets its code).
    fn has_exited(&self) -> bool {
        // SAFETY: waitid(2) with WNOWAIT only reads the state of our own
        // child into a zeroed siginfo_t.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            // -1: already reaped (by wait_exit), so gone too.
            rc == -1 || info.si_pid() != 0
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for it to exit by itself; its exit code (-1: by a signal).
    #[track_caller]
    pub fn wait_exit(&mut self) -> i32 {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            if started.elapsed() >= RUN_DEADLINE {
                panic!(
                    "timed out after {RUN_DEADLINE:?} waiting until tt exits:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and its exit code once it stopped.
    #[track_caller]
    pub fn stop(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// SIGKILL: no cleanup at all.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
