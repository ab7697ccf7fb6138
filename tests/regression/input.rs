//! Regressions in hostile plan files and text.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Output, RedisServer, Tt};

/// How long a command on a hostile file may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `tt args` in `tt`'s project, killing it if it has not exited
/// within [`DEADLINE`] (the test then fails naming what hung).
fn run_bounded(tt: &Tt, args: &[&str]) -> Output {
    let out_path = tt.dir().join(".bounded.out");
    let err_path = tt.dir().join(".bounded.err");
    let mut cmd = tt.command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`tt {}` still ran after {DEADLINE:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        command: format!("tt {}", args.join(" ")),
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A FIFO at `path` (mkfifo(3)).
fn mkfifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn a_plan_file_that_is_not_a_regular_file_is_refused_without_hanging() {
    let redis = RedisServer::start();
    let tt = Tt::new().redis(&redis);
    mkfifo(&tt.dir().join("fifo.toml"));
    std::os::unix::fs::symlink("/dev/zero", tt.dir().join("zero.toml")).unwrap();
    for file in ["/dev/zero", "zero.toml", "fifo.toml"] {
        for cmd in [
            &["plan"][..],
            &["sync", "push"],
            &["status"],
            &["tasks"],
            &["history"],
        ] {
            let mut args = vec!["-f", file];
            args.extend_from_slice(cmd);
            let out = run_bounded(&tt, &args);
            assert_eq!(out.code, 2, "{out}");
            assert!(out.stderr.contains("not a regular file"), "{out}");
        }
    }
}

#[test]
fn a_symlink_to_a_regular_plan_file_still_loads() {
    let tt = Tt::new().file("real.toml", "[[tasks]]\nid = \"a\"\n");
    std::os::unix::fs::symlink("real.toml", tt.dir().join("tasks.toml")).unwrap();
    run_bounded(&tt, &["plan"]).success().stdout_contains("a");
}

#[test]
fn a_plan_file_over_the_size_cap_is_refused_saying_the_cap() {
    let tt = Tt::new();
    let f = std::fs::File::create(tt.dir().join("tasks.toml")).unwrap();
    // Sparse: nothing is written, the size alone must be refused.
    f.set_len(65 * 1024 * 1024).unwrap();
    let out = run_bounded(&tt, &["plan"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("64 MiB"), "{out}");
}

#[test]
fn a_parent_cycle_does_not_hide_a_dependency_cycle() {
    let text = r#"
[[tasks]]
id = "a"
parent = "b"

[[tasks]]
id = "b"
parent = "a"

[[tasks]]
id = "c"
depends_on = ["d"]

[[tasks]]
id = "d"
depends_on = ["c"]
"#;
    Tt::new()
        .file("tasks.toml", text)
        .args(["plan"])
        .run()
        .code(2)
        .stderr_contains("has 2 problems")
        .stderr_contains("parent cycle: a → b → a")
        .stderr_contains("dependency cycle: c → d → c");
}
