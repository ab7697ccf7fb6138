//! Dependencies on tasks of other towns: `depends_on = ["api:schema"]` is
//! an edge to task `schema` of town `api` on the same Redis. The graph
//! holds such a task as a remote node — an id and what is known of its
//! status ([`RemoteState`]), never dispatched, never part of the counts —
//! and readiness treats it like a local dependency: completed lets the
//! dependant run, failed or cancelled blocks it, anything else (not read
//! yet, not there yet, pending, running) makes it wait.
//!
//! Whoever builds the graph fills the states in (the runner from the other
//! towns' events, the commands with one read); until then a remote
//! dependency is [`RemoteState::Unknown`] and waits, so a view that did
//! not look never calls such a task ready.

use super::Graph;
use crate::Status;

/// `<town>:<task>` split in two; `None` for a bare (local) id. Ids never
/// hold `:`, so the first one is the separator.
pub fn split_remote(dep: &str) -> Option<(&str, &str)> {
    dep.split_once(':')
}

/// What is known of a task of another town.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteState {
    /// Not read (yet).
    Unknown,
    /// Its town has no such task (or there is no such town) yet.
    Missing,
    /// Its status as its own town's views show it (a group's derived).
    Is(Status),
}

impl std::fmt::Display for RemoteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteState::Unknown => f.write_str("status not read"),
            RemoteState::Missing => f.write_str("no such task yet"),
            RemoteState::Is(s) => write!(f, "{s}"),
        }
    }
}

/// A task of another town that tasks of this graph depend on.
#[derive(Debug, Clone)]
pub(super) struct RemoteNode {
    /// `<town>:<task>`, as written in `depends_on`.
    pub id: String,
    pub state: RemoteState,
    /// Tasks that name it in `depends_on`.
    pub dependants: Vec<usize>,
}

impl Graph {
    /// Every remote dependency, as `<town>:<task>`, in the order first named.
    pub fn remote_ids(&self) -> impl Iterator<Item = &str> {
        self.remotes.iter().map(|r| r.id.as_str())
    }

    /// The other towns this graph depends on, sorted, each once.
    pub fn remote_towns(&self) -> Vec<&str> {
        let mut towns: Vec<&str> = self
            .remotes
            .iter()
            .filter_map(|r| split_remote(&r.id).map(|(town, _)| town))
            .collect();
        towns.sort_unstable();
        towns.dedup();
        towns
    }

    /// What is known of remote dependency `id` (`<town>:<task>`); `None`
    /// when no task of this graph names it.
    pub fn remote_state(&self, id: &str) -> Option<RemoteState> {
        let r = *self.remote_index.get(id)?;
        Some(self.remotes[r].state)
    }

    /// Tasks that name remote dependency `id` in `depends_on`.
    pub fn remote_dependants(&self, id: &str) -> &[usize] {
        self.remote_index
            .get(id)
            .map_or(&[], |&r| self.remotes[r].dependants.as_slice())
    }

    /// Records what is known of remote dependency `id`. Returns whether
    /// that changed anything, and adds to `affected` the tasks whose
    /// readiness may have changed with it (its dependants and everything
    /// inside them), for a dispatcher to ask again.
    pub fn set_remote(&mut self, id: &str, state: RemoteState, affected: &mut Vec<usize>) -> bool {
        let Some(&r) = self.remote_index.get(id) else {
            return false;
        };
        if self.remotes[r].state == state {
            return false;
        }
        self.remotes[r].state = state;
        let mut stack = self.remotes[r].dependants.clone();
        let mut budget = self.nodes.len() * 2;
        while let Some(t) = stack.pop() {
            affected.push(t);
            stack.extend_from_slice(&self.children[t]);
            // Cut a parent cycle from hand-edited data instead of looping.
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
        }
        true
    }

    /// Every remote dependency with what is known of it, to carry over
    /// into a graph rebuilt from changed nodes.
    pub fn remote_states(&self) -> Vec<(String, RemoteState)> {
        self.remotes
            .iter()
            .map(|r| (r.id.clone(), r.state))
            .collect()
    }

    /// Pending tasks that wait for a remote dependency that is not
    /// finished: work that another town's progress may still release,
    /// although nothing in this town moves.
    pub fn waits_on_other_towns(&self) -> bool {
        self.remote_deps.keys().any(|&i| {
            matches!(
                self.readiness(i),
                super::Readiness::Waiting(super::Wait::Remote { .. })
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::node;
    use crate::graph::{Readiness, Wait};

    fn ready_ids(g: &Graph) -> Vec<&str> {
        g.ready()
            .into_iter()
            .map(|i| g.node(i).id.as_str())
            .collect()
    }

    #[test]
    fn a_remote_dependency_waits_until_it_is_completed() {
        let mut g = Graph::new(vec![
            node("login", None, &["api:schema"]),
            node("docs", None, &[]),
        ]);
        assert_eq!(g.remote_towns(), ["api"]);
        assert_eq!(ready_ids(&g), ["docs"], "an unread remote waits");
        assert_eq!(
            g.readiness(0),
            Readiness::Waiting(Wait::Remote {
                task: "api:schema".into(),
                state: RemoteState::Unknown
            })
        );
        assert!(g.waits_on_other_towns());
        let mut affected = Vec::new();
        assert!(g.set_remote(
            "api:schema",
            RemoteState::Is(Status::Running),
            &mut affected
        ));
        assert_eq!(affected, [0]);
        assert_eq!(
            g.readiness(0).to_string_if_waiting(),
            Some("waiting for api:schema (running)".into())
        );
        assert!(!g.set_remote(
            "api:schema",
            RemoteState::Is(Status::Running),
            &mut affected
        ));
        g.set_remote(
            "api:schema",
            RemoteState::Is(Status::Completed),
            &mut affected,
        );
        assert_eq!(ready_ids(&g), ["login", "docs"]);
        assert!(!g.waits_on_other_towns());
    }

    #[test]
    fn a_failed_or_cancelled_remote_blocks_like_a_local_one() {
        for s in [Status::Failed, Status::Cancelled] {
            let mut g = Graph::new(vec![node("login", None, &["api:schema"])]);
            g.set_remote("api:schema", RemoteState::Is(s), &mut Vec::new());
            assert_eq!(
                g.readiness(0),
                Readiness::Waiting(Wait::Blocked {
                    task: "api:schema".into(),
                    status: s
                })
            );
            assert!(!g.waits_on_other_towns(), "blocked is stuck, not waiting");
        }
    }

    #[test]
    fn a_groups_remote_dependency_gates_its_children() {
        let mut g = Graph::new(vec![
            node("auth", None, &["api:schema"]),
            node("login", Some("auth"), &[]),
        ]);
        assert!(ready_ids(&g).is_empty());
        let mut affected = Vec::new();
        g.set_remote(
            "api:schema",
            RemoteState::Is(Status::Completed),
            &mut affected,
        );
        affected.sort_unstable();
        assert_eq!(affected, [0, 1]);
        assert_eq!(ready_ids(&g), ["login"]);
    }

    impl Readiness {
        fn to_string_if_waiting(&self) -> Option<String> {
            match self {
                Readiness::Waiting(w) => Some(w.to_string()),
                _ => None,
            }
        }
    }
}
