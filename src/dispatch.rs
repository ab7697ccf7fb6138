//! One dispatch pass: from the town's records, decide what goes to which
//! inbox next. The runner keeps one [`Snapshot`] for its whole life and
//! refreshes only the records that events name ([`Snapshot::refresh`]), so
//! a transition costs one small read, not a re-read of the town. Readiness comes from [`crate::graph`], the one function every
//! view uses; the store's script re-checks status and the inbox window
//! atomically, so a stale decision can only be a skipped task, never a
//! double dispatch.

use std::collections::{BTreeSet, HashMap, HashSet};

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
    /// Ready tasks by (priority, file order, index): dispatch order. Kept
    /// up to date by [`Snapshot::refresh`] for the tasks a change can
    /// affect, so a pass does not ask the readiness of every task.
    ready: BTreeSet<(u8, u64, usize)>,
}

impl Snapshot {
    pub fn new(records: Vec<TaskRecord>) -> Self {
        let records: Vec<TaskRecord> = records.into_iter().map(lighten).collect();
        let graph = Graph::new(records.iter().map(TaskRecord::node).collect());
        let ready = graph
            .ready()
            .into_iter()
            .map(|i| (graph.node(i).priority, graph.node(i).order, i))
            .collect();
        Self {
            records,
            graph,
            ready,
        }
    }

    /// Takes fresh copies of some records. A status change updates the graph
    /// in place; a new task, or a changed parent, dependency, agent,
    /// priority or order, rebuilds the graph from the records held in
    /// memory (never a read of the whole town).
    pub fn refresh(&mut self, fresh: Vec<TaskRecord>) {
        let mut rebuild = false;
        let mut statuses = Vec::new();
        for r in fresh {
            let r = lighten(r);
            match self.graph.index_of(&r.id) {
                Some(i) => {
                    if !same_shape(&self.records[i], &r) {
                        rebuild = true;
                    } else if self.records[i].status != r.status {
                        statuses.push((i, r.status));
                    }
                    self.records[i] = r;
                }
                None => {
                    self.records.push(r);
                    rebuild = true;
                }
            }
        }
        if rebuild {
            // The order `Store::tasks` reads them in: the sorted set's score,
            // ties by id.
            self.records
                .sort_by(|a, b| (a.priority, a.order, &a.id).cmp(&(b.priority, b.order, &b.id)));
            *self = Snapshot::new(std::mem::take(&mut self.records));
        } else {
            let changed: Vec<usize> = statuses.iter().map(|&(i, _)| i).collect();
            for (i, status) in statuses {
                self.graph.set_status(i, status);
            }
            self.recheck(&changed);
        }
    }

    /// Brings `ready` up to date after the status of `changed` changed.
    fn recheck(&mut self, changed: &[usize]) {
        let mut affected = Vec::new();
        for &i in changed {
            self.graph.affected_by(i, &mut affected);
        }
        for j in affected {
            let key = (self.graph.node(j).priority, self.graph.node(j).order, j);
            if self.graph.is_ready(j) {
                self.ready.insert(key);
            } else {
                self.ready.remove(&key);
            }
        }
    }

    /// Records a status this runner just caused (a dispatch), until the
    /// event about it brings the whole record.
    pub fn set_status(&mut self, id: &str, status: Status) {
        if let Some(i) = self.graph.index_of(id) {
            self.records[i].status = status;
            self.graph.set_status(i, status);
            self.recheck(&[i]);
        }
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
        let mut per_inbox: HashMap<String, u32> = HashMap::new();
        for &(_, _, i) in &self.ready {
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
            // An inbox never takes more than `window` entries, so offering
            // the script more is wasted work: with thousands of ready tasks
            // it checked every one of them on every pass (README
            // "Performance").
            let offered = per_inbox.entry(agent.clone()).or_insert(0u32);
            if *offered >= window {
                continue;
            }
            *offered += 1;
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
        if r.status == Status::Pending && !self.graph.is_ready(i) {
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

/// Drops the text a dispatcher never reads (descriptions, output, errors):
/// a runner holds every record of the town for its whole life.
fn lighten(mut r: TaskRecord) -> TaskRecord {
    r.description = String::new();
    r.tags = Vec::new();
    r.output = None;
    r.error = None;
    r.log = None;
    r.reason = None;
    r.fingerprint = None;
    r
}

/// Whether two records of a task give the graph the same node apart from
/// status: then a refresh needs no rebuild.
fn same_shape(a: &TaskRecord, b: &TaskRecord) -> bool {
    a.parent == b.parent
        && a.depends_on == b.depends_on
        && a.agent.is_some() == b.agent.is_some()
        && a.on_child_failure == b.on_child_failure
        && a.priority == b.priority
        && a.order == b.order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, parent: &str, deps: &[&str], status: &str, order: u64) -> TaskRecord {
        let mut h = HashMap::new();
        for (k, v) in [
            ("id", id.to_string()),
            ("parent", parent.to_string()),
            ("depends_on", serde_json::to_string(deps).unwrap()),
            ("status", status.to_string()),
            ("order", order.to_string()),
            (
                "agent",
                if parent.is_empty() && id.starts_with('g') {
                    ""
                } else {
                    "dev"
                }
                .into(),
            ),
        ] {
            h.insert(k.to_string(), v);
        }
        TaskRecord::from_hash(id, h).unwrap()
    }

    fn town(statuses: &HashMap<&str, &str>) -> Vec<TaskRecord> {
        let s = |id: &str| statuses.get(id).copied().unwrap_or("pending");
        vec![
            record("g1", "", &[], s("g1"), 0),
            record("a", "g1", &[], s("a"), 1),
            record("b", "g1", &["a"], s("b"), 2),
            record("g2", "", &["g1"], s("g2"), 3),
            record("c", "g2", &[], s("c"), 4),
            record("d", "", &["c"], s("d"), 5),
        ]
    }

    fn ready_ids(s: &Snapshot) -> Vec<String> {
        s.ready
            .iter()
            .map(|&(_, _, i)| s.records[i].id.clone())
            .collect()
    }

    #[test]
    fn refresh_keeps_ready_as_a_rebuild_would() {
        let mut statuses = HashMap::new();
        let mut snap = Snapshot::new(town(&statuses));
        for (id, status) in [
            ("a", "assigned"),
            ("a", "completed"),
            ("b", "completed"),
            ("c", "cancelled"),
            ("c", "pending"),
            ("c", "completed"),
        ] {
            statuses.insert(id, status);
            let fresh: Vec<TaskRecord> =
                town(&statuses).into_iter().filter(|r| r.id == id).collect();
            snap.refresh(fresh);
            let rebuilt = Snapshot::new(town(&statuses));
            assert_eq!(
                ready_ids(&snap),
                ready_ids(&rebuilt),
                "after {id} → {status}"
            );
            let ids = |g: &Graph| -> Vec<String> {
                g.ready().iter().map(|&i| g.node(i).id.clone()).collect()
            };
            assert_eq!(ready_ids(&rebuilt), ids(&rebuilt.graph));
        }
        assert_eq!(ready_ids(&snap), ["d"]);
    }
}
