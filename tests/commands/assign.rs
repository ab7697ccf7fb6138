//! `tt assign`: ad hoc tasks from the command line.

use super::{PLAN, event_kinds, json, shop};
use crate::support::key;

#[test]
fn assign_creates_a_pending_cli_task_that_survives_a_reload() {
    let town = shop();
    town.tt(["assign", "backend", "Fix the flaky test"])
        .success()
        .stdout_contains("added adhoc-1 for `backend`");
    let t = town.task("adhoc-1");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["source"], "cli");
    assert_eq!(t["agent"], "backend");
    assert_eq!(t["attempt"], "0");
    // Ordered after every file task of the same priority.
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(key("shop", "tasks"))
        .arg(0)
        .arg(-1)
        .query(&mut town.redis().conn())
        .unwrap();
    assert_eq!(ids.last().map(String::as_str), Some("adhoc-1"), "{ids:?}");
    assert_eq!(
        event_kinds(&town).last(),
        Some(&("added".to_string(), "adhoc-1".to_string()))
    );

    let v = json(
        &town
            .tt([
                "assign",
                "backend",
                "Rate limits",
                "--id",
                "rate",
                "--parent",
                "auth",
                "--tags",
                "api,P1",
                "--depends-on",
                "schema",
                "--priority",
                "0",
                "--json",
            ])
            .success()
            .stdout,
    );
    assert_eq!(v["id"], "rate");
    assert_eq!(v["source"], "cli");
    let rate = town.task("rate");
    assert_eq!(rate["tags"], r#"["api","P1"]"#);
    assert_eq!(rate["depends_on"], r#"["schema"]"#);
    assert_eq!(rate["parent"], "auth");
    assert_eq!(rate["priority"], "0");
    // P0 comes first despite being ad hoc.
    let first: Vec<String> = redis::cmd("ZRANGE")
        .arg(key("shop", "tasks"))
        .arg(0)
        .arg(0)
        .query(&mut town.redis().conn())
        .unwrap();
    assert_eq!(first, ["rate"]);

    // A reload of a file that lacks them (and drops `deploy`) keeps them.
    town.write(
        "tasks.toml",
        PLAN.replace(
            "[[tasks]]\nid = \"deploy\"\ndescription = \"Deploy\"\ndepends_on = [\"auth\"]\n",
            "",
        ),
    );
    town.tt(["sync", "push"])
        .success()
        .stdout_contains("-1 removed");
    assert_eq!(town.task("deploy")["status"], "cancelled");
    assert_eq!(town.task("adhoc-1")["status"], "pending");
    assert!(!town.task("adhoc-1").contains_key("removed"));
    assert_eq!(town.task("rate")["status"], "pending");
}

#[test]
fn assign_refuses_taken_ids_bad_names_and_unknown_references() {
    let town = shop();
    let before = town.task("login");
    town.tt(["assign", "backend", "x", "--id", "login"])
        .code(2)
        .stderr_contains("task `login` already exists in town `shop`");
    assert_eq!(town.task("login"), before, "untouched");
    town.tt(["assign", "backend", "x", "--parent", "auht"])
        .code(2)
        .stderr_contains("no task `auht`")
        .stderr_contains("did you mean `auth`?");
    town.tt(["assign", "backend", "x", "--depends-on", "schema,nope"])
        .code(2)
        .stderr_contains("no task `nope`");
    town.tt(["assign", "bad agent", "x"])
        .code(2)
        .stderr_contains("not a valid agent name");
    town.tt(["assign", "backend", "x", "--id", "a/b"])
        .code(2)
        .stderr_contains("not a valid task id");
    town.tt(["assign", "supervisor", "x"]).code(2);
    town.tt(["assign", "backend", "  "]).code(2);
    town.tt(["assign", "backend", "x", "--priority", "9"])
        .code(2);
    assert!(town.redis().keys(&key("shop", "task:adhoc-*")).is_empty());
    // Taken default ids are skipped.
    town.tt(["assign", "backend", "x", "--id", "adhoc-1"])
        .success();
    town.tt(["assign", "backend", "y"])
        .success()
        .stdout_contains("added adhoc-2");
}
