//! `tt run` end to end: real runner, real agents (`sh` commands), a private
//! redis-server; every wait is for a condition, with a deadline.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::RedisExt;
use crate::support::{self, FileReads, RedisServer, Running, Tt, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

/// An agent command that appends `<task id>` to `order.log` when it runs.
const RECORD: &str = r#"command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> order.log"]"#;

fn lines(tt: &Tt, name: &str) -> Vec<String> {
    std::fs::read_to_string(tt.dir().join(name))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn pos(order: &[String], id: &str) -> usize {
    order
        .iter()
        .position(|l| l == id)
        .unwrap_or_else(|| panic!("{id} never ran: {order:?}"))
}

fn status(redis: &RedisServer, town: &str, id: &str) -> String {
    redis.task_field(town, id, "status")
}

#[test]
fn a_plan_with_groups_and_dependencies_runs_in_order() {
    let redis = RedisServer::start();
    let plan = format!(
        r#"
[town]
name = "shop"
[meta]
default_agent = "backend"
[agents.backend]
{RECORD}
[agents.reviewer]
{RECORD}
[[tasks]]
id = "schema"
[[tasks]]
id = "auth"
agent = "reviewer"
[[tasks]]
id = "login"
parent = "auth"
depends_on = ["schema"]
[[tasks]]
id = "logout"
parent = "auth"
depends_on = ["schema"]
[[tasks]]
id = "checkout"
depends_on = ["auth"]
[[tasks]]
id = "docs"
priority = 4
"#
    );
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("6 completed, 0 failed"), "{out}");
    let order = lines(&tt, "order.log");
    assert_eq!(order.len(), 6, "each task ran once: {order:?}");
    assert!(pos(&order, "schema") < pos(&order, "login"));
    assert!(
        pos(&order, "login") < pos(&order, "logout"),
        "file order among equals: {order:?}"
    );
    assert!(
        pos(&order, "logout") < pos(&order, "auth"),
        "join step after children"
    );
    assert!(
        pos(&order, "auth") < pos(&order, "checkout"),
        "depends_on a group waits for it"
    );
    assert_eq!(order.iter().filter(|l| *l == "auth").count(), 1);
    assert_eq!(status(&redis, "shop", "checkout"), "completed");
}

/// A plan whose agent waits for `go-<id>` to exist before finishing, so a
/// test decides when each task completes.
fn gated_plan(tasks: &str) -> String {
    format!(
        r#"[town]
name = "live"
[meta]
default_agent = "w"
[agents.w]
command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> order.log; while [ ! -e \"go-$TT_TASK_ID\" ]; do sleep 0.02; done"]
{tasks}"#
    )
}

fn task(id: &str) -> String {
    format!("[[tasks]]\nid = \"{id}\"\n")
}

fn release(tt: &Tt, id: &str) {
    tt.write(format!("go-{id}"), "");
}

#[test]
fn saves_reload_the_plan_in_place_by_sed_and_by_rename() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", gated_plan(&task("a")))
        .redis(&redis);
    let run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "a runs", || lines(&tt, "order.log") == ["a"]);

    // In-place write.
    let mut text = tt.read("tasks.toml");
    text.push_str(&task("b"));
    std::fs::write(tt.dir().join("tasks.toml"), &text).expect("write");
    run.wait_output("reloaded tasks.toml: +1 ~0 -0");

    // sed -i (writes a temp file and renames it over).
    let status = support::command("sed")
        .args(["-i", "s/^id = \"b\"$/id = \"b\"\\n[[tasks]]\\nid = \"c\"/"])
        .arg(tt.dir().join("tasks.toml"))
        .status()
        .expect("sed");
    assert!(status.success());
    // The in-place write printed the same line: wait for a second one.
    wait_until(DEADLINE, "the sed save is reloaded", || {
        run.output()
            .matches("reloaded tasks.toml: +1 ~0 -0\n")
            .count()
            == 2
    });
    wait_until(DEADLINE, "c is in redis", || {
        status_of(&redis, "c") == "pending"
    });

    // Write to a temp file, then rename (how vim and VS Code save).
    let mut text = tt.read("tasks.toml");
    text.push_str(&task("d"));
    let tmp = tt.dir().join(".tasks.toml.swp");
    std::fs::write(&tmp, &text).expect("write tmp");
    std::fs::rename(&tmp, tt.dir().join("tasks.toml")).expect("rename");
    wait_until(DEADLINE, "d is in redis", || {
        !status_of(&redis, "d").is_empty()
    });

    for id in ["a", "b", "c", "d"] {
        release(&tt, id);
    }
    wait_until(DEADLINE, "all four complete", || {
        ["a", "b", "c", "d"]
            .iter()
            .all(|id| status_of(&redis, id) == "completed")
    });
    assert_eq!(lines(&tt, "order.log"), ["a", "b", "c", "d"]);
    assert_eq!(run.stop(), 0);
}

fn status_of(redis: &RedisServer, id: &str) -> String {
    status(redis, "live", id)
}

#[test]
fn removed_tasks_never_run_and_a_removed_running_task_is_stopped() {
    let redis = RedisServer::start();
    let plan = gated_plan(&format!("{}{}{}", task("a"), task("b"), task("c")));
    let tt = Tt::new().file("tasks.toml", &plan).redis(&redis);
    let run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "a runs", || status_of(&redis, "a") == "running");
    // Remove the running `a` and the pending `c`.
    let edited = plan.replace(&task("a"), "").replace(&task("c"), "");
    tt.write("tasks.toml", &edited);
    run.wait_output("reloaded tasks.toml: +0 ~");
    wait_until(DEADLINE, "a is cancelled", || {
        status_of(&redis, "a") == "cancelled"
    });
    wait_until(DEADLINE, "b starts once a's process is stopped", || {
        status_of(&redis, "b") == "running"
    });
    release(&tt, "b");
    wait_until(DEADLINE, "b completes", || {
        status_of(&redis, "b") == "completed"
    });
    assert_eq!(status_of(&redis, "c"), "cancelled");
    assert_eq!(lines(&tt, "order.log"), ["a", "b"], "c never ran");
    run.stop();
}

#[test]
fn reordering_not_yet_dispatched_tasks_changes_the_run_order() {
    let redis = RedisServer::start();
    let plan = gated_plan(&format!(
        "{}{}{}{}",
        task("a"),
        task("b"),
        task("c"),
        task("d")
    ));
    let tt = Tt::new().file("tasks.toml", &plan).redis(&redis);
    let run = Running::start(&tt, &["run"]);
    // a runs, b waits in the inbox (prefetch 1); c and d are not dispatched.
    wait_until(DEADLINE, "a runs and b is queued", || {
        status_of(&redis, "a") == "running" && status_of(&redis, "b") == "assigned"
    });
    let swapped = gated_plan(&format!(
        "{}{}{}{}",
        task("a"),
        task("b"),
        task("d"),
        task("c")
    ));
    tt.write("tasks.toml", &swapped);
    run.wait_output("reloaded tasks.toml");
    for id in ["a", "b", "c", "d"] {
        release(&tt, id);
    }
    wait_until(DEADLINE, "all complete", || {
        status_of(&redis, "c") == "completed" && status_of(&redis, "d") == "completed"
    });
    assert_eq!(lines(&tt, "order.log"), ["a", "b", "d", "c"]);
    run.stop();
}

#[test]
fn a_queued_task_follows_its_new_agent() {
    let redis = RedisServer::start();
    let agents = r#"[town]
name = "live"
[agents.slow]
command = ["sh", "-c", "echo \"slow $TT_TASK_ID\" >> order.log; while [ ! -e go ]; do sleep 0.02; done"]
[agents.fast]
command = ["sh", "-c", "echo \"fast $TT_TASK_ID\" >> order.log"]
"#;
    let plan = format!(
        "{agents}[[tasks]]\nid = \"a\"\nagent = \"slow\"\n[[tasks]]\nid = \"b\"\nagent = \"slow\"\n"
    );
    let tt = Tt::new().file("tasks.toml", &plan).redis(&redis);
    let run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "b is queued behind a", || {
        status_of(&redis, "b") == "assigned"
    });
    tt.write(
        "tasks.toml",
        plan.replace(
            "id = \"b\"\nagent = \"slow\"",
            "id = \"b\"\nagent = \"fast\"",
        ),
    );
    wait_until(DEADLINE, "b completes on fast", || {
        status_of(&redis, "b") == "completed"
    });
    tt.write("go", "");
    wait_until(DEADLINE, "a completes", || {
        status_of(&redis, "a") == "completed"
    });
    let order = lines(&tt, "order.log");
    assert!(order.contains(&"fast b".to_string()), "{order:?}");
    assert!(
        !order.contains(&"slow b".to_string()),
        "b ran once, on its new agent: {order:?}"
    );
    run.stop();
}

#[test]
fn an_invalid_save_keeps_the_last_plan_and_the_next_valid_one_applies() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", gated_plan(&task("a")))
        .redis(&redis);
    let run = Running::start(&tt, &["run"]);
    wait_until(DEADLINE, "a runs", || status_of(&redis, "a") == "running");
    let good = tt.read("tasks.toml");
    tt.write(
        "tasks.toml",
        format!("{good}[[tasks]]\nid = \"b\"\ndepends_on = [\"nope\"]\n"),
    );
    run.wait_output("unknown task `nope`");
    assert!(run.output().contains("the last good plan keeps running"));
    assert_eq!(
        status_of(&redis, "b"),
        "",
        "nothing of the invalid file reached redis"
    );
    tt.write("tasks.toml", format!("{good}{}", task("b")));
    wait_until(DEADLINE, "b arrives", || !status_of(&redis, "b").is_empty());
    release(&tt, "a");
    release(&tt, "b");
    wait_until(DEADLINE, "b completes", || {
        status_of(&redis, "b") == "completed"
    });
    run.stop();
}

#[test]
fn an_unchanged_save_writes_nothing() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", gated_plan(&task("a")))
        .redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    wait_until(DEADLINE, "a is dispatched", || {
        status_of(&redis, "a") == "assigned"
    });
    let path = tt.dir().join("tasks.toml");
    let text = tt.read("tasks.toml");
    let before = redis.changes();
    let reads = FileReads::watch(&path);
    // Saved the way editors do, each once the runner read the one before:
    // every read after a rename sees all of its text, and no two saves
    // fold into one reload.
    let save = |contents: &str, what: &str| {
        let tmp = tt.dir().join(".tasks.toml.swp");
        std::fs::write(&tmp, contents).expect("write tmp");
        std::fs::rename(&tmp, &path).expect("rename");
        reads.wait(DEADLINE, &format!("the runner reads {what}"));
    };
    save(&text, "the same text");
    // A comment changes the text, not the plan: inside the last task (one
    // entry reloaded alone), then above `[town]` (the full reload).
    save(&format!("{text}# a comment\n"), "a comment in a task");
    save(&format!("# a comment\n{text}"), "a comment above the tasks");
    // Reloads are handled in order: once this one is reported, every save
    // above has been, and an invalid save writes nothing either.
    save(&format!("{text}[[tasks]\n"), "an invalid save");
    run.wait_output("is invalid; the last good plan keeps running");
    let out = run.output();
    assert_eq!(
        out.matches("reloaded tasks.toml: +0 ~0 -0").count(),
        2,
        "the two comments reload, the same text does not:\n{out}"
    );
    assert_eq!(out.matches("reloaded").count(), 2, "{out}");
    assert_eq!(redis.changes(), before, "{out}");
    run.stop();
}

#[test]
fn a_second_runner_on_the_same_town_is_refused() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", gated_plan(&task("a")))
        .redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    run.wait_output("town `live`");
    tt.run_with(["run", "--no-agents"])
        .code(3)
        .stderr_contains("town `live` already has a runner")
        .stderr_contains("--wait");
    assert_eq!(run.stop(), 0);
    // Its lease is released on a clean stop: a new runner starts at once.
    let again = Running::start(&tt, &["run", "--no-agents"]);
    again.wait_output("town `live`");
    assert_eq!(again.stop(), 0);
}

#[test]
fn supervisor_messages_show_in_the_runner_output() {
    let redis = RedisServer::start();
    let tt = Tt::new()
        .file("tasks.toml", gated_plan(&task("a")))
        .redis(&redis);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    run.wait_output("town `live`");
    redis.cmd(&[
        "RPUSH",
        "tt:live:inbox:supervisor",
        r#"{"kind":"message","from":"ann","body":"hello runner"}"#,
    ]);
    redis.cmd(&[
        "XADD",
        "tt:live:events",
        "*",
        "kind",
        "message",
        "agent",
        "supervisor",
        "task",
        "",
    ]);
    run.wait_output("message to supervisor from ann: hello runner");
    run.stop();
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn until_done_on_each_example_ends_with_the_right_code() {
    let redis = RedisServer::start();
    // shop.toml: everything completes, the join step last.
    let tt = Tt::new()
        .file("tasks.toml", crate::example("shop.toml"))
        .redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("6 completed, 0 failed"), "{out}");
    // tinytown 0.10: no [agents], so nothing can run here; it says so.
    let tt = Tt::new()
        .file("tasks.toml", crate::example("tinytown-0.10.toml"))
        .env("TT_TOWN", "legacy")
        .redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).code(1);
    assert!(
        out.stdout.contains("agent `backend` is not declared"),
        "{out}"
    );
    assert!(out.stdout.contains("tt agent backend"), "{out}");
    // claude.toml with a `claude` that fails: attempts fail, exit 1.
    let bin = tt.dir().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    for name in ["claude", "codex"] {
        let path = bin.join(name);
        std::fs::write(&path, "#!/bin/sh\nexit 3\n").expect("write");
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&path).expect("meta").permissions(),
            0o755,
        );
        support::command("chmod")
            .arg("755")
            .arg(&path)
            .status()
            .expect("chmod");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tt = Tt::new()
        .file("tasks.toml", crate::example("claude.toml"))
        .env("TT_TOWN", "claude")
        .env("PATH", path)
        .redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).code(1);
    assert!(out.stdout.contains("failed: tests"), "{out}");
}

#[test]
fn tasks_without_an_agent_go_to_the_backlog_for_backlog_agents() {
    let redis = RedisServer::start();
    let plan = format!(
        r#"[town]
name = "bl"
[agents.any]
{RECORD}
backlog = true
count = 2
[[tasks]]
id = "a"
[[tasks]]
id = "b"
[[tasks]]
id = "c"
"#
    );
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(out.stdout.contains("dispatched a to the backlog"), "{out}");
    let mut order = lines(&tt, "order.log");
    order.sort();
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn on_a_terminal_a_live_summary_is_drawn_and_without_one_it_is_not() {
    let redis = RedisServer::start();
    let plan = String::from(
        // Long enough for the footer's debounced redraw to happen.
        "[town]\nname = \"tty\"\n[meta]\ndefault_agent = \"w\"\n[agents.w]\ncommand = [\"sleep\", \"0.6\"]\n[[tasks]]\nid = \"g\"\n[[tasks]]\nid = \"a\"\nparent = \"g\"\n",
    );
    let tt = Tt::new().file("tasks.toml", plan).redis(&redis);
    // Plain output: lines only.
    let out = tt.run_with(["run", "--until-done"]).success();
    assert!(!out.stdout.contains("\x1b["), "{out}");
    // Under a pseudo-terminal (util-linux `script`): the summary footer.
    redis.cmd(&["DEL", "tt:tty:task:a"]);
    redis.cmd(&["HDEL", "tt:tty:fingerprints", "a"]);
    redis.cmd(&["HDEL", "tt:tty:meta", "plan_fp"]);
    let exe = env!("CARGO_BIN_EXE_tt");
    let out = support::command("script")
        .args(["-qec", &format!("{exe} run --until-done"), "/dev/null"])
        .current_dir(tt.dir())
        .env("REDIS_URL", redis.url())
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("completed ·") && text.contains("groups: g"),
        "{text}"
    );
    // Redrawn in place: a footer line follows an erase. (`finish()` erases
    // the footer at the end in any case, and the summary follows it.)
    let erased = text.find("\x1b[1A\x1b[2K");
    assert!(
        erased.is_some_and(|at| text[at..].contains("── ")),
        "footer is redrawn in place: {text}"
    );
}

#[test]
fn delete_and_recreate_and_git_checkout_reload_too() {
    let redis = RedisServer::start();
    let v1 = gated_plan(&task("a"));
    let tt = Tt::new().file("tasks.toml", &v1).redis(&redis);
    let git = |args: &[&str]| {
        let ok = support::command("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(tt.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "tasks.toml"]);
    git(&["commit", "-qm", "v1"]);
    let run = Running::start(&tt, &["run", "--no-agents"]);
    run.wait_output("town `live`");
    // Delete, then create again with a new task.
    std::fs::remove_file(tt.dir().join("tasks.toml")).expect("rm");
    tt.write("tasks.toml", format!("{v1}{}", task("b")));
    wait_until(DEADLINE, "b arrives after delete + recreate", || {
        !status_of(&redis, "b").is_empty()
    });
    // Commit that, then check out the first version: b is removed.
    git(&["commit", "-qam", "v2"]);
    git(&["checkout", "-q", "HEAD~1", "--", "tasks.toml"]);
    wait_until(DEADLINE, "b is cancelled after git checkout", || {
        status_of(&redis, "b") == "cancelled"
    });
    run.stop();
}
