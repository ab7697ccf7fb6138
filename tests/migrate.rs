//! `tt migrate` and the migration `tt run` does when it starts: a town
//! written by the old key layout (`tt:<town>:…`) moves to the hash-tagged
//! one with every key, value and TTL, once; refusals move nothing.
//!
//! Old towns are made the way an older tt left them: a real town (pushed,
//! with an inbox, a heartbeat, usage), its keys renamed back to the old
//! names.

use std::collections::BTreeMap;

use tinytown::store::keys::legacy_prefix;

use crate::RedisExt;
use crate::support::{RUN_DEADLINE, RedisServer, Scenario, Town, key, wait_until};

const PLAN: &str = r#"[town]
name = "shop"
[meta]
default_agent = "dev"
[agents.dev]
command = ["sh", "-c", "echo \"$TT_TASK_ID\" >> ran.log"]
[[tasks]]
id = "schema"
[[tasks]]
id = "login"
depends_on = ["schema"]
[[tasks]]
id = "docs"
"#;

/// Every key of one town: name → (DUMP, PTTL). DUMP holds type and value
/// (a stream's entries and ids, a list's order), so equal DUMPs are equal
/// keys.
type Snapshot = BTreeMap<String, (Vec<u8>, i64)>;

fn snapshot(redis: &RedisServer, pattern: &str) -> Snapshot {
    redis
        .keys(pattern)
        .into_iter()
        .map(|k| {
            let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut redis.conn()).unwrap();
            let dump = redis.dump(&k).unwrap();
            (k, (dump, ttl))
        })
        .collect()
}

/// The town pushed, with what workers and attempts add beside the tasks:
/// an inbox message, a worker (stopped: no heartbeat), an answer that
/// expires (answer.lua gives it a day), usage.
fn pushed_town() -> Town {
    let town = Scenario::new().plan(PLAN).pushed().build();
    let message = r#"{"kind":"message","from":"lead","body":"hi"}"#;
    town.redis_cmd(&["RPUSH", &town.key("inbox:dev"), message]);
    town.redis_cmd(&["HSET", &town.key("agent:dev-1"), "state", "idle"]);
    town.redis_cmd(&["SADD", &town.key("agents"), "dev-1"]);
    town.redis_cmd(&["RPUSH", &town.key("answer:login"), "yes"]);
    town.redis_cmd(&["EXPIRE", &town.key("answer:login"), "86400"]);
    town.redis_cmd(&[
        "HSET",
        &town.key("usage"),
        "attempts",
        "3",
        "cost_usd",
        "0.25",
    ]);
    town
}

/// Renames every key of `town` to its old-layout name, as an older tt
/// wrote it; returns the old keys as they are now.
fn to_old_layout(town: &Town) -> Snapshot {
    let name = town.name();
    for new in town.redis().keys(&key(name, "*")) {
        let rest = new.strip_prefix(&key(name, "")).unwrap();
        let old = format!("{}{rest}", legacy_prefix(name));
        town.redis_cmd(&["RENAME", &new, &old]);
    }
    snapshot(town.redis(), &format!("{}*", legacy_prefix(name)))
}

/// `old` (old-layout keys) moved: each under its new name with the same
/// value, its TTL kept (less the time since), and no old key left.
#[track_caller]
fn assert_moved(town: &Town, old: &Snapshot) {
    let name = town.name();
    let now = snapshot(town.redis(), &key(name, "*"));
    assert_eq!(now.len(), old.len(), "{:?}", now.keys());
    for (old_key, (dump, ttl)) in old {
        let rest = old_key.strip_prefix(&legacy_prefix(name)).unwrap();
        let (new_dump, new_ttl) = now
            .get(&key(name, rest))
            .unwrap_or_else(|| panic!("{old_key} did not move: {:?}", now.keys()));
        assert_eq!(new_dump, dump, "{old_key} changed");
        if *ttl < 0 {
            assert_eq!(*new_ttl, *ttl, "{old_key} gained a TTL");
        } else {
            assert!(
                *new_ttl > 0 && new_ttl <= ttl && ttl - new_ttl < 60_000,
                "{old_key}: TTL {ttl} became {new_ttl}"
            );
        }
    }
    let left = town.redis().keys(&format!("{}*", legacy_prefix(name)));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_old_town_migrates_with_every_key_value_and_ttl() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    for rest in [
        "tasks",
        "task:login",
        "events",
        "inbox:dev",
        "answer:login",
        "usage",
    ] {
        let old_key = format!("{}{rest}", legacy_prefix("shop"));
        assert!(old.contains_key(&old_key), "{old_key}: {:?}", old.keys());
    }
    assert!(old.values().any(|(_, ttl)| *ttl > 0), "a key with a TTL");
    // Neighbours: a town whose name starts the same, and one already new.
    town.redis_cmd(&["SET", "tt:shop2:tasks", "other town"]);
    town.redis_cmd(&["SET", &key("web", "tasks"), "new town"]);
    let out = town.tt(["migrate"]).success();
    assert!(
        out.stdout.contains(&format!(
            "migrated town shop to the cluster-safe key layout ({} keys)",
            old.len()
        )),
        "{out}"
    );
    assert_moved(&town, &old);
    assert!(town.redis().exists("tt:shop2:tasks"));
    assert!(town.redis().exists(&key("web", "tasks")));
    // The migrated town is the town: its tasks read as before.
    town.tt(["tasks"]).success().stdout_contains("login");
}

#[test]
fn a_second_migration_finds_nothing_to_do() {
    let town = pushed_town();
    to_old_layout(&town);
    town.tt(["migrate"]).success();
    let before = snapshot(town.redis(), "*");
    let changes = town.redis().changes();
    town.tt(["migrate"])
        .success()
        .stdout_contains("town shop already uses the cluster-safe key layout");
    assert_eq!(town.redis().changes(), changes, "a rerun wrote something");
    assert_eq!(snapshot(town.redis(), "*").len(), before.len());
}

#[test]
fn a_dry_run_says_what_would_move_and_moves_nothing() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    let changes = town.redis().changes();
    town.tt(["migrate", "--dry-run"])
        .success()
        .stdout_contains(&format!(
            "would migrate town shop to the cluster-safe key layout ({} keys)",
            old.len()
        ));
    assert_eq!(town.redis().changes(), changes);
    assert_eq!(
        snapshot(town.redis(), &format!("{}*", legacy_prefix("shop"))).len(),
        old.len()
    );
    assert!(town.redis().keys(&key("shop", "*")).is_empty());
}

#[test]
fn keys_in_both_layouts_are_a_conflict_and_nothing_moves() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    // A newer tt (a worker, which does not migrate) wrote the town before
    // it was migrated.
    let old_tasks = format!("{}tasks", legacy_prefix("shop"));
    town.redis_cmd(&["COPY", &old_tasks, &key("shop", "tasks")]);
    town.redis_cmd(&["SADD", &key("shop", "agents"), "dev-2"]);
    let new = snapshot(town.redis(), &key("shop", "*"));
    let out = town.tt(["migrate"]).code(1);
    assert!(
        out.stderr.contains("town `shop` has keys in both layouts")
            && out.stderr.contains("2 old key(s) whose new name exists")
            && out
                .stderr
                .contains("`tt:shop:agents` and `tt:{shop}:agents`")
            && out.stderr.contains("nothing was migrated"),
        "{out}"
    );
    assert!(out.stderr.contains("redis-cli --scan"), "how to fix: {out}");
    let still_old = snapshot(town.redis(), &format!("{}*", legacy_prefix("shop")));
    assert_eq!(
        still_old.keys().collect::<Vec<_>>(),
        old.keys().collect::<Vec<_>>()
    );
    assert_eq!(snapshot(town.redis(), &key("shop", "*")).len(), new.len());
}

#[test]
fn a_live_runner_of_the_old_layout_refuses_the_migration() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    let lease = format!("{}runner", legacy_prefix("shop"));
    let holder = r#"{"id":"far:4242","host":"far","pid":4242,"since":1}"#;
    town.redis_cmd(&["SET", &lease, holder, "PX", "60000"]);
    let out = town.tt(["migrate"]).code(3);
    assert!(
        out.stderr.contains("run by an older tinytown")
            && out.stderr.contains("pid 4242 on far")
            && out.stderr.contains("`tt:shop:runner`"),
        "{out}"
    );
    assert!(
        town.redis().keys(&key("shop", "*")).is_empty(),
        "moved anyway"
    );
    // `tt run` refuses the same way, before it takes the town.
    let out = town.tt(["run", "--until-done"]).code(3);
    assert!(out.stderr.contains("run by an older tinytown"), "{out}");
    assert!(
        town.redis().keys(&key("shop", "*")).is_empty(),
        "moved anyway"
    );
    // Once that runner is gone, the town migrates.
    town.redis_cmd(&["DEL", &lease]);
    town.tt(["migrate"]).success();
    assert_moved(&town, &old);
}

#[test]
fn a_live_worker_of_the_old_layout_refuses_the_migration() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    // A `tt agent` of the older version, still beating: it would go on
    // writing the old layout after the move.
    let beat = format!("{}alive:w-1", legacy_prefix("shop"));
    town.redis_cmd(&["SET", &beat, "4242@far/1", "PX", "60000"]);
    let out = town.tt(["migrate"]).code(3);
    assert!(
        out.stderr.contains("run by an older tinytown")
            && out.stderr.contains("worker `w-1`")
            && out.stderr.contains(&format!("`{beat}`")),
        "{out}"
    );
    assert!(
        town.redis().keys(&key("shop", "*")).is_empty(),
        "moved anyway"
    );
    let out = town.tt(["run", "--until-done"]).code(3);
    assert!(out.stderr.contains("worker `w-1`"), "{out}");
    // Once its heartbeat is gone (the worker stopped), the town migrates.
    town.redis_cmd(&["DEL", &beat]);
    town.tt(["migrate"]).success();
    assert_moved(&town, &old);
}

#[test]
fn tt_run_migrates_its_town_first_and_carries_on_with_its_state() {
    let town = Scenario::new().plan(PLAN).pushed().build();
    // The older tt had finished `schema`: it must not run again.
    town.redis_cmd(&["HSET", &town.key("task:schema"), "status", "completed"]);
    let old = to_old_layout(&town);
    let out = town.tt(["run", "--until-done"]).success();
    assert!(
        out.stdout.contains(&format!(
            "migrated town shop to the cluster-safe key layout ({} keys)",
            old.len()
        )),
        "{out}"
    );
    assert!(out.stdout.contains("3 completed, 0 failed"), "{out}");
    let ran = std::fs::read_to_string(town.dir().join("ran.log")).unwrap();
    assert_eq!(ran.lines().collect::<Vec<_>>(), ["login", "docs"], "{ran}");
    assert!(
        town.redis()
            .keys(&format!("{}*", legacy_prefix("shop")))
            .is_empty()
    );
    // The next start has nothing to migrate and says nothing about it.
    town.tt(["run", "--until-done"])
        .success()
        .stdout_lacks("cluster-safe");
}

#[test]
fn commands_that_write_the_town_migrate_it_first() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    // Pushing into the old town's new name would write it in both
    // layouts: the push migrates, then finds the plan already there.
    let out = town.tt(["sync", "push", "--json"]).success();
    assert!(
        out.stderr.contains(&format!(
            "migrated town shop to the cluster-safe key layout ({} keys)",
            old.len()
        )),
        "{out}"
    );
    let pushed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pushed["counts"]["added"], 0, "{pushed}");
    assert_moved(&town, &old);
    town.tt(["sync", "push"])
        .success()
        .stderr_lacks("cluster-safe");
}

#[test]
fn a_worker_migrates_its_town_before_it_registers() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    let worker = town.start(&["agent", "dev"]);
    worker.wait_output(&format!(
        "migrated town shop to the cluster-safe key layout ({} keys)",
        old.len()
    ));
    // It registers beside `dev-1`, which the older tt knew, in the moved set.
    let agents = key("shop", "agents");
    wait_until(RUN_DEADLINE, "the worker registers", || {
        let n: usize = redis::cmd("SCARD")
            .arg(&agents)
            .query(&mut town.redis().conn())
            .unwrap();
        n == 2
    });
    worker.stop();
    let left = town.redis().keys(&format!("{}*", legacy_prefix("shop")));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn migrate_all_moves_every_town_and_reports_each_refusal() {
    let town = pushed_town();
    let shop = to_old_layout(&town);
    // Town `farm`: old too, but a newer tt wrote its tasks already.
    town.redis_cmd(&["SADD", "tt:towns", "farm"]);
    town.redis_cmd(&["SET", "tt:farm:tasks", "old"]);
    town.redis_cmd(&["SET", &key("farm", "tasks"), "new"]);
    // Town `api`: synced once, nothing left of it in the old layout.
    town.redis_cmd(&["SADD", "tt:towns", "api"]);
    let out = town.tt(["migrate", "--all"]).code(1);
    assert!(
        out.stdout
            .contains("town api already uses the cluster-safe key layout")
            && out.stdout.contains(&format!(
                "migrated town shop to the cluster-safe key layout ({} keys)",
                shop.len()
            ))
            && out.stderr.contains("town `farm` has keys in both layouts"),
        "{out}"
    );
    assert_moved(&town, &shop);
    assert!(town.redis().exists("tt:farm:tasks"));
    let json = town.tt(["migrate", "--all", "--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["refused"][0]["town"], "farm", "{v}");
    assert_eq!(v["migrated"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn a_command_that_only_reads_an_old_town_says_how_to_migrate_it() {
    let town = pushed_town();
    let old = to_old_layout(&town);
    let out = town.tt(["status"]).success();
    assert!(
        out.stderr
            .contains("town `shop` has keys in the key layout of an older tinytown")
            && out.stderr.contains("`tt migrate --town shop`"),
        "{out}"
    );
    // Said, not done: a command that reads moves nothing.
    assert!(
        town.redis().keys(&key("shop", "*")).is_empty(),
        "moved by a read"
    );
    // `tt migrate` moves them without the note; then nobody says it.
    town.tt(["migrate"])
        .success()
        .stderr_lacks("older tinytown");
    assert_moved(&town, &old);
    town.tt(["status"]).success().stderr_lacks("older tinytown");
}
