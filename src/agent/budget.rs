//! Budgets: the most one attempt may cost (`max_cost_usd`) and the most
//! turns it may take (`max_turns`), per agent and per task (the task's
//! win). A preset passes them to its CLI where the CLI has a flag for them
//! ([`crate::plan::presets::Preset::max_cost_flag`]); either way the worker
//! checks them against what the agent's output reports while it runs
//! ([`super::adapter::Progress`]) and stops the process group of an
//! attempt that went over.

use super::adapter::Progress;

/// Limits of one attempt; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub max_cost_usd: Option<f64>,
    pub max_turns: Option<u64>,
}

impl Budget {
    /// This budget with `task`'s limits where the task sets them.
    pub fn overridden_by(self, task: Budget) -> Budget {
        Budget {
            max_cost_usd: task.max_cost_usd.or(self.max_cost_usd),
            max_turns: task.max_turns.or(self.max_turns),
        }
    }

    pub fn is_none(&self) -> bool {
        self.max_cost_usd.is_none() && self.max_turns.is_none()
    }

    /// Why `p` is over this budget (`over budget: $0.52 of $0.50`), if it is.
    pub fn exceeded(&self, p: &Progress) -> Option<String> {
        if let (Some(max), Some(cost)) = (self.max_cost_usd, p.cost_usd)
            && cost > max
        {
            return Some(format!("over budget: {} of {}", usd(cost), usd(max)));
        }
        if let (Some(max), Some(turns)) = (self.max_turns, p.turns)
            && turns > max
        {
            return Some(format!("over budget: {turns} turns of {max}"));
        }
        None
    }
}

/// Dollars for people: cents, or more digits below a cent.
pub fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_means_past_the_limit_and_says_by_how_much() {
        let b = Budget {
            max_cost_usd: Some(0.5),
            max_turns: Some(3),
        };
        let mut p = Progress {
            cost_usd: Some(0.5),
            turns: Some(3),
            ..Default::default()
        };
        assert_eq!(b.exceeded(&p), None);
        p.cost_usd = Some(0.52);
        assert_eq!(
            b.exceeded(&p).as_deref(),
            Some("over budget: $0.52 of $0.50")
        );
        p.cost_usd = None;
        p.turns = Some(4);
        assert_eq!(b.exceeded(&p).as_deref(), Some("over budget: 4 turns of 3"));
        assert_eq!(Budget::default().exceeded(&p), None);
        let task = Budget {
            max_cost_usd: Some(1.0),
            max_turns: None,
        };
        assert_eq!(
            b.overridden_by(task),
            Budget {
                max_cost_usd: Some(1.0),
                max_turns: Some(3)
            }
        );
        assert_eq!(usd(0.004), "$0.0040");
    }
}
