//! `tt agent` and `tt spawn` against a private redis-server: real workers,
//! real commands, real process groups. Dispatch is simulated exactly as
//! docs/PROTOCOL.md describes it (task hash `assigned` with its attempt and
//! `assigned_to`, then the message RPUSHed into the inbox), so these tests
//! pin the worker's side of the protocol without the runner. Every test's
//! town is [`PLAN`] (town `t`, agent `dev`); one file per part of a
//! worker's job.

mod attempts;
mod control;
mod inbox;
mod lifecycle;
mod presets;
mod recovery;
mod reports;
mod retries;
mod timeouts;

use std::time::Duration;

use crate::support::{Output, Running, Scenario, Town, key};

const PLAN: &str = r#"[town]
name = "t"

[[tasks]]
id = "grp"
description = "The group"

[[tasks]]
id = "build"
description = "Say \"hi\" $(touch pwned) `touch pwned2`; exit 7\nsecond line"
agent = "dev"
parent = "grp"
tags = ["api", "P1"]

[[tasks]]
id = "a"
description = "A"
agent = "dev"

[[tasks]]
id = "b"
description = "B"
agent = "dev"

[[tasks]]
id = "c"
description = "C"
agent = "dev"
"#;

const BUILD_DESCRIPTION: &str = "Say \"hi\" $(touch pwned) `touch pwned2`; exit 7\nsecond line";

/// `sh -c` script that starts a grandchild `sleep 30`, records its pid,
/// and waits: a stop must reach the grandchild through the group.
const SLEEPER: &str = "sleep 30 & echo $! > grandchild.pid; wait";

/// [`PLAN`], pushed.
fn town() -> Town {
    Scenario::new().plan(PLAN).pushed().build()
}

/// What the runner's dispatch does: the task becomes `assigned` to `agent`
/// with `attempt`, and its message goes to the agent's inbox.
fn dispatch_to(town: &Town, task: &str, attempt: u32, agent: &str) {
    let n = attempt.to_string();
    town.redis_cmd(&[
        "HSET",
        &town.key(&format!("task:{task}")),
        "status",
        "assigned",
        "attempt",
        &n,
        "assigned_to",
        agent,
    ]);
    town.redis_cmd(&[
        "RPUSH",
        &town.key(&format!("inbox:{agent}")),
        &message(task, attempt),
    ]);
}

/// [`dispatch_to`] agent `dev`.
fn dispatch(town: &Town, task: &str, attempt: u32) {
    dispatch_to(town, task, attempt, "dev");
}

/// The inbox message of `attempt` of `task`.
fn message(task: &str, attempt: u32) -> String {
    serde_json::json!({ "kind": "task", "task": task, "attempt": attempt }).to_string()
}

/// Puts `raw` at the tail of `dev`'s inbox as it is.
fn push(town: &Town, raw: &str) {
    town.redis_cmd(&["RPUSH", &key("t", "inbox:dev"), raw]);
}

/// Tells worker `id` to shut down (what `tt kill` sends).
fn shut_down(town: &Town, id: &str) {
    town.redis_cmd(&[
        "LPUSH",
        &town.key(&format!("control:{id}")),
        r#"{"kind":"shutdown"}"#,
    ]);
}

/// `tt agent dev --id dev-1 --once <args>`, to its end.
#[track_caller]
fn agent_once(town: &Town, args: &[&str]) -> Output {
    let mut all = vec!["agent", "dev", "--id", "dev-1", "--once"];
    all.extend_from_slice(args);
    town.tt(all)
}

/// `tt agent dev --id dev-1 <args>` in the background.
fn worker(town: &Town, args: &[&str]) -> Running {
    let mut all = vec!["agent", "dev", "--id", "dev-1"];
    all.extend_from_slice(args);
    town.start(&all)
}

/// Runs `f` with a store of the town, on a runtime of its own: for tests
/// that call the worker's store scripts directly.
fn with_store<T>(town: &Town, f: impl AsyncFnOnce(&tinytown::store::Store) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let target = tinytown::store::RedisTarget::Url(town.redis().url());
        let store = tinytown::store::Store::open(&target, town.name())
            .await
            .unwrap();
        f(&store).await
    })
}

/// Worker `id` of agent `dev`, as it registers.
fn identity(id: &str) -> tinytown::store::WorkerIdentity {
    tinytown::store::WorkerIdentity {
        id: id.into(),
        agent: "dev".into(),
        pid: 1,
        host: "h".into(),
        backlog: false,
        token: "1@h/0".into(),
    }
}

/// `dev-1`'s report that attempt 1 of `build` exited 0.
fn build_succeeded(raw: &str) -> tinytown::store::Report<'_> {
    tinytown::store::Report {
        worker: "dev-1",
        raw,
        task: "build",
        attempt: 1,
        exit_code: Some(0),
        error: None,
        output: "",
        log: "/nowhere",
        retries: 0,
        backoff: Duration::from_secs(1),
        requeue: false,
        facts: None,
    }
}
