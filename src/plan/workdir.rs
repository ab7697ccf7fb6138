//! Each agent's `workdir` must exist: a worker cannot start its commands in
//! a directory that is not there, so a missing one is a problem of the file,
//! reported at load with its span like every other, not a worker that fails
//! to start under `tt run`.
//!
//! `workdir` is relative to the directory of tasks.toml. It is checked on
//! the machine that loads the plan; a worker started elsewhere (`tt agent`
//! on another machine) checks its own when it starts.

use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;
use toml::de::{DeTable, DeValue};

use super::Problem;

/// Reports every `[agents.<name>] workdir` that is not a directory, relative
/// to the directory of `plan_path`. Values that are not strings are
/// reported by the loader already.
pub(super) fn check(
    problems: &mut Vec<Problem>,
    src: &NamedSource<Arc<String>>,
    root: &DeTable<'_>,
    plan_path: &Path,
) {
    let Some(DeValue::Table(agents)) = root.get("agents").map(|v| v.get_ref()) else {
        return;
    };
    let base = plan_path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for (name, agent) in agents {
        let DeValue::Table(agent) = agent.get_ref() else {
            continue;
        };
        let Some(value) = agent.get("workdir") else {
            continue;
        };
        let DeValue::String(dir) = value.get_ref() else {
            continue;
        };
        let path = base.join(dir.as_ref());
        if path.is_dir() {
            continue;
        }
        let what = if path.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        problems.push(
            Problem::new(
                src,
                "tt::plan::missing-workdir",
                value.span(),
                format!(
                    "the `workdir` of agent `{}` ({}) {what}",
                    name.get_ref(),
                    path.display()
                ),
                what,
            )
            .help(
                "create the directory, or fix `workdir` (relative to the directory of tasks.toml)",
            ),
        );
    }
}
