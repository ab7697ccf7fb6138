//! Task records as stored in `tt:<town>:task:<id>` hashes, readable with
//! `redis-cli HGETALL`: plain strings, lists as JSON arrays.

use std::collections::HashMap;

use serde::Serialize;

use crate::Status;

/// Where a task came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A `[[tasks]]` entry.
    File,
    /// `tt assign`.
    Cli,
}

/// One task as Redis holds it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub id: String,
    pub description: String,
    /// The agent it goes to (its own, else `[meta] default_agent`); `None`
    /// means the backlog, or for a group, no join step.
    pub agent: Option<String>,
    pub status: Status,
    pub parent: Option<String>,
    pub tags: Vec<String>,
    pub depends_on: Vec<String>,
    pub priority: u8,
    /// Dispatch position among equal priorities (file order).
    pub order: u64,
    pub attempt: u32,
    pub source: Source,
    /// Status the file said when last applied.
    pub file_status: Option<Status>,
    /// Removed from the file (kept for history).
    pub removed: bool,
    /// The agent whose inbox it was last put into.
    pub assigned_to: Option<String>,
    /// The worker that holds or last ran it.
    pub worker: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// The last lines the command printed.
    pub output: Option<String>,
    /// Log file of the last attempt.
    pub log: Option<String>,
    /// Not dispatched again before this time (retry backoff), ms.
    pub retry_at: Option<u64>,
    /// Per-task overrides of the agent's `retries` and `timeout` (ms).
    pub retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    /// A group's policy for failed children.
    pub on_child_failure: crate::plan::ChildFailure,
    /// Why it is in its status (cancelled: removed from file, …).
    pub reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created: Option<u64>,
    pub updated: Option<u64>,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub fingerprint: Option<String>,
    /// The question the running attempt waits on a person for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<super::Question>,
    /// The latest progress note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<super::Progress>,
    /// What the last attempt learned ([`super::Facts`]).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub facts: super::Facts,
    /// What is wrong with the record, naming its key and field, when it
    /// holds values tt never writes (edited by hand): such a task is not
    /// run ([`TaskRecord::from_hash`]). `None` for a sound record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
}

impl TaskRecord {
    /// Parses a hash. `key` names it in [`TaskRecord::corrupt`].
    ///
    /// A value tt never writes (an unknown `status`, `tags` or `depends_on`
    /// that are not JSON lists, an `attempt` that is not a number) does not
    /// make the read fail: one such record must not take every command of
    /// the town down. The record says what is wrong in `corrupt`, and
    /// unless it is finished it counts as `failed`, so it is never run and
    /// its dependants wait (`blocked`), until the field is fixed.
    pub fn from_hash(key: &str, h: HashMap<String, String>) -> Self {
        Self::parse(key, h, Vec::new())
    }

    /// [`TaskRecord::from_hash`] for a hash read as bytes: Redis holds any
    /// bytes, and a value that is not UTF-8 (written by hand or by another
    /// tool) must not make the read of every task fail. Such a value is
    /// read lossily and the record is corrupt, naming the field.
    pub fn from_bytes(key: &str, fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        let mut problems = Vec::new();
        let mut h = HashMap::new();
        for (name, value) in fields {
            let name = utf8_or_lossy(name);
            let value = utf8_or_lossy(value);
            if !name.1 || !value.1 {
                problems.push(format!("field `{}` is not UTF-8", name.0.escape_debug()));
            }
            h.insert(name.0, value.0);
        }
        Self::parse(key, h, problems)
    }

    fn parse(key: &str, mut h: HashMap<String, String>, mut problems: Vec<String>) -> Self {
        let mut take = |f: &str| h.remove(f).filter(|v| !v.is_empty());
        let id = match take("id") {
            Some(id) => id,
            None => {
                problems.push("has no `id` field".into());
                key.rsplit_once("task:")
                    .map_or(key, |(_, id)| id)
                    .to_string()
            }
        };
        let status_text = take("status").unwrap_or_else(|| "pending".into());
        let mut status = Status::parse(&status_text).unwrap_or_else(|| {
            problems.push(format!("field `status` is `{status_text}`, not a status"));
            Status::Failed
        });
        let mut list = |v: Option<String>, name: &str| -> Vec<String> {
            match v {
                None => Vec::new(),
                Some(s) => serde_json::from_str(&s).unwrap_or_else(|_| {
                    problems.push(format!("field `{name}` is not a JSON list of strings"));
                    Vec::new()
                }),
            }
        };
        let tags = list(take("tags"), "tags");
        let depends_on = list(take("depends_on"), "depends_on");
        let num = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok());
        let attempt = match take("attempt") {
            None => 0,
            Some(a) => a.parse::<u64>().map_or_else(
                |_| {
                    problems.push(format!("field `attempt` is `{a}`, not a number"));
                    0
                },
                |a| a.min(u32::MAX as u64) as u32,
            ),
        };
        let corrupt = (!problems.is_empty()).then(|| format!("`{key}` {}", problems.join("; ")));
        // Not run until fixed: a finished record keeps its status (its
        // dependants may go on), anything else is failed.
        if corrupt.is_some() && !status.is_final() {
            status = Status::Failed;
        }
        TaskRecord {
            description: take("description").unwrap_or_default(),
            agent: take("agent"),
            parent: take("parent"),
            priority: num(take("priority"))
                .map_or(crate::plan::DEFAULT_PRIORITY, |p| p.min(4) as u8),
            order: num(take("order")).unwrap_or(0),
            attempt,
            source: match take("source").as_deref() {
                Some("cli") => Source::Cli,
                _ => Source::File,
            },
            file_status: take("file_status").and_then(|s| Status::parse(&s)),
            removed: take("removed").is_some_and(|v| v == "1"),
            assigned_to: take("assigned_to"),
            worker: take("worker"),
            output: take("output"),
            log: take("log"),
            retry_at: num(take("retry_at")),
            retries: num(take("retries")).map(|r| r.min(100) as u32),
            timeout_ms: num(take("timeout")),
            on_child_failure: take("on_child_failure")
                .and_then(|p| crate::plan::ChildFailure::parse(&p))
                .unwrap_or_default(),
            exit_code: take("exit_code").and_then(|s| s.parse().ok()),
            error: take("error"),
            reason: take("reason"),
            created: num(take("created")),
            updated: num(take("updated")),
            started: num(take("started")),
            finished: num(take("finished")),
            fingerprint: take("fingerprint"),
            question: take("question_id").map(|id| super::Question {
                id,
                text: take("question").unwrap_or_default(),
                choices: take("question_choices")
                    .and_then(|c| serde_json::from_str(&c).ok())
                    .unwrap_or_default(),
                at: num(take("question_at")).unwrap_or(0),
            }),
            progress: take("progress").map(|text| super::Progress {
                text,
                at: num(take("progress_at")).unwrap_or(0),
                attempt: num(take("progress_attempt"))
                    .map_or(0, |a| a.min(u64::from(u32::MAX)) as u32),
            }),
            facts: take("facts").map_or_else(super::Facts::new, |t| super::parse_facts(&t)),
            id,
            status,
            tags,
            depends_on,
            corrupt,
        }
    }

    /// A task whose key holds no hash at all (`what` it holds instead):
    /// known by its id only, failed, never run.
    pub fn unreadable(key: &str, id: &str, what: &str) -> Self {
        let mut h = HashMap::new();
        h.insert("id".to_string(), id.to_string());
        let mut r = Self::from_hash(key, h);
        r.status = Status::Failed;
        r.corrupt = Some(format!("`{key}` {what}"));
        r
    }
}

/// The text of `bytes`, lossily, and whether it was UTF-8.
pub(crate) fn utf8_or_lossy(bytes: Vec<u8>) -> (String, bool) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, true),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), false),
    }
}
