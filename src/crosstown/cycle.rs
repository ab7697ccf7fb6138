//! Cycles of waits across towns: `a:x` depends on `b:y`, which depends on
//! `a:x`. No file validator sees both files, and each town waits for the
//! other for ever, so the views that read the other towns anyway
//! (`tt plan`, `tt status`) look for such a cycle and warn, naming it.
//!
//! Cheap by construction: first the towns alone (who depends on whom,
//! from graphs already read); only when they form a cycle are the towns
//! on it merged into one graph of `<town>:<task>` nodes and searched.
//! Towns the other towns depend on are read too (each once, at most
//! [`MAX_TOWNS`]), so a cycle through three towns is found as well.

use std::collections::{BTreeMap, BTreeSet};

use super::OtherTown;
use crate::graph::{Graph, Node, split_remote};
use crate::store::{RemoteTown, Store, StoreError};

/// Most towns read to look for a cycle, besides the ones already read.
pub const MAX_TOWNS: usize = 16;

/// A cycle of waits, as `<town>:<task>` in order (the first one waits for
/// the second, …, the last for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<String>);

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut path = self.0.clone();
        if let Some(first) = self.0.first() {
            path.push(first.clone());
        }
        f.write_str(&path.join(" → "))
    }
}

/// Reads, into `towns`, the towns that the towns in it depend on (and so
/// on), except `own` and at most [`MAX_TOWNS`] of them; then the cycles
/// across towns that `own`'s `graph` and `towns` make.
pub async fn find(
    store: &Store,
    own: &str,
    graph: &Graph,
    towns: &mut BTreeMap<String, OtherTown>,
) -> Result<Vec<Cycle>, StoreError> {
    if graph.remote_towns().is_empty() {
        return Ok(Vec::new());
    }
    let mut extra = 0;
    loop {
        let wanted: BTreeSet<String> = towns
            .values()
            .flat_map(|t| t.graph().remote_towns())
            .filter(|t| *t != own && !towns.contains_key(*t))
            .map(String::from)
            .collect();
        if wanted.is_empty() || extra >= MAX_TOWNS {
            break;
        }
        for town in wanted.into_iter().take(MAX_TOWNS - extra) {
            extra += 1;
            match OtherTown::read(&RemoteTown::of(store, &town)).await {
                Ok(other) => {
                    towns.insert(town, other);
                }
                Err(e) if e.is_connection_error() => return Err(e),
                // A town that holds what tt never writes is left out.
                Err(_) => {}
            }
        }
    }
    Ok(cycles(own, graph, towns))
}

/// The cycles across towns of `own`'s `graph` and the `towns` read.
pub fn cycles(own: &str, graph: &Graph, towns: &BTreeMap<String, OtherTown>) -> Vec<Cycle> {
    let mut all: BTreeMap<&str, &Graph> =
        towns.iter().map(|(t, o)| (t.as_str(), o.graph())).collect();
    all.insert(own, graph);
    let on_cycle = towns_on_cycles(&all);
    if on_cycle.is_empty() {
        return Vec::new();
    }
    let mut nodes = Vec::new();
    for town in &on_cycle {
        let Some(g) = all.get(town.as_str()) else {
            continue;
        };
        let q = |id: &str| match split_remote(id) {
            Some(_) => id.to_string(),
            None => format!("{town}:{id}"),
        };
        for n in g.nodes() {
            nodes.push(Node {
                id: q(&n.id),
                parent: n.parent.as_deref().map(q),
                depends_on: n.depends_on.iter().map(|d| q(d)).collect(),
                ..n.clone()
            });
        }
    }
    let merged = Graph::new(nodes);
    merged
        .wait_cycles()
        .into_iter()
        // A finished task on it waits for nothing any more.
        .filter(|c| {
            c.iter().all(|&i| {
                !matches!(
                    merged.status(i),
                    crate::Status::Completed | crate::Status::Cancelled
                )
            })
        })
        .map(|c| Cycle(c.into_iter().map(|i| merged.node(i).id.clone()).collect()))
        .filter(|c| {
            let first = c.0.first().and_then(|t| split_remote(t)).map(|(t, _)| t);
            c.0.iter().any(|t| split_remote(t).map(|(t, _)| t) != first)
        })
        .collect()
}

/// The towns on some cycle of "depends on a task of": the only ones a
/// cycle of tasks across towns can pass through.
fn towns_on_cycles(all: &BTreeMap<&str, &Graph>) -> BTreeSet<String> {
    let names: Vec<&str> = all.keys().copied().collect();
    let mut g = petgraph::graph::DiGraph::<(), ()>::new();
    let idx: Vec<_> = names.iter().map(|_| g.add_node(())).collect();
    for (i, town) in names.iter().enumerate() {
        for dep in all[town].remote_towns() {
            if let Some(j) = names.iter().position(|n| *n == dep) {
                g.add_edge(idx[i], idx[j], ());
            }
        }
    }
    petgraph::algo::kosaraju_scc(&g)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .flatten()
        .map(|n| names[n.index()].to_string())
        .collect()
}
