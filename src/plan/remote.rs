//! `depends_on` entries that name a task of another town: `"<town>:<task>"`.
//!
//! Both parts must be valid names (the town by the town-name rule, the
//! task by the id rule). The file's own town (`[town] name`) followed by
//! a task is that local task: `"shop:login"` in town `shop` is `"login"`,
//! checked like any local reference. Whether another town and its task
//! exist is not the file's business (that town may be synced later):
//! `tt plan` looks in Redis and warns ([`unknown_remote`]).

use std::sync::Arc;

use miette::NamedSource;

use super::model::Parsed;
use super::{Plan, Problem, Span};
use crate::graph::split_remote;

/// Rewrites `<own town>:<task>` dependencies to `<task>`, so every later
/// stage sees a local dependency.
pub(super) fn localize(file: &mut Parsed) {
    let Some(own) = file.town.name.clone() else {
        return;
    };
    for t in &mut file.tasks {
        for d in &mut t.depends_on {
            if let Some((town, task)) = split_remote(d)
                && town == own
            {
                *d = task.to_string();
            }
        }
    }
}

/// Checks a `<town>:<task>` entry: `None` for a bare id (a local
/// reference, checked by the caller), else the problem with it, if any.
pub(super) fn check(
    src: &NamedSource<Arc<String>>,
    dep: &str,
    span: &Span,
) -> Option<Option<Problem>> {
    let (town, task) = split_remote(dep)?;
    let problem = |label: &str| {
        Problem::new(
            src,
            "tt::plan::bad-remote-dependency",
            span.clone(),
            format!("`depends_on` entry `{dep}` is not `<task>` or `<town>:<task>`"),
            label,
        )
        .help(
            "a task of another town is `<town>:<task>`, both made of 1 to 128 of \
             A-Z a-z 0-9 . _ -",
        )
    };
    Some(match super::town_name::problem(town) {
        Some(why) => Some(problem(&format!("the town part {why}"))),
        None => super::id_problem(task).map(|why| problem(&format!("the task part {why}"))),
    })
}

/// What Redis says of a remote dependency that is not there yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absent {
    /// No town of that name has synced into this Redis.
    Town,
    /// The town exists but has no such task.
    Task,
}

/// The warning `tt plan` gives for dependency `k` of task `t` of `plan`
/// when Redis does not have it (yet): the plan is still valid, and the
/// dependant waits until the other town has it and completes it.
pub fn unknown_remote(plan: &Plan, t: usize, k: usize, absent: Absent) -> Option<Problem> {
    let task = plan.tasks.get(t)?;
    let dep = task.depends_on.get(k)?;
    let span = task.spans.depends_on.get(k)?.clone();
    let (town, id) = split_remote(dep)?;
    let src = NamedSource::new(plan.file_name(), plan.source.clone());
    let (message, label) = match absent {
        Absent::Town => (
            format!("town `{town}` does not exist in this Redis (yet)"),
            format!("`{}` waits until town `{town}` completes `{id}`", task.id),
        ),
        Absent::Task => (
            format!("town `{town}` has no task `{id}` (yet)"),
            format!("`{}` waits until it exists and completes", task.id),
        ),
    };
    Some(
        Problem::new(&src, "tt::plan::unknown-remote", span, message, label)
            .help(format!(
                "check the names; both towns must use the same Redis (`REDIS_URL` or \
                 `[town] redis_url`), and town `{town}` must have synced its plan \
                 (`tt sync push` or `tt run` there)"
            ))
            .warning(),
    )
}

/// The warning `tt plan` gives for a cycle of waits through tasks of this
/// town and others (`path`: `<town>:<task>` in order, this town being
/// `own`): every task on it waits for ever. Points at the `depends_on`
/// entry by which a task here waits for the next town.
pub fn remote_cycle(plan: &Plan, own: &str, path: &[String]) -> Option<Problem> {
    let local = |q: &str| {
        split_remote(q)
            .filter(|(town, _)| *town == own)
            .and_then(|(_, id)| plan.tasks.iter().position(|t| t.id == id))
    };
    let step = (0..path.len()).find_map(|i| {
        let t = local(&path[i])?;
        let next = &path[(i + 1) % path.len()];
        let k = plan.tasks[t].depends_on.iter().position(|d| d == next)?;
        Some((t, plan.tasks[t].spans.depends_on.get(k)?.clone(), next))
    });
    let (span, label) = match step {
        Some((t, span, next)) => (span, format!("`{}` waits for `{next}`", plan.tasks[t].id)),
        None => {
            let task = &plan.tasks[path.iter().find_map(|q| local(q))?];
            (
                task.spans.id.clone(),
                format!("`{}` is on the cycle", task.id),
            )
        }
    };
    let mut shown = path.to_vec();
    shown.push(path.first()?.clone());
    let src = NamedSource::new(plan.file_name(), plan.source.clone());
    Some(
        Problem::new(
            &src,
            "tt::plan::remote-cycle",
            span,
            format!("dependency cycle across towns: {}", shown.join(" → ")),
            label,
        )
        .help(
            "these tasks wait for each other and never run; remove one `depends_on` entry \
             in the cycle (here or in the other town's tasks.toml)",
        )
        .warning(),
    )
}
