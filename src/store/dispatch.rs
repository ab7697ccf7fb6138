//! The runner's side of the protocol (docs/PROTOCOL.md): dispatching into
//! inboxes, the lease that makes one runner per town, and waiting for
//! events.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::MultiplexedConnection;

use super::{Store, StoreError};

// Built once: `Script::new` hashes the source (SHA1) every time it runs.
static DISPATCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/dispatch.lua")));
static ACQUIRE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
            local cur = redis.call('GET', KEYS[1])
            if not cur or cur == ARGV[1] then
              redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
              return false
            end
            return cur
        ",
    )
});
static TAKE_OVER_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
            if redis.call('GET', KEYS[1]) == ARGV[1] then
              redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
              return 1
            end
            return 0
        ",
    )
});
/// A lease value no `tt run` wrote (not a JSON object with an `id`) is
/// deleted; a lease with no expiry gets one (`ARGV[1]` ms), so neither can
/// hold a town for ever. Returns `{what was wrong, the value}` or false.
static REPAIR_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
            local cur = redis.call('GET', KEYS[1])
            if not cur then return false end
            local ok, v = pcall(cjson.decode, cur)
            if not ok or type(v) ~= 'table' or type(v.id) ~= 'string' then
              redis.call('DEL', KEYS[1])
              return { 'unreadable', cur }
            end
            if redis.call('PTTL', KEYS[1]) == -1 then
              redis.call('PEXPIRE', KEYS[1], ARGV[1])
              return { 'no_expiry', cur }
            end
            return false
        ",
    )
});
static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
            if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
            return 1
        ",
    )
});

/// One task to put into an inbox, if the inbox has room.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub task: String,
    pub agent: String,
    /// Most entries the inbox may hold after this one is added.
    pub window: u32,
}

/// A transition read from the events stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// Stream id (`<ms>-<seq>`).
    pub id: String,
    pub kind: String,
    pub task: String,
    pub agent: String,
    pub attempt: String,
    pub at: u64,
    /// Every other field, in order.
    pub extra: Vec<(String, String)>,
}

impl Event {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn from_fields(id: String, fields: Vec<(String, String)>) -> Self {
        let mut e = Event {
            id,
            ..Default::default()
        };
        for (k, v) in fields {
            match k.as_str() {
                "kind" => e.kind = v,
                "task" => e.task = v,
                "agent" => e.agent = v,
                "attempt" => e.attempt = v,
                "at" => e.at = v.parse().unwrap_or(0),
                _ => e.extra.push((k, v)),
            }
        }
        e
    }
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

    /// Number of entries waiting in an agent's inbox.
    pub async fn inbox_len(&self, agent: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("LLEN")
            .arg(self.keys.inbox(agent))
            .query_async(&mut conn)
            .await?)
    }

    /// Takes the runner lease if it is free (or already ours). Returns the
    /// current holder's description when someone else has it.
    pub async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(ACQUIRE_LEASE
            .key(self.keys.runner())
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Clears a lease value no runner wrote and gives one without expiry a
    /// TTL (see [`REPAIR_LEASE`]); says what it did, naming the value.
    pub async fn repair_lease(&self, ttl: Duration) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.runner();
        let done: Option<(String, String)> = REPAIR_LEASE
            .key(&key)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| super::error::name_key(e, &key, "string"))?;
        Ok(done.map(|(what, value)| match what.as_str() {
            "unreadable" => format!(
                "the runner lease `{key}` held `{value}`, which no `tt run` writes: cleared it"
            ),
            _ => format!(
                "the runner lease `{key}` ({value}) had no expiry: it now expires in {} s unless its holder renews it",
                ttl.as_secs()
            ),
        }))
    }

    /// Replaces the lease if it still holds `expected` (a holder known to
    /// be dead). Returns whether it did.
    pub async fn take_over_lease(
        &self,
        expected: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let took: i64 = TAKE_OVER_LEASE
            .key(self.keys.runner())
            .arg(expected)
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(took == 1)
    }

    /// Releases the lease if it is still ours.
    pub async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = RELEASE_LEASE
            .key(self.keys.runner())
            .arg(holder)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Stream id of the newest event ("0-0" when there is none), to read
    /// only what comes after.
    pub async fn last_event_id(&self) -> Result<String, StoreError> {
        let mut conn = self.conn.clone();
        let reply: redis::Value = redis::cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let entries = parse_entries(reply);
        Ok(entries
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_string(), |e| e.id))
    }

    /// Waits up to `block` for events after `after` on a dedicated
    /// connection (see [`super::connection::connect_blocking`]).
    pub async fn read_events(
        &self,
        conn: &mut MultiplexedConnection,
        after: &str,
        block: Duration,
    ) -> Result<Vec<Event>, StoreError> {
        let reply: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.keys.events())
            .arg(after)
            .query_async(conn)
            .await?;
        // Reply: [[stream, [entries…]]] or nil on timeout.
        let redis::Value::Array(streams) = reply else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for s in streams {
            if let redis::Value::Array(mut parts) = s
                && parts.len() == 2
            {
                out.extend(parse_entries(parts.remove(1)));
            }
        }
        Ok(out)
    }

    /// Names of agents with at least one worker whose heartbeat is alive.
    pub async fn live_agent_names(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let workers = self.worker_ids().await?;
        if workers.is_empty() {
            return Ok(Default::default());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for w in &workers {
            pipe.hget(self.keys.agent(w), "name")
                .exists(self.keys.alive(w));
        }
        let replies: Vec<(Option<String>, bool)> = pipe.query_async(&mut conn).await?;
        Ok(replies
            .into_iter()
            .filter(|(_, alive)| *alive)
            .filter_map(|(name, _)| name)
            .collect())
    }

    /// Drains the runner's own inbox (`tt send supervisor …`).
    pub async fn take_supervisor_messages(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.inbox("supervisor");
        let (items, _): (Vec<String>, i64) = redis::pipe()
            .atomic()
            .cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        Ok(items)
    }
}

/// Stream entries `[[id, [k, v, …]], …]` into events; anything else is
/// skipped rather than trusted.
pub fn parse_entries(reply: redis::Value) -> Vec<Event> {
    let redis::Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let redis::Value::Array(mut parts) = entry else {
                return None;
            };
            if parts.len() != 2 {
                return None;
            }
            let fields = parts.pop()?;
            let id: String = redis::from_redis_value(parts.pop()?).ok()?;
            let fields: Vec<(String, String)> = match fields {
                redis::Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|c| {
                        let k = redis::from_redis_value(c.first()?.clone()).ok()?;
                        let v = redis::from_redis_value(c.get(1)?.clone()).ok()?;
                        Some((k, v))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some(Event::from_fields(id, fields))
        })
        .collect()
}
