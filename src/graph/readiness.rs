//! The readiness function: whether a task may run now, and if not, why.
//! Dispatch, `tt plan`, `tt status` and every other view ask it, so they
//! never disagree (the rules are in the header of [`super`]).

use super::{Graph, RemoteState};
use crate::Status;
use crate::plan::ChildFailure;

/// Why a pending task is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// A dependency (of the task or of a group it belongs to) is not done.
    Dependency { task: String, status: Status },
    /// A dependency failed or was cancelled: only `tt retry` or an edit helps.
    /// A remote one is named `<town>:<task>`.
    Blocked { task: String, status: Status },
    /// A dependency on a task of another town (`<town>:<task>`) that is not
    /// completed, or not known to be.
    Remote { task: String, state: RemoteState },
    /// A group waiting for its children (`done` of `total` completed).
    Children { done: usize, total: usize },
    /// A group with no agent: it completes when its children do.
    GroupWithoutAgent,
    /// An ancestor group was cancelled.
    GroupCancelled { group: String },
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Dependency { task, status } => write!(f, "waits for {task} ({status})"),
            Wait::Blocked { task, status } => write!(f, "blocked: {task} {status}"),
            Wait::Remote { task, state } => match state {
                RemoteState::Unknown => write!(f, "waiting for {task}"),
                _ => write!(f, "waiting for {task} ({state})"),
            },
            Wait::Children { done, total } => write!(f, "waits for children ({done}/{total} done)"),
            Wait::GroupWithoutAgent => f.write_str("group: completes with its children"),
            Wait::GroupCancelled { group } => write!(f, "group {group} cancelled"),
        }
    }
}

/// Readiness of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Waiting(Wait),
    /// Not pending: already dispatched, running or finished.
    NotPending,
}

/// [`Readiness`] with tasks named by index (see [`Graph::check`]).
enum Check {
    Ready,
    Waiting(WaitAt),
    NotPending,
}

enum WaitAt {
    Dependency(usize),
    Blocked(usize),
    Remote(usize),
    RemoteBlocked(usize),
    Children { done: usize, total: usize },
    GroupWithoutAgent,
    GroupCancelled(usize),
}

impl Graph {
    /// The readiness function.
    pub fn readiness(&self, i: usize) -> Readiness {
        match self.check(i) {
            Check::Ready => Readiness::Ready,
            Check::NotPending => Readiness::NotPending,
            Check::Waiting(w) => Readiness::Waiting(match w {
                WaitAt::Dependency(d) => Wait::Dependency {
                    task: self.nodes[d].id.clone(),
                    status: self.effective[d],
                },
                WaitAt::Blocked(d) => Wait::Blocked {
                    task: self.nodes[d].id.clone(),
                    status: self.effective[d],
                },
                WaitAt::Remote(r) => Wait::Remote {
                    task: self.remotes[r].id.clone(),
                    state: self.remotes[r].state,
                },
                WaitAt::RemoteBlocked(r) => Wait::Blocked {
                    task: self.remotes[r].id.clone(),
                    status: match self.remotes[r].state {
                        RemoteState::Is(s) => s,
                        _ => Status::Failed,
                    },
                },
                WaitAt::Children { done, total } => Wait::Children { done, total },
                WaitAt::GroupWithoutAgent => Wait::GroupWithoutAgent,
                WaitAt::GroupCancelled(g) => Wait::GroupCancelled {
                    group: self.nodes[g].id.clone(),
                },
            }),
        }
    }

    /// Whether [`Graph::readiness`] says `Ready`, without building the
    /// reason a task waits: dispatch asks this of every task on every pass.
    pub fn is_ready(&self, i: usize) -> bool {
        matches!(self.check(i), Check::Ready)
    }

    /// The rules themselves, naming tasks by index so that asking costs no
    /// allocation; [`Graph::readiness`] turns the answer into ids.
    fn check(&self, i: usize) -> Check {
        if self.nodes[i].status != Status::Pending {
            return Check::NotPending;
        }
        // The task's own dependencies, then each ancestor's.
        for t in std::iter::once(i).chain(self.ancestors(i)) {
            if t != i && self.effective[t] == Status::Cancelled {
                return Check::Waiting(WaitAt::GroupCancelled(t));
            }
            for &d in &self.deps[t] {
                match self.effective[d] {
                    Status::Completed => {}
                    Status::Failed | Status::Cancelled => {
                        return Check::Waiting(WaitAt::Blocked(d));
                    }
                    _ => return Check::Waiting(WaitAt::Dependency(d)),
                }
            }
            // Few towns have any: skip the lookup for the rest.
            if let Some(remote) = (!self.remote_deps.is_empty())
                .then(|| self.remote_deps.get(&t))
                .flatten()
            {
                for &r in remote {
                    match self.remotes[r].state {
                        RemoteState::Is(Status::Completed) => {}
                        RemoteState::Is(Status::Failed | Status::Cancelled) => {
                            return Check::Waiting(WaitAt::RemoteBlocked(r));
                        }
                        _ => return Check::Waiting(WaitAt::Remote(r)),
                    }
                }
            }
        }
        if self.is_group(i) {
            if !self.nodes[i].has_agent {
                return Check::Waiting(WaitAt::GroupWithoutAgent);
            }
            let p = self.progress(i);
            let finished = match self.nodes[i].on_child_failure {
                ChildFailure::Continue => p.completed + p.failed,
                ChildFailure::Wait | ChildFailure::Fail => p.completed,
            };
            if p.total > 0 && finished < p.total {
                return Check::Waiting(WaitAt::Children {
                    done: p.completed,
                    total: p.total,
                });
            }
        }
        Check::Ready
    }

    /// Ready tasks in dispatch order: (priority, file order).
    pub fn ready(&self) -> Vec<usize> {
        let mut ready: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.is_ready(i))
            .collect();
        self.sort_dispatch_order(&mut ready);
        ready
    }

    pub fn sort_dispatch_order(&self, tasks: &mut [usize]) {
        tasks.sort_by_key(|&i| (self.nodes[i].priority, self.nodes[i].order));
    }

    /// Whether `tt run` dispatches this task at all (groups without an agent
    /// never run; they complete with their children).
    pub fn runs(&self, i: usize) -> bool {
        !self.is_group(i) || self.nodes[i].has_agent
    }
}
