//! Checks across tasks: duplicate ids, references to tasks and agents that
//! do not exist, and cycles — of parents, and of "waits for" relations that
//! would deadlock the plan (dependencies, groups waiting for children,
//! children waiting for their group's dependencies).

use std::collections::HashMap;
use std::sync::Arc;

use miette::NamedSource;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::diagnostic::did_you_mean;
use super::model::Parsed;
use super::{Problem, Span};

pub(super) fn references(
    problems: &mut Vec<Problem>,
    src: &NamedSource<Arc<String>>,
    file: &Parsed,
) {
    let tasks = &file.tasks;
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        if t.id.is_empty() {
            continue;
        }
        if let Some(&first) = index.get(t.id.as_str()) {
            problems.push(
                Problem::new(
                    src,
                    "tt::plan::duplicate-id",
                    t.spans.id.clone(),
                    format!("duplicate task id `{}`", t.id),
                    "defined again here",
                )
                .label(tasks[first].spans.id.clone(), "first defined here")
                .help("task ids must be unique; rename one of them"),
            );
        } else {
            index.insert(t.id.as_str(), i);
        }
    }
    let ids = || index.keys().copied();

    let agent_names: Vec<&str> = file.agents.iter().map(|(n, _)| n.as_str()).collect();
    let unknown_agent = |name: &str, span: &Span, problems: &mut Vec<Problem>| {
        if file.agents_declared && !agent_names.contains(&name) {
            let label = did_you_mean(name, agent_names.iter().copied())
                .map_or("not declared in [agents]".into(), |s| {
                    format!("did you mean `{s}`?")
                });
            problems.push(
                Problem::new(
                    src,
                    "tt::plan::unknown-agent",
                    span.clone(),
                    format!("unknown agent `{name}`"),
                    label,
                )
                .help(format!(
                    "declare it as `[agents.{name}]`, or start it elsewhere with `tt agent {name}`"
                ))
                .warning(),
            );
        }
    };
    if let (Some(name), Some(span)) = (&file.meta.default_agent, &file.default_agent_span) {
        unknown_agent(name, span, problems);
    }

    for t in tasks {
        if let (Some(agent), Some(span)) = (&t.agent, &t.spans.agent) {
            unknown_agent(agent, span, problems);
        }
        if let (Some(parent), Some(span)) = (&t.parent, &t.spans.parent) {
            if *parent == t.id {
                problems.push(
                    Problem::new(
                        src,
                        "tt::plan::self-parent",
                        span.clone(),
                        format!("task `{}` is its own parent", t.id),
                        "refers to itself",
                    )
                    .help("remove `parent`, or name the group this task belongs to"),
                );
            } else if !index.contains_key(parent.as_str()) {
                problems.push(unknown_task(src, "parent", parent, span, ids()));
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (dep, span) in t.depends_on.iter().zip(&t.spans.depends_on) {
            if *dep == t.id {
                problems.push(
                    Problem::new(
                        src,
                        "tt::plan::self-dependency",
                        span.clone(),
                        format!("task `{}` depends on itself", t.id),
                        "refers to itself",
                    )
                    .help("remove it from `depends_on`"),
                );
            } else if let Some(problem) = super::remote::check(src, dep, span) {
                // Another town's task: its existence is `tt plan`'s to check.
                problems.extend(problem);
                if seen.contains(&dep.as_str()) {
                    problems.push(repeated(src, dep, span));
                }
            } else if !index.contains_key(dep.as_str()) {
                problems.push(unknown_task(src, "depends_on", dep, span, ids()));
            } else if seen.contains(&dep.as_str()) {
                problems.push(repeated(src, dep, span));
            }
            seen.push(dep);
        }
    }

    // Both kinds in one pass: a parent cycle, once reported, is left out
    // of the "waits for" graph, where it would only show up again.
    let in_parent_cycle = parent_cycles(problems, src, file, &index);
    wait_cycles(problems, src, file, &index, &in_parent_cycle);
}

fn repeated(src: &NamedSource<Arc<String>>, dep: &str, span: &Span) -> Problem {
    Problem::new(
        src,
        "tt::plan::repeated-dependency",
        span.clone(),
        format!("`{dep}` is listed twice in `depends_on`"),
        "again",
    )
    .help("remove the repetition")
    .warning()
}

fn unknown_task<'a>(
    src: &NamedSource<Arc<String>>,
    key: &str,
    name: &str,
    span: &Span,
    ids: impl Iterator<Item = &'a str>,
) -> Problem {
    let hint = did_you_mean(name, ids);
    let label = hint.as_deref().map_or("no such task".to_string(), |h| {
        format!("did you mean `{h}`?")
    });
    Problem::new(
        src,
        "tt::plan::unknown-task",
        span.clone(),
        format!("`{key}` names unknown task `{name}`"),
        label,
    )
    .help(match hint {
        Some(h) => format!("change it to `{h}`, or add a task with id `{name}`"),
        None => format!("add a task with id `{name}`, or remove the reference"),
    })
}

/// Follows parent links without recursion (chains may be thousands deep)
/// and reports each cycle once. Returns, per task, whether it is on one.
fn parent_cycles(
    problems: &mut Vec<Problem>,
    src: &NamedSource<Arc<String>>,
    file: &Parsed,
    index: &HashMap<&str, usize>,
) -> Vec<bool> {
    let tasks = &file.tasks;
    let parent_of = |i: usize| -> Option<usize> {
        let p = tasks[i].parent.as_deref()?;
        index.get(p).copied().filter(|&p| p != i)
    };
    // 0 = unvisited, 1 = on the current walk, 2 = done.
    let mut state = vec![0u8; tasks.len()];
    let mut on_cycle = vec![false; tasks.len()];
    for start in 0..tasks.len() {
        if state[start] != 0 || index.get(tasks[start].id.as_str()) != Some(&start) {
            continue;
        }
        let mut walk = Vec::new();
        let mut cur = Some(start);
        while let Some(i) = cur {
            match state[i] {
                0 => {
                    state[i] = 1;
                    walk.push(i);
                    cur = parent_of(i);
                }
                1 => {
                    let at = walk.iter().position(|&w| w == i).unwrap_or(0);
                    let cycle = &walk[at..];
                    for &c in cycle {
                        on_cycle[c] = true;
                    }
                    let steps = cycle
                        .iter()
                        .map(|&c| {
                            let t = &tasks[c];
                            let label = format!(
                                "`{}` has parent `{}`",
                                t.id,
                                t.parent.as_deref().unwrap_or("")
                            );
                            (
                                t.id.as_str(),
                                t.spans.parent.clone().unwrap_or_default(),
                                label,
                            )
                        })
                        .collect();
                    report_cycle(
                        problems,
                        src,
                        "tt::plan::parent-cycle",
                        "parent cycle",
                        steps,
                        "a group cannot contain itself: remove one `parent` in the cycle",
                    );
                    break;
                }
                _ => break,
            }
        }
        for w in walk {
            state[w] = 2;
        }
    }
    on_cycle
}

/// An edge of the "waits for" graph, kept so a cycle can be explained in
/// the user's own terms.
#[derive(Debug, Clone, Copy)]
enum Edge {
    /// done(t) waits for start(t).
    Own,
    /// start(task) waits for done(dep): `depends_on[k]` of `task`.
    Dep { task: usize, k: usize, dep: usize },
    /// start(child) waits for start(group): the group's dependencies.
    InGroup { child: usize, group: usize },
    /// done(group) waits for done(child).
    Contains { group: usize, child: usize },
}

/// The "waits for" graph has two nodes per task: its start and its done.
/// start(t) waits for done(d) of each dependency and for start(parent);
/// done(t) waits for start(t), and a group's done waits for each child's
/// done. A cycle here is a plan that can never finish. The parent link of
/// a task in `in_parent_cycle` is left out.
fn wait_cycles(
    problems: &mut Vec<Problem>,
    src: &NamedSource<Arc<String>>,
    file: &Parsed,
    index: &HashMap<&str, usize>,
    in_parent_cycle: &[bool],
) {
    let tasks = &file.tasks;
    let n = tasks.len();
    let mut g: DiGraph<(), Edge> = DiGraph::with_capacity(2 * n, 4 * n);
    for _ in 0..2 * n {
        g.add_node(());
    }
    let start = |i: usize| NodeIndex::new(2 * i);
    let done = |i: usize| NodeIndex::new(2 * i + 1);
    for (i, t) in tasks.iter().enumerate() {
        if index.get(t.id.as_str()) != Some(&i) {
            continue;
        }
        g.add_edge(done(i), start(i), Edge::Own);
        for (k, d) in t.depends_on.iter().enumerate() {
            if let Some(&j) = index.get(d.as_str()).filter(|&&j| j != i) {
                g.add_edge(start(i), done(j), Edge::Dep { task: i, k, dep: j });
            }
        }
        if let Some(&p) = t
            .parent
            .as_deref()
            .and_then(|p| index.get(p))
            .filter(|&&p| p != i && !in_parent_cycle[i])
        {
            g.add_edge(start(i), start(p), Edge::InGroup { child: i, group: p });
            g.add_edge(done(p), done(i), Edge::Contains { group: p, child: i });
        }
    }
    // Most plans have no cycle: a topological sort proves it with one walk
    // and one allocation, where the components below take a vector each.
    if petgraph::algo::toposort(&g, None).is_ok() {
        return;
    }
    // kosaraju_scc is iterative; tarjan_scc recurses and overflows the stack
    // on chains thousands deep.
    for scc in kosaraju_scc(&g) {
        if scc.len() < 2 {
            continue;
        }
        let Some(path) = cycle_in(&g, &scc) else {
            continue;
        };
        let parent_span = |c: usize| {
            tasks[c]
                .spans
                .parent
                .clone()
                .unwrap_or(tasks[c].spans.id.clone())
        };
        let steps: Vec<(&str, Span, String)> = path
            .into_iter()
            .filter_map(|e| match g[e] {
                Edge::Own => None,
                Edge::Dep { task, k, dep } => Some((
                    tasks[task].id.as_str(),
                    tasks[task].spans.depends_on[k].clone(),
                    format!("`{}` depends on `{}`", tasks[task].id, tasks[dep].id),
                )),
                Edge::InGroup { child, group } => Some((
                    tasks[child].id.as_str(),
                    parent_span(child),
                    format!(
                        "`{}` waits for what its group `{}` depends on",
                        tasks[child].id, tasks[group].id
                    ),
                )),
                Edge::Contains { group, child } => Some((
                    tasks[group].id.as_str(),
                    parent_span(child),
                    format!(
                        "group `{}` waits for its child `{}`",
                        tasks[group].id, tasks[child].id
                    ),
                )),
            })
            .collect();
        report_cycle(
            problems,
            src,
            "tt::plan::dependency-cycle",
            "dependency cycle",
            steps,
            "remove one `depends_on` entry in the cycle (a task cannot wait for a group it belongs to)",
        );
    }
}

/// A cycle through the strongly connected component, as edges.
fn cycle_in(g: &DiGraph<(), Edge>, scc: &[NodeIndex]) -> Option<Vec<petgraph::graph::EdgeIndex>> {
    use petgraph::visit::EdgeRef;
    let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
    // Start at a node with a dependency edge, so the printed path begins
    // with something the user wrote.
    // The lowest such node keeps the output stable from run to run.
    let first = scc
        .iter()
        .copied()
        .filter(|&n| {
            g.edges(n)
                .any(|e| matches!(g[e.id()], Edge::Dep { .. }) && members.contains(&e.target()))
        })
        .min()
        .or_else(|| scc.iter().copied().min())?;
    // Breadth-first search back to `first` inside the component.
    let mut prev: HashMap<NodeIndex, petgraph::graph::EdgeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([first]);
    while let Some(n) = queue.pop_front() {
        for e in g.edges(n) {
            let t = e.target();
            if !members.contains(&t) {
                continue;
            }
            if t == first {
                let mut path = vec![e.id()];
                let mut cur = n;
                while cur != first {
                    let pe = *prev.get(&cur)?;
                    path.push(pe);
                    cur = g.edge_endpoints(pe)?.0;
                }
                path.reverse();
                return Some(path);
            }
            if let std::collections::hash_map::Entry::Vacant(v) = prev.entry(t) {
                v.insert(e.id());
                queue.push_back(t);
            }
        }
    }
    None
}

fn report_cycle(
    problems: &mut Vec<Problem>,
    src: &NamedSource<Arc<String>>,
    code: &'static str,
    what: &str,
    steps: Vec<(&str, Span, String)>,
    help: &str,
) {
    let Some(first) = steps.first() else { return };
    let mut path: Vec<&str> = steps.iter().map(|s| s.0).collect();
    path.push(first.0);
    // A cycle through thousands of tasks would be an unreadable message.
    let path = if path.len() > 12 {
        let hidden = path.len() - 10;
        format!(
            "{} → … ({hidden} more) → {}",
            path[..8].join(" → "),
            path[path.len() - 2..].join(" → ")
        )
    } else {
        path.join(" → ")
    };
    let mut p = Problem::new(
        src,
        code,
        first.1.clone(),
        format!("{what}: {path}"),
        first.2.clone(),
    );
    // Label at most a screenful of places.
    for (_, span, label) in steps.iter().skip(1).take(20) {
        p = p.label(span.clone(), label.clone());
    }
    problems.push(p.help(help));
}
