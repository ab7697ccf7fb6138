//! What an attempt learned beyond how it ended: the workspace branch and
//! the commit it landed, the agent's final message, its session, tokens and
//! cost. The worker sends them with its report; `finish.lua` keeps the last
//! attempt's on the task (field `facts`) and puts them on the event that
//! ended the attempt (field `facts`), where `tt task` finds every attempt's.
//!
//! Stored as one JSON object, so each capability adds its own names
//! without a new field, and an attempt without facts clears the previous
//! attempt's instead of leaving them to look current.

use std::sync::LazyLock;

use redis::Script;
use serde_json::{Map, Value};

use super::script::script;
use super::{Store, StoreError};

static KEEP: LazyLock<Script> = LazyLock::new(|| {
    script(concat!(
        include_str!("scripts/lib/usage.lua"),
        "\n",
        include_str!("scripts/keep_facts.lua")
    ))
});

/// Names and values, as JSON.
pub type Facts = Map<String, Value>;

/// The facts stored as `text`; empty for none or for text that is not a
/// JSON object (a record edited by hand: its facts are not worth failing
/// the read of the task over).
pub fn parse_facts(text: &str) -> Facts {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Facts::new(),
    }
}

/// `facts` as `finish.lua` stores them: "" for none.
pub fn facts_text(facts: Option<&Facts>) -> String {
    match facts {
        Some(f) if !f.is_empty() => Value::Object(f.clone()).to_string(),
        _ => String::new(),
    }
}

impl Store {
    /// Keeps what an attempt that ends without a report learned
    /// (`keep_facts.lua`): on its task, for the next attempt to resume, and
    /// in the town's usage. `false` when the task moved on meanwhile.
    pub async fn keep_facts(
        &self,
        worker: &str,
        task: &str,
        attempt: u32,
        facts: &Facts,
    ) -> Result<bool, StoreError> {
        self.put_facts(worker, task, attempt, facts, "keep").await
    }

    /// Notes what a running attempt's output said so far on its task
    /// (`keep_facts.lua`, uncounted: recovery counts it should the worker
    /// die without a word), for a retry to resume. `false` when the task
    /// moved on meanwhile.
    pub async fn note_facts(
        &self,
        worker: &str,
        task: &str,
        attempt: u32,
        facts: &Facts,
    ) -> Result<bool, StoreError> {
        self.put_facts(worker, task, attempt, facts, "note").await
    }

    async fn put_facts(
        &self,
        worker: &str,
        task: &str,
        attempt: u32,
        facts: &Facts,
        what: &str,
    ) -> Result<bool, StoreError> {
        if facts.is_empty() {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let put: i64 = KEEP
            .key(self.keys.task(task))
            .key(self.keys.usage())
            .key(self.keys.agent(worker))
            .arg(attempt)
            .arg(worker)
            .arg(facts_text(Some(facts)))
            .arg(what)
            .invoke_async(&mut conn)
            .await?;
        Ok(put == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_round_trip_and_bad_text_is_none() {
        let mut f = Facts::new();
        f.insert("branch".into(), "tt/shop/a".into());
        f.insert("cost_usd".into(), 0.25.into());
        assert_eq!(parse_facts(&facts_text(Some(&f))), f);
        assert_eq!(facts_text(Some(&Facts::new())), "");
        assert_eq!(facts_text(None), "");
        assert!(parse_facts("[1,2]").is_empty());
        assert!(parse_facts("{not json").is_empty());
        assert!(parse_facts("").is_empty());
    }
}
