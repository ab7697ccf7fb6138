//! How a run ended ([`RunSummary`]): counts by status, the tasks that
//! failed, and those that can never run, with the reason.

use std::collections::{HashMap, HashSet};

use super::{RunError, Runner, RunnerNote};
use crate::Status;
use crate::dispatch::{AgentSlot, Snapshot};

/// How the run ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub counts: HashMap<Status, usize>,
    pub failed: Vec<String>,
    /// Pending tasks that can never run (blocked, or no agent for them).
    pub stuck: Vec<(String, String)>,
    pub interrupted: bool,
}

impl<F: FnMut(RunnerNote)> Runner<F> {
    /// [`summary`], with corrupt records named as such rather than failed.
    pub(super) fn summary(
        &self,
        s: &Snapshot,
        agents: &HashMap<String, AgentSlot>,
        live: &HashSet<String>,
        interrupted: bool,
    ) -> RunSummary {
        let mut out = summary(s, agents, live, interrupted);
        out.failed.retain(|id| match self.corrupt.get(id) {
            Some(what) => {
                out.stuck.push((
                    id.clone(),
                    format!("corrupt record, not run: {what}; fix it with `redis-cli`"),
                ));
                false
            }
            None => true,
        });
        out
    }

    /// Names the agent that cannot start as the reason its stuck tasks wait.
    pub(super) fn explain(&self, mut s: RunSummary) -> RunSummary {
        let Some(snapshot) = &self.snapshot else {
            return s;
        };
        for (id, why) in &mut s.stuck {
            let agent = snapshot.graph.index_of(id).and_then(|i| snapshot.agent(i));
            if let Some((agent, reason)) = agent.and_then(|a| self.cannot_start.get_key_value(a)) {
                *why = format!("agent `{agent}` cannot start: {reason}");
            }
            if let Some(stop) = self.budget.stopped()
                && snapshot
                    .graph
                    .index_of(id)
                    .is_some_and(|i| snapshot.graph.is_ready(i))
            {
                *why = stop.to_string();
            }
        }
        s
    }

    /// The summary of a run stopped now (`interrupted`: by a signal).
    pub(super) async fn final_summary(&self, interrupted: bool) -> Result<RunSummary, RunError> {
        let live = self.store.live_agent_names().await.unwrap_or_default();
        match self.store.tasks().await {
            Ok(records) => Ok(summary(
                &Snapshot::new(records),
                &self.slots(),
                &live,
                interrupted,
            )),
            // Stopping while Redis is away: the last view is good enough.
            Err(e) if e.is_connection_error() => Ok(match &self.snapshot {
                Some(s) => summary(s, &self.slots(), &live, interrupted),
                None => summary(
                    &Snapshot::new(Vec::new()),
                    &self.slots(),
                    &live,
                    interrupted,
                ),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// How a run that ends now ends, as `s` shows the town.
fn summary(
    s: &Snapshot,
    agents: &HashMap<String, AgentSlot>,
    live: &HashSet<String>,
    interrupted: bool,
) -> RunSummary {
    let mut failed = Vec::new();
    let mut stuck = Vec::new();
    for i in 0..s.len() {
        if s.graph.status(i) == Status::Failed && !s.graph.is_group(i) {
            failed.push(s.id(i).to_string());
        } else if let Some(why) = s.stuck_reason(i, agents, live) {
            stuck.push((s.id(i).to_string(), why));
        }
    }
    RunSummary {
        counts: s.counts(),
        failed,
        stuck,
        interrupted,
    }
}
