//! The runner's dispatch (docs/PROTOCOL.md "dispatch"): putting ready
//! tasks into their agents' inboxes with `scripts/dispatch.lua`.

use std::sync::LazyLock;

use redis::Script;

use super::script::{Declared, Kind, reply_as, script};
use super::{Store, StoreError};

// Built once: `Script::new` hashes the source (SHA1) every time it runs.
static DISPATCH: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/declared.lua"),
        "\n",
        include_str!("scripts/dispatch.lua")
    ))
});

/// One task to put into an inbox, if the inbox has room.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub task: String,
    pub agent: String,
    /// Most entries the inbox may hold after this one is added.
    pub window: u32,
}

/// What one dispatch call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Ids that went into an inbox, in order.
    pub sent: Vec<String>,
    /// Ids whose record is gone from Redis.
    pub missing: Vec<String>,
}

impl Store {
    /// Dispatches in order; says which ids went out (an inbox that is
    /// full, or a task no longer pending, is skipped) and which have no
    /// record any more.
    pub async fn dispatch(&self, batch: &[Dispatch]) -> Result<Dispatched, StoreError> {
        if batch.is_empty() {
            return Ok(Dispatched::default());
        }
        // A task that ran before makes the script ask for its last
        // worker's keys (a second call, only then).
        let mut declared = Declared::new();
        for d in batch {
            declared.add(Kind::Task, &d.task);
            if !d.agent.is_empty() {
                declared.add(Kind::Inbox, &d.agent);
            }
        }
        let reply = self
            .run_declared(
                &DISPATCH,
                "dispatch.lua",
                &mut declared,
                |inv| {
                    inv.key(self.keys.events()).key(self.keys.backlog());
                },
                |inv| {
                    for d in batch {
                        inv.arg(&d.task).arg(&d.agent).arg(d.window);
                    }
                },
            )
            .await?;
        let (sent, missing) = reply_as(reply)?;
        Ok(Dispatched { sent, missing })
    }
}
