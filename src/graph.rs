//! The task graph: groups (parent → children) and dependencies, and the one
//! readiness function that dispatch, `tt plan`, `tt status` and every other
//! view use, so they never disagree about whether a task may run.
//!
//! Rules (DESIGN "Ready"):
//! - a task is ready when it is pending, every `depends_on` is completed,
//!   every ancestor group's `depends_on` is completed, and no ancestor is
//!   cancelled;
//! - a group (a task others name as `parent`) has a status derived from its
//!   children; cancelled children do not count. A group with its own agent
//!   runs once, as a join step, after every child completed; a group with
//!   none completes when they do and is never dispatched;
//! - depending on a group waits for the whole group;
//! - a dependency `<town>:<task>` on another town's task counts the same
//!   way, by what is known of that task ([`remote`]).

mod readiness;
mod remote;
mod waves;

use std::collections::HashMap;

use crate::Status;
use crate::plan::ChildFailure;

pub use readiness::{Readiness, Wait};
pub use remote::{RemoteState, split_remote};

use remote::RemoteNode;

/// What the graph needs to know of one task.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub parent: Option<String>,
    pub depends_on: Vec<String>,
    /// Whether the task runs on an agent if it is a group (join step).
    /// Leaf tasks always run: on their agent or from the backlog.
    pub has_agent: bool,
    /// For a group: what a failed child does to it.
    pub on_child_failure: ChildFailure,
    pub status: Status,
    pub priority: u8,
    /// Position in the file (ad-hoc tasks come after every file task).
    pub order: u64,
}

/// Progress of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub completed: usize,
    pub failed: usize,
    pub running: usize,
    /// Children sitting in an inbox (`assigned`), not started yet.
    pub queued: usize,
    /// Children that count (not cancelled).
    pub total: usize,
}

/// The walk up a task's parents, nearest group first: the one way every
/// rule that looks above a task (readiness, derived status, what a change
/// affects, fail-fast) climbs. Parent links form a forest in a valid plan,
/// but Redis can be edited by hand into a cycle; therefore the walk takes
/// at most as many steps as there are tasks, and a cycle ends it instead of
/// looping.
pub struct Ancestors<'g> {
    parent: &'g [Option<usize>],
    at: Option<usize>,
    steps_left: usize,
}

impl<'g> Ancestors<'g> {
    /// Built from the parent links alone, so that a caller may change other
    /// fields of the graph while it walks.
    fn new(parent: &'g [Option<usize>], i: usize) -> Self {
        Ancestors {
            parent,
            at: parent[i],
            steps_left: parent.len(),
        }
    }
}

impl Iterator for Ancestors<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let t = self.at?;
        if self.steps_left == 0 {
            return None;
        }
        self.steps_left -= 1;
        self.at = self.parent[t];
        Some(t)
    }
}

pub struct Graph {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    children: Vec<Vec<usize>>,
    parent: Vec<Option<usize>>,
    deps: Vec<Vec<usize>>,
    dependants: Vec<Vec<usize>>,
    /// Status with groups derived from their children.
    effective: Vec<Status>,
    /// Tasks of other towns named in `depends_on`.
    remotes: Vec<RemoteNode>,
    remote_index: HashMap<String, usize>,
    /// Per task that has any: its remote dependencies (few tasks do, so
    /// a map, not a list per task).
    remote_deps: HashMap<usize, Vec<usize>>,
}

impl Graph {
    /// Builds the graph. References to unknown tasks are ignored (the plan
    /// validator reports them; ad-hoc tasks may name anything); a
    /// `<town>:<task>` dependency is a remote one, in state
    /// [`RemoteState::Unknown`] until [`Graph::set_remote`] says more.
    pub fn new(nodes: Vec<Node>) -> Self {
        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let n = nodes.len();
        let mut children = vec![Vec::new(); n];
        let mut parent = vec![None; n];
        let mut deps = vec![Vec::new(); n];
        let mut dependants = vec![Vec::new(); n];
        let mut remotes: Vec<RemoteNode> = Vec::new();
        let mut remote_index: HashMap<String, usize> = HashMap::new();
        let mut remote_deps: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            if let Some(&p) = node.parent.as_deref().and_then(|p| index.get(p))
                && p != i
            {
                parent[i] = Some(p);
                children[p].push(i);
            }
            for d in &node.depends_on {
                if let Some(&j) = index.get(d.as_str())
                    && j != i
                {
                    deps[i].push(j);
                    dependants[j].push(i);
                } else if split_remote(d).is_some() {
                    let r = *remote_index.entry(d.clone()).or_insert_with(|| {
                        remotes.push(RemoteNode {
                            id: d.clone(),
                            state: RemoteState::Unknown,
                            dependants: Vec::new(),
                        });
                        remotes.len() - 1
                    });
                    let list = remote_deps.entry(i).or_default();
                    if !list.contains(&r) {
                        list.push(r);
                        remotes[r].dependants.push(i);
                    }
                }
            }
        }
        let mut g = Graph {
            effective: nodes.iter().map(|n| n.status).collect(),
            nodes,
            index,
            children,
            parent,
            deps,
            dependants,
            remotes,
            remote_index,
            remote_deps,
        };
        g.derive_groups();
        g
    }

    /// Group statuses, children first. Parent links form a forest once the
    /// plan is valid; a cycle from hand-edited Redis data is cut, not looped.
    fn derive_groups(&mut self) {
        let n = self.nodes.len();
        let mut pending_children: Vec<usize> = self.children.iter().map(Vec::len).collect();
        let mut stack: Vec<usize> = (0..n).filter(|&i| pending_children[i] == 0).collect();
        while let Some(i) = stack.pop() {
            if !self.children[i].is_empty() {
                self.effective[i] = self.group_status(i);
            }
            if let Some(p) = self.parent[i] {
                pending_children[p] -= 1;
                if pending_children[p] == 0 {
                    stack.push(p);
                }
            }
        }
    }

    /// A group with an agent is its own run while that run is queued,
    /// running or failed. Pending, it is a join step waiting for its
    /// children; completed — it ran before it had children, or gained
    /// more after its join step (`tt assign --parent`) — it is done only
    /// once its children are, so its dependants wait for the whole.
    fn group_status(&self, g: usize) -> Status {
        let own = self.nodes[g].status;
        let own_run_decides = !matches!(own, Status::Pending | Status::Completed);
        if own == Status::Cancelled || (self.nodes[g].has_agent && own_run_decides) {
            return own;
        }
        let p = self.progress(g);
        if p.total == 0 {
            return own;
        }
        let policy = self.nodes[g].on_child_failure;
        if p.failed > 0 && policy != ChildFailure::Continue {
            Status::Failed
        } else if p.completed + p.failed == p.total {
            if self.nodes[g].has_agent {
                own
            } else {
                Status::Completed
            }
        } else if p.running > 0 {
            // Unfinished: as busy as its busiest child. Children already
            // done do not make it running; its progress shows them.
            Status::Running
        } else if p.queued > 0 {
            Status::Assigned
        } else {
            Status::Pending
        }
    }

    /// Changes one task's stored status and re-derives the groups above it,
    /// so a runner can follow transitions without rebuilding the graph:
    /// O(depth), not O(tasks).
    pub fn set_status(&mut self, i: usize, status: Status) {
        self.nodes[i].status = status;
        for t in std::iter::once(i).chain(Ancestors::new(&self.parent, i)) {
            self.effective[t] = if self.children[t].is_empty() {
                self.nodes[t].status
            } else {
                self.group_status(t)
            };
        }
    }

    /// Tasks whose readiness may change when the status of `i` changes:
    /// `i`, the groups above it (their status and join step follow their
    /// children), what depends on any of those, and everything inside each
    /// of them (a group's dependencies and cancellation gate its whole
    /// subtree). A dispatcher re-asks [`Graph::is_ready`] of these only.
    pub fn affected_by(&self, i: usize, out: &mut Vec<usize>) {
        let mut roots = Vec::new();
        for t in std::iter::once(i).chain(self.ancestors(i)) {
            roots.push(t);
            roots.extend_from_slice(&self.dependants[t]);
        }
        let mut stack = roots;
        let mut budget = self.nodes.len() * 2;
        while let Some(t) = stack.pop() {
            out.push(t);
            stack.extend_from_slice(&self.children[t]);
            // Cut a parent cycle from hand-edited data instead of looping.
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
        }
    }

    /// The graph of a plan as the file states it (statuses from `status =`).
    pub fn from_plan(plan: &crate::plan::Plan) -> Self {
        let groups: std::collections::HashSet<&str> = plan
            .tasks
            .iter()
            .filter_map(|t| t.parent.as_deref())
            .collect();
        Graph::new(
            plan.tasks
                .iter()
                .enumerate()
                .map(|(i, t)| Node {
                    id: t.id.clone(),
                    parent: t.parent.clone(),
                    depends_on: t.depends_on.clone(),
                    has_agent: if groups.contains(t.id.as_str()) {
                        t.agent.is_some()
                    } else {
                        true
                    },
                    on_child_failure: t.on_child_failure.unwrap_or_default(),
                    status: t.status.map_or(Status::Pending, Status::applied),
                    priority: t.effective_priority(),
                    order: i as u64,
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes back, to build a changed graph from.
    pub fn into_nodes(self) -> Vec<Node> {
        self.nodes
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn is_group(&self, i: usize) -> bool {
        !self.children[i].is_empty()
    }

    pub fn children(&self, i: usize) -> &[usize] {
        &self.children[i]
    }

    pub fn parent(&self, i: usize) -> Option<usize> {
        self.parent[i]
    }

    /// The groups above `i`, nearest first (see [`Ancestors`]).
    pub fn ancestors(&self, i: usize) -> Ancestors<'_> {
        Ancestors::new(&self.parent, i)
    }

    /// Tasks that name `i` in `depends_on`.
    pub fn dependants(&self, i: usize) -> &[usize] {
        &self.dependants[i]
    }

    /// Status as users see it: a group's is derived from its children.
    pub fn status(&self, i: usize) -> Status {
        self.effective[i]
    }

    /// Children counts of a group (cancelled children are left out).
    pub fn progress(&self, g: usize) -> Progress {
        let mut p = Progress::default();
        for &c in &self.children[g] {
            match self.effective[c] {
                Status::Cancelled => continue,
                Status::Completed => p.completed += 1,
                Status::Failed => p.failed += 1,
                Status::Running => p.running += 1,
                Status::Assigned => p.queued += 1,
                Status::Pending => {}
            }
            p.total += 1;
        }
        p
    }
}

/// A pending task with an agent, for tests: `id`, its `parent` and what it
/// depends on.
#[cfg(test)]
pub(crate) fn node(id: &str, parent: Option<&str>, deps: &[&str]) -> Node {
    Node {
        id: id.into(),
        parent: parent.map(String::from),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        has_agent: true,
        on_child_failure: ChildFailure::Wait,
        status: Status::Pending,
        priority: 2,
        order: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(mut nodes: Vec<Node>) -> Graph {
        for (i, n) in nodes.iter_mut().enumerate() {
            n.order = i as u64;
        }
        Graph::new(nodes)
    }

    fn ids(g: &Graph, list: &[usize]) -> Vec<String> {
        list.iter().map(|&i| g.node(i).id.clone()).collect()
    }

    fn with_status(mut nodes: Vec<Node>, id: &str, s: Status) -> Vec<Node> {
        for n in &mut nodes {
            if n.id == id {
                n.status = s;
            }
        }
        nodes
    }

    #[test]
    fn set_status_matches_a_rebuild() {
        let nodes = vec![
            node("auth", None, &[]),
            node("login", Some("auth"), &[]),
            node("logout", Some("auth"), &[]),
            node("deploy", None, &["auth"]),
        ];
        let mut g = graph(nodes.clone());
        for (id, s) in [
            ("login", Status::Running),
            ("login", Status::Completed),
            ("logout", Status::Completed),
            ("auth", Status::Completed),
        ] {
            let i = g.index_of(id).unwrap();
            g.set_status(i, s);
            let rebuilt = graph(g.nodes().to_vec());
            for j in 0..g.len() {
                assert_eq!(g.status(j), rebuilt.status(j), "{id} → {s}: node {j}");
                assert_eq!(g.readiness(j), rebuilt.readiness(j));
            }
        }
        assert_eq!(ids(&g, &g.ready()), ["deploy"]);
    }

    #[test]
    fn dependencies_gate_readiness() {
        let nodes = vec![node("schema", None, &[]), node("login", None, &["schema"])];
        let g = graph(nodes.clone());
        assert_eq!(ids(&g, &g.ready()), ["schema"]);
        assert_eq!(
            g.readiness(1),
            Readiness::Waiting(Wait::Dependency {
                task: "schema".into(),
                status: Status::Pending
            })
        );
        let g = graph(with_status(nodes.clone(), "schema", Status::Completed));
        assert_eq!(ids(&g, &g.ready()), ["login"]);
        let g = graph(with_status(nodes, "schema", Status::Failed));
        assert_eq!(
            g.readiness(1).clone(),
            Readiness::Waiting(Wait::Blocked {
                task: "schema".into(),
                status: Status::Failed
            })
        );
        assert_eq!(
            format!(
                "{}",
                match g.readiness(1) {
                    Readiness::Waiting(w) => w,
                    _ => unreachable!(),
                }
            ),
            "blocked: schema failed"
        );
    }

    #[test]
    fn dispatch_order_is_priority_then_file_order() {
        let mut nodes = vec![
            node("a", None, &[]),
            node("b", None, &[]),
            node("c", None, &[]),
        ];
        nodes[2].priority = 0;
        let g = graph(nodes);
        assert_eq!(ids(&g, &g.ready()), ["c", "a", "b"]);
    }

    #[test]
    fn group_with_agent_joins_after_children() {
        let nodes = vec![
            node("auth", None, &[]),
            node("login", Some("auth"), &[]),
            node("logout", Some("auth"), &[]),
        ];
        let g = graph(nodes.clone());
        assert_eq!(ids(&g, &g.ready()), ["login", "logout"]);
        assert_eq!(
            g.readiness(0),
            Readiness::Waiting(Wait::Children { done: 0, total: 2 })
        );
        let nodes = with_status(nodes, "login", Status::Completed);
        let g = graph(nodes.clone());
        assert_eq!(g.status(0), Status::Pending, "one done, nothing runs");
        let busy = graph(with_status(nodes.clone(), "logout", Status::Assigned));
        assert_eq!(busy.status(0), Status::Assigned, "its open child is queued");
        let busy = graph(with_status(nodes.clone(), "logout", Status::Running));
        assert_eq!(busy.status(0), Status::Running);
        assert_eq!(
            g.progress(0),
            Progress {
                completed: 1,
                failed: 0,
                running: 0,
                queued: 0,
                total: 2
            }
        );
        let g = graph(with_status(nodes, "logout", Status::Completed));
        assert_eq!(ids(&g, &g.ready()), ["auth"]);
        assert_eq!(g.status(0), Status::Pending, "join step still to run");
    }

    #[test]
    fn group_without_agent_completes_with_children_and_unblocks_dependants() {
        let mut nodes = vec![
            node("auth", None, &[]),
            node("login", Some("auth"), &[]),
            node("deploy", None, &["auth"]),
        ];
        nodes[0].has_agent = false;
        let g = graph(nodes.clone());
        assert_eq!(ids(&g, &g.ready()), ["login"]);
        assert_eq!(g.readiness(0), Readiness::Waiting(Wait::GroupWithoutAgent));
        let g = graph(with_status(nodes, "login", Status::Completed));
        assert_eq!(g.status(0), Status::Completed);
        assert_eq!(ids(&g, &g.ready()), ["deploy"]);
    }

    #[test]
    fn children_wait_for_their_groups_dependencies() {
        let mut nodes = vec![
            node("schema", None, &[]),
            node("auth", None, &["schema"]),
            node("login", Some("auth"), &[]),
        ];
        nodes[1].has_agent = false;
        let g = graph(nodes);
        assert_eq!(ids(&g, &g.ready()), ["schema"]);
        assert!(matches!(
            g.readiness(2),
            Readiness::Waiting(Wait::Dependency { .. })
        ));
    }

    #[test]
    fn cancelled_group_stops_children_and_cancelled_children_do_not_count() {
        let nodes = vec![
            node("auth", None, &[]),
            node("login", Some("auth"), &[]),
            node("old", Some("auth"), &[]),
        ];
        let g = graph(with_status(nodes.clone(), "auth", Status::Cancelled));
        assert!(g.ready().is_empty());
        let nodes = with_status(nodes, "old", Status::Cancelled);
        let g = graph(with_status(nodes, "login", Status::Completed));
        assert_eq!(ids(&g, &g.ready()), ["auth"]);
    }

    #[test]
    fn failed_child_fails_the_group() {
        let nodes = vec![node("auth", None, &[]), node("login", Some("auth"), &[])];
        let g = graph(with_status(nodes, "login", Status::Failed));
        assert_eq!(g.status(0), Status::Failed);
    }

    #[test]
    fn waves_follow_dependencies_and_groups() {
        let mut nodes = vec![
            node("schema", None, &[]),
            node("auth", None, &[]),
            node("login", Some("auth"), &["schema"]),
            node("logout", Some("auth"), &[]),
            node("docs", None, &[]),
            node("deploy", None, &["auth"]),
        ];
        nodes[1].has_agent = true;
        let g = graph(nodes);
        let waves: Vec<Vec<String>> = g.waves().iter().map(|w| ids(&g, w)).collect();
        assert_eq!(
            waves,
            vec![
                vec!["schema", "logout", "docs"],
                vec!["login"],
                vec!["auth"],
                vec!["deploy"],
            ]
        );
    }

    #[test]
    fn child_failure_policies() {
        let base = vec![
            node("auth", None, &[]),
            node("login", Some("auth"), &[]),
            node("logout", Some("auth"), &[]),
            node("deploy", None, &["auth"]),
        ];
        let failed = with_status(
            with_status(base, "login", Status::Failed),
            "logout",
            Status::Completed,
        );
        // wait (default): the group is failed, its join step and dependants wait.
        let g = graph(failed.clone());
        assert_eq!(g.status(0), Status::Failed);
        assert!(g.ready().is_empty());
        // continue: the failed child counts as finished; the join step runs.
        let mut cont = failed.clone();
        cont[0].on_child_failure = ChildFailure::Continue;
        let g = graph(cont.clone());
        assert_eq!(ids(&g, &g.ready()), ["auth"]);
        // ... and without a join step the group completes, unblocking deploy.
        cont[0].has_agent = false;
        let g = graph(cont);
        assert_eq!(g.status(0), Status::Completed);
        assert_eq!(ids(&g, &g.ready()), ["deploy"]);
    }

    #[test]
    fn deep_parent_chains_do_not_overflow() {
        let n = 10_000;
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let parent = (i > 0).then(|| format!("t{}", i - 1));
                let mut nd = node(&format!("t{i}"), None, &[]);
                nd.parent = parent;
                nd
            })
            .collect();
        let g = graph(nodes);
        assert_eq!(ids(&g, &g.ready()), [format!("t{}", n - 1)]);
        assert_eq!(g.waves().len(), n);
    }
}
