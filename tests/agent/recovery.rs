//! Work a worker left behind when it died: recovered by another party, or
//! by the same worker id when it starts again.

use super::{agent_once, dispatch, message, town, with_store};
use crate::support::key;

#[test]
fn a_dead_workers_claimed_work_is_recovered() {
    let town = town();
    // dev-9 died: it had started `build` and taken `a` without claiming it.
    town.redis_cmd(&[
        "HSET",
        &key("t", "task:build"),
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-9",
    ]);
    dispatch(&town, "a", 1);
    town.redis_cmd(&[
        "LMOVE",
        &key("t", "inbox:dev"),
        &key("t", "claimed:dev-9"),
        "LEFT",
        "RIGHT",
    ]);
    town.redis_cmd(&["RPUSH", &key("t", "claimed:dev-9"), &message("build", 1)]);
    town.redis_cmd(&["SET", &key("t", "alive:dev-9"), "x", "PX", "60000"]);

    with_store(&town, async |store| {
        let alive = store.recover_worker("dev-9", "dev").await.unwrap();
        assert_eq!(alive, None, "a live worker's work is never touched");
        assert_eq!(town.status("build"), "running");

        town.redis_cmd(&["DEL", &key("t", "alive:dev-9")]);
        let recovered = store.recover_worker("dev-9", "dev").await.unwrap();
        assert_eq!(recovered, Some((1, 1)));
    });
    assert_eq!(town.status("build"), "pending");
    assert_eq!(town.list("inbox:dev"), [message("a", 1)]);
    assert!(town.list("claimed:dev-9").is_empty());
    let requeued = town.events_of("requeued");
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0]["task"], "build");
}

#[test]
fn a_message_moved_but_never_claimed_is_not_lost() {
    let town = town();
    // A worker crashed between its BLMOVE and the claim.
    dispatch(&town, "build", 1);
    town.redis_cmd(&[
        "LMOVE",
        &key("t", "inbox:dev"),
        &key("t", "claimed:dev-1"),
        "LEFT",
        "RIGHT",
    ]);
    let out = agent_once(&town, &["--command", "true"]).success();
    assert!(
        out.stdout.contains("1 message(s) back in the inbox"),
        "{out}"
    );
    let t = town.task("build");
    assert_eq!(
        (t["status"].as_str(), t["attempt"].as_str()),
        ("completed", "1")
    );
}
