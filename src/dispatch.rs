//! One dispatch pass: from the town's records, decide what goes to which
//! inbox next. The runner keeps one [`Snapshot`] for its whole life and
//! refreshes only the records that events name ([`Snapshot::refresh`]), so
//! a transition costs one small read and work proportional to what it can
//! affect, not to the size of the town. Readiness comes from
//! [`crate::graph`], the one function every view uses; the store's script
//! re-checks status and the inbox window atomically, so a stale decision
//! can only be a skipped task, never a double dispatch.
//!
//! Memory: a runner holds every task of the town, so per task it keeps the
//! graph node and an agent number, nothing else (README "Performance").
//!
//! A task record becomes a graph node here (`impl From<&TaskRecord> for
//! Node`), above the store, for the runner and the commands alike.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::Status;
use crate::graph::{Graph, Node, Readiness, RemoteState};
use crate::plan::ChildFailure;
use crate::store::{Dispatch, TaskRecord};

/// What the dispatcher knows of an agent name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSlot {
    /// Most entries its inbox may hold: `prefetch × count`.
    pub window: u32,
    /// Takes tasks that have no agent.
    pub backlog: bool,
}

/// Agent number of a task that has none (the backlog, or a group without a
/// join step).
const NO_AGENT: u32 = u32::MAX;

/// The town as one pass sees it, kept for the runner's whole life: graph
/// nodes and agent numbers only, no records (the commands' one-shot read
/// of full records is the CLI's `TaskView`).
pub struct Snapshot {
    pub graph: Graph,
    /// Per task: its agent, a number into `agent_names`, or [`NO_AGENT`].
    agent: Vec<u32>,
    /// Per task: the attempt its status belongs to, so an event is applied
    /// only as the next step of the state the snapshot holds.
    attempt: Vec<u32>,
    agent_names: Vec<String>,
    agent_numbers: HashMap<String, u32>,
    /// Tasks waiting for their retry backoff, and when it ends (ms).
    retry_at: HashMap<usize, u64>,
    /// Ready tasks per agent number, by (priority, file order, index):
    /// dispatch order. Kept up to date for the tasks a change can affect,
    /// so a pass does not ask the readiness of every task, and looks only
    /// as far into each agent's list as its inbox has room.
    ready: BTreeMap<u32, BTreeSet<(u8, u64, usize)>>,
    /// Tasks whose stored status is assigned or running: work in flight.
    in_flight: BTreeSet<usize>,
    /// Assigned tasks per agent number (the last entry: no agent). An
    /// assigned task sits in its inbox until a worker claims it, so this is
    /// what the inbox holds, and a pass offers only the room left.
    assigned: HashMap<u32, u32>,
    /// Groups with `on_child_failure = "fail"` whose children changed since
    /// the last [`Snapshot::fail_fast`].
    fail_check: BTreeSet<usize>,
}

/// A worker's or recovery's transition, as its event reports it.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub task: &'a str,
    pub attempt: u32,
    pub status: Status,
    pub retry_at: Option<u64>,
}

/// One task as a snapshot is built from it.
struct Entry {
    node: Node,
    agent: Option<String>,
    retry_at: Option<u64>,
    attempt: u32,
}

impl Entry {
    fn of(r: TaskRecord) -> Self {
        Entry {
            node: Node::from(&r),
            agent: r.agent,
            retry_at: r.retry_at,
            attempt: r.attempt,
        }
    }
}

/// A task record as readiness ([`crate::graph`]) sees it: the one
/// conversion, for the runner's snapshot and the commands' views. Here, above
/// the store, so the store knows nothing of the graph.
impl From<&TaskRecord> for Node {
    fn from(r: &TaskRecord) -> Self {
        Node {
            id: r.id.clone(),
            parent: r.parent.clone(),
            depends_on: r.depends_on.clone(),
            has_agent: r.agent.is_some(),
            on_child_failure: r.on_child_failure,
            status: r.status,
            priority: r.priority,
            order: r.order,
        }
    }
}

impl Snapshot {
    pub fn new(records: Vec<TaskRecord>) -> Self {
        Self::build(records.into_iter().map(Entry::of).collect(), Vec::new())
    }

    /// A snapshot of `entries`, with what is known of their dependencies
    /// on other towns.
    fn build(entries: Vec<Entry>, remotes: Vec<(String, RemoteState)>) -> Self {
        let mut s = Snapshot {
            graph: Graph::new(Vec::new()),
            agent: Vec::with_capacity(entries.len()),
            attempt: Vec::with_capacity(entries.len()),
            agent_names: Vec::new(),
            agent_numbers: HashMap::new(),
            retry_at: HashMap::new(),
            ready: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            assigned: HashMap::new(),
            fail_check: BTreeSet::new(),
        };
        let mut nodes = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let number = s.number_of(e.agent);
            s.agent.push(number);
            s.attempt.push(e.attempt);
            if let Some(at) = e.retry_at {
                s.retry_at.insert(i, at);
            }
            nodes.push(e.node);
        }
        s.graph = Graph::new(nodes);
        for (id, state) in remotes {
            s.graph.set_remote(&id, state, &mut Vec::new());
        }
        for i in 0..s.graph.len() {
            s.count_in(i);
            if s.graph.is_group(i) && s.graph.node(i).on_child_failure == ChildFailure::Fail {
                s.fail_check.insert(i);
            }
        }
        for i in s.graph.ready() {
            s.set_ready(i, true);
        }
        s
    }

    fn number_of(&mut self, agent: Option<String>) -> u32 {
        let Some(name) = agent else { return NO_AGENT };
        if let Some(&n) = self.agent_numbers.get(&name) {
            return n;
        }
        let n = self.agent_names.len() as u32;
        self.agent_names.push(name.clone());
        self.agent_numbers.insert(name, n);
        n
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.graph.len()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.is_empty()
    }

    pub fn id(&self, i: usize) -> &str {
        &self.graph.node(i).id
    }

    /// The stored status of a task, if the snapshot has it.
    pub fn status_of(&self, id: &str) -> Option<Status> {
        self.graph.index_of(id).map(|i| self.graph.node(i).status)
    }

    /// The agent a task goes to; `None` for the backlog.
    pub fn agent(&self, i: usize) -> Option<&str> {
        match self.agent[i] {
            NO_AGENT => None,
            n => Some(self.agent_names[n as usize].as_str()),
        }
    }

    /// Adds task `i`'s stored status to the in-flight bookkeeping.
    fn count_in(&mut self, i: usize) {
        match self.graph.node(i).status {
            Status::Assigned => {
                *self.assigned.entry(self.agent[i]).or_insert(0) += 1;
                self.in_flight.insert(i);
            }
            Status::Running => {
                self.in_flight.insert(i);
            }
            _ => {}
        }
    }

    /// Takes task `i`'s stored status out of the in-flight bookkeeping.
    fn count_out(&mut self, i: usize) {
        if self.graph.node(i).status == Status::Assigned
            && let Some(n) = self.assigned.get_mut(&self.agent[i])
        {
            *n = n.saturating_sub(1);
        }
        self.in_flight.remove(&i);
    }

    /// Takes fresh copies of some records. A change of status or agent
    /// updates the graph in place; a new task, or a changed parent,
    /// dependency, priority, order or group policy rebuilds the graph from
    /// what the snapshot holds (never a read of the whole town).
    pub fn refresh(&mut self, fresh: Vec<TaskRecord>) {
        let mut rebuild = Vec::new();
        let mut changed = Vec::new();
        for r in fresh {
            let Some(i) = self.graph.index_of(&r.id) else {
                rebuild.push(r);
                continue;
            };
            if !same_shape(self.graph.node(i), &r) {
                rebuild.push(r);
                continue;
            }
            let agent = self.number_of(r.agent);
            self.attempt[i] = r.attempt;
            self.update(i, agent, r.status, r.retry_at);
            changed.push(i);
        }
        if rebuild.is_empty() {
            self.recheck(&changed);
        } else {
            self.rebuild(rebuild);
        }
    }

    /// Applies a transition an event reports in full — a worker's start,
    /// end or retry, a recovery's requeue: they change the status (and the
    /// retry time) and nothing else, so the task need not be read again.
    ///
    /// Events reach the runner after reads that may already include them
    /// (a read made for another reason while the event was on its way).
    /// So a transition is applied only as the next step of what the
    /// snapshot holds: its attempt, coming from the status it leaves
    /// (`started` leaves `assigned`, the others leave `running`). A status
    /// of an attempt never comes back once left (a new claim is a new
    /// attempt), so such an event cannot be older than the snapshot. Any
    /// other event returns false: the task is read again.
    pub fn apply(&mut self, t: &Transition<'_>) -> bool {
        let Some(i) = self.graph.index_of(t.task) else {
            return false;
        };
        let from = if t.status == Status::Running {
            Status::Assigned
        } else {
            Status::Running
        };
        if self.attempt[i] != t.attempt || self.graph.node(i).status != from {
            return false;
        }
        self.update(i, self.agent[i], t.status, t.retry_at);
        self.recheck(&[i]);
        true
    }

    /// Records the attempt this runner's own dispatch gave a task, which
    /// its `dispatched` event reports; false unless the snapshot holds the
    /// task as assigned by that dispatch.
    pub fn dispatched(&mut self, id: &str, attempt: u32) -> bool {
        match self.graph.index_of(id) {
            Some(i) if self.graph.node(i).status == Status::Assigned => {
                self.attempt[i] = attempt;
                true
            }
            _ => false,
        }
    }

    /// Sets what can change of a task without a rebuild; the caller
    /// rechecks readiness.
    fn update(&mut self, i: usize, agent: u32, status: Status, retry_at: Option<u64>) {
        self.count_out(i);
        // Out of the ready list of its agent, which may change; the recheck
        // puts it back where it belongs.
        self.set_ready(i, false);
        self.agent[i] = agent;
        match retry_at {
            Some(at) => self.retry_at.insert(i, at),
            None => self.retry_at.remove(&i),
        };
        if self.graph.node(i).status != status {
            self.graph.set_status(i, status);
        }
        self.count_in(i);
    }

    /// Rebuilds everything from the snapshot's own tasks, with `fresh`
    /// replacing or adding to them.
    fn rebuild(&mut self, fresh: Vec<TaskRecord>) {
        let old = std::mem::replace(self, Snapshot::build(Vec::new(), Vec::new()));
        let remotes = old.graph.remote_states();
        // Where each fresh record goes, from the graph's own index before
        // the graph is taken apart: no second index of 100k ids.
        let places: Vec<Option<usize>> = fresh.iter().map(|r| old.graph.index_of(&r.id)).collect();
        let names = old.agent_names;
        let agents = old.agent;
        let attempts = old.attempt;
        let mut retry_at = old.retry_at;
        let mut entries: Vec<Entry> = old
            .graph
            .into_nodes()
            .into_iter()
            .enumerate()
            .map(|(i, node)| Entry {
                node,
                agent: names.get(agents[i] as usize).cloned(),
                retry_at: retry_at.remove(&i),
                attempt: attempts[i],
            })
            .collect();
        // New ids, in case one comes twice.
        let mut added: HashMap<String, usize> = HashMap::new();
        for (r, place) in fresh.into_iter().zip(places) {
            let e = Entry::of(r);
            match place.or_else(|| added.get(&e.node.id).copied()) {
                Some(i) => entries[i] = e,
                None => {
                    added.insert(e.node.id.clone(), entries.len());
                    entries.push(e);
                }
            }
        }
        // The order `Store::tasks` reads them in: the sorted set's score,
        // ties by id.
        entries.sort_by(|a, b| {
            (a.node.priority, a.node.order, &a.node.id).cmp(&(
                b.node.priority,
                b.node.order,
                &b.node.id,
            ))
        });
        *self = Snapshot::build(entries, remotes);
    }

    /// Records what is known of a task of another town (`<town>:<task>`)
    /// that tasks here depend on, and rechecks the tasks it gates.
    pub fn set_remote(&mut self, id: &str, state: RemoteState) {
        let mut affected = Vec::new();
        if self.graph.set_remote(id, state, &mut affected) {
            for j in affected {
                let ready = self.graph.is_ready(j);
                self.set_ready(j, ready);
            }
        }
    }

    /// Brings `ready` and the fail-fast checks up to date after the status
    /// of `changed` changed.
    fn recheck(&mut self, changed: &[usize]) {
        let mut affected = Vec::new();
        for &i in changed {
            self.graph.affected_by(i, &mut affected);
            for g in self.graph.ancestors(i) {
                if self.graph.node(g).on_child_failure == ChildFailure::Fail {
                    self.fail_check.insert(g);
                }
            }
        }
        for j in affected {
            let ready = self.graph.is_ready(j);
            self.set_ready(j, ready);
        }
    }

    fn set_ready(&mut self, i: usize, ready: bool) {
        let key = (self.graph.node(i).priority, self.graph.node(i).order, i);
        if ready {
            self.ready.entry(self.agent[i]).or_default().insert(key);
        } else if let Some(set) = self.ready.get_mut(&self.agent[i]) {
            set.remove(&key);
            if set.is_empty() {
                self.ready.remove(&self.agent[i]);
            }
        }
    }

    /// Records a status this runner just caused (a dispatch), until the
    /// event about it brings the whole record.
    pub fn set_status(&mut self, id: &str, status: Status) {
        if let Some(i) = self.graph.index_of(id) {
            self.count_out(i);
            self.graph.set_status(i, status);
            self.count_in(i);
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
        let mut next_retry: Option<u64> = None;
        let waiting = |i: usize| self.retry_at.get(&i).is_some_and(|&at| at > now_ms);
        for (&i, &at) in &self.retry_at {
            if at > now_ms && self.graph.is_ready(i) {
                next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
            }
        }
        // The backlog is one list every backlog worker takes from; its window
        // is what those agents could hold between them.
        let backlog_window: u32 = agents
            .values()
            .filter(|a| a.backlog)
            .map(|a| a.window)
            .sum::<u32>()
            .max(1);
        let mut out = Vec::new();
        for (&number, ready) in &self.ready {
            let window = match number {
                // No agent: the town backlog. Without a declared backlog
                // agent it still goes there, one at a time, for workers
                // started by hand with `--backlog`.
                NO_AGENT => backlog_window,
                n => agents
                    .get(&self.agent_names[n as usize])
                    .map_or(1, |s| s.window),
            };
            // With thousands of ready tasks, offering each pass the whole
            // window (or all of them) makes the script check tasks that
            // cannot go; therefore only the room left in the inbox is
            // offered (README "Performance").
            let held = self.assigned.get(&number).copied().unwrap_or(0);
            let mut room = window.saturating_sub(held);
            for &(priority, order, i) in ready {
                if room == 0 {
                    break;
                }
                if waiting(i) {
                    continue;
                }
                room -= 1;
                let agent = self.agent(i).unwrap_or_default().to_string();
                out.push((
                    (priority, order),
                    Dispatch {
                        task: self.id(i).to_string(),
                        agent,
                        window,
                    },
                ));
            }
        }
        out.sort_by_key(|(key, _)| *key);
        (out.into_iter().map(|(_, d)| d).collect(), next_retry)
    }

    /// Whether anything can still happen without outside help: work in
    /// flight, or ready work that has an agent to go to. `live` holds the
    /// agent names with a running worker (declared ones count as coming).
    pub fn active(&self, agents: &HashMap<String, AgentSlot>, live: &HashSet<String>) -> bool {
        self.in_flight
            .iter()
            .copied()
            .chain(self.ready.values().flatten().map(|&(_, _, i)| i))
            .any(|i| self.in_play(i, agents, live))
    }

    /// [`Snapshot::active`] without ready work: whether work already in
    /// flight goes on (when nothing new may be dispatched).
    pub fn in_flight_active(
        &self,
        agents: &HashMap<String, AgentSlot>,
        live: &HashSet<String>,
    ) -> bool {
        self.in_flight
            .iter()
            .any(|&i| self.in_play(i, agents, live))
    }

    fn in_play(
        &self,
        i: usize,
        agents: &HashMap<String, AgentSlot>,
        live: &HashSet<String>,
    ) -> bool {
        // Stored status, not the derived one: a group "running" because
        // its children are is not work in flight, its join step is.
        match self.graph.node(i).status {
            Status::Running => return true,
            Status::Assigned => {}
            Status::Pending if self.graph.is_ready(i) => {}
            _ => return false,
        }
        match self.agent(i) {
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
        if self.graph.status(i).is_final() || self.in_play(i, agents, live) {
            return None;
        }
        if self.graph.node(i).status == Status::Pending
            && let Readiness::Waiting(w) = self.graph.readiness(i)
        {
            return Some(w.to_string());
        }
        Some(match self.agent(i) {
            Some(a) => format!(
                "agent `{a}` is not declared in [agents] and no worker of it runs (start one with `tt agent {a}`)"
            ),
            None => "no agent takes it (set `agent`, `[meta] default_agent`, or an agent with `backlog = true`)".into(),
        })
    }

    /// Unfinished tasks of groups with `on_child_failure = "fail"` that have
    /// a failed child: they are cancelled (fail fast), with the reason.
    /// Looks only at groups whose children changed since the last call.
    pub fn fail_fast(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for g in std::mem::take(&mut self.fail_check) {
            if self.graph.progress(g).failed == 0 {
                continue;
            }
            let reason = format!("group {} failed (on_child_failure = \"fail\")", self.id(g));
            let mut stack: Vec<usize> = self.graph.children(g).to_vec();
            while let Some(c) = stack.pop() {
                stack.extend_from_slice(self.graph.children(c));
                if !self.graph.node(c).status.is_final() {
                    out.push((self.id(c).to_string(), reason.clone()));
                }
            }
        }
        out
    }

    /// Counts of statuses as users see them (groups derived), leaf tasks
    /// and groups alike.
    pub fn counts(&self) -> HashMap<Status, usize> {
        let mut c = HashMap::new();
        for i in 0..self.len() {
            *c.entry(self.graph.status(i)).or_insert(0) += 1;
        }
        c
    }
}

/// Whether a fresh record gives the graph the same node as it has, apart
/// from status: then a refresh needs no rebuild.
fn same_shape(a: &Node, b: &TaskRecord) -> bool {
    a.parent == b.parent
        && a.depends_on == b.depends_on
        && a.has_agent == b.agent.is_some()
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
        TaskRecord::from_hash(id, h)
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
        let mut ready: Vec<_> = s.ready.values().flatten().copied().collect();
        ready.sort();
        ready
            .into_iter()
            .map(|(_, _, i)| s.id(i).to_string())
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

    fn slots(window: u32) -> HashMap<String, AgentSlot> {
        HashMap::from([(
            "dev".to_string(),
            AgentSlot {
                window,
                backlog: false,
            },
        )])
    }

    /// `agents` and an agent `ops` with a window of one.
    fn with_ops(mut agents: HashMap<String, AgentSlot>) -> HashMap<String, AgentSlot> {
        agents.insert(
            "ops".into(),
            AgentSlot {
                window: 1,
                backlog: false,
            },
        );
        agents
    }

    fn offered(s: &Snapshot, window: u32) -> Vec<String> {
        s.plan_dispatch(&slots(window), 0)
            .0
            .into_iter()
            .map(|d| d.task)
            .collect()
    }

    /// Independent tasks `t0`… of agent `dev`.
    fn flat(n: usize) -> Vec<TaskRecord> {
        (0..n)
            .map(|i| record(&format!("t{i}"), "", &[], "pending", i as u64))
            .collect()
    }

    #[test]
    fn a_pass_offers_only_the_room_left_in_the_inbox() {
        let mut snap = Snapshot::new(flat(5));
        assert_eq!(offered(&snap, 2), ["t0", "t1"]);
        snap.set_status("t0", Status::Assigned);
        assert_eq!(offered(&snap, 2), ["t1"], "one of two places is taken");
        snap.set_status("t1", Status::Assigned);
        assert!(offered(&snap, 2).is_empty(), "the inbox is full");
        // A worker claims t0: the inbox has room again.
        snap.refresh(vec![record("t0", "", &[], "running", 0)]);
        assert_eq!(offered(&snap, 2), ["t2"]);
        snap.refresh(vec![record("t0", "", &[], "completed", 0)]);
        assert_eq!(offered(&snap, 2), ["t2"], "t1 still holds a place");
    }

    #[test]
    fn offers_keep_priority_and_file_order_across_agents() {
        let mut records = flat(3);
        let mut other = record("x", "", &[], "pending", 3);
        other.agent = Some("ops".into());
        other.priority = 0;
        records.push(other);
        let snap = Snapshot::new(records);
        let batch = snap.plan_dispatch(&with_ops(slots(10)), 0).0;
        let got: Vec<(&str, &str)> = batch
            .iter()
            .map(|d| (d.task.as_str(), d.agent.as_str()))
            .collect();
        assert_eq!(
            got,
            [("x", "ops"), ("t0", "dev"), ("t1", "dev"), ("t2", "dev")]
        );
    }

    #[test]
    fn tasks_in_retry_backoff_wait_and_say_when() {
        let mut records = flat(2);
        records[0].retry_at = Some(5_000);
        let snap = Snapshot::new(records);
        let (batch, next) = snap.plan_dispatch(&slots(5), 1_000);
        assert_eq!(
            batch.iter().map(|d| d.task.as_str()).collect::<Vec<_>>(),
            ["t1"]
        );
        assert_eq!(next, Some(5_000));
        let (batch, next) = snap.plan_dispatch(&slots(5), 6_000);
        assert_eq!(batch.len(), 2, "due now");
        assert_eq!(next, None);
    }

    #[test]
    fn fail_fast_cancels_the_rest_of_a_failing_group_once() {
        let mut records = town(&HashMap::new());
        records[0].on_child_failure = ChildFailure::Fail;
        let mut snap = Snapshot::new(records);
        assert!(snap.fail_fast().is_empty(), "nothing failed yet");
        let mut failed = record("a", "g1", &[], "failed", 1);
        failed.on_child_failure = ChildFailure::Wait;
        snap.refresh(vec![failed]);
        let doomed = snap.fail_fast();
        assert_eq!(
            doomed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(doomed[0].1.contains("group g1 failed"));
        // Nothing changed since: no second look.
        assert!(snap.fail_fast().is_empty());
    }

    #[test]
    fn active_follows_work_in_flight_and_ready_work() {
        let live = HashSet::new();
        let mut snap = Snapshot::new(flat(1));
        assert!(
            snap.active(&slots(1), &live),
            "ready work for a declared agent"
        );
        assert!(!snap.active(&HashMap::new(), &live), "no agent for it");
        snap.set_status("t0", Status::Assigned);
        assert!(snap.active(&slots(1), &live));
        snap.refresh(vec![record("t0", "", &[], "running", 0)]);
        assert!(
            snap.active(&HashMap::new(), &live),
            "running counts regardless"
        );
        snap.refresh(vec![record("t0", "", &[], "completed", 0)]);
        assert!(!snap.active(&slots(1), &live));
    }

    #[test]
    fn a_changed_agent_moves_a_ready_task_between_lists() {
        let mut snap = Snapshot::new(flat(1));
        let mut moved = record("t0", "", &[], "pending", 0);
        moved.agent = Some("ops".into());
        snap.refresh(vec![moved]);
        let batch = snap.plan_dispatch(&with_ops(slots(1)), 0).0;
        assert_eq!(batch.len(), 1);
        assert_eq!(
            (batch[0].task.as_str(), batch[0].agent.as_str()),
            ("t0", "ops")
        );
    }

    #[test]
    fn a_remote_dependency_releases_its_dependant_and_survives_a_rebuild() {
        let mut snap = Snapshot::new(vec![record("login", "", &["api:schema"], "pending", 0)]);
        assert!(offered(&snap, 5).is_empty(), "api:schema is not known");
        snap.set_remote("api:schema", RemoteState::Is(Status::Running));
        assert!(offered(&snap, 5).is_empty());
        snap.set_remote("api:schema", RemoteState::Is(Status::Completed));
        assert_eq!(offered(&snap, 5), ["login"]);
        // A new task rebuilds the graph: what is known of api:schema stays.
        snap.refresh(vec![record("late", "", &[], "pending", 1)]);
        assert_eq!(offered(&snap, 5), ["login", "late"]);
    }

    #[test]
    fn a_new_task_rebuilds_with_what_the_snapshot_held() {
        let mut snap = Snapshot::new(flat(2));
        snap.set_status("t0", Status::Assigned);
        snap.refresh(vec![record("late", "", &["t1"], "pending", 9)]);
        assert_eq!(snap.len(), 3);
        assert_eq!(
            offered(&snap, 5),
            ["t1"],
            "t0 still assigned; late waits for t1"
        );
        assert!(snap.active(&slots(1), &HashSet::new()));
    }

    fn transition(task: &str, attempt: u32, status: Status) -> Transition<'_> {
        Transition {
            task,
            attempt,
            status,
            retry_at: None,
        }
    }

    #[test]
    fn applying_transitions_matches_reading_the_records() {
        let mut statuses = HashMap::new();
        let mut applied = Snapshot::new(town(&statuses));
        let mut read = Snapshot::new(town(&statuses));
        for (id, status) in [
            ("a", Status::Assigned),
            ("a", Status::Running),
            ("a", Status::Completed),
            ("b", Status::Assigned),
            ("b", Status::Running),
            ("b", Status::Failed),
            ("c", Status::Assigned),
            ("c", Status::Running),
            ("c", Status::Completed),
        ] {
            statuses.insert(id, status.as_str());
            if status == Status::Assigned {
                applied.set_status(id, status);
                assert!(applied.dispatched(id, 1));
            } else {
                assert!(applied.apply(&transition(id, 1, status)), "{id} → {status}");
            }
            let mut fresh: Vec<TaskRecord> =
                town(&statuses).into_iter().filter(|r| r.id == id).collect();
            fresh[0].attempt = 1;
            read.refresh(fresh);
            assert_eq!(
                ready_ids(&applied),
                ready_ids(&read),
                "after {id} → {status}"
            );
            assert_eq!(applied.counts(), read.counts());
        }
        assert!(!applied.apply(&transition("nope", 1, Status::Running)));
    }

    #[test]
    fn an_event_older_than_what_was_read_is_not_applied() {
        // `d` waits for `t`; `t` runs attempt 1.
        let task = |status: &str, attempt: u32| {
            let mut r = record("t", "", &[], status, 0);
            r.attempt = attempt;
            r
        };
        let mut snap = Snapshot::new(vec![
            task("running", 1),
            record("d", "", &["t"], "pending", 1),
        ]);
        // `t` completes (event on its way), then a save sets it pending
        // again; the runner reads that, and dispatches attempt 2.
        snap.refresh(vec![task("pending", 1)]);
        snap.set_status("t", Status::Assigned);
        assert!(snap.dispatched("t", 2));
        // The old `completed` arrives: it is not the next step of attempt 2.
        assert!(!snap.apply(&transition("t", 1, Status::Completed)));
        assert_eq!(snap.status_of("t"), Some(Status::Assigned));
        assert!(offered(&snap, 5).is_empty(), "d still waits for t");
        // Nor is a `started` of a task the snapshot has as running already.
        snap.refresh(vec![task("running", 2)]);
        assert!(!snap.apply(&transition("t", 2, Status::Running)));
        assert!(snap.apply(&transition("t", 2, Status::Completed)));
        assert_eq!(offered(&snap, 5), ["d"]);
    }
}
