//! The plan as a picture other tools draw: Mermaid (GitHub renders it in
//! Markdown) and Graphviz DOT. Groups are subgraphs around their children,
//! `depends_on` are edges from what must finish first, and each task shows
//! its status when the town is in Redis. A task of another town
//! (`<town>:<task>`) is an external node outside every group, drawn
//! dashed, with a dashed edge to each task that waits for it.
//!
//! Task ids may hold `.` and `-`, which neither language takes in a bare
//! id, so nodes are named by position (`t0`, `t1`, …) and labelled with
//! the id; ids never hold quotes (`[A-Za-z0-9._-]`), so a quoted label is
//! always well formed.

use crate::Status;
use crate::graph::{Graph, RemoteState};

/// One task as a picture shows it.
pub struct Shown<'a> {
    pub id: &'a str,
    pub depends_on: &'a [String],
    /// From Redis; `None` when the town has no record of it.
    pub status: Option<Status>,
}

/// Fill colours per status, shared by both formats.
fn colour(s: Status) -> &'static str {
    match s {
        Status::Pending => "#eeeeee",
        Status::Assigned => "#dbe9ff",
        Status::Running => "#fff3c4",
        Status::Completed => "#d4f4dd",
        Status::Failed => "#ffd6d6",
        Status::Cancelled => "#e0e0e0",
    }
}

/// Label of a task of another town: its id and what is known of it.
fn remote_label(graph: &Graph, id: &str) -> String {
    match graph.remote_state(id) {
        Some(RemoteState::Unknown) | None => format!("{id} (other town)"),
        Some(state) => format!("{id} · {state}"),
    }
}

/// Fill of a task of another town.
fn remote_colour(graph: &Graph, id: &str) -> &'static str {
    match graph.remote_state(id) {
        Some(RemoteState::Is(s)) => colour(s),
        _ => "#ffffff",
    }
}

fn label(t: &Shown<'_>) -> String {
    match t.status {
        Some(s) => format!("{} · {s}", t.id),
        None => t.id.to_string(),
    }
}

/// `flowchart` Mermaid.
pub fn mermaid(graph: &Graph, tasks: &[Shown<'_>]) -> String {
    let mut out = String::from("flowchart TD\n");
    for i in (0..tasks.len()).filter(|&i| graph.parent(i).is_none()) {
        mermaid_node(graph, tasks, i, 1, &mut out);
    }
    let remote: Vec<&str> = graph.remote_ids().collect();
    for (r, id) in remote.iter().enumerate() {
        out.push_str(&format!("  r{r}([\"{}\"])\n", remote_label(graph, id)));
    }
    for (i, t) in tasks.iter().enumerate() {
        for d in t.depends_on {
            if let Some(j) = graph.index_of(d) {
                out.push_str(&format!("  t{j} --> t{i}\n"));
            } else if let Some(r) = remote.iter().position(|id| id == d) {
                out.push_str(&format!("  r{r} -.-> t{i}\n"));
            }
        }
    }
    if !remote.is_empty() {
        out.push_str("  classDef remote stroke-dasharray:5 5\n");
        let members: Vec<String> = (0..remote.len()).map(|r| format!("r{r}")).collect();
        out.push_str(&format!("  class {} remote\n", members.join(",")));
    }
    let used: Vec<Status> = Status::ALL
        .iter()
        .copied()
        .filter(|s| tasks.iter().any(|t| t.status == Some(*s)))
        .collect();
    for s in used {
        out.push_str(&format!("  classDef {s} fill:{}\n", colour(s)));
        let members: Vec<String> = (0..tasks.len())
            .filter(|&i| tasks[i].status == Some(s))
            .map(|i| format!("t{i}"))
            .collect();
        out.push_str(&format!("  class {} {s}\n", members.join(",")));
    }
    out
}

fn mermaid_node(graph: &Graph, tasks: &[Shown<'_>], i: usize, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    if graph.is_group(i) {
        out.push_str(&format!("{pad}subgraph t{i} [\"{}\"]\n", label(&tasks[i])));
        for &c in graph.children(i) {
            mermaid_node(graph, tasks, c, depth + 1, out);
        }
        out.push_str(&format!("{pad}end\n"));
    } else {
        out.push_str(&format!("{pad}t{i}[\"{}\"]\n", label(&tasks[i])));
    }
}

/// Graphviz DOT. A group is a `cluster_<n>` with an invisible anchor
/// node, so an edge to or from the group is drawn to its box
/// (`compound=true`, `lhead`/`ltail`).
pub fn dot(graph: &Graph, tasks: &[Shown<'_>]) -> String {
    let mut out = String::from(
        "digraph plan {\n  compound=true;\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\"];\n",
    );
    for i in (0..tasks.len()).filter(|&i| graph.parent(i).is_none()) {
        dot_node(graph, tasks, i, 1, &mut out);
    }
    let remote: Vec<&str> = graph.remote_ids().collect();
    for (r, id) in remote.iter().enumerate() {
        out.push_str(&format!(
            "  r{r} [label=\"{}\", style=\"rounded,filled,dashed\", fillcolor=\"{}\"];\n",
            remote_label(graph, id),
            remote_colour(graph, id)
        ));
    }
    for (i, t) in tasks.iter().enumerate() {
        for d in t.depends_on {
            if let Some(r) = remote.iter().position(|id| id == d) {
                let head = if graph.is_group(i) {
                    format!(", lhead=cluster_{i}")
                } else {
                    String::new()
                };
                out.push_str(&format!("  r{r} -> t{i} [style=dashed{head}];\n"));
                continue;
            }
            let Some(j) = graph.index_of(d) else { continue };
            let mut attrs = Vec::new();
            if graph.is_group(j) {
                attrs.push(format!("ltail=cluster_{j}"));
            }
            if graph.is_group(i) {
                attrs.push(format!("lhead=cluster_{i}"));
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            out.push_str(&format!("  t{j} -> t{i}{attrs};\n"));
        }
    }
    out.push_str("}\n");
    out
}

fn dot_node(graph: &Graph, tasks: &[Shown<'_>], i: usize, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let fill = tasks[i].status.map_or("#ffffff", colour);
    if graph.is_group(i) {
        out.push_str(&format!("{pad}subgraph cluster_{i} {{\n"));
        out.push_str(&format!(
            "{pad}  label=\"{}\";\n{pad}  style=\"rounded,filled\";\n{pad}  fillcolor=\"{fill}\";\n",
            label(&tasks[i])
        ));
        out.push_str(&format!(
            "{pad}  t{i} [shape=point, style=invis, width=0];\n"
        ));
        for &c in graph.children(i) {
            dot_node(graph, tasks, c, depth + 1, out);
        }
        out.push_str(&format!("{pad}}}\n"));
    } else {
        out.push_str(&format!(
            "{pad}t{i} [label=\"{}\", fillcolor=\"{fill}\"];\n",
            label(&tasks[i])
        ));
    }
}
