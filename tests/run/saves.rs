//! Saves of the plan while `tt run` runs: every way editors and git write
//! it, removed and reordered tasks, invalid and unchanged saves.

use std::process::Stdio;

use super::{DEADLINE, gated_plan, lines, release, task};
use crate::support::{self, FileReads, Scenario, wait_until};

#[test]
fn saves_reload_the_plan_in_place_by_sed_and_by_rename() {
    let town = Scenario::new().plan(gated_plan(&task("a"))).build();
    let run = town.start(&["run"]);
    wait_until(DEADLINE, "a runs", || lines(&town, "order.log") == ["a"]);

    // In-place write.
    let mut text = town.read("tasks.toml");
    text.push_str(&task("b"));
    std::fs::write(town.dir().join("tasks.toml"), &text).expect("write");
    run.wait_output("reloaded tasks.toml: +1 ~0 -0");

    // sed -i (writes a temp file and renames it over).
    let status = support::command("sed")
        .args(["-i", "s/^id = \"b\"$/id = \"b\"\\n[[tasks]]\\nid = \"c\"/"])
        .arg(town.dir().join("tasks.toml"))
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
    wait_until(DEADLINE, "c is in redis", || town.status("c") == "pending");

    // Write to a temp file, then rename (how vim and VS Code save).
    let mut text = town.read("tasks.toml");
    text.push_str(&task("d"));
    let tmp = town.dir().join(".tasks.toml.swp");
    std::fs::write(&tmp, &text).expect("write tmp");
    std::fs::rename(&tmp, town.dir().join("tasks.toml")).expect("rename");
    wait_until(DEADLINE, "d is in redis", || !town.status("d").is_empty());

    for id in ["a", "b", "c", "d"] {
        release(&town, id);
    }
    wait_until(DEADLINE, "all four complete", || {
        ["a", "b", "c", "d"]
            .iter()
            .all(|id| town.status(id) == "completed")
    });
    assert_eq!(lines(&town, "order.log"), ["a", "b", "c", "d"]);
    assert_eq!(run.stop(), 0);
}

#[test]
fn removed_tasks_never_run_and_a_removed_running_task_is_stopped() {
    let plan = gated_plan(&format!("{}{}{}", task("a"), task("b"), task("c")));
    let town = Scenario::new().plan(&plan).build();
    let run = town.start(&["run"]);
    wait_until(DEADLINE, "a runs", || town.status("a") == "running");
    // Remove the running `a` and the pending `c`.
    let edited = plan.replace(&task("a"), "").replace(&task("c"), "");
    town.write("tasks.toml", &edited);
    run.wait_output("reloaded tasks.toml: +0 ~");
    wait_until(DEADLINE, "a is cancelled", || {
        town.status("a") == "cancelled"
    });
    wait_until(DEADLINE, "b starts once a's process is stopped", || {
        town.status("b") == "running"
    });
    release(&town, "b");
    wait_until(DEADLINE, "b completes", || town.status("b") == "completed");
    assert_eq!(town.status("c"), "cancelled");
    assert_eq!(lines(&town, "order.log"), ["a", "b"], "c never ran");
    run.stop();
}

#[test]
fn reordering_not_yet_dispatched_tasks_changes_the_run_order() {
    let plan = gated_plan(&format!(
        "{}{}{}{}",
        task("a"),
        task("b"),
        task("c"),
        task("d")
    ));
    let town = Scenario::new().plan(&plan).build();
    let run = town.start(&["run"]);
    // a runs, b waits in the inbox (prefetch 1); c and d are not dispatched.
    wait_until(DEADLINE, "a runs and b is queued", || {
        town.status("a") == "running" && town.status("b") == "assigned"
    });
    let swapped = gated_plan(&format!(
        "{}{}{}{}",
        task("a"),
        task("b"),
        task("d"),
        task("c")
    ));
    town.write("tasks.toml", &swapped);
    run.wait_output("reloaded tasks.toml");
    for id in ["a", "b", "c", "d"] {
        release(&town, id);
    }
    wait_until(DEADLINE, "all complete", || {
        town.status("c") == "completed" && town.status("d") == "completed"
    });
    assert_eq!(lines(&town, "order.log"), ["a", "b", "d", "c"]);
    run.stop();
}

#[test]
fn a_queued_task_follows_its_new_agent() {
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
    let town = Scenario::new().plan(&plan).build();
    let run = town.start(&["run"]);
    wait_until(DEADLINE, "b is queued behind a", || {
        town.status("b") == "assigned"
    });
    town.write(
        "tasks.toml",
        plan.replace(
            "id = \"b\"\nagent = \"slow\"",
            "id = \"b\"\nagent = \"fast\"",
        ),
    );
    wait_until(DEADLINE, "b completes on fast", || {
        town.status("b") == "completed"
    });
    town.write("go", "");
    wait_until(DEADLINE, "a completes", || town.status("a") == "completed");
    let order = lines(&town, "order.log");
    assert!(order.contains(&"fast b".to_string()), "{order:?}");
    assert!(
        !order.contains(&"slow b".to_string()),
        "b ran once, on its new agent: {order:?}"
    );
    run.stop();
}

#[test]
fn an_invalid_save_keeps_the_last_plan_and_the_next_valid_one_applies() {
    let town = Scenario::new().plan(gated_plan(&task("a"))).build();
    let run = town.start(&["run"]);
    wait_until(DEADLINE, "a runs", || town.status("a") == "running");
    let good = town.read("tasks.toml");
    town.write(
        "tasks.toml",
        format!("{good}[[tasks]]\nid = \"b\"\ndepends_on = [\"nope\"]\n"),
    );
    run.wait_output("unknown task `nope`");
    assert!(run.output().contains("the last good plan keeps running"));
    assert_eq!(
        town.status("b"),
        "",
        "nothing of the invalid file reached redis"
    );
    town.write("tasks.toml", format!("{good}{}", task("b")));
    wait_until(DEADLINE, "b arrives", || !town.status("b").is_empty());
    release(&town, "a");
    release(&town, "b");
    wait_until(DEADLINE, "b completes", || town.status("b") == "completed");
    run.stop();
}

#[test]
fn an_unchanged_save_writes_nothing() {
    let town = Scenario::new().plan(gated_plan(&task("a"))).build();
    let run = town.start(&["run", "--no-agents"]);
    wait_until(DEADLINE, "a is dispatched", || {
        town.status("a") == "assigned"
    });
    let path = town.dir().join("tasks.toml");
    let text = town.read("tasks.toml");
    let before = town.redis().changes();
    let reads = FileReads::watch(&path);
    // Saved the way editors do, each once the runner read the one before:
    // every read after a rename sees all of its text, and no two saves
    // fold into one reload.
    let save = |contents: &str, what: &str| {
        let tmp = town.dir().join(".tasks.toml.swp");
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
    assert_eq!(town.redis().changes(), before, "{out}");
    run.stop();
}

#[test]
fn delete_and_recreate_and_git_checkout_reload_too() {
    let v1 = gated_plan(&task("a"));
    let town = Scenario::new().plan(&v1).build();
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
            .current_dir(town.dir())
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
    let run = town.start(&["run", "--no-agents"]);
    run.wait_output("town `live`");
    // Delete, then create again with a new task.
    std::fs::remove_file(town.dir().join("tasks.toml")).expect("rm");
    town.write("tasks.toml", format!("{v1}{}", task("b")));
    wait_until(DEADLINE, "b arrives after delete + recreate", || {
        !town.status("b").is_empty()
    });
    // Commit that, then check out the first version: b is removed.
    git(&["commit", "-qam", "v2"]);
    git(&["checkout", "-q", "HEAD~1", "--", "tasks.toml"]);
    wait_until(DEADLINE, "b is cancelled after git checkout", || {
        town.status("b") == "cancelled"
    });
    run.stop();
}
