//! `tt status`: counts, groups, why tasks wait, what is dispatched next,
//! and `--watch`.

use serde_json::Value;

use super::{PLAN, json, set_status, shop, worker};
use crate::support::{Scenario, key};

#[test]
fn status_counts_tasks_shows_group_progress_and_why_tasks_wait() {
    let town = shop();
    set_status(&town, "schema", "failed");
    set_status(&town, "logout", "completed");
    worker(&town, "backend-1", "backend", "working", true);
    worker(&town, "backend-2", "backend", "idle", false);
    town.redis_cmd(&[
        "SET",
        &key("shop", "runner"),
        r#"{"id":"run-1","host":"box","pid":77,"since":1}"#,
        "PX",
        "60000",
    ]);

    let v = json(&town.tt(["status", "--json"]).success().stdout);
    assert_eq!(v["town"], "shop");
    assert_eq!(v["tasks"], 5);
    // auth is a group with a completed and a pending child, nothing
    // running: derived `pending` (its progress says 1/2).
    let counts = &v["counts"];
    assert_eq!(
        (
            &counts["pending"],
            &counts["running"],
            &counts["completed"],
            &counts["failed"]
        ),
        (&3.into(), &0.into(), &1.into(), &1.into()),
        "{v}"
    );
    let auth = &v["groups"][0];
    assert_eq!(
        (&auth["id"], &auth["completed"], &auth["total"]),
        (&"auth".into(), &1.into(), &2.into())
    );
    let waiting = v["waiting"].as_array().unwrap();
    assert!(
        waiting
            .iter()
            .any(|w| w["id"] == "login" && w["reason"] == "blocked: schema failed"),
        "{v}"
    );
    let states: Vec<(&str, &str)> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("backend-1", "working"), ("backend-2", "dead")]);
    assert_eq!(v["runner"]["id"], "run-1");

    town.tt(["status"])
        .success()
        .stdout_contains("town shop · 5 tasks")
        .stdout_contains("1/2 done")
        .stdout_contains("blocked: schema failed")
        .stdout_contains("runner  pid 77 on box, for ")
        .stdout_contains("dead");
}

#[test]
fn status_of_an_empty_town_says_how_to_load_one() {
    Scenario::new()
        .plan(PLAN)
        .build()
        .tt(["status"])
        .success()
        .stdout_contains("no tasks yet")
        .stdout_contains("runner  none");
}

#[test]
fn status_watch_redraws_when_an_event_arrives() {
    let town = shop();
    let watch = town.start(&["status", "--watch", "--json"]);
    watch.wait_output_until("the first drawing", |o| o.lines().count() >= 1);
    assert_eq!(watch.output().lines().count(), 1, "{}", watch.output());
    town.tt(["cancel", "deploy"]).success();
    watch.wait_output_until("a drawing with deploy cancelled", |o| {
        o.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["counts"]["cancelled"] == 1)
    });
}

#[test]
fn status_lists_what_would_be_dispatched_next_in_order() {
    let plan = "[town]\nname = \"n\"\n[[tasks]]\nid = \"late\"\npriority = 3\n[[tasks]]\nid = \"first\"\npriority = 0\n[[tasks]]\nid = \"dep\"\ndepends_on = [\"first\"]\n[[tasks]]\nid = \"mid\"\n";
    let town = Scenario::new().plan(plan).pushed().build();
    town.tt(["status"])
        .success()
        .stdout_contains("3 ready to dispatch, in order: first, mid, late");
}
