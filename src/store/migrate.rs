//! Moving towns written by the old key layout (`tt:<town>:…`,
//! [`keys::legacy_prefix`]) to the hash-tagged one (`tt:{<town>}:…`,
//! [`Keys`]), once, atomically per town: `tt migrate` does it on demand and
//! `tt run` when it starts ([`Store::migrate_if_old`]).
//!
//! Per town: `SCAN MATCH tt:<town>:*` lists the old keys (the pattern never
//! matches a new key, `tt:{<town>}:…`, nor a key of another town: names
//! hold no `:`), then one script (`scripts/migrate.lua`) renames them all,
//! or none: it refuses while a runner of an older tt holds the old lease
//! (it would go on writing old keys) and while any new name is taken
//! already (the town was written in both layouts). A crash loses nothing —
//! the script is atomic — and a second run finds nothing left to move.
//!
//! On Redis Cluster the old keys of a town lie in many slots, so no one
//! script may touch them: that is refused with [`StoreError::MigrationAcrossSlots`]
//! (the old layout never ran on a cluster; migrate before moving there).

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use redis::Script;
use serde::Serialize;

use super::keys::{self, Keys};
use super::{Store, StoreError, script};

static MIGRATE: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/migrate.lua")));

/// Keys each SCAN call looks at: a 100k-key database is ten round trips,
/// and no call holds the server for long.
const SCAN_COUNT: usize = 10_000;

/// Old-layout key pairs a conflict names, at most (the script's cap).
const CONFLICTS_SHOWN: usize = 10;

/// What migrating one town did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    pub town: String,
    /// Keys moved (or that would move); 0 when the town has none left in
    /// the old layout.
    pub keys: usize,
    pub dry_run: bool,
}

impl Store {
    /// Migrates this town: lists its old keys with SCAN and moves them
    /// with one script. `dry_run` moves nothing and says what would move,
    /// refusing as a real run would.
    pub async fn migrate(&self, dry_run: bool) -> Result<Migration, StoreError> {
        let pattern = format!("{}*", glob_escape(&keys::legacy_prefix(self.town())));
        let old = self.scan(&pattern).await?;
        self.migrate_keys(old, dry_run).await
    }

    /// What `tt run` calls when it starts: one round trip
    /// ([`Store::has_old_layout`]) when the town has no keys of the old
    /// layout, else [`Store::migrate`], which finds every one.
    pub async fn migrate_if_old(&self) -> Result<Option<Migration>, StoreError> {
        if !self.has_old_layout().await? {
            return Ok(None);
        }
        let done = self.migrate(false).await?;
        Ok((done.keys > 0).then_some(done))
    }

    /// Whether the town has keys an older tinytown wrote (the old layout):
    /// one `EXISTS` of its town-wide keys, which a town of the old layout
    /// always has one of (its tasks, events or workers).
    pub async fn has_old_layout(&self) -> Result<bool, StoreError> {
        let k = &self.keys;
        let town_wide = [
            k.tasks(),
            k.meta(),
            k.events(),
            k.agents(),
            k.fingerprints(),
            k.usage(),
            k.backlog(),
            k.deadletter(),
            k.adhoc_counter(),
            k.runner(),
        ];
        // One EXISTS of them all, not a pipeline: a cluster client splits
        // a multi-key EXISTS over the slots and sums the counts, where a
        // pipeline must stay in one slot.
        let old: Vec<Vec<u8>> = town_wide
            .iter()
            .map(|key| legacy_name(self.town(), key.as_bytes()))
            .collect();
        let mut conn = self.conn.clone();
        let found: u64 = redis::cmd("EXISTS")
            .arg(&old)
            .query_async(&mut conn)
            .await?;
        Ok(found > 0)
    }

    /// Migrates every town of [`keys::TOWNS`] (every town that ever
    /// synced), in name order: one SCAN of the whole key space, then one
    /// script per town with old keys. One town that is refused does not
    /// stop the others.
    pub async fn migrate_all(
        &self,
        dry_run: bool,
    ) -> Result<Vec<(String, Result<Migration, StoreError>)>, StoreError> {
        let towns: HashSet<String> = self.towns().await?.into_iter().collect();
        let mut by_town: BTreeMap<String, Vec<Vec<u8>>> =
            towns.iter().map(|t| (t.clone(), Vec::new())).collect();
        for key in self.scan("tt:*").await? {
            if let Some(town) = legacy_town(&key)
                && let Some(list) = by_town.get_mut(town)
            {
                list.push(key);
            }
        }
        let mut out = Vec::with_capacity(by_town.len());
        for (town, old) in by_town {
            let store = Store::with_connection_of(self, &town);
            match store.migrate_keys(old, dry_run).await {
                Err(e) if e.is_connection_error() => return Err(e),
                done => out.push((town, done)),
            }
        }
        Ok(out)
    }

    /// Moves `old` (keys of this town in the old layout) with one script.
    async fn migrate_keys(
        &self,
        mut old: Vec<Vec<u8>>,
        dry_run: bool,
    ) -> Result<Migration, StoreError> {
        let town = self.town().to_string();
        // The old workers' heartbeats first (migrate.lua checks them), each
        // part in name order, so a conflict names the same keys every time.
        let beat = legacy_name(&town, self.keys.alive("").as_bytes());
        old.sort_by(|a, b| {
            (!a.starts_with(&beat), a.as_slice()).cmp(&(!b.starts_with(&beat), b.as_slice()))
        });
        let heartbeats = old.iter().take_while(|k| k.starts_with(&beat)).count();
        if old.is_empty() {
            return Ok(Migration {
                town,
                keys: 0,
                dry_run,
            });
        }
        let lease = legacy_name(&town, self.keys.runner().as_bytes());
        let mut invocation = MIGRATE.prepare_invoke();
        invocation.key(&lease);
        for key in &old {
            invocation.key(key.as_slice());
        }
        for key in &old {
            invocation.key(self.new_name(key));
        }
        invocation
            .arg(if dry_run { "check" } else { "move" })
            .arg(heartbeats);
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> =
            invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| match e.code() {
                    Some("CROSSSLOT") => StoreError::MigrationAcrossSlots { town: town.clone() },
                    _ => StoreError::Redis(e),
                })?;
        // Only a script of another version could answer otherwise.
        let corrupt = |what: &str| {
            StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "migrate.lua answered",
                what.to_string(),
            )))
        };
        let text = |v: &redis::Value| -> Result<String, StoreError> {
            redis::from_redis_value_ref::<Vec<u8>>(v)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| StoreError::Redis(e.into()))
        };
        let count = |v: &redis::Value| -> Result<usize, StoreError> {
            redis::from_redis_value_ref::<usize>(v).map_err(|e| StoreError::Redis(e.into()))
        };
        let (what, rest) = reply.split_first().ok_or_else(|| corrupt("nothing"))?;
        match text(what)?.as_str() {
            "moved" => Ok(Migration {
                town,
                keys: count(rest.first().ok_or_else(|| corrupt("no count"))?)?,
                dry_run,
            }),
            "lease" => Err(StoreError::OldRunner {
                town,
                key: String::from_utf8_lossy(&lease).into_owned(),
                holder: describe_holder(&text(rest.first().ok_or_else(|| corrupt("no holder"))?)?),
            }),
            "worker" => {
                let key = text(rest.first().ok_or_else(|| corrupt("no heartbeat"))?)?;
                let token = text(rest.get(1).ok_or_else(|| corrupt("no holder"))?)?;
                let worker = key.rsplit(':').next().unwrap_or_default().to_string();
                Err(StoreError::OldRunner {
                    town,
                    key,
                    holder: format!("worker `{worker}` ({token})"),
                })
            }
            "conflict" => {
                let (total, pairs) = rest.split_first().ok_or_else(|| corrupt("no count"))?;
                let names = pairs.iter().map(text).collect::<Result<Vec<_>, _>>()?;
                let shown: Vec<String> = names
                    .chunks(2)
                    .take(CONFLICTS_SHOWN)
                    .map(|p| format!("`{}` and `{}`", p[0], p.get(1).map_or("?", |s| s)))
                    .collect();
                Err(StoreError::MigrationConflict {
                    town,
                    count: count(total)?,
                    examples: shown.join(", "),
                })
            }
            other => Err(corrupt(&format!("`{other}`"))),
        }
    }

    /// The name of old key `old` in the hash-tagged layout.
    fn new_name(&self, old: &[u8]) -> Vec<u8> {
        let rest = &old[keys::legacy_prefix(self.town()).len()..];
        let mut name = self.keys.prefix().as_bytes().to_vec();
        name.extend_from_slice(rest);
        name
    }

    /// Every key matching `pattern`, once each, on every node of a
    /// cluster. Names are bytes: a key written by hand need not be UTF-8.
    async fn scan(&self, pattern: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.conn.clone().scan_match(pattern, SCAN_COUNT).await
    }
}

/// The old-layout name of `key`, a key of `town` in the new layout.
fn legacy_name(town: &str, key: &[u8]) -> Vec<u8> {
    let prefix = Keys::new(town);
    let rest = key.strip_prefix(prefix.prefix().as_bytes()).unwrap_or(key);
    let mut name = keys::legacy_prefix(town).into_bytes();
    name.extend_from_slice(rest);
    name
}

/// The town of a key in the old layout (`tt:<town>:…`); `None` for a key
/// of the new layout, [`keys::TOWNS`], or one that is not tt's.
fn legacy_town(key: &[u8]) -> Option<&str> {
    let rest = key.strip_prefix(b"tt:")?;
    let end = rest.iter().position(|&b| b == b':')?;
    let town = std::str::from_utf8(&rest[..end]).ok()?;
    crate::plan::valid_id(town).then_some(town)
}

/// `text` with the glob characters of `SCAN MATCH` escaped, so it matches
/// only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A lease value for messages: `pid 42 on build-host` for what a runner
/// writes, else the value itself.
fn describe_holder(value: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(v) if v["pid"].is_u64() => format!(
            "pid {} on {}",
            v["pid"],
            v["host"].as_str().unwrap_or("an unknown host")
        ),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("tt:shop:"), "tt:shop:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn the_town_of_an_old_key_is_its_second_part() {
        assert_eq!(legacy_town(b"tt:shop:task:a"), Some("shop"));
        assert_eq!(legacy_town(b"tt:shop:tasks"), Some("shop"));
        assert_eq!(legacy_town(b"tt:{shop}:tasks"), None);
        assert_eq!(legacy_town(b"tt:towns"), None);
        assert_eq!(legacy_town(b"other:shop:x"), None);
    }

    #[test]
    fn old_and_new_names_map_onto_each_other() {
        let keys = Keys::new("shop");
        assert_eq!(
            legacy_name("shop", keys.task("a").as_bytes()),
            b"tt:shop:task:a"
        );
    }

    #[test]
    fn lease_holders_are_described_by_pid_and_host() {
        assert_eq!(
            describe_holder(r#"{"id":"h:7","host":"h","pid":7,"since":1}"#),
            "pid 7 on h"
        );
        assert_eq!(describe_holder("garbage"), "garbage");
    }
}
