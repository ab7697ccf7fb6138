//! Agents talking back: a question on a running attempt (`tt ask`) and
//! its answer (`tt answer`), and progress notes (`tt progress`).
//!
//! The open question lives on the task hash (`question`, `question_id`,
//! `question_choices`, `question_at`), so every reader of tasks sees who
//! waits for a person; its answer is pushed on `answer:<task>`, where the
//! asking `tt ask` blocks (`BLPOP`) instead of polling. Time spent waiting
//! is summed per attempt (`waited_ms`), so the worker's timeout can leave
//! it out.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::Serialize;

use super::script::script;
use super::worker::BlockingConn;
use super::{Store, StoreError};

// lib/running.lua (is this the running attempt?) goes before the scripts
// a command inside a task calls.
static ASK: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/running.lua"),
        "\n",
        include_str!("scripts/ask.lua")
    ))
});
static ANSWER: LazyLock<Script> = LazyLock::new(|| script(include_str!("scripts/answer.lua")));
static PROGRESS: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/running.lua"),
        "\n",
        include_str!("scripts/progress.lua")
    ))
});

/// A question waiting for a person, as the task holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    pub id: String,
    pub text: String,
    /// The answers to pick from; empty for free text.
    pub choices: Vec<String>,
    /// When it was asked, ms since the epoch (Redis time).
    pub at: u64,
}

/// The latest progress note of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub text: String,
    pub at: u64,
    pub attempt: u32,
}

/// What [`Store::ask`] and [`Store::progress`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Recorded, at this time (ms, Redis time).
    Recorded { at: u64 },
    /// The attempt is not running (finished, cancelled, requeued).
    NotRunning { reason: String },
}

/// What [`Store::answer`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// The question that was answered.
    Answered { question: String },
    /// The task has no open question; its status ("" when there is no
    /// such task).
    NoQuestion { status: String },
}

impl Store {
    /// Records `text` as the open question of `task`'s running `attempt`,
    /// with id `qid`; `choices` may be empty.
    pub async fn ask(
        &self,
        task: &str,
        attempt: u32,
        qid: &str,
        text: &str,
        choices: &[String],
    ) -> Result<Asked, StoreError> {
        let mut conn = self.conn.clone();
        let choices = serde_json::Value::from(choices.to_vec()).to_string();
        let reply: Vec<String> = ASK
            .key(self.keys.task(task))
            .key(self.keys.events())
            .key(self.keys.answer(task))
            .arg(task)
            .arg(attempt)
            .arg(qid)
            .arg(text)
            .arg(choices)
            .invoke_async(&mut conn)
            .await?;
        recorded(reply, "ask.lua", self)
    }

    /// Records a progress note on `task`'s running `attempt`.
    pub async fn progress(
        &self,
        task: &str,
        attempt: u32,
        text: &str,
    ) -> Result<Asked, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = PROGRESS
            .key(self.keys.task(task))
            .key(self.keys.events())
            .arg(task)
            .arg(attempt)
            .arg(text)
            .invoke_async(&mut conn)
            .await?;
        match reply.as_slice() {
            [ok] if ok == "ok" => Ok(Asked::Recorded { at: 0 }),
            _ => recorded(reply, "progress.lua", self),
        }
    }

    /// Answers `task`'s open question `qid`; `by` names who answered.
    pub async fn answer_question(
        &self,
        task: &str,
        qid: &str,
        text: &str,
        by: &str,
    ) -> Result<Answered, StoreError> {
        let reply = self.answer_script(task, "answer", text, by, qid).await?;
        match reply.as_slice() {
            [a, q] if a == "answered" => Ok(Answered::Answered {
                question: q.clone(),
            }),
            [n, status] if n == "no_question" => Ok(Answered::NoQuestion {
                status: status.clone(),
            }),
            _ => Err(self.unexpected("answer.lua", &reply)),
        }
    }

    /// Takes back the question `qid` of `task` if it is still open (its
    /// asker gave up: timed out, interrupted), saying `why`.
    pub async fn withdraw(&self, task: &str, qid: &str, why: &str) -> Result<(), StoreError> {
        self.answer_script(task, "withdraw", why, "", qid).await?;
        Ok(())
    }

    async fn answer_script(
        &self,
        task: &str,
        mode: &str,
        text: &str,
        by: &str,
        qid: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(ANSWER
            .key(self.keys.task(task))
            .key(self.keys.events())
            .key(self.keys.answer(task))
            .arg(task)
            .arg(mode)
            .arg(text)
            .arg(by)
            .arg(qid)
            .invoke_async(&mut conn)
            .await?)
    }

    /// How long `task`'s `attempt` has waited for answers so far: the
    /// questions answered or withdrawn, and the open one.
    pub async fn question_wait(&self, task: &str, attempt: u32) -> Result<Duration, StoreError> {
        let mut conn = self.conn.clone();
        let ((secs, micros), fields): ((u64, u64), Vec<Option<String>>) = redis::pipe()
            .cmd("TIME")
            .cmd("HMGET")
            .arg(self.keys.task(task))
            .arg("waited_ms")
            .arg("waited_attempt")
            .arg("question_at")
            .query_async(&mut conn)
            .await?;
        let now = secs * 1000 + micros / 1000;
        let num = |i: usize| {
            fields
                .get(i)
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<u64>().ok())
        };
        let mut waited = match num(1) {
            Some(a) if a == u64::from(attempt) => num(0).unwrap_or(0),
            _ => 0,
        };
        if let Some(asked) = num(2) {
            waited += now.saturating_sub(asked);
        }
        Ok(Duration::from_millis(waited))
    }
}

fn recorded(reply: Vec<String>, script: &str, store: &Store) -> Result<Asked, StoreError> {
    match reply.as_slice() {
        [a, at] if a == "asked" => Ok(Asked::Recorded {
            at: at.parse().unwrap_or(0),
        }),
        [n, reason] if n == "not_running" => Ok(Asked::NotRunning {
            reason: reason.clone(),
        }),
        _ => Err(store.unexpected(script, &reply)),
    }
}

impl BlockingConn {
    /// Waits up to `timeout` (not zero) for an answer on `answer:<task>`:
    /// the question id it answers and the answer.
    pub async fn next_answer(
        &mut self,
        task: &str,
        timeout: Duration,
    ) -> Result<Option<(String, String)>, StoreError> {
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg(self.keys().answer(task))
            .arg(timeout.max(Duration::from_millis(1)).as_secs_f64());
        let popped: Option<(String, String)> = self.blocking(cmd).await?;
        Ok(popped.map(|(_, raw)| {
            let v: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (field("question"), field("answer"))
        }))
    }
}
