//! Whole plans run to their end (`--until-done`): in order, through the
//! backlog, each example with its exit code, with and without a terminal.

use super::{RECORD, lines, pos};
use crate::support::{self, RedisServer, Scenario, Tt, key};

#[test]
fn a_plan_with_groups_and_dependencies_runs_in_order() {
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
    let town = Scenario::new().plan(plan).build();
    let out = town.tt(["run", "--until-done"]).success();
    assert!(out.stdout.contains("6 completed, 0 failed"), "{out}");
    let order = lines(&town, "order.log");
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
    assert_eq!(town.status("checkout"), "completed");
}

#[test]
fn tasks_without_an_agent_go_to_the_backlog_for_backlog_agents() {
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
    let town = Scenario::new().plan(plan).build();
    let out = town.tt(["run", "--until-done"]).success();
    assert!(out.stdout.contains("dispatched a to the backlog"), "{out}");
    let mut order = lines(&town, "order.log");
    order.sort();
    assert_eq!(order, ["a", "b", "c"]);
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
fn on_a_terminal_a_live_summary_is_drawn_and_without_one_it_is_not() {
    let plan = String::from(
        // Long enough for the footer's debounced redraw to happen.
        "[town]\nname = \"tty\"\n[meta]\ndefault_agent = \"w\"\n[agents.w]\ncommand = [\"sleep\", \"0.6\"]\n[[tasks]]\nid = \"g\"\n[[tasks]]\nid = \"a\"\nparent = \"g\"\n",
    );
    let town = Scenario::new().plan(plan).build();
    // Plain output: lines only.
    let out = town.tt(["run", "--until-done"]).success();
    assert!(!out.stdout.contains("\x1b["), "{out}");
    // Under a pseudo-terminal (util-linux `script`): the summary footer.
    town.redis_cmd(&["DEL", &key("tty", "task:a")]);
    town.redis_cmd(&["HDEL", &key("tty", "fingerprints"), "a"]);
    town.redis_cmd(&["HDEL", &key("tty", "meta"), "plan_fp"]);
    let exe = env!("CARGO_BIN_EXE_tt");
    let out = support::command("script")
        .args(["-qec", &format!("{exe} run --until-done"), "/dev/null"])
        .current_dir(town.dir())
        .env("REDIS_URL", town.redis().url())
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
