//! The events stream (`tt:<town>:events`) as [`Event`]s: the newest
//! entries (optionally of one task) with `XREVRANGE … COUNT` for
//! `tt history`, and waiting for new ones with `XREAD BLOCK` on a
//! connection of its own ([`EventFollower`]) for the runner,
//! `tt history --follow` and `tt status --watch`.
//!
//! The stream is capped (`MAXLEN ~ 100000`); what is older is in the
//! archive ([`super::archive`]), or counted as gone.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::connection::{Connection, connect_blocking};
use super::{RedisTarget, Store, StoreError};

/// Entries read per `XREVRANGE` while looking for one task's events: big
/// enough that a scan of the whole capped stream is ~100 round trips, small
/// enough that one reply stays a few hundred KiB.
const SCAN_PAGE: usize = 1000;

/// Stream id that sorts before every entry: "read everything after this".
pub const STREAM_START: &str = "0-0";

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

impl Store {
    /// Stream id of the newest event ([`STREAM_START`] when there is none), to read
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
            .map_or_else(|| STREAM_START.to_string(), |e| e.id))
    }

    /// Waits up to `block` for events after `after` on a dedicated
    /// connection (see [`super::connection::connect_blocking`]).
    async fn read_events(
        &self,
        conn: &mut Connection,
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

    /// The newest `limit` events, oldest first, and the id of the newest
    /// entry of the whole stream ([`STREAM_START`] when it is empty) to
    /// follow from, so that nothing falls between reading and following.
    ///
    /// With `task`, only that task's events: the stream is scanned from
    /// the newest entry back until `limit` of them are found.
    pub async fn recent_events(
        &self,
        limit: usize,
        task: Option<&str>,
    ) -> Result<(Vec<Event>, String), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.events();
        let mut found: Vec<Event> = Vec::new();
        let mut last_id: Option<String> = None;
        let mut end = "+".to_string();
        loop {
            let page = match task {
                // At least one entry, so the last id is learnt even for
                // `--limit 0`.
                None => limit.max(1),
                Some(_) => SCAN_PAGE,
            };
            let reply: redis::Value = redis::cmd("XREVRANGE")
                .arg(&key)
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(page)
                .query_async(&mut conn)
                .await?;
            let entries = parse_entries(reply);
            let short = entries.len() < page;
            let Some(oldest) = entries.last().map(|e| e.id.clone()) else {
                break;
            };
            if last_id.is_none() {
                last_id = entries.first().map(|e| e.id.clone());
            }
            for e in entries {
                if found.len() >= limit {
                    break;
                }
                if task.is_none_or(|t| e.task == t) {
                    found.push(e);
                }
            }
            if task.is_none() || found.len() >= limit || short {
                break;
            }
            // `(` makes the range exclusive, so the next page starts
            // strictly before what this one already returned.
            end = format!("({oldest}");
        }
        found.reverse();
        Ok((found, last_id.unwrap_or_else(|| STREAM_START.to_string())))
    }
}

impl Event {
    /// The event as one JSON object — stream id, the common fields
    /// (`attempt` and `at` as numbers), an RFC 3339 `time`, and every other
    /// field — as `tt history --json`, `--export` and the archive write it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("kind".into(), json!(self.kind));
        m.insert("task".into(), json!(self.task));
        m.insert("agent".into(), json!(self.agent));
        m.insert("attempt".into(), json!(self.attempt.parse::<u64>().ok()));
        m.insert("at".into(), json!(self.at));
        m.insert("time".into(), json!(time(self.at)));
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| json!(v));
        }
        Value::Object(m)
    }

    /// An event back from [`Event::to_json`]; `None` for anything else.
    pub fn from_json(v: &Value) -> Option<Self> {
        let o = v.as_object()?;
        let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut e = Event {
            id: o.get("id")?.as_str()?.to_string(),
            kind: text("kind"),
            task: text("task"),
            agent: text("agent"),
            attempt: o
                .get("attempt")
                .and_then(Value::as_u64)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            at: o.get("at").and_then(Value::as_u64).unwrap_or(0),
            extra: Vec::new(),
        };
        for (k, v) in o {
            if !matches!(
                k.as_str(),
                "id" | "kind" | "task" | "agent" | "attempt" | "at" | "time"
            ) {
                let v = v.as_str().map_or_else(|| v.to_string(), String::from);
                e.extra.push((k.clone(), v));
            }
        }
        Some(e)
    }
}

/// `at` (ms since the epoch) as RFC 3339 UTC with milliseconds.
pub fn time(at_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

/// Waits for new events on a dedicated connection (`XREAD BLOCK` would
/// stall every other command on the shared one). The connection does not
/// reconnect by itself: after an error it is dropped, and the next
/// [`EventFollower::next`] opens a new one. Following resumes after the
/// last event returned, so nothing is lost while the stream still holds it.
pub struct EventFollower {
    store: Store,
    target: RedisTarget,
    /// `None` until connected, and after an error.
    conn: Option<Connection>,
    /// Stream id of the last event handed out.
    after: String,
}

impl EventFollower {
    /// Follows `store`'s town from after stream id `after` (use the id from
    /// [`Store::recent_events`] or [`Store::last_event_id`], or
    /// [`STREAM_START`] for everything), connecting now: a Redis that
    /// cannot be reached fails here.
    pub async fn open(
        store: &Store,
        target: &RedisTarget,
        after: &str,
    ) -> Result<Self, StoreError> {
        let mut follower = Self::lazy(store, target, after);
        follower.conn = Some(connect_blocking(target).await?);
        Ok(follower)
    }

    /// [`EventFollower::open`], connecting at the first
    /// [`EventFollower::next`] instead.
    pub fn lazy(store: &Store, target: &RedisTarget, after: &str) -> Self {
        Self {
            store: store.clone(),
            target: target.clone(),
            conn: None,
            after: after.to_string(),
        }
    }

    /// Whether the next [`EventFollower::next`] reads on an open
    /// connection rather than opens one first.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Events after the last one returned, waiting up to `block` for the
    /// first; empty when none came in time. Connects first when there is
    /// no connection; an error drops the connection, to be opened again on
    /// the next call.
    pub async fn next(&mut self, block: Duration) -> Result<Vec<Event>, StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(connect_blocking(&self.target).await?),
        };
        match self.store.read_events(conn, &self.after, block).await {
            Ok(events) => {
                if let Some(last) = events.last() {
                    self.after.clone_from(&last.id);
                }
                Ok(events)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

/// Where a stream id (`<ms>-<seq>`) is in its stream, to compare two;
/// `None` for what is no stream id.
pub fn stream_position(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
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
