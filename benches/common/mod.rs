//! What every benchmark uses: a private `redis-server` on a unix socket (the
//! approach of `tests/support`: temp dir, `--save ''`, no TCP port), plan
//! generators, Redis command counters and the way figures are printed.
//!
//! Benchmarks use plain std timing: each figure is printed next to its
//! target, so `cargo bench` output is the report.

#![allow(dead_code)]

/// The environment of every child, shared with the tests: one list of what
/// must not leak in (`TT_*`, `REDIS_URL`, `GIT_*` …).
#[path = "../../tests/support/child_env.rs"]
mod child_env;

pub use child_env::command;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A private `redis-server`, killed on drop.
pub struct RedisServer {
    child: Child,
    socket: PathBuf,
    pub dir: TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tt-bench-redis-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("redis.sock");
        let child = command("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH for the benchmarks");
        let server = Self { child, socket, dir };
        let started = Instant::now();
        while redis::Client::open(server.url())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn flush(&self) {
        let _: () = redis::cmd("FLUSHALL").query(&mut self.conn()).unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut self.conn())
            .unwrap();
    }

    /// Calls per command since the last reset (`INFO commandstats`), the
    /// benchmark's own `INFO`/`CONFIG` left out. Commands run inside Lua
    /// scripts count too: that is the work Redis does.
    pub fn commandstats(&self) -> HashMap<String, u64> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn())
            .unwrap();
        let mut out = HashMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, stats)) = rest.split_once(':') else {
                continue;
            };
            if matches!(name, "info" | "config|resetstat" | "config" | "ping") {
                continue;
            }
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            out.insert(name.to_string(), calls);
        }
        out
    }

    pub fn reset_stats(&self) {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut self.conn())
            .unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Commands that write, among `INFO commandstats` names.
pub const WRITES: &[&str] = &[
    "hset", "hdel", "zadd", "xadd", "sadd", "lpush", "rpush", "del", "hincrby", "set",
];

pub fn total(stats: &HashMap<String, u64>) -> u64 {
    stats.values().sum()
}

pub fn writes(stats: &HashMap<String, u64>) -> u64 {
    WRITES.iter().filter_map(|w| stats.get(*w)).sum()
}

/// `cmd=calls` pairs, largest first, for the report.
pub fn describe(stats: &HashMap<String, u64>) -> String {
    let mut v: Vec<_> = stats.iter().filter(|(_, c)| **c > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, c)| format!("{k}={c}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a generated plan looks like.
#[derive(Clone, Copy)]
pub struct Shape {
    /// Total `[[tasks]]` entries, groups included.
    pub tasks: usize,
    /// `(command, count, prefetch)` of the one agent, if any.
    pub agent: Option<(&'static str, u32, u32)>,
    /// Every task `completed` in the file (an idle town).
    pub completed: bool,
}

/// A plan of `tasks` entries: groups of 10 (a group without agent and nine
/// children), chains of three dependencies inside each group, every tenth
/// group depending on the group before it, and tags on every task.
pub fn plan(shape: Shape) -> String {
    let mut s = String::with_capacity(shape.tasks * 120);
    s.push_str("[town]\nname = \"bench\"\n\n[meta]\ndescription = \"benchmark\"\ndefault_agent = \"a\"\n\n");
    if let Some((cmd, count, prefetch)) = shape.agent {
        s.push_str(&format!(
            "[agents.a]\ncommand = [\"{cmd}\"]\ncount = {count}\nprefetch = {prefetch}\n\n"
        ));
    }
    let status = if shape.completed {
        "status = \"completed\"\n"
    } else {
        ""
    };
    let groups = shape.tasks.div_ceil(10);
    let mut written = 0;
    for g in 0..groups {
        if written == shape.tasks {
            break;
        }
        s.push_str(&format!(
            "[[tasks]]\nid = \"g{g}\"\ndescription = \"Group {g}\"\ntags = [\"group\"]\n"
        ));
        if g % 10 == 9 {
            s.push_str(&format!("depends_on = [\"g{}\"]\n", g - 1));
        }
        s.push_str(status);
        s.push('\n');
        written += 1;
        for c in 0..9 {
            if written == shape.tasks {
                break;
            }
            s.push_str(&format!(
                "[[tasks]]\nid = \"t{g}_{c}\"\ndescription = \"Task {c} of group {g}\"\nparent = \"g{g}\"\ntags = [\"bench\", \"P{}\"]\n",
                (g + c) % 5
            ));
            if c % 3 != 0 {
                s.push_str(&format!("depends_on = [\"t{g}_{}\"]\n", c - 1));
            }
            s.push_str(status);
            s.push('\n');
            written += 1;
        }
    }
    s
}

/// A chain: each task depends on the one before (dispatch latency).
pub fn chain(n: usize, cmd: &str) -> String {
    let mut s = format!(
        "[town]\nname = \"bench\"\n\n[meta]\ndefault_agent = \"a\"\n\n[agents.a]\ncommand = [\"{cmd}\"]\n\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "[[tasks]]\nid = \"c{i}\"\ndescription = \"step {i}\"\n"
        ));
        if i > 0 {
            s.push_str(&format!("depends_on = [\"c{}\"]\n", i - 1));
        }
        s.push('\n');
    }
    s
}

/// The `tt` binary of this build, built in release if needed.
pub fn tt_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("tt");
    let status = command(env!("CARGO"))
        .args(["build", "--release", "--bin", "tt", "--quiet"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --release --bin tt failed");
    bin
}

/// Median and p99 of samples (durations, or signed microseconds).
pub fn percentiles<T: Ord + Copy>(mut v: Vec<T>) -> (T, T) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.99))
}

/// Median of `runs` timings of `f`.
pub fn median_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..runs).map(|_| f()).collect();
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// One result line: the figure, then its target and whether it is met.
pub fn report(name: &str, figure: &str, target: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "MET",
        Some(false) => "MISSED",
        None => "-",
    };
    println!("  {name:<44} {figure:<28} target: {target:<22} {verdict}");
}

pub fn header(title: &str) {
    println!("\n== {title}");
}

/// Resident and peak resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU time of every thread of a process, in ns (`/proc/<pid>/task/*/
/// schedstat`): exact, where `cpu_ticks` counts in 10 ms steps — too coarse
/// for a 0.1% target over 10 s. Threads that exited in between are lost,
/// so it is read over a window with no thread churn (an idle runner).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Ticks per second of `cpu_ticks`.
pub fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Child processes of `pid` (its agents), found by their parent pid.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// Whether this run is `cargo bench`'s, which passes `--bench`. `cargo
/// test --all-targets` starts bench targets too, without it: minutes of
/// benchmarks in a debug build are not what it asked for, so `main` returns.
pub fn asked_to_bench() -> bool {
    let asked = std::env::args().any(|a| a == "--bench");
    if !asked {
        println!("benchmarks run with `cargo bench` (started without `--bench`: nothing to do)");
    }
    asked
}

/// Whether the benchmark section `name` runs: all of them, or those listed
/// in `TT_BENCH` (comma-separated), to rerun one while profiling.
pub fn enabled(name: &str) -> bool {
    std::env::var("TT_BENCH").map_or(true, |v| v.split(',').any(|n| n == name))
}

/// The machine, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let redis = command("redis-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores, {cpu}; {redis}")
}

/// Writes `text` to `path` the way editors save: a temp file renamed over.
pub fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits until `pid` used under 1 ms of CPU in each of two 300 ms windows
/// in a row (its start-up work done: sync, the first read of the town, the
/// memory handed back), or `limit` passed.
pub fn wait_idle(pid: u32, limit: Duration) {
    let started = Instant::now();
    let mut last = cpu_ns(pid);
    let mut quiet = 0;
    while started.elapsed() < limit && quiet < 2 {
        std::thread::sleep(Duration::from_millis(300));
        let now = cpu_ns(pid);
        quiet = if now.saturating_sub(last) < 1_000_000 {
            quiet + 1
        } else {
            0
        };
        last = now;
    }
}
