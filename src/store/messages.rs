//! Direct messages read by the agent they were sent to while its task runs
//! (`tt inbox --mine`, the MCP `get_task` reply), rather than by its worker
//! between tasks: taken out of the inbox in one script, so a message is
//! delivered once, whoever reads it first.

use std::sync::LazyLock;

use redis::Script;
use serde::Serialize;

use super::script::script;
use super::{Store, StoreError};

static TAKE: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/take_messages.lua")));

/// A direct message, as `tt send` wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub from: String,
    pub body: String,
}

impl Store {
    /// Takes every direct message waiting in `agent`'s inbox, head first,
    /// leaving its task entries; `reader` (a worker id) and `task` go on the
    /// `message` event of each.
    pub async fn take_messages(
        &self,
        agent: &str,
        reader: &str,
        task: &str,
    ) -> Result<Vec<Message>, StoreError> {
        let mut conn = self.conn.clone();
        let flat: Vec<String> = TAKE
            .key(self.keys.inbox(agent))
            .key(self.keys.events())
            .arg(reader)
            .arg(task)
            .invoke_async(&mut conn)
            .await?;
        Ok(flat
            .chunks_exact(2)
            .filter_map(|pair| match pair {
                [from, body] => Some(Message {
                    from: from.clone(),
                    body: body.clone(),
                }),
                _ => None,
            })
            .collect())
    }
}
