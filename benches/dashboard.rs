//! The dashboard at scale (issue #15, item 4), end to end through the
//! release `tt` binary against a private redis-server: a town of 10,000
//! tasks, `tt dashboard`, the JSON API timed, then headless Chromium
//! (`dashboard.py`, selenium) loading the page and watching it while
//! `tt run` works through the town at about 50 events a second.
//!
//! Needs `chromium`, `chromedriver` and Python `selenium` (`.ci/run`
//! installs them). `TT_BENCH_TASKS` and `TT_BENCH_SECONDS` change the
//! size of the town and the length of the event phase.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Workers and how long each task takes: 5 × (1 / 0.3 s) ≈ 16 tasks a
/// second, three events each (dispatched, started, completed) ≈ 50 a second.
const WORKERS: u32 = 5;
const TASK_SECONDS: &str = "0.3";

fn main() {
    if !asked_to_bench() {
        return;
    }
    for (tool, package) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ] {
        assert!(
            on_path(tool),
            "the dashboard benchmark needs `{tool}`: apt-get install -y {package} (or run .ci/run)"
        );
    }
    let tasks: usize = env_or("TT_BENCH_TASKS", 10_000);
    let seconds: u64 = env_or("TT_BENCH_SECONDS", 10);
    println!("machine: {}", machine());
    let tt = tt_bin();
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work.sh");
    std::fs::write(&work, format!("#!/bin/sh\nsleep {TASK_SECONDS}\n")).unwrap();
    std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let plan = plan(Shape {
        tasks,
        // `Shape` takes a static name; one leaked path for the whole run.
        agent: Some((Box::leak(work.to_str().unwrap().into()), WORKERS, 1)),
        completed: false,
    });
    std::fs::write(dir.path().join("tasks.toml"), plan).unwrap();
    let tt_in = |args: &[&str]| {
        let mut c = command(&tt);
        c.args(args)
            .env("REDIS_URL", server.url())
            .current_dir(dir.path())
            .stdin(Stdio::null());
        c
    };
    let pushed = tt_in(&["sync", "push"]).output().unwrap();
    assert!(pushed.status.success(), "tt sync push: {pushed:?}");

    header(&format!("dashboard: {tasks} tasks"));
    let mut dashboard = tt_in(&["dashboard", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = first_line(&mut dashboard);
    let (host, token) = url
        .strip_prefix("http://")
        .and_then(|r| r.split_once("/?token="))
        .map(|(h, t)| (h.to_string(), t.to_string()))
        .unwrap_or_else(|| panic!("not the dashboard's URL: {url}"));

    for (path, target) in [("/api/tasks", 500.0), ("/api/town", 200.0)] {
        let mut bytes = 0;
        let took = median_of(5, || {
            let started = Instant::now();
            bytes = get(&host, &token, path).len();
            started.elapsed()
        });
        report(
            &format!("GET {path} ({} KiB)", bytes / 1024),
            &ms(took),
            &format!("< {target} ms"),
            Some(took.as_secs_f64() * 1e3 < target),
        );
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/dashboard.py");
    let mut browser = command("python3")
        .arg(&script)
        .arg(&url)
        .arg(tasks.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 must be on PATH (with selenium) for the dashboard benchmark");
    let mut to_browser = browser.stdin.take().unwrap();
    let lines = lines_of(browser.stdout.take().unwrap());
    let loaded = tagged(&lines, "loaded", Duration::from_secs(180));
    let rendered = loaded["rendered_ms"].as_f64().unwrap_or(f64::NAN);
    report(
        "first render (navigation → whole town drawn)",
        &format!("{rendered:.0} ms"),
        "< 2000 ms",
        Some(rendered < 2000.0),
    );
    report(
        "elements in the graph / on the page",
        &format!("{} / {}", loaded["shown"], loaded["dom"]),
        "-",
        None,
    );
    report(
        "JS heap after load",
        &format!("{:.1} MiB", mib(&loaded["heap"])),
        "-",
        None,
    );

    let runner = tt_in(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_events(&server, 50, Duration::from_secs(60));
    let cpu_before = cpu_ns(dashboard.id());
    go(&mut to_browser, seconds);
    let result = tagged(&lines, "result", Duration::from_secs(seconds + 60));
    let dashboard_cpu = cpu_ns(dashboard.id()).saturating_sub(cpu_before);
    stop(runner);
    let _ = browser.wait();
    let _ = dashboard.kill();
    let _ = dashboard.wait();

    let num = |k: &str| result[k].as_f64().unwrap_or(f64::NAN);
    report(
        "events during the phase",
        &format!("{} ({:.1}/s)", result["events"], num("events_per_s")),
        "~50/s",
        Some(num("events_per_s") >= 40.0),
    );
    report(
        "event → data-status p50",
        &format!("{:.0} ms", num("p50_ms")),
        "-",
        None,
    );
    report(
        "event → data-status p99 (max)",
        &format!("{:.0} ms ({:.0} ms)", num("p99_ms"), num("max_ms")),
        "< 1000 ms",
        Some(num("p99_ms") < 1000.0),
    );
    report(
        "events whose change never showed",
        &result["missing"].to_string(),
        "0",
        Some(result["missing"] == 0),
    );
    report(
        "long tasks (> 50 ms) / longest",
        &format!(
            "{} / {:.0} ms",
            result["long_tasks"],
            num("longest_task_ms")
        ),
        "none > 200 ms",
        Some(num("longest_task_ms") <= 200.0),
    );
    report(
        "frame gap p99 / max",
        &format!(
            "{:.0} ms / {:.0} ms",
            num("frame_gap_p99_ms"),
            num("frame_gap_max_ms")
        ),
        "-",
        None,
    );
    report(
        "JS heap after the phase",
        &format!("{:.1} MiB", mib(&result["heap"])),
        "-",
        None,
    );
    report(
        "`tt dashboard` CPU during the phase",
        &format!(
            "{:.1}% of a core",
            dashboard_cpu as f64 / 1e9 / seconds as f64 * 100.0
        ),
        "-",
        None,
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn mib(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0)
}

/// The first line `child` prints: the dashboard's URL.
fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

/// `GET path` with the token, its body; fails on any status but 200.
fn get(host: &str, token: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-TT-Token: {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    raw.split_off(head_end + 4)
}

/// The lines `out` prints, as they come.
fn lines_of(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The JSON after `tag ` on the next line that starts with it.
fn tagged(lines: &mpsc::Receiver<String>, tag: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("dashboard.py printed no `{tag}` line ({e})"));
        if let Some(json) = line.strip_prefix(tag).map(str::trim) {
            return serde_json::from_str(json).unwrap();
        }
        println!("  dashboard.py: {line}");
    }
}

fn go(to: &mut ChildStdin, seconds: u64) {
    writeln!(to, "go {seconds}").unwrap();
    to.flush().unwrap();
}

/// Waits until the town's stream holds `n` more events than now: the
/// runner has started its workers and dispatches.
fn wait_for_events(server: &RedisServer, n: u64, within: Duration) {
    let len = || -> u64 {
        redis::cmd("XLEN")
            .arg("tt:bench:events")
            .query(&mut server.conn())
            .unwrap_or(0)
    };
    let start = len();
    let started = Instant::now();
    while len() < start + n {
        assert!(started.elapsed() < within, "tt run produced no events");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    // SAFETY: our own child; SIGTERM is its clean shutdown.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}
