//! Regressions in the main job, the test harness and the benchmarks.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{self, Running, Tt, wait_until};

/// What a worker of an outer `tt run` hands the `cargo test` it runs, plus
/// what a git hook would: every one points somewhere a test must not go.
const OUTER_ENVIRONMENT: &[(&str, &str)] = &[
    ("TT_FILE", "/nonexistent/outer/tasks.toml"),
    ("TT_TOWN", "outer-town"),
    ("TT_AGENT", "sh"),
    ("TT_TASK_ID", "test"),
    ("TT_ATTEMPT", "1"),
    ("REDIS_URL", "redis://127.0.0.1:1/0"),
    ("REDISCLI_AUTH", "outer-password"),
    ("GIT_DIR", "/dev/null/outer.git"),
    ("GIT_WORK_TREE", "/dev/null/outer"),
];

/// Tests that start children other than `tt` through the harness: `script`
/// (a terminal), `git`, `sed`, and the probe below.
const TESTS_WITH_CHILDREN: &[&str] = &[
    "run::plans::on_a_terminal_a_live_summary_is_drawn_and_without_one_it_is_not",
    "run::saves::delete_and_recreate_and_git_checkout_reload_too",
    "run::saves::saves_reload_the_plan_in_place_by_sed_and_by_rename",
    "regression::front::a_child_of_a_test_inherits_no_tt_redis_or_git_variable",
];

#[test]
fn a_child_of_a_test_inherits_no_tt_redis_or_git_variable() {
    let out = support::command("sh")
        .args(["-c", "env"])
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    assert!(out.status.success());
    let env = String::from_utf8_lossy(&out.stdout);
    let leaked: Vec<&str> = env
        .lines()
        .filter(|line| {
            let name = line.split('=').next().unwrap_or_default();
            support::is_leaked(name.as_ref())
        })
        .collect();
    assert!(leaked.is_empty(), "leaked into a child: {leaked:?}");
}

/// The check pipeline's `cargo test` ran inside a `tt` task: a test's
/// `script … tt run` inherited `TT_FILE` and ran the pipeline again, a new
/// level every ~40 s. Run the tests that start children the way that task
/// does, and require them to pass untouched by it.
#[test]
fn tests_run_from_inside_a_tt_task_do_not_inherit_its_town() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("tests.out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let exe = std::env::current_exe().expect("the test binary");
    let mut inner = support::command(exe);
    inner
        .args(TESTS_WITH_CHILDREN)
        .args(["--exact", "--test-threads=2"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("output file"))
        .stderr(out);
    for (name, value) in OUTER_ENVIRONMENT {
        inner.env(name, value);
    }
    let mut child = inner.spawn().expect("the test binary runs");
    let mut status = None;
    let deadline = Duration::from_secs(240);
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(deadline, "the inner tests finish", || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        })
    }));
    if waited.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        waited.is_ok(),
        "inner tests still running after {deadline:?}:\n{text}"
    );
    let passed = format!("test result: ok. {} passed", TESTS_WITH_CHILDREN.len());
    assert!(
        status.is_some_and(|s| s.success()) && text.contains(&passed),
        "the tests failed under an outer task's environment:\n{text}"
    );
}

/// The README's main job, `tt run --until-done` in the repository, ran the
/// project's whole check pipeline (and, through its tests, itself again):
/// it must be a demo that finishes in seconds on the embedded default with
/// no AI CLI, showing replicas, a join step, dependencies and a retry, and
/// `tt down` must leave nothing of it running.
#[test]
fn the_main_job_finishes_in_seconds_and_tt_down_leaves_nothing_running() {
    let plan = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks.toml"))
        .expect("the repository's tasks.toml");
    // No `REDIS_URL` (the harness drops it): the embedded default, in the
    // temp project.
    let tt = Tt::new().file("tasks.toml", plan);
    let mut run = Running::start(&tt, &["run", "--until-done"]);
    // `wait_exit` allows a minute; the demo needs about ten seconds.
    let code = run.wait_exit();
    let out = run.output();
    assert_eq!(code, 0, "the main job failed:\n{out}");
    for shown in [
        "on dev-1",
        "on dev-2",
        "dispatched auth to reviewer",
        "retrying",
    ] {
        assert!(
            out.contains(shown),
            "the demo never shows {shown:?}:\n{out}"
        );
    }
    let tasks = tt.run_with(["tasks", "--json"]).success();
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&tasks.stdout).expect("json");
    assert!(tasks.len() >= 5, "{tasks:?}");
    for task in &tasks {
        assert_eq!(task["status"], "completed", "{task}");
    }
    assert!(
        tasks.iter().any(|t| t["attempt"].as_u64() >= Some(2)),
        "no task was retried: {tasks:?}"
    );
    tt.run_with(["down"]).success();
    wait_until(
        Duration::from_secs(30),
        "nothing of the project runs after `tt down`",
        || support::processes_in(tt.dir()).is_empty(),
    );
}

/// Tests started `script`, `git` and `sed` with `Command::new`, which
/// inherits everything: every child must start from `support::command`
/// (benchmarks: `common::command`, the same file).
#[test]
fn every_child_of_a_test_or_a_benchmark_starts_from_the_environment_helper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let helper = root.join("tests/support/child_env.rs");
    let mut files = Vec::new();
    let mut dirs = vec![root.join("tests"), root.join("benches")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && path != helper {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "found only {files:?}");
    // Split so that this file does not match itself.
    let needle = concat!("Command", "::new(");
    let mut offenders = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") && code.contains(needle) {
                offenders.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(root).unwrap_or(file).display(),
                    n + 1,
                    code
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "start children with `support::command(…)` (benches: `common::command(…)`) so \
         they inherit no `TT_*`, `REDIS_URL` or `GIT_*`:\n{}",
        offenders.join("\n")
    );
}
