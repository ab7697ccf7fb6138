//! Regressions in hostile plan files and text.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, wait_until};

/// How long a command on a hostile file may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(60);

/// Lines whose diagnostics sit past what miette's graphical handler can
/// draw (column 65535) or are too long to show whole.
fn undrawable_files() -> Vec<(&'static str, String)> {
    vec![
        (
            "a 70k-space array",
            format!("[[tasks]]\nid = \"a\"\ntags = [{}1]\n", " ".repeat(70_000)),
        ),
        (
            "an unclosed `[` past column 65535",
            format!("x = {}[\n", " ".repeat(70_000)),
        ),
        (
            "a 66k-character line before a mistake",
            format!(
                "[[tasks]]\nid = \"a\"\ndescription = \"{}\" bogus\n",
                "x".repeat(66_000)
            ),
        ),
        ("a 1M unclosed `[`", "[".repeat(1_000_000)),
        (
            "a 70k-character key",
            format!("{} = 1\n", "k".repeat(70_000)),
        ),
    ]
}

#[test]
fn a_diagnostic_past_column_65535_is_a_plain_report_not_a_panic() {
    for (what, text) in undrawable_files() {
        let tt = Tt::new().file("tasks.toml", &text);
        let out = tt.run_bounded(["plan"]);
        assert_eq!(out.code, 2, "{what}: exit code\n{out}");
        assert!(!out.stderr.contains("panicked"), "{what}: panic\n{out}");
        assert!(out.stderr.contains("tasks.toml:1:") || out.stderr.contains("tasks.toml:3:"));
        // The report says where, not the whole line again.
        assert!(
            out.stderr.len() < 10_000,
            "{what}: {} bytes of diagnostics",
            out.stderr.len()
        );
    }
}

#[test]
fn an_undrawable_save_under_tt_run_keeps_the_last_good_plan_running() {
    let redis = RedisServer::start();
    let good = "[town]\nname = \"u\"\n\n[[tasks]]\nid = \"a\"\ndescription = \"first\"\n";
    let tt = Tt::new().file("tasks.toml", good).redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    // Dispatch follows the file watch: from here on a save is seen.
    run.wait_output("dispatched a to the backlog");
    let bad = format!("{good}tags = [{}1]\n", " ".repeat(70_000));
    save(&tt, &bad);
    run.wait_output("the last good plan keeps running");
    run.wait_output("tasks.toml:7:");
    save(&tt, &good.replace("first", "second"));
    wait_until(DEADLINE, "the next good save applies", || {
        redis.task_field("u", "a", "description") == "second"
    });
    assert!(!run.output().contains("panicked"), "{}", run.output());
    assert_eq!(run.stop(), 0);
}

/// Saves the way editors do: a temp file renamed over.
fn save(tt: &Tt, text: &str) {
    let tmp = tt.dir().join(".tasks.toml.swp");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, tt.dir().join("tasks.toml")).expect("rename");
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
            let out = tt.run_bounded(&args);
            assert_eq!(out.code, 2, "{out}");
            assert!(out.stderr.contains("not a regular file"), "{out}");
        }
    }
}

#[test]
fn a_plan_swapped_for_a_fifo_under_tt_run_is_refused_and_the_last_plan_keeps_running() {
    let redis = RedisServer::start();
    let good = "[town]\nname = \"z\"\n\n[[tasks]]\nid = \"a\"\ndescription = \"first\"\n";
    let tt = Tt::new().file("tasks.toml", good).redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    // Dispatch follows the file watch: from here on a save is seen.
    run.wait_output("dispatched a to the backlog");
    // Read, a FIFO blocks until a writer comes: the runner would stall.
    let fifo = tt.dir().join(".fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, tt.dir().join("tasks.toml")).unwrap();
    run.wait_output("is a FIFO, not a regular file");
    save(&tt, &good.replace("first", "second"));
    wait_until(DEADLINE, "the next good save applies", || {
        redis.task_field("z", "a", "description") == "second"
    });
    assert_eq!(run.stop(), 0);
}

#[test]
fn a_symlink_to_a_regular_plan_file_still_loads() {
    let tt = Tt::new().file("real.toml", "[[tasks]]\nid = \"a\"\n");
    std::os::unix::fs::symlink("real.toml", tt.dir().join("tasks.toml")).unwrap();
    tt.run_bounded(["plan"]).success().stdout_contains("a");
}

#[test]
fn a_plan_file_over_the_size_cap_is_refused_saying_the_cap() {
    let tt = Tt::new();
    let f = std::fs::File::create(tt.dir().join("tasks.toml")).unwrap();
    // Sparse: nothing is written, the size alone must be refused.
    f.set_len(65 * 1024 * 1024).unwrap();
    let out = tt.run_bounded(["plan"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("64 MiB"), "{out}");
}

fn unknown_tables(n: usize) -> String {
    (0..n).map(|i| format!("[bogus{i}]\n")).collect()
}

#[test]
fn twenty_thousand_unknown_tables_are_reported_quickly_and_capped() {
    let tt = Tt::new().file("tasks.toml", unknown_tables(20_000));
    let started = Instant::now();
    let out = tt.run_bounded(["plan"]);
    let text_took = started.elapsed();
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        out.stderr.matches("unknown key `bogus").count(),
        20,
        "{out}"
    );
    assert!(out.stderr.contains("and 19,980 more"), "{out}");
    assert!(out.stderr.lines().count() < 500, "{out}");

    let started = Instant::now();
    let json = tt.run_bounded(["plan", "--json"]);
    let json_took = started.elapsed();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let problems = v["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 20_000);
    assert_eq!(problems[19_999]["line"], 20_000);
    // Linear work is well under a second here; the quadratic one took
    // tens of seconds. The margin is for a loaded machine.
    for took in [text_took, json_took] {
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }
}

#[test]
fn a_save_with_twenty_thousand_problems_does_not_flood_or_stall_tt_run() {
    let redis = RedisServer::start();
    let good = "[town]\nname = \"f\"\n\n[[tasks]]\nid = \"a\"\ndescription = \"first\"\n";
    let tt = Tt::new().file("tasks.toml", good).redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    // Dispatch follows the file watch: from here on a save is seen.
    run.wait_output("dispatched a to the backlog");
    save(&tt, &format!("{good}{}", unknown_tables(20_000)));
    run.wait_output("and 19,980 more");
    let started = Instant::now();
    save(&tt, &good.replace("first", "second"));
    wait_until(DEADLINE, "the next good save applies", || {
        redis.task_field("f", "a", "description") == "second"
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    let output = run.output();
    assert!(output.lines().count() < 500, "{output}");
    assert_eq!(run.stop(), 0);
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

/// A task whose text would recolour the terminal and move the cursor.
const HOSTILE: &str = r#"[town]
name = "esc"

[meta]
description = "meta \u001b[2J"

[[tasks]]
id = "a"
description = "red \u001b[31m here\r\u0007 and \u009b1m"
tags = ["t\u001b]0;title\u0007"]
"#;

#[test]
fn control_characters_in_task_text_are_escaped_on_the_terminal() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", HOSTILE).redis(&redis);
    let raw = |s: &str| s.chars().any(|c| c.is_control() && c != '\n');
    let plan = tt.run_with(["plan"]).success();
    assert!(!raw(&plan.stdout), "{plan}");
    assert!(plan.stdout.contains("meta \\u{1b}[2J"), "{plan}");
    tt.run_with(["sync", "push"]).success();
    for args in [&["tasks"][..], &["task", "a"], &["status"]] {
        let out = tt.run_with(args).success();
        assert!(!raw(&out.stdout), "{out}");
    }
    tt.run_with(["task", "a"])
        .stdout_contains("red \\u{1b}[31m here\\r\\u{7} and \\u{9b}1m");
    tt.run_with(["tasks"]).stdout_contains("red \\u{1b}[31m");
    // JSON stays exact: serde escapes it.
    let json = tt.run_with(["task", "a", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(
        v["description"]
            .as_str()
            .or(v["task"]["description"].as_str()),
        Some("red \u{1b}[31m here\r\u{7} and \u{9b}1m")
    );
    // A message from `tt send` reaches `tt inbox`, `tt history` and the
    // lines of `tt run` escaped too.
    let run = Running::start(&tt, &["run", "--no-agents"]);
    run.wait_output("dispatched a to the backlog");
    tt.run_with(["send", "w", "hi \u{1b}[31m there", "--create"])
        .success();
    run.wait_output("message for w");
    let inbox = tt.run_with(["inbox", "w"]).success();
    assert!(!raw(&inbox.stdout), "{inbox}");
    assert!(inbox.stdout.contains("hi \\u{1b}[31m there"), "{inbox}");
    let history = tt.run_with(["history"]).success();
    assert!(!raw(&history.stdout), "{history}");
    assert_eq!(run.stop(), 0);
    let lines = std::fs::read_to_string(tt.dir().join("run.out")).unwrap();
    assert!(!raw(&lines), "{lines}");
    assert!(lines.contains("hi \\u{1b}[31m there"), "{lines}");
}

/// The bytes `pid` has read so far (`rchar` of `/proc/<pid>/io`).
fn bytes_read(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("rchar: ").map(str::to_owned))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_save_made_while_tt_run_starts_is_reloaded_not_lost() {
    // Big enough that the first push takes a while: the save lands after
    // `tt run` read the file and before its first push is done.
    let mut text = String::from("[town]\nname = \"early\"\n\n");
    for i in 0..20_000 {
        text.push_str(&format!(
            "[[tasks]]\nid = \"t{i}\"\ndescription = \"Task {i}\"\n\n"
        ));
    }
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", &text).redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    wait_until(DEADLINE, "tt run has read tasks.toml", || {
        bytes_read(run.pid()) >= text.len() as u64
    });
    let edited = text.replace(
        "description = \"Task 0\"\n",
        "description = \"Task 0, saved early\"\n",
    );
    let tmp = tt.dir().join(".tasks.toml.swp");
    std::fs::write(&tmp, &edited).unwrap();
    std::fs::rename(&tmp, tt.dir().join("tasks.toml")).unwrap();
    wait_until(DEADLINE, "the early save reaches redis", || {
        redis.task_field("early", "t0", "description") == "Task 0, saved early"
    });
    run.stop();
}

#[test]
fn a_closed_stdout_ends_a_command_quietly_instead_of_a_panic() {
    // `completions` writes through clap_complete, `plan` through println!.
    let tt = Tt::new().file("tasks.toml", "[[tasks]]\nid = \"a\"\n");
    for args in [&["completions", "bash"][..], &["plan"][..]] {
        // The reader is gone before `tt` starts, so before it prints its
        // first line, as with `tt … | head -0`: dropping it after the
        // spawn would race a short output into the pipe's buffer.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = tt
            .command()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "tt {args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "tt {args:?}: {stderr}");
    }
}

/// A plan with task `a` described as `description`, in town `ln`.
fn linked_plan(description: &str) -> String {
    format!("[town]\nname = \"ln\"\n\n[[tasks]]\nid = \"a\"\ndescription = \"{description}\"\n")
}

#[test]
fn a_save_to_the_target_of_a_symlinked_plan_in_another_directory_is_reloaded() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("shared/plan.toml", linked_plan("first"))
        .file("proj/.keep", "")
        .current_dir("proj")
        .redis(&redis);
    std::os::unix::fs::symlink("../shared/plan.toml", tt.dir().join("proj/tasks.toml")).unwrap();
    let run = Running::start(&tt, &["run", "--no-agents"]);
    run.wait_output("dispatched a to the backlog");
    // An editor saving the real file: a temp file beside it, renamed over.
    let tmp = tt.dir().join("shared/.plan.toml.swp");
    std::fs::write(&tmp, linked_plan("second")).unwrap();
    std::fs::rename(&tmp, tt.dir().join("shared/plan.toml")).unwrap();
    wait_until(DEADLINE, "the rename save of the target applies", || {
        redis.task_field("ln", "a", "description") == "second"
    });
    // And a write in place.
    tt.write("shared/plan.toml", linked_plan("third"));
    wait_until(DEADLINE, "the in-place save of the target applies", || {
        redis.task_field("ln", "a", "description") == "third"
    });
    assert_eq!(run.stop(), 0);
}
