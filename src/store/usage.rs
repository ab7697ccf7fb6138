//! What the town's attempts spent: tokens, cost and turns, overall and per
//! agent, as `finish.lua` adds every attempt's facts to the `usage` hash
//! (retries and stale reports included), and the town's budget
//! (`[town] max_cost_usd`) as the runner last set it.

use std::collections::BTreeMap;

use super::{Store, StoreError};

/// Totals of one scope (the town, or one agent).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Attempts that reported what they used.
    pub attempts: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub turns: u64,
    pub cost_usd: f64,
}

/// The town's usage.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    pub total: Totals,
    pub agents: BTreeMap<String, Totals>,
    /// The town's budget, when its plan has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

impl Usage {
    /// Whether the town spent its budget: no new attempts are dispatched.
    pub fn budget_reached(&self) -> bool {
        self.max_cost_usd
            .is_some_and(|max| self.total.cost_usd >= max)
    }

    fn from_fields(fields: BTreeMap<String, String>) -> Self {
        let mut u = Usage::default();
        for (k, v) in fields {
            if k == "max_cost_usd" {
                u.max_cost_usd = v.parse().ok().filter(|n: &f64| n.is_finite());
                continue;
            }
            let (totals, name) = match k.strip_prefix("agent:").and_then(|r| r.rsplit_once(':')) {
                Some((agent, name)) => (u.agents.entry(agent.to_string()).or_default(), name),
                None => (&mut u.total, k.as_str()),
            };
            totals.set(name, &v);
        }
        u
    }
}

impl Totals {
    fn set(&mut self, name: &str, v: &str) {
        let n = || v.parse::<u64>().unwrap_or(0);
        match name {
            "attempts" => self.attempts = n(),
            "input_tokens" => self.input_tokens = n(),
            "output_tokens" => self.output_tokens = n(),
            "cache_read_tokens" => self.cache_read_tokens = n(),
            "cache_write_tokens" => self.cache_write_tokens = n(),
            "turns" => self.turns = n(),
            "cost_usd" => {
                self.cost_usd = v
                    .parse()
                    .ok()
                    .filter(|c: &f64| c.is_finite())
                    .unwrap_or(0.0)
            }
            _ => {}
        }
    }
}

impl Store {
    /// What the town's attempts spent so far.
    pub async fn usage(&self) -> Result<Usage, StoreError> {
        let mut conn = self.conn.clone();
        let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.usage())
            .query_async(&mut conn)
            .await?;
        Ok(Usage::from_fields(fields))
    }

    /// Records the town's budget from its plan (`None`: no budget).
    pub async fn set_town_budget(&self, max_cost_usd: Option<f64>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let cmd = match max_cost_usd {
            Some(max) => {
                let mut c = redis::cmd("HSET");
                c.arg(self.keys.usage())
                    .arg("max_cost_usd")
                    .arg(max.to_string());
                c
            }
            None => {
                let mut c = redis::cmd("HDEL");
                c.arg(self.keys.usage()).arg("max_cost_usd");
                c
            }
        };
        let _: i64 = cmd.query_async(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_into_the_town_and_its_agents() {
        let fields: BTreeMap<String, String> = [
            ("attempts", "3"),
            ("cost_usd", "0.75"),
            ("input_tokens", "100"),
            ("agent:dev:cost_usd", "0.5"),
            ("agent:dev:attempts", "2"),
            ("agent:rev:output_tokens", "7"),
            ("max_cost_usd", "1"),
            ("agent:odd", "x"),
            ("nonsense", "y"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let u = Usage::from_fields(fields);
        assert_eq!(u.total.attempts, 3);
        assert_eq!(u.total.cost_usd, 0.75);
        assert_eq!(u.agents["dev"].cost_usd, 0.5);
        assert_eq!(u.agents["rev"].output_tokens, 7);
        assert_eq!(u.agents.len(), 2);
        assert!(!u.budget_reached());
        let spent = Usage {
            max_cost_usd: Some(0.75),
            ..u
        };
        assert!(spent.budget_reached());
    }
}
