//! What an attempt learned beyond its exit (`facts`): the worker's report
//! puts them on the task and on the event that ends the attempt, `tt task`
//! shows each attempt's, and an attempt without facts clears the last one's.

use std::collections::HashMap;

use serde_json::{Value, json};
use tinytown::store::{Facts, Finish, RedisTarget, Report, Store};

use crate::RedisExt;
use crate::support::{RedisServer, Tt, key};

const PLAN: &str = "[town]\nname = \"t\"\n\n[[tasks]]\nid = \"build\"\ndescription = \"b\"\n";

/// `build` at `attempt`, running on `dev-1`, its message claimed.
fn running(redis: &RedisServer, attempt: u32) -> String {
    let n = attempt.to_string();
    let task = key("t", "task:build");
    redis.cmd(&[
        "HSET", &task, "status", "running", "attempt", &n, "worker", "dev-1",
    ]);
    let raw = json!({ "kind": "task", "task": "build", "attempt": attempt }).to_string();
    redis.cmd(&["RPUSH", &key("t", "claimed:dev-1"), &raw]);
    raw
}

fn finish(
    redis: &RedisServer,
    raw: &str,
    attempt: u32,
    code: i32,
    facts: Option<&Facts>,
) -> Finish {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(&RedisTarget::Url(redis.url()), "t")
            .await
            .unwrap();
        let report = Report {
            worker: "dev-1",
            raw,
            task: "build",
            attempt,
            exit_code: Some(code),
            log: "/nowhere",
            retries: 3,
            facts,
            ..Report::default()
        };
        store.finish(&report, false).await.unwrap()
    })
}

fn task_json(tt: &Tt) -> Value {
    let out = tt.run_with(["task", "build", "--json"]).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn facts_of_each_attempt_are_kept_and_the_task_holds_the_last_ones() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();

    let mut first = Facts::new();
    first.insert("branch".into(), json!("tt/t/build"));
    first.insert("cost_usd".into(), json!(0.5));
    let raw = running(&redis, 1);
    assert!(matches!(
        finish(&redis, &raw, 1, 1, Some(&first)),
        Finish::Retry { .. }
    ));
    let hash: HashMap<String, String> = redis.hgetall(&key("t", "task:build"));
    let stored: Value = serde_json::from_str(&hash["facts"]).unwrap();
    assert_eq!(stored, Value::Object(first.clone()));
    let v = task_json(&tt);
    assert_eq!(v["facts"]["branch"], "tt/t/build", "{v}");
    assert_eq!(v["attempts"][0]["facts"]["cost_usd"], 0.5, "{v}");

    // The second attempt learned nothing: the task no longer shows the
    // first one's facts as if they were current, the first attempt keeps them.
    let raw = running(&redis, 2);
    assert_eq!(finish(&redis, &raw, 2, 0, None), Finish::Completed);
    assert!(!redis.hgetall(&key("t", "task:build")).contains_key("facts"));
    let v = task_json(&tt);
    assert!(v.get("facts").is_none(), "{v}");
    assert_eq!(v["attempts"][0]["facts"]["branch"], "tt/t/build", "{v}");
    assert!(v["attempts"][1].get("facts").is_none(), "{v}");
}

#[test]
fn a_stale_report_still_records_what_its_attempt_learned() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    let raw = running(&redis, 1);
    redis.cmd(&["HSET", &key("t", "task:build"), "status", "cancelled"]);
    let mut facts = Facts::new();
    facts.insert("session".into(), json!("abc"));
    assert!(matches!(
        finish(&redis, &raw, 1, 0, Some(&facts)),
        Finish::Stale { .. }
    ));
    let events: Vec<Value> = tt
        .run_with(["history", "--task", "build", "--json"])
        .success()
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let rejected = events
        .iter()
        .find(|e| e["kind"] == "rejected")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(rejected.to_string().contains("abc"), "{rejected}");
}
