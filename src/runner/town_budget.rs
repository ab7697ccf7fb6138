//! The town's budget (`[town] max_cost_usd`): before each dispatch pass the
//! runner compares what the town's attempts spent (the `usage` hash that
//! `finish.lua` adds every attempt to) with the plan's budget; once it is
//! reached, nothing new is dispatched — running attempts finish — and the
//! runner says so once (`tt status` says it too, from the budget recorded
//! beside the usage). Raising the budget in the file lifts the stop at the
//! next pass.

use super::{Runner, RunnerNote};
use crate::agent::budget::usd;
use crate::store::StoreError;

/// What the runner knows of its town's budget.
#[derive(Debug, Default)]
pub(super) struct TownBudget {
    /// The budget last written beside the usage (`None` inside: none);
    /// `None`: not written by this runner yet.
    recorded: Option<Option<f64>>,
    /// Why dispatch stopped, while it is stopped.
    stop: Option<String>,
}

impl TownBudget {
    /// Why nothing new is dispatched, while the budget is spent.
    pub(super) fn stopped(&self) -> Option<&str> {
        self.stop.as_deref()
    }
}

impl<F: FnMut(RunnerNote)> Runner<F> {
    /// Whether the town's budget is spent; records the plan's budget for
    /// `tt status` when it changed. Reads Redis only when the plan has a
    /// budget (or had one).
    pub(super) async fn town_budget_spent(&mut self) -> Result<bool, StoreError> {
        let max = self.plan.town.max_cost_usd;
        if self.budget.recorded != Some(max) {
            self.store.set_town_budget(max).await?;
            self.budget.recorded = Some(max);
        }
        let Some(max) = max else {
            self.budget.stop = None;
            return Ok(false);
        };
        let spent = self.store.usage().await?.total.cost_usd;
        if spent < max {
            self.budget.stop = None;
            return Ok(false);
        }
        if self.budget.stop.is_none() {
            let why = format!(
                "town budget reached: {} of {} spent; no new attempts are dispatched \
                 (raise `[town] max_cost_usd` to go on)",
                usd(spent),
                usd(max)
            );
            (self.report)(RunnerNote::BudgetReached(why.clone()));
            self.budget.stop = Some(why);
        }
        Ok(true)
    }
}
