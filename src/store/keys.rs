//! The one place that names Redis keys. Every key of a town starts with
//! `tt:{<town>}:`, so many towns share one Redis without touching each
//! other, and the town in braces is the key's hash tag: Redis Cluster puts
//! every key of a town in one slot, where the town's scripts and MULTIs
//! are legal, and spreads different towns over the cluster. Town names
//! never hold `{`, `}` or `:` ([`crate::plan::town_name`]), so the tag
//! is the whole name and no town reaches another's keys.
//!
//! Before this layout every key was `tt:<town>:…` ([`legacy_prefix`]);
//! `store::migrate` moves such towns.

/// The name the runner goes by as a recipient: `tt send supervisor …` puts
/// a note in `inbox:supervisor`, which the runner drains; no agent may take
/// the name. (prune.lua spells it too: it never deletes that inbox.)
pub const SUPERVISOR: &str = "supervisor";

/// Key names of one town.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(town: &str) -> Self {
        Self {
            prefix: format!("tt:{{{town}}}:"),
        }
    }

    /// `tt:{<town>}:` — what every key of this town starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Hash: one task's definition, status and progress.
    pub fn task(&self, id: &str) -> String {
        format!("{}task:{id}", self.prefix)
    }

    /// Sorted set: every task id, scored by (priority, file order).
    pub fn tasks(&self) -> String {
        format!("{}tasks", self.prefix)
    }

    /// Hash: id → fingerprint of each task that came from the file, so a
    /// resync reads every fingerprint with one command.
    pub fn fingerprints(&self) -> String {
        format!("{}fingerprints", self.prefix)
    }

    /// Hash: town-wide facts (plan fingerprint, file name, last sync time).
    pub fn meta(&self) -> String {
        format!("{}meta", self.prefix)
    }

    /// Hash: one agent's state.
    pub fn agent(&self, id: &str) -> String {
        format!("{}agent:{id}", self.prefix)
    }

    /// Set: ids of every agent known to the town.
    pub fn agents(&self) -> String {
        format!("{}agents", self.prefix)
    }

    /// String with TTL: an agent's heartbeat.
    pub fn alive(&self, id: &str) -> String {
        format!("{}alive:{id}", self.prefix)
    }

    /// List: messages waiting for an agent.
    pub fn inbox(&self, id: &str) -> String {
        format!("{}inbox:{id}", self.prefix)
    }

    /// List: what an agent took from its inbox and has not finished.
    pub fn claimed(&self, id: &str) -> String {
        format!("{}claimed:{id}", self.prefix)
    }

    /// List: control messages for one worker (stop a task, shut down).
    pub fn control(&self, worker: &str) -> String {
        format!("{}control:{worker}", self.prefix)
    }

    /// List: inbox messages that could not be read.
    pub fn deadletter(&self) -> String {
        format!("{}deadletter", self.prefix)
    }

    /// List: ready tasks with no agent.
    pub fn backlog(&self) -> String {
        format!("{}backlog", self.prefix)
    }

    /// Stream: every transition.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Hash: what the town's attempts spent (tokens, cost, turns), overall
    /// and per agent (`agent:<name>:<field>`), and the town's budget
    /// (`max_cost_usd`) as the runner last read it from the plan.
    pub fn usage(&self) -> String {
        format!("{}usage", self.prefix)
    }

    /// String with TTL: the lease of the runner that dispatches for the town.
    pub fn runner(&self) -> String {
        format!("{}runner", self.prefix)
    }

    /// List: the answer to a task's open question, pushed by `tt answer`
    /// and taken by the `tt ask` that waits for it.
    pub fn answer(&self, task: &str) -> String {
        format!("{}answer:{task}", self.prefix)
    }

    /// String (INCR counter): numbers `tt assign` tasks, for their default
    /// id (`adhoc-<n>`) and their order after every file task.
    pub fn adhoc_counter(&self) -> String {
        format!("{}adhoc", self.prefix)
    }
}

/// The global set of town names, so `tt towns` finds every town without SCAN.
/// Not a town key: commands write it apart from the town's scripts.
pub const TOWNS: &str = "tt:towns";

/// `tt:<town>:` — what every key of a town started with before keys were
/// hash-tagged; only migration reads it.
pub fn legacy_prefix(town: &str) -> String {
    format!("tt:{town}:")
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    fn every_key(k: &Keys) -> Vec<String> {
        vec![
            k.task("a"),
            k.tasks(),
            k.fingerprints(),
            k.meta(),
            k.agent("x"),
            k.agents(),
            k.alive("x"),
            k.inbox("x"),
            k.claimed("x"),
            k.backlog(),
            k.events(),
            k.runner(),
            k.usage(),
            k.control("x"),
            k.deadletter(),
            k.adhoc_counter(),
            k.answer("a"),
        ]
    }

    #[test]
    fn every_key_is_under_the_town_prefix() {
        let k = Keys::new("shop");
        for key in every_key(&k) {
            assert!(key.starts_with("tt:{shop}:"), "{key}");
        }
        assert_eq!(k.task("login"), "tt:{shop}:task:login");
    }

    #[test]
    fn every_key_of_a_town_hashes_to_one_slot() {
        for town in ["shop", "a", "my-shop.v2", "A_b-9"] {
            let k = Keys::new(town);
            // Ids that hold braces of their own do not move the tag: Redis
            // hashes what is between the first `{` and the next `}`.
            let mut keys = every_key(&k);
            keys.push(k.task("x{y}z"));
            keys.push(k.inbox("}{"));
            let slot = Slot::for_key(town);
            for key in keys {
                assert_eq!(Slot::for_key(&key), slot, "{key} of town {town}");
            }
        }
    }

    #[test]
    fn different_towns_land_on_different_slots() {
        let towns = ["shop", "api", "web", "payments", "default"];
        for (i, a) in towns.iter().enumerate() {
            for b in &towns[i + 1..] {
                assert_ne!(
                    Slot::for_key(Keys::new(a).tasks()),
                    Slot::for_key(Keys::new(b).tasks()),
                    "{a} and {b}"
                );
            }
        }
    }

    #[test]
    fn the_legacy_prefix_does_not_match_new_keys() {
        assert_eq!(legacy_prefix("shop"), "tt:shop:");
        assert!(
            !Keys::new("shop")
                .tasks()
                .starts_with(&legacy_prefix("shop"))
        );
    }
}
