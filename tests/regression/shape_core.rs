//! Regressions found while reshaping the code (issue 11): walks that had
//! been written several times and disagreed.

use crate::RedisExt;
use crate::support::{RedisServer, Running, Tt, key};

const PLAN: &str = r#"
[town]
name = "app"
[[tasks]]
id = "a"
[[tasks]]
id = "b"
"#;

#[test]
fn a_parent_cycle_in_redis_does_not_hang_readiness() {
    let redis = RedisServer::start();
    let tt = Tt::new().file("tasks.toml", PLAN).redis(&redis);
    tt.run_with(["sync", "push"]).success();
    // A cycle no valid plan can make, written by hand into Redis.
    redis.cmd(&["HSET", &key("app", "task:a"), "parent", "b"]);
    redis.cmd(&["HSET", &key("app", "task:b"), "parent", "a"]);
    let mut status = Running::start(&tt, &["status"]);
    let code = status.wait_exit();
    let out = status.output();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("town app · 2 tasks"), "{out}");
    assert!(out.contains("a  0/1 done  pending"), "{out}");
}
