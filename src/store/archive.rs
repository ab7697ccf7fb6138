//! The events archive: what the capped stream (`MAXLEN ~ 100000` in every
//! script) would trim, kept in a JSON Lines file per town,
//! `<project>/.tt/events/<town>.jsonl`, one [`Event::to_json`] per line.
//!
//! Many processes append to the stream, each capping it as it goes, so
//! trimming cannot be made to archive first. Instead a runner (and `tt sync
//! push`, before a push that adds many events) moves the oldest entries out
//! well before the cap: read them, append them to the file and sync it,
//! then `XTRIM MINID` just past the last one, counting them in
//! `meta.events_archived`. Writers only add at the tail, with ids above
//! anything read, so the trim removes exactly what the file holds. A crash
//! between the append and the trim leaves entries in both, and the next
//! archiving skips what the file already ends with. Archivers of one
//! project (the runner's timer, a large `tt sync push`) take turns: each
//! holds an exclusive `flock` on the file while it moves entries, and
//! `events_archived` grows by what `XTRIM` removed, in the same script. A
//! last line cut short (a full disk, a crash mid-write) is cut off before
//! the next append: its events are still in the stream, as the trim comes
//! after the append. What the cap trimmed
//! before anyone archived it (no runner ran) is not lost silently: Redis
//! counts every entry ever added (`XINFO STREAM` `entries-added`, Redis 7),
//! so `added − archived − length` is exactly the number gone.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::script::script;
use super::{Event, Store, StoreError};

/// Trims the stream up to an id and counts what it removed as archived.
/// KEYS[1] the stream, KEYS[2] the town's meta hash; ARGV[1] the MINID.
static TRIM: LazyLock<Script> = LazyLock::new(|| {
    script(
        "local n = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
         redis.call('HINCRBY', KEYS[2], 'events_archived', n)
         return n",
    )
});

/// Longest an archiver waits for another one of the same file to finish.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Entries moved per round trip.
const BATCH: usize = 10_000;

/// Most entries the scripts let the stream hold (`MAXLEN ~ 100000`).
pub const STREAM_CAP: u64 = 100_000;

/// How many entries the stream may hold before a write of up to `events`
/// events, so that the cap trims none of them (with a margin for what
/// other processes add meanwhile).
pub fn room_for(events: u64) -> u64 {
    STREAM_CAP.saturating_sub(events.saturating_add(1_000))
}

/// The archive file of one town.
#[derive(Debug, Clone)]
pub struct Archive {
    path: PathBuf,
}

/// What the stream and the archive hold of a town's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryLoss {
    /// Events the cap trimmed before they were archived; `None` when the
    /// server cannot say (Redis before 7.0).
    pub trimmed: Option<u64>,
}

impl Archive {
    /// `<project_dir>/.tt/events/<town>.jsonl`.
    pub fn of(project_dir: &Path, town: &str) -> Self {
        Self {
            path: project_dir
                .join(".tt")
                .join("events")
                .join(format!("{town}.jsonl")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &str) -> impl FnOnce(std::io::Error) -> StoreError {
        let what = format!("{what} `{}`", self.path.display());
        move |source| StoreError::Io { what, source }
    }

    /// Every archived event (of `task`, if given), oldest first; none when
    /// there is no archive. A line that is not an event is skipped.
    pub fn read(&self, task: Option<&str>) -> Result<Vec<Event>, StoreError> {
        // Lossily: a line cut inside a character must not hide the rest.
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("read")(e)),
        };
        let text = String::from_utf8_lossy(&bytes);
        Ok(text
            .lines()
            .filter(|l| task.is_none_or(|t| l.contains(&format!("\"task\":\"{t}\""))))
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter_map(|v| Event::from_json(&v))
            .filter(|e| task.is_none_or(|t| e.task == t))
            .collect())
    }

    /// Opens the file for appending, creating it (and its directory), and
    /// takes its lock: waits up to [`LOCK_WAIT`] for another archiver.
    async fn lock(&self) -> Result<std::fs::File, StoreError> {
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(self.io("create the directory of"))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(self.io("open"))?;
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(f);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(self.io("lock")(e));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.io("lock (another process archives into it)")(e));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cuts off a last line without its newline (a write cut short), so
    /// the next append starts a line of its own.
    fn cut_partial_line(&self, f: &mut std::fs::File) -> Result<(), StoreError> {
        let len = f.metadata().map_err(self.io("read"))?.len();
        let mut end = len;
        let mut buf = vec![0u8; 64 * 1024];
        while end > 0 {
            let start = end.saturating_sub(buf.len() as u64);
            let chunk = &mut buf[..(end - start) as usize];
            f.seek(SeekFrom::Start(start)).map_err(self.io("read"))?;
            f.read_exact(chunk).map_err(self.io("read"))?;
            if end == len && chunk.last() == Some(&b'\n') {
                return Ok(());
            }
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                return f.set_len(start + i as u64 + 1).map_err(self.io("repair"));
            }
            end = start;
        }
        f.set_len(0).map_err(self.io("repair"))
    }

    /// Stream id of the newest archived event.
    pub fn last_id(&self) -> Result<Option<String>, StoreError> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        let len = f.metadata().map_err(self.io("read"))?.len();
        // Lines are a few hundred bytes; the tail holds the last whole one.
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
            .map_err(self.io("read"))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).map_err(self.io("read"))?;
        Ok(String::from_utf8_lossy(&tail)
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["id"].as_str().map(String::from)))
    }

    /// Appends events to the locked file `f` and syncs it to disk.
    fn append(&self, f: &mut std::fs::File, events: &[Event]) -> Result<(), StoreError> {
        let mut text = String::with_capacity(events.len() * 160);
        for e in events {
            text.push_str(&e.to_json().to_string());
            text.push('\n');
        }
        f.write_all(text.as_bytes()).map_err(self.io("write"))?;
        f.sync_data().map_err(self.io("sync"))
    }
}

/// `<ms>-<seq>` as numbers, to order stream ids.
fn id_parts(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl Store {
    /// Moves the oldest events into `archive` until the stream holds at
    /// most `keep`; returns how many it moved.
    pub async fn archive_events(&self, archive: &Archive, keep: u64) -> Result<u64, StoreError> {
        let key = self.keys.events();
        let mut conn = self.conn.clone();
        let mut moved = 0;
        // Filled once there is something to move: a push that moves
        // nothing does not touch the file.
        let mut file: Option<(std::fs::File, Option<(u64, u64)>)> = None;
        loop {
            let len: u64 = redis::cmd("XLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| super::error::name_key(e, &key, "stream"))?;
            if len <= keep {
                return Ok(moved);
            }
            if file.is_none() {
                let mut f = archive.lock().await?;
                archive.cut_partial_line(&mut f)?;
                let after = archive.last_id()?.as_deref().and_then(id_parts);
                file = Some((f, after));
            }
            let Some((f, after)) = file.as_mut() else {
                return Ok(moved);
            };
            let count = (len - keep).min(BATCH as u64);
            let reply: redis::Value = redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn)
                .await?;
            let entries = super::parse_entries(reply);
            let Some(last) = entries.last().and_then(|e| id_parts(&e.id)) else {
                return Ok(moved);
            };
            // What the file already ends with (a crash before the trim).
            // What the trim removes is counted as archived: those the file
            // already held were never counted (the crash came before it).
            let fresh: Vec<Event> = entries
                .into_iter()
                .filter(|e| after.is_none_or(|a| id_parts(&e.id).is_some_and(|i| i > a)))
                .collect();
            archive.append(f, &fresh)?;
            *after = Some(last);
            let _: u64 = TRIM
                .key(&key)
                .key(self.keys.meta())
                .arg(format!("{}-{}", last.0, last.1.saturating_add(1)))
                .invoke_async(&mut conn)
                .await?;
            moved += fresh.len() as u64;
        }
    }

    /// How much of the town's history is gone: events the cap trimmed
    /// that were never archived.
    pub async fn history_loss(&self) -> Result<HistoryLoss, StoreError> {
        let key = self.keys.events();
        let mut conn = self.conn.clone();
        let archived: Option<u64> = redis::cmd("HGET")
            .arg(self.keys.meta())
            .arg("events_archived")
            .query_async(&mut conn)
            .await?;
        let info: redis::Value = match redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&key)
            .query_async(&mut conn)
            .await
        {
            Ok(v) => v,
            // No stream yet: nothing was ever trimmed.
            Err(e) if e.code() == Some("ERR") => return Ok(HistoryLoss { trimmed: Some(0) }),
            Err(e) => return Err(super::error::name_key(e, &key, "stream")),
        };
        let fields: std::collections::HashMap<String, redis::Value> =
            redis::from_redis_value(info).unwrap_or_default();
        let num = |name: &str| -> Option<u64> {
            fields
                .get(name)
                .and_then(|v| redis::from_redis_value(v.clone()).ok())
        };
        let trimmed = match (num("entries-added"), num("length")) {
            (Some(added), Some(length)) => {
                Some(added.saturating_sub(length + archived.unwrap_or(0)))
            }
            _ => None,
        };
        Ok(HistoryLoss { trimmed })
    }
}
