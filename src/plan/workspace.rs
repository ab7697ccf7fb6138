//! `workspace = "worktree"` needs git: a repository around tasks.toml and
//! a git new enough for the commands landing uses. Both are checked at
//! load, with the span of the setting that asks for them, so a run never
//! fails on them halfway. So are the options beside it: `into` must be a
//! branch name, `include` paths must stay in the repository, and `push`
//! needs a remote of that name and `land = "branch"` (landing on several
//! machines' clones would make their `into` branches diverge).

use std::path::{Component, Path};
use std::sync::Arc;

use miette::NamedSource;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Problem, Span};
use crate::workspace::{Land, Mode, probe};

/// The workspace keys of one table, as strings with their spans.
#[derive(Default, Clone)]
struct Keys {
    workspace: Option<(String, Span)>,
    into: Option<(String, Span)>,
    land: Option<(String, Span)>,
    include: Vec<(String, Span)>,
    push: Option<(String, Span)>,
}

impl Keys {
    fn of(t: &DeTable<'_>) -> Self {
        let string = |key: &str| match t.get(key).map(|v| (v.get_ref(), v.span())) {
            Some((DeValue::String(s), span)) => Some((s.to_string(), span)),
            _ => None,
        };
        let include = match t.get("include").map(Spanned::get_ref) {
            Some(DeValue::Array(items)) => items
                .iter()
                .filter_map(|i| match i.get_ref() {
                    DeValue::String(s) => Some((s.to_string(), i.span())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            workspace: string("workspace"),
            into: string("into"),
            land: string("land"),
            include,
            push: string("push"),
        }
    }

    /// These, with what they leave unset taken from `town`.
    fn over(&self, town: &Keys) -> Keys {
        Keys {
            workspace: self.workspace.clone().or_else(|| town.workspace.clone()),
            into: self.into.clone().or_else(|| town.into.clone()),
            land: self.land.clone().or_else(|| town.land.clone()),
            include: if self.include.is_empty() {
                town.include.clone()
            } else {
                self.include.clone()
            },
            push: self.push.clone().or_else(|| town.push.clone()),
        }
    }

    fn worktree(&self) -> bool {
        self.workspace
            .as_ref()
            .is_some_and(|(s, _)| Mode::parse(s) == Some(Mode::Worktree))
    }

    fn land(&self) -> Land {
        self.land
            .as_ref()
            .and_then(|(s, _)| Land::parse(s))
            .unwrap_or_default()
    }
}

fn table<'a, 'i>(v: Option<&'a Spanned<DeValue<'i>>>) -> Option<&'a DeTable<'i>> {
    match v.map(Spanned::get_ref) {
        Some(DeValue::Table(t)) => Some(t),
        _ => None,
    }
}

/// Reports what keeps the workspaces of the file from working.
pub(super) fn check(
    problems: &mut Vec<Problem>,
    src: &NamedSource<Arc<String>>,
    root: &DeTable<'_>,
    plan_path: &Path,
) {
    let town = table(root.get("town")).map_or_else(Keys::default, Keys::of);
    let mut uses: Vec<Keys> = Vec::new();
    if town.worktree() {
        uses.push(town.clone());
    }
    if let Some(agents) = table(root.get("agents")) {
        for (_, agent) in agents.iter() {
            if let Some(t) = table(Some(agent)) {
                let keys = Keys::of(t).over(&town);
                if keys.worktree() {
                    uses.push(keys);
                }
            }
        }
    }
    let Some(first) = uses.first() else {
        return;
    };
    let problem = |span: &Span, code: &'static str, message: String, label: &str, help: &str| {
        Problem::new(src, code, span.clone(), message, label).help(help)
    };
    let at = first.workspace.as_ref().map_or(0..0, |(_, s)| s.clone());
    let version = match probe::git_version() {
        Ok(v) => v,
        Err(why) => {
            problems.push(problem(
                &at,
                "tt::plan::no-git",
                format!("`workspace = \"worktree\"` needs git: {why}"),
                "needs git",
                "install git 2.38 or newer, or use `workspace = \"shared\"`",
            ));
            return;
        }
    };
    if version < probe::MIN_GIT {
        problems.push(problem(
            &at,
            "tt::plan::old-git",
            format!(
                "git {} is too old for `workspace = \"worktree\"`: landing needs `git merge-tree --write-tree` (git {})",
                probe::show(version),
                probe::show(probe::MIN_GIT)
            ),
            "needs a newer git",
            "install git 2.38 or newer, or use `workspace = \"shared\"`",
        ));
        return;
    }
    let base = plan_path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let repo_root = match probe::repository_root(base) {
        Ok(root) => root,
        Err(why) => {
            problems.push(problem(
                &at,
                "tt::plan::not-git",
                format!("`workspace = \"worktree\"` needs a git repository: {why}"),
                "not in a git repository",
                "run `git init` and make a first commit there, or use `workspace = \"shared\"`",
            ));
            return;
        }
    };
    if !probe::is_ignored(base, ".tt/worktrees") {
        problems.push(problem(
            &at,
            "tt::plan::state-not-ignored",
            "`.tt/` is not ignored by git: the worktrees in it show in `git status`, and `git add -A` would take them in".into(),
            "worktrees go to .tt/worktrees",
            "add `.tt/` to `.gitignore` (`tt init` does)",
        ).warning());
    }
    let mut seen: Vec<Span> = Vec::new();
    let mut once = |span: &Span| {
        if seen.contains(span) {
            false
        } else {
            seen.push(span.clone());
            true
        }
    };
    for keys in &uses {
        if let Some((into, span)) = &keys.into
            && once(span)
            && !probe::valid_branch(into)
        {
            problems.push(problem(
                span,
                "tt::plan::bad-into",
                format!("`into = \"{into}\"` is not a valid branch name"),
                "not a branch name",
                "name a branch like `tt/work` or `main` (see `git check-ref-format`)",
            ));
        }
        if keys.land() == Land::Rebase
            && version < probe::MIN_GIT_REBASE
            && let Some((_, span)) = &keys.land
            && once(span)
        {
            problems.push(problem(
                span,
                "tt::plan::old-git",
                format!(
                    "git {} is too old for `land = \"rebase\"`: replaying commits needs `git merge-tree --merge-base` (git {})",
                    probe::show(version),
                    probe::show(probe::MIN_GIT_REBASE)
                ),
                "needs a newer git",
                "install git 2.40 or newer, or use `land = \"merge\"`",
            ));
        }
        for (path, span) in &keys.include {
            let p = Path::new(path);
            let escapes = p.is_absolute()
                || p.components()
                    .any(|c| matches!(c, Component::ParentDir | Component::RootDir));
            if escapes && once(span) {
                problems.push(problem(
                    span,
                    "tt::plan::bad-include",
                    format!("`include` path `{path}` leaves the repository"),
                    "not inside the repository",
                    "give paths relative to the top of the repository, like `.env` or `config/local.toml`",
                ));
            }
        }
        if let Some((remote, span)) = &keys.push
            && once(span)
        {
            if keys.land() != Land::Branch {
                problems.push(problem(
                    span,
                    "tt::plan::push-needs-branch",
                    format!(
                        "`push` with `land = \"{}\"` is not supported",
                        keys.land().as_str()
                    ),
                    "needs `land = \"branch\"`",
                    "each clone would land on its own `into` and they would diverge: with `push`, set `land = \"branch\"` and merge the pushed branches in one place (README \"Workspaces\")",
                ));
            } else if !probe::has_remote(&repo_root, remote) {
                problems.push(problem(
                    span,
                    "tt::plan::no-remote",
                    format!("the repository has no remote `{remote}`"),
                    "unknown remote",
                    "add it with `git remote add`, or fix `push`",
                ));
            }
        }
    }
}
