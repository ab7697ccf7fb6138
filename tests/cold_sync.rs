//! The cold sync: a town with no task is written without reading a record
//! first, in several script calls of one transaction, with one `synced`
//! event for the whole sync; a town that has tasks by the time the script
//! runs refuses it whole.

use std::path::Path;
use std::time::Duration;

use tinytown::plan;
use tinytown::store::{RedisTarget, Store, SyncGuard, SyncRefused};
use tinytown::sync::{self, Adopt, Claim};

use crate::support::{RedisServer, Scenario, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

/// More tasks than one script call takes (`UPSERTS_PER_CALL`, 1,000), so a
/// sync of them runs in several calls.
const MANY: usize = 2_500;

fn plan_of(n: usize, prefix: &str) -> plan::Plan {
    let mut text = String::from("[town]\nname = \"cold\"\n");
    for i in 0..n {
        text.push_str(&format!("[[tasks]]\nid = \"{prefix}{i}\"\n"));
    }
    plan::load(Path::new("tasks.toml"), text).expect("the generated plan loads")
}

async fn store(redis: &RedisServer) -> Store {
    Store::open(&RedisTarget::Url(redis.url()), "cold")
        .await
        .expect("store")
}

fn dbsize(redis: &RedisServer) -> u64 {
    redis::cmd("DBSIZE")
        .query(&mut redis.conn())
        .expect("DBSIZE")
}

/// The fields of the town's `meta` hash, whatever the key layout.
fn meta_fields(redis: &RedisServer) -> Vec<String> {
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tt:*meta")
        .query(&mut conn)
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "one town's meta: {keys:?}");
    redis::cmd("HKEYS")
        .arg(&keys[0])
        .query(&mut conn)
        .expect("HKEYS")
}

#[tokio::test]
async fn a_cold_sync_in_several_calls_writes_every_task_and_one_event() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let p = plan_of(MANY, "t");
    let pushed = sync::push_full(&store, &p, Adopt::No, Claim::Keep)
        .await
        .expect("push");
    assert_eq!(pushed.counts.added, MANY as u64);
    assert_eq!(store.task_fingerprints().await.expect("fps").len(), MANY);
    let ids: Vec<String> = store
        .tasks()
        .await
        .expect("tasks")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), MANY);
    assert_eq!(ids[MANY - 1], format!("t{}", MANY - 1), "file order kept");
    let (events, _) = store.recent_events(100, None).await.expect("events");
    let kinds: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.field("added")))
        .collect();
    assert_eq!(kinds, [("synced", Some("2500"))], "one event for the sync");
    // What the calls passed on to each other is gone.
    let meta = meta_fields(&redis);
    assert!(meta.iter().all(|f| !f.starts_with("sync_")), "{meta:?}");

    // The next sync is warm (the town has tasks) and still one event.
    let more = plan_of(MANY + 1, "t");
    let pushed = sync::push_full(&store, &more, Adopt::No, Claim::Keep)
        .await
        .expect("push");
    assert_eq!(
        (pushed.counts.added, pushed.counts.unchanged),
        (1, MANY as u64)
    );
    let (events, _) = store.recent_events(100, None).await.expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[1].kind.as_str(), events[1].field("added")),
        ("synced", Some("1"))
    );
}

#[tokio::test]
async fn a_cold_sync_into_a_town_that_has_tasks_writes_nothing() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let first = plan_of(3, "a");
    sync::push(&store, &first, Adopt::No).await.expect("push");
    let plan_fp = store.plan_fingerprint().await.expect("plan_fp");
    let keys = dbsize(&redis);
    // As if the town had been read empty just before `first` was pushed.
    let defs = sync::definitions(&plan_of(MANY, "b"));
    let guard = SyncGuard {
        cold: true,
        ..SyncGuard::default()
    };
    let refused = store
        .apply_sync(&defs, &[], "ffffffffffffffff", false, &guard)
        .await
        .expect("apply");
    assert_eq!(refused, Err(SyncRefused::Stale));
    assert_eq!(dbsize(&redis), keys, "no key written by any call");
    assert_eq!(store.tasks().await.expect("tasks").len(), 3);
    assert_eq!(store.plan_fingerprint().await.expect("plan_fp"), plan_fp);
    let meta = meta_fields(&redis);
    assert!(meta.iter().all(|f| !f.starts_with("sync_")), "{meta:?}");
}

/// The runner follows a sync made elsewhere: its added tasks have no
/// event of their own, only the sync's `synced`, and are dispatched.
#[test]
fn tasks_a_sync_from_elsewhere_adds_are_dispatched_by_the_runner() {
    let plan = |ids: &[&str]| {
        let mut text = String::from(
            "[town]\nname = \"cold\"\n[meta]\ndefault_agent = \"w\"\n[agents.w]\n\
             command = [\"sh\", \"-c\", \"echo \\\"$TT_TASK_ID\\\" >> order.log\"]\n",
        );
        for id in ids {
            text.push_str(&format!("[[tasks]]\nid = \"{id}\"\n"));
        }
        text
    };
    let town = Scenario::new().plan(plan(&["a"])).build();
    let order = || {
        std::fs::read_to_string(town.dir().join("order.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let run = town.start(&["run"]);
    wait_until(DEADLINE, "a runs", || order() == ["a"]);
    // Another file (the runner does not watch it) takes the town over with
    // one more task.
    town.write("elsewhere/tasks.toml", plan(&["a", "b"]));
    town.tt(["sync", "push", "--take-over", "-f", "elsewhere/tasks.toml"])
        .success()
        .stdout_contains("+1 added");
    wait_until(DEADLINE, "b runs", || order() == ["a", "b"]);
    assert_eq!(run.stop(), 0);
}
