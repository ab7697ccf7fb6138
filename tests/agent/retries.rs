//! A failed attempt: retried after a backoff while retries are left,
//! failed for good when none are.

use super::{PLAN, agent_once, dispatch};
use crate::support::Scenario;

#[test]
fn a_failing_attempt_is_retried_after_a_backoff_then_failed_when_no_retries_are_left() {
    let town = Scenario::new()
        .plan(PLAN)
        .agent(
            "dev",
            "command = [\"sh\", \"-c\", \"echo boom-$TT_ATTEMPT; exit 3\"]\nretries = 1",
        )
        .pushed()
        .build();
    dispatch(&town, "a", 1);
    agent_once(&town, &[]).success();
    let t = town.task("a");
    assert_eq!(t["status"], "pending", "{t:?}");
    assert_eq!(t["exit_code"], "3");
    assert_eq!(t["error"], "exited with code 3");
    assert!(t["output"].contains("boom-1"), "{t:?}");
    let retry_at: u64 = t["retry_at"].parse().unwrap();
    let finished: u64 = t["finished"].parse().unwrap();
    assert!(
        retry_at >= finished + 1_500,
        "backs off (2 s ± 25 %): {t:?}"
    );
    assert_eq!(town.events_of("retried").len(), 1);

    // The runner dispatches the second attempt; it fails too: no retries left.
    dispatch(&town, "a", 2);
    agent_once(&town, &[]).success();
    let t = town.task("a");
    assert_eq!(t["status"], "failed", "{t:?}");
    assert_eq!(t["attempt"], "2");
    assert!(t["output"].contains("boom-2"), "{t:?}");
    assert!(!t.contains_key("retry_at"));
    let failed = town.events_of("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempt"], "2");
    assert_eq!(failed[0]["exit_code"], "3");
    assert!(town.exists(".tt/logs/a/1.log"));
    assert!(town.exists(".tt/logs/a/2.log"));
}
