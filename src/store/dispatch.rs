//! The runner's dispatch (docs/PROTOCOL.md "dispatch"): putting ready
//! tasks into their agents' inboxes with `scripts/dispatch.lua`.

use std::sync::LazyLock;

use redis::Script;

use super::{Store, StoreError};

// Built once: `Script::new` hashes the source (SHA1) every time it runs.
static DISPATCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/dispatch.lua")));

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
        let mut inv = DISPATCH.prepare_invoke();
        inv.arg(self.keys.prefix());
        for d in batch {
            inv.arg(&d.task).arg(&d.agent).arg(d.window);
        }
        let mut conn = self.conn.clone();
        let (sent, missing) = inv.invoke_async(&mut conn).await?;
        Ok(Dispatched { sent, missing })
    }
}
