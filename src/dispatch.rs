//! One dispatch pass: from the town's records, decide what goes to which
//! inbox next. Readiness comes from [`crate::graph`], the one function every
//! view uses; the store's script re-checks status and the inbox window
//! atomically, so a stale decision can only be a skipped task, never a
//! double dispatch.

use std::collections::{HashMap, HashSet};

use crate::Status;
use crate::graph::{Graph, Readiness};
use crate::store::{Dispatch, TaskRecord};

/// What the dispatcher knows of an agent name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSlot {
    /// Most entries its inbox may hold: `prefetch × count`.
    pub window: u32,
    /// Takes tasks that have no agent.
    pub backlog: bool,
}

/// The town as one pass sees it.
pub struct Snapshot {
    pub records: Vec<TaskRecord>,
    pub graph: Graph,
}

impl Snapshot {
    pub fn new(records: Vec<TaskRecord>) -> Self {
        let graph = Graph::new(records.iter().map(TaskRecord::node).collect());
        Self { records, graph }
    }

    /// Tasks to dispatch now, in (priority, file order), and the earliest
    /// time (ms) a task waiting for its retry backoff becomes due.
    pub fn plan_dispatch(
        &self,
        agents: &HashMap<String, AgentSlot>,
        now_ms: u64,
    ) -> (Vec<Dispatch>, Option<u64>) {
        let mut out = Vec::new();
        let mut next_retry: Option<u64> = None;
        // The backlog is one list every backlog worker takes from; its window
        // is what those agents could hold between them.
        let backlog_window: u32 = agents
            .values()
            .filter(|a| a.backlog)
            .map(|a| a.window)
            .sum();
        for i in self.graph.ready() {
            let r = &self.records[i];
            if let Some(at) = r.retry_at
                && at > now_ms
            {
                next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
                continue;
            }
            let (agent, window) = match &r.agent {
                Some(a) => (a.clone(), agents.get(a).map_or(1, |s| s.window)),
                // No agent: the town backlog. Without a declared backlog
                // agent it still goes there, one at a time, for workers
                // started by hand with `--backlog`.
                None => (String::new(), backlog_window.max(1)),
            };
            out.push(Dispatch {
                task: r.id.clone(),
                agent,
                window,
            });
        }
        (out, next_retry)
    }

    /// Whether anything can still happen without outside help: work in
    /// flight, or ready work that has an agent to go to. `live` holds the
    /// agent names with a running worker (declared ones count as coming).
    pub fn active(&self, agents: &HashMap<String, AgentSlot>, live: &HashSet<String>) -> bool {
        (0..self.records.len()).any(|i| self.in_play(i, agents, live))
    }

    fn in_play(
        &self,
        i: usize,
        agents: &HashMap<String, AgentSlot>,
        live: &HashSet<String>,
    ) -> bool {
        let r = &self.records[i];
        // Stored status, not the derived one: a group "running" because
        // its children are is not work in flight, its join step is.
        match r.status {
            Status::Assigned | Status::Running | Status::Pending => {}
            _ => return false,
        }
        if r.status == Status::Running {
            return true;
        }
        if r.status == Status::Pending && self.graph.readiness(i) != Readiness::Ready {
            return false;
        }
        match &r.agent {
            Some(a) => agents.contains_key(a) || live.contains(a),
            None => agents.values().any(|a| a.backlog),
        }
    }

    /// Why a task that is not finished will not get further, if it is stuck.
    pub fn stuck_reason(
        &self,
        i: usize,
        agents: &HashMap<String, AgentSlot>,
        live: &HashSet<String>,
    ) -> Option<String> {
        let r = &self.records[i];
        if self.graph.status(i).is_final() || self.in_play(i, agents, live) {
            return None;
        }
        if r.status == Status::Pending
            && let Readiness::Waiting(w) = self.graph.readiness(i)
        {
            return Some(w.to_string());
        }
        Some(match &r.agent {
            Some(a) => format!(
                "agent `{a}` is not declared in [agents] and no worker of it runs (start one with `tt agent {a}`)"
            ),
            None => "no agent takes it (set `agent`, `[meta] default_agent`, or an agent with `backlog = true`)".into(),
        })
    }

    /// Unfinished tasks of groups with `on_child_failure = "fail"` that have
    /// a failed child: they are cancelled (fail fast), with the reason.
    pub fn fail_fast(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for g in 0..self.records.len() {
            if !self.graph.is_group(g)
                || self.records[g].on_child_failure != crate::plan::ChildFailure::Fail
                || self.graph.progress(g).failed == 0
            {
                continue;
            }
            let reason = format!(
                "group {} failed (on_child_failure = \"fail\")",
                self.records[g].id
            );
            let mut stack: Vec<usize> = self.graph.children(g).to_vec();
            while let Some(c) = stack.pop() {
                stack.extend_from_slice(self.graph.children(c));
                if !self.records[c].status.is_final() {
                    out.push((self.records[c].id.clone(), reason.clone()));
                }
            }
        }
        out
    }

    /// Counts of statuses as users see them (groups derived), leaf tasks
    /// and groups alike.
    pub fn counts(&self) -> HashMap<Status, usize> {
        let mut c = HashMap::new();
        for i in 0..self.records.len() {
            *c.entry(self.graph.status(i)).or_insert(0) += 1;
        }
        c
    }
}
