//! Following the events of the other towns a view depends on, for the
//! commands that redraw (`tt status --watch`): one reader task per town
//! on a blocking connection of its own (a read in flight is never
//! cancelled half-way, and on a cluster two towns' streams may live on
//! different nodes). Read-only, like every access to another town.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::{RedisTarget, RemoteTown, Store, StoreError};

/// How long one blocking read waits: it only bounds how long a dead
/// connection goes unnoticed.
const BLOCK: Duration = Duration::from_secs(5);

/// Pause after a failed read before the next one (the follower connects
/// again).
const RETRY: Duration = Duration::from_secs(1);

/// The other towns followed, and what their readers send: the name of a
/// town that had new events.
pub struct TownEvents {
    store: Store,
    target: RedisTarget,
    readers: HashMap<String, tokio::task::JoinHandle<()>>,
    tx: mpsc::UnboundedSender<String>,
    rx: mpsc::UnboundedReceiver<String>,
}

impl Drop for TownEvents {
    fn drop(&mut self) {
        for r in self.readers.values() {
            r.abort();
        }
    }
}

impl TownEvents {
    /// No town followed yet; `store` is this town's.
    pub fn new(store: &Store, target: &RedisTarget) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            store: store.clone(),
            target: target.clone(),
            readers: HashMap::new(),
            tx,
            rx,
        }
    }

    /// Follows exactly `towns`, each from its newest event now. Returns
    /// whether a town was added: what happened there before now is not
    /// reported, so the caller reads it once more.
    pub async fn follow(&mut self, towns: &[&str]) -> Result<bool, StoreError> {
        self.readers.retain(|town, reader| {
            let keep = towns.contains(&town.as_str());
            if !keep {
                reader.abort();
            }
            keep
        });
        let mut added = false;
        for &town in towns {
            if self.readers.contains_key(town) {
                continue;
            }
            let remote = RemoteTown::of(&self.store, town);
            // A town whose keys hold what tt never writes is not followed
            // (its views say its tasks' states are unknown).
            let after = match remote.last_event_id().await {
                Ok(after) => after,
                Err(e) if e.is_connection_error() => return Err(e),
                Err(_) => continue,
            };
            let mut follower = remote.follower(&self.target, &after);
            let tx = self.tx.clone();
            let name = town.to_string();
            let reader = tokio::spawn(async move {
                loop {
                    match follower.next(BLOCK).await {
                        Ok(batch) if batch.is_empty() => {}
                        Ok(_) => {
                            if tx.send(name.clone()).is_err() {
                                return;
                            }
                        }
                        Err(_) => tokio::time::sleep(RETRY).await,
                    }
                }
            });
            self.readers.insert(town.to_string(), reader);
            added = true;
        }
        Ok(added)
    }

    /// Waits until a followed town has new events; the town. Never
    /// returns while no town is followed.
    pub async fn next(&mut self) -> String {
        match self.rx.recv().await {
            Some(town) => town,
            // `self` holds a sender: the channel never closes.
            None => std::future::pending().await,
        }
    }
}
