//! The worker's side of the store scripts, called directly: a report
//! (finish) and the claim of the next message — stale, repeated after a
//! lost reply, or recording where the log goes.

use std::path::Path;
use std::time::Duration;

use tinytown::store::{Claim, Finish, MessageSource, Report};

use super::{build_succeeded, dispatch, identity, message, town, with_store};
use crate::support::key;

#[test]
fn a_late_report_from_an_old_attempt_is_rejected() {
    let town = town();
    // Attempt 1 ran on dev-1, was requeued, and attempt 2 now runs on dev-2.
    town.redis_cmd(&[
        "HSET",
        &key("t", "task:build"),
        "status",
        "running",
        "attempt",
        "2",
        "worker",
        "dev-2",
    ]);
    let raw = message("build", 1);
    town.redis_cmd(&["RPUSH", &key("t", "claimed:dev-1"), &raw]);
    let before = town.task("build");

    let (old, other) = with_store(&town, async |store| {
        let report = |worker: &'static str, attempt: u32| Report {
            worker,
            raw: if worker == "dev-1" { &raw } else { "" },
            task: "build",
            attempt,
            exit_code: Some(0),
            error: None,
            output: "late",
            log: "/nowhere",
            retries: 3,
            backoff: Duration::from_secs(1),
            requeue: false,
            facts: None,
        };
        let old = store.finish(&report("dev-1", 1), false).await.unwrap();
        // The right attempt from the wrong worker is no better.
        let other = store.finish(&report("dev-1", 2), false).await.unwrap();
        (old, other)
    });
    assert_eq!(
        old,
        Finish::Stale {
            reason: "attempt 1 is stale, the task is at attempt 2".into()
        }
    );
    assert_eq!(
        other,
        Finish::Stale {
            reason: "the task runs on `dev-2`".into()
        }
    );
    assert_eq!(town.task("build"), before, "nothing changed");
    assert!(
        town.list("claimed:dev-1").is_empty(),
        "the report left claimed"
    );
    let rejected = town.events_of("rejected");
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["task"], "build");
    assert_eq!(rejected[0]["agent"], "dev-1");
    assert_eq!(rejected[0]["attempt"], "1");
    assert_eq!(rejected[0]["exit_code"], "0");
}

#[test]
fn a_repeated_report_after_a_lost_reply_gets_its_own_outcome_back() {
    let town = town();
    town.redis_cmd(&[
        "HSET",
        &key("t", "task:build"),
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-1",
    ]);
    let raw = message("build", 1);
    town.redis_cmd(&["RPUSH", &key("t", "claimed:dev-1"), &raw]);
    let (first, again, stale) = with_store(&town, async |store| {
        let report = build_succeeded(&raw);
        let first = store.finish(&report, false).await.unwrap();
        // The reply was lost; the worker sends the same report again.
        let again = store.finish(&report, true).await.unwrap();
        // Without the flag the same report is (rightly) stale.
        let stale = store.finish(&report, false).await.unwrap();
        (first, again, stale)
    });
    assert_eq!(first, Finish::Completed);
    assert_eq!(again, Finish::Completed);
    assert!(matches!(stale, Finish::Stale { .. }));
    assert_eq!(
        town.events_of("rejected").len(),
        1,
        "only the unflagged repeat"
    );
    assert_eq!(town.events_of("completed").len(), 1);
}

#[test]
fn a_report_claims_the_next_message_and_a_repeat_hands_it_out_again() {
    let town = town();
    town.redis_cmd(&[
        "HSET",
        &key("t", "task:build"),
        "status",
        "running",
        "attempt",
        "1",
        "worker",
        "dev-1",
    ]);
    town.redis_cmd(&[
        "HSET",
        &key("t", "agent:dev-1"),
        "task",
        "build",
        "attempt",
        "1",
    ]);
    let raw = message("build", 1);
    town.redis_cmd(&["RPUSH", &key("t", "claimed:dev-1"), &raw]);
    dispatch(&town, "a", 1);
    let logs = "/p/.tt/logs";
    let me = identity("dev-1");
    let (first, again, without) = with_store(&town, async |store| {
        let report = build_succeeded(&raw);
        let first = store
            .finish_and_take(&report, false, Some(&me), logs)
            .await
            .unwrap();
        // Dispatched after the first report: a repeat must not take it.
        dispatch(&town, "b", 1);
        let again = store
            .finish_and_take(&report, true, Some(&me), logs)
            .await
            .unwrap();
        let without = store.finish_and_take(&report, true, None, logs).await;
        (first, again, without.unwrap())
    });
    let ran = |next: &Option<(String, Claim)>| match next {
        Some((raw, Claim::Run(t))) => (raw.clone(), t.id.clone(), t.attempt),
        other => panic!("expected a task to run, got {other:?}"),
    };
    assert_eq!(first.0, Finish::Completed);
    assert_eq!(ran(&first.1), (message("a", 1), "a".into(), 1));
    assert_eq!(again.0, Finish::Completed);
    assert_eq!(ran(&again.1), (message("a", 1), "a".into(), 1));
    assert_eq!(without, (Finish::Completed, None));

    let a = town.task("a");
    assert_eq!(
        (a["status"].as_str(), a["worker"].as_str()),
        ("running", "dev-1")
    );
    assert_eq!(a["log"], "/p/.tt/logs/a/1.log");
    assert_eq!(town.status("build"), "completed");
    assert_eq!(town.list("claimed:dev-1"), [message("a", 1)]);
    assert_eq!(town.list("inbox:dev"), [message("b", 1)]);
    let agent = town.worker("dev-1");
    assert_eq!(
        (agent["state"].as_str(), agent["task"].as_str()),
        ("working", "a")
    );
    assert_eq!(town.events_of("started").len(), 1, "claimed once");
}

#[test]
fn claim_records_the_log_the_worker_writes() {
    let town = town();
    let ids = ["..", ".", "a..b", "x_y-Z.9", "not valid/id"];
    for id in ids {
        dispatch(&town, id, 2);
    }
    let me = identity("dev-1");
    with_store(&town, async |store| {
        for _ in ids {
            let raw: String = redis::cmd("LMOVE")
                .arg(key("t", "inbox:dev"))
                .arg(key("t", "claimed:dev-1"))
                .arg("LEFT")
                .arg("RIGHT")
                .query(&mut town.redis().conn())
                .unwrap();
            let claim = store
                .claim(&me, &raw, MessageSource::Inbox, false, "/p/.tt/logs")
                .await
                .unwrap();
            assert!(matches!(claim, Claim::Run(_)), "{claim:?}");
        }
    });
    let project = Path::new("/p");
    for id in &ids[..4] {
        let expected = tinytown::state_dir::task_log(project, id, 2);
        assert_eq!(Path::new(&town.task(id)["log"]), expected, "{id}");
    }
    // An id no plan allows: its report records where its log went.
    assert!(!town.task("not valid/id").contains_key("log"));
}
