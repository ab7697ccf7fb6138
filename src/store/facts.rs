//! What an attempt learned beyond how it ended: the workspace branch and
//! the commit it landed, the agent's final message, its session, tokens and
//! cost. The worker sends them with its report; `finish.lua` keeps the last
//! attempt's on the task (field `facts`) and puts them on the event that
//! ended the attempt (field `facts`), where `tt task` finds every attempt's.
//!
//! Stored as one JSON object, so each capability adds its own names
//! without a new field, and an attempt without facts clears the previous
//! attempt's instead of leaving them to look current.

use serde_json::{Map, Value};

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
