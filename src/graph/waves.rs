//! What waits for what, as a graph of task starts and ends: the dispatch
//! waves `tt plan` shows, and the cycle check of ad-hoc tasks.

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use super::Graph;
use crate::Status;

impl Graph {
    /// Dispatch waves if every task succeeds: wave 1 is what is ready now,
    /// wave 2 what becomes ready once wave 1 completed, and so on. Each wave
    /// is in dispatch order. Finished and cancelled tasks are left out.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let n = self.nodes.len();
        let g = self.wait_graph();
        let Ok(order) = toposort(&g, None) else {
            return Vec::new();
        };
        let mut level = vec![0usize; 2 * n];
        for node in order.into_iter().rev() {
            let waits = g
                .neighbors(node)
                .map(|t| level[t.index()])
                .max()
                .unwrap_or(0);
            let i = node.index() / 2;
            let is_done = node.index() % 2 == 1;
            let status = self.nodes[i].status;
            let counts =
                is_done && self.runs(i) && !matches!(status, Status::Completed | Status::Cancelled);
            level[node.index()] = waits + usize::from(counts);
        }
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for i in 0..n {
            let status = self.nodes[i].status;
            if !self.runs(i) || status.is_final() {
                continue;
            }
            let w = level[2 * i + 1];
            if w == 0 {
                continue;
            }
            if waves.len() < w {
                waves.resize_with(w, Vec::new);
            }
            waves[w - 1].push(i);
        }
        for wave in &mut waves {
            self.sort_dispatch_order(wave);
        }
        waves
    }

    /// Whether some task waits, through dependencies and groups, for
    /// itself: then it can never run. The file validator reports such
    /// plans with their path; this checks a graph with an ad-hoc task in it.
    pub fn has_wait_cycle(&self) -> bool {
        toposort(&self.wait_graph(), None).is_err()
    }

    /// What waits for what: node `2t` is the start of task `t`, `2t + 1`
    /// its end. A start waits for the end of each dependency and for the
    /// start of its group; an end waits for its own start and for the end
    /// of each child. (Edges point from the waiting node.)
    fn wait_graph(&self) -> DiGraph<(), ()> {
        let n = self.nodes.len();
        let mut g: DiGraph<(), ()> = DiGraph::with_capacity(2 * n, 4 * n);
        for _ in 0..2 * n {
            g.add_node(());
        }
        let start = |i: usize| NodeIndex::new(2 * i);
        let done = |i: usize| NodeIndex::new(2 * i + 1);
        for i in 0..n {
            g.add_edge(done(i), start(i), ());
            for &d in &self.deps[i] {
                g.add_edge(start(i), done(d), ());
            }
            if let Some(p) = self.parent[i] {
                g.add_edge(start(i), start(p), ());
                g.add_edge(done(p), done(i), ());
            }
        }
        g
    }
}

impl Graph {
    /// One cycle of waits per group of tasks that wait for each other, as
    /// the tasks along it in order (each once): empty when every task can
    /// run some day. For graphs merged from several towns, where no file
    /// validator saw the whole.
    pub fn wait_cycles(&self) -> Vec<Vec<usize>> {
        use std::collections::{HashMap, HashSet, VecDeque};
        let g = self.wait_graph();
        let mut out = Vec::new();
        // kosaraju_scc is iterative: no stack overflow on deep chains.
        for scc in petgraph::algo::kosaraju_scc(&g) {
            if scc.len() < 2 {
                continue;
            }
            let members: HashSet<NodeIndex> = scc.iter().copied().collect();
            let Some(first) = scc.iter().copied().min() else {
                continue;
            };
            // Breadth-first back to `first` inside the component.
            let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
            let mut queue = VecDeque::from([first]);
            let mut path = Vec::new();
            'search: while let Some(n) = queue.pop_front() {
                for t in g.neighbors(n) {
                    if !members.contains(&t) {
                        continue;
                    }
                    if t == first {
                        let mut cur = n;
                        path.push(cur);
                        while cur != first {
                            let Some(&p) = prev.get(&cur) else { break };
                            cur = p;
                            path.push(cur);
                        }
                        path.reverse();
                        break 'search;
                    }
                    if let std::collections::hash_map::Entry::Vacant(v) = prev.entry(t) {
                        v.insert(n);
                        queue.push_back(t);
                    }
                }
            }
            let mut tasks: Vec<usize> = Vec::new();
            for n in path {
                let t = n.index() / 2;
                if !tasks.contains(&t) {
                    tasks.push(t);
                }
            }
            if tasks.len() > 1 {
                out.push(tasks);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Node;
    use crate::graph::node;

    fn cycles(nodes: Vec<Node>) -> Vec<Vec<String>> {
        let g = Graph::new(nodes);
        g.wait_cycles()
            .into_iter()
            .map(|c| c.into_iter().map(|i| g.node(i).id.clone()).collect())
            .collect()
    }

    #[test]
    fn wait_cycles_name_the_tasks_in_order_and_only_on_a_cycle() {
        assert!(cycles(vec![node("x", None, &["y"]), node("y", None, &[])]).is_empty());
        assert_eq!(
            cycles(vec![
                node("x", None, &["y"]),
                node("y", None, &["z"]),
                node("z", None, &["x"]),
                node("free", None, &["x"]),
            ]),
            [["x", "y", "z"]]
        );
        // Through a group: a child waits for what its group depends on.
        assert_eq!(
            cycles(vec![
                node("g", None, &["w"]),
                node("c", Some("g"), &[]),
                node("w", None, &["c"]),
            ]),
            [["g", "w", "c"]]
        );
    }
}
