//! The runner lease (`tt:<town>:runner`, docs/PROTOCOL.md "Keys"): a
//! string with a TTL that makes one runner per town. Taken and
//! renewed, repaired when it holds what no runner can renew, taken over
//! from a holder known to be dead, released at the end — each one script
//! in `scripts/lease_*.lua` — and read for `tt status`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::Serialize;

use super::script::script;
use super::{Store, StoreError};

// Built once: `Script::new` hashes the source (SHA1) every time it runs.
static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/lease_acquire.lua")));
static TAKE_OVER: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/lease_take_over.lua")));
static REPAIR: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/lease_repair.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("scripts/lease_release.lua")));

/// Who holds the runner lease (`tt:<town>:runner`).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct RunnerLease {
    pub id: String,
    pub host: Option<String>,
    pub pid: Option<u32>,
    /// When it took the lease, milliseconds since the Unix epoch.
    pub since: Option<u64>,
    /// Milliseconds until the lease expires unless renewed.
    pub ttl_ms: Option<u64>,
}

impl RunnerLease {
    /// Reads the lease value: JSON `{"id","host","pid","since"}`; any other
    /// text is taken as the holder's id, so a lease written by another
    /// version still shows who holds it.
    fn parse(raw: &str, ttl_ms: Option<u64>) -> Self {
        #[derive(serde::Deserialize)]
        struct Json {
            id: Option<String>,
            host: Option<String>,
            pid: Option<u32>,
            since: Option<u64>,
        }
        match serde_json::from_str::<Json>(raw) {
            Ok(j) => RunnerLease {
                id: j.id.unwrap_or_default(),
                host: j.host,
                pid: j.pid,
                since: j.since,
                ttl_ms,
            },
            Err(_) => RunnerLease {
                id: raw.to_string(),
                ttl_ms,
                ..Default::default()
            },
        }
    }
}

impl Store {
    /// The runner lease, if a runner holds it.
    pub async fn runner_lease(&self) -> Result<Option<RunnerLease>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.runner();
        let (raw, ttl): (Option<String>, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut conn)
            .await?;
        Ok(raw.map(|raw| RunnerLease::parse(&raw, u64::try_from(ttl).ok())))
    }

    /// Takes the runner lease if it is free (or already ours). Returns the
    /// current holder's description when someone else has it.
    pub async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(ACQUIRE
            .key(self.keys.runner())
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Clears a lease value no runner wrote and gives one without expiry a
    /// TTL (`scripts/lease_repair.lua`); says what it did, naming the value.
    pub async fn repair_lease(&self, ttl: Duration) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.runner();
        let done: Option<(String, String)> = REPAIR
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
        let took: i64 = TAKE_OVER
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
        let _: i64 = RELEASE
            .key(self.keys.runner())
            .arg(holder)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_lease_reads_json_or_plain_text() {
        let l = RunnerLease::parse(r#"{"id":"r1","host":"h","pid":7,"since":5}"#, Some(900));
        assert_eq!(l.id, "r1");
        assert_eq!(l.pid, Some(7));
        assert_eq!(l.ttl_ms, Some(900));
        assert_eq!(RunnerLease::parse("h:7", None).id, "h:7");
    }
}
