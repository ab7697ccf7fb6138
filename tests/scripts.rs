//! Every Lua script gets the keys it touches in KEYS (src/store/script.rs):
//! debug builds check that at run time in every script of every test. These
//! tests show that the check bites, run the calls in which a script asks
//! for keys it found it needs (`need`), and pin that the set of towns is
//! written beside the scripts, not in them. The static half of the rule
//! (no key name built in Lua) is a unit test of src/store/script.rs.

use tinytown::store::{Keys, keys::TOWNS, script};

use crate::support::{RedisServer, Scenario};

#[test]
fn a_script_that_touches_a_key_it_was_not_given_fails() {
    if !cfg!(debug_assertions) {
        panic!(
            "the key check is compiled into debug builds only: run the tests without `--release`"
        );
    }
    let redis = RedisServer::start();
    let mut conn = redis.conn();
    let keys = Keys::new("t");
    let (given, other) = (keys.task("a"), keys.task("b"));
    let two_sets = script("redis.call('SET', KEYS[1], 1) redis.call('SET', ARGV[1], 1) return 1");
    let err = two_sets
        .key(&given)
        .arg(&other)
        .invoke::<i64>(&mut conn)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("undeclared key `{other}`")),
        "{err}"
    );
    assert!(!redis.exists(&other), "the undeclared write went through");
    // Given in KEYS, the same call runs.
    let done: i64 = two_sets
        .key(&given)
        .key(&other)
        .arg(&other)
        .invoke(&mut conn)
        .unwrap();
    assert_eq!(done, 1);
    assert!(redis.exists(&other));
    // No key at all: a cluster could not route it.
    let err = script("return 1").invoke::<i64>(&mut conn).unwrap_err();
    assert!(err.to_string().contains("no KEYS"), "{err}");
}

/// A task that fails once, so its second attempt is dispatched to a task
/// whose record names a last worker.
const FLAKY: &str = r#"command = ["sh", "-c", "if [ -e ran-$TT_TASK_ID ]; then exit 0; fi; touch ran-$TT_TASK_ID; [ $TT_TASK_ID != a ]"]
retries = 1
prefetch = 3
"#;

#[test]
fn a_run_passes_the_key_check_where_scripts_ask_for_keys() {
    let plan = "[town]\nname = \"k\"\n\n[[tasks]]\nid = \"a\"\nagent = \"dev\"\n\n\
                [[tasks]]\nid = \"b\"\nagent = \"dev\"\n\n[[tasks]]\nid = \"c\"\nagent = \"dev\"\n\n\
                [[tasks]]\nid = \"d\"\nagent = \"dev\"\n";
    let town = Scenario::new().plan(plan).agent("dev", FLAKY).build();
    // `adhoc-1` is taken by hand: the default id skips it, a second
    // question of the script.
    town.tt(["assign", "dev", "first", "--id", "adhoc-1"])
        .success();
    town.tt(["assign", "dev", "second"])
        .success()
        .stdout_contains("added adhoc-2");
    // One worker, three messages in its window: each report takes the
    // next message, whose task key the script has to ask for; `a` fails
    // once, and its retry is dispatched with a last worker on record.
    town.tt(["run", "--until-done"]).success();
    for id in ["a", "b", "c", "d", "adhoc-1", "adhoc-2"] {
        assert_eq!(town.status(id), "completed", "{id}");
    }
    assert_eq!(town.field("a", "attempt"), "2");
    // The worker stopped with the run: pruning it drops its empty inbox.
    town.tt(["send", "dev", "hello"]).success();
    town.tt(["prune"]).success();
    assert!(town.list("inbox:dev").is_empty());
    assert!(town.worker("dev-1").is_empty());
}

#[test]
fn sync_and_assign_put_the_town_in_the_set_of_towns_each_time() {
    let plan = "[town]\nname = \"s\"\n\n[[tasks]]\nid = \"a\"\n";
    let town = Scenario::new().plan(plan).pushed().build();
    let member = || {
        let mut conn = town.redis().conn();
        redis::cmd("SISMEMBER")
            .arg(TOWNS)
            .arg("s")
            .query::<bool>(&mut conn)
            .unwrap()
    };
    assert!(member(), "a first push adds the town");
    // Lost (a crash between the transaction and the SADD): the next
    // write adds it again.
    town.redis_cmd(&["SREM", TOWNS, "s"]);
    town.write("tasks.toml", format!("{plan}\n[[tasks]]\nid = \"b\"\n"));
    town.tt(["sync", "push"]).success();
    assert!(member(), "a push that writes adds the town again");
    town.redis_cmd(&["SREM", TOWNS, "s"]);
    town.tt(["assign", "dev", "x"]).success();
    assert!(member(), "`tt assign` adds the town");
}
