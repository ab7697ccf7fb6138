//! The operator commands — `status`, `list`, `assign`, `send`, `inbox`,
//! `history`, `kill`, `prune`, `cancel`, `retry` — run as the real binary
//! against a private redis-server. The plan is pushed with `tt sync push`;
//! agents and the runner are simulated by writing their keys as
//! docs/PROTOCOL.md describes. One file per group of commands.

mod assign;
mod cancel;
mod history;
mod messages;
mod status;
mod workers;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{Scenario, Town};

const PLAN: &str = r#"[town]
name = "shop"

[meta]
default_agent = "backend"

[[tasks]]
id = "schema"
description = "Schema"

[[tasks]]
id = "auth"
description = "Auth"

[[tasks]]
id = "login"
description = "Login"
parent = "auth"
depends_on = ["schema"]

[[tasks]]
id = "logout"
description = "Logout"
parent = "auth"

[[tasks]]
id = "deploy"
description = "Deploy"
depends_on = ["auth"]
"#;

/// [`PLAN`] pushed, the operator `ann`.
fn shop() -> Town {
    Scenario::new()
        .plan(PLAN)
        .env("USER", "ann")
        .pushed()
        .build()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn set_status(town: &Town, id: &str, status: &str) {
    town.redis_cmd(&["HSET", &town.key(&format!("task:{id}")), "status", status]);
}

/// A worker as `tt agent` registers it; `alive` sets its heartbeat key.
fn worker(town: &Town, id: &str, name: &str, state: &str, alive: bool) {
    let now = now_ms().to_string();
    town.redis_cmd(&[
        "HSET",
        &town.key(&format!("agent:{id}")),
        "id",
        id,
        "name",
        name,
        "state",
        state,
        "pid",
        "4242",
        "host",
        "box",
        "started",
        &now,
        "heartbeat",
        &now,
    ]);
    town.redis_cmd(&["SADD", &town.key("agents"), id]);
    if alive {
        town.redis_cmd(&["SET", &town.key(&format!("alive:{id}")), "1", "PX", "60000"]);
    }
}

/// Event kinds and tasks in stream order.
fn event_kinds(town: &Town) -> Vec<(String, String)> {
    town.events()
        .into_iter()
        .map(|e| (e["kind"].clone(), e["task"].clone()))
        .collect()
}
