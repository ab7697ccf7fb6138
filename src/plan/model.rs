//! The shape of tasks.toml as Rust types. These types are the single source
//! of the JSON schema (`tt schema`) and of the key names the loader accepts.
//! [`Parsed`] is the loader's result before validation, here so that
//! `load` and `validate` both depend on the model rather than on each other.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::workspace::{Land, Mode};

/// Byte range in the source file.
pub type Span = Range<usize>;

/// The whole file. Every section is optional; a tinytown 0.10 file has only
/// `[meta]` and `[[tasks]]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tinytown tasks.toml")]
pub struct PlanFile {
    /// JSON-schema pointer some editors write into the document.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default)]
    pub town: TownConfig,
    #[serde(default)]
    pub meta: Meta,
    /// Agents that `tt run` starts and supervises, by name.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSpec>,
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
}

/// `[town]`: where this project's state lives.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TownConfig {
    /// Namespace in Redis (`tt:<name>:…`). Default: the directory name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,128}$"))]
    pub name: Option<String>,
    /// Redis to use when `REDIS_URL` is not set. Default: an embedded
    /// `redis-server` on a unix socket under `.tt/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// The most the whole town may spend, in USD: once the attempts' cost
    /// reaches it, `tt run` dispatches no new attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_cost_usd: Option<f64>,
    /// The default `workspace` of every agent, and the options beside it.
    #[serde(flatten)]
    pub workspace: WorkspaceSpec,
}

/// `[meta]`: tinytown 0.10 compatible plan metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// What this plan is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Agent for tasks that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_agent: Option<String>,
}

/// `[agents.<name>]`: a worker that `tt run` starts and supervises.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// A preset for a known agent CLI: `claude`, `codex`, `gemini`, `aider`,
    /// `goose`, `opencode`, `amp`, `shell`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    /// An argv run per task, never through a shell. Placeholders `{id}`,
    /// `{description}`, `{tags}`, `{parent}`, `{attempt}` and `{prompt}`
    /// (description plus task id) are substituted per argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Replicas `<name>-1` … `<name>-N` that share the inbox. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub count: Option<u32>,
    /// Longest a task may run, like `30m`, `1h30m`, `90s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Extra attempts after a failure before the task is failed. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub retries: Option<u32>,
    /// Assigned-but-unclaimed tasks kept in the inbox per replica. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub prefetch: Option<u32>,
    /// Extra environment for the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Directory the command runs in, relative to tasks.toml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Also take ready tasks that have no agent (the town backlog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<bool>,
    /// For a preset with a permission flag: its value instead of the
    /// preset's default (`claude`: `--permission-mode`, e.g. `plan`;
    /// `codex`: `--sandbox`, e.g. `read-only`; `gemini`:
    /// `--approval-mode`, e.g. `yolo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// Extra arguments for the preset's CLI (`["--model", "opus"]`), before
    /// the prompt; for a `command`, appended to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The most one attempt may cost, in USD: passed to the CLI where it
    /// has a flag, and enforced from its output (the attempt is stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_cost_usd: Option<f64>,
    /// The most turns one attempt may take: passed to the CLI where it has
    /// a flag, and enforced from its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_turns: Option<u32>,
    /// A retry continues the failed attempt's session (the CLI's resume).
    /// Default: true for presets that can resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<bool>,
    /// Whether time a task spends waiting for an answer (`tt ask`) counts
    /// toward its `timeout`. Default false: the timeout is paused while a
    /// person is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_counts_questions: Option<bool>,
    /// Whether a preset that can take an MCP server (claude, codex) gets
    /// `tt mcp`, the town's tools for the agent. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<bool>,
    /// Where the commands run, and how their work lands; each key
    /// overrides `[town]`'s.
    #[serde(flatten)]
    pub workspace: WorkspaceSpec,
}

/// `workspace` and the options beside it, in `[town]` (the default of
/// every agent) and in `[agents.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceSpec {
    /// Where the commands run: `shared` (in `workdir`, the default) or
    /// `worktree` (a git worktree per worker, a fresh branch per attempt,
    /// work landed on `into`; README "Workspaces").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Mode>,
    /// With `workspace = "worktree"`: the branch work lands on. Default
    /// `tt/<town>`, created from `HEAD` when it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// How a finished attempt lands on `into`: `merge` (a merge commit per
    /// task, the default), `rebase` (linear history) or `branch` (nothing
    /// lands; the attempt's branch is left for review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub land: Option<Land>,
    /// Ignored files (like `.env`) copied from the repository's checkout
    /// into each worktree, relative to the top of the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// A git remote each attempt's branch is pushed to; needs
    /// `land = "branch"` (README "Workspaces", many machines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<String>,
}

impl WorkspaceSpec {
    /// These settings, with what they leave unset taken from `town`.
    pub fn over(&self, town: &WorkspaceSpec) -> WorkspaceSpec {
        WorkspaceSpec {
            workspace: self.workspace.or(town.workspace),
            into: self.into.clone().or_else(|| town.into.clone()),
            land: self.land.or(town.land),
            include: self.include.clone().or_else(|| town.include.clone()),
            push: self.push.clone().or_else(|| town.push.clone()),
        }
    }
}

/// A task's lifecycle status: `pending → assigned → running → completed |
/// failed`, and `cancelled` from any non-final state. In the file,
/// `assigned` and `running` are accepted because `tt sync pull` may write
/// them; they mean "not done yet" when the file is applied.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Assigned,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Assigned,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Assigned => "assigned",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// What applying this file status sets in Redis: work in flight is not
    /// something a file can declare, so it means pending.
    pub fn applied(self) -> Status {
        match self {
            Status::Assigned | Status::Running => Status::Pending,
            other => other,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a group does when one of its children failed (after its retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChildFailure {
    /// The group is failed and its join step waits; `tt retry <child>`
    /// picks it up again. Other children go on.
    #[default]
    Wait,
    /// The group is failed at once and its unfinished children are cancelled.
    Fail,
    /// A failed child counts as finished: the join step runs (or the group
    /// completes) when every child is completed or failed.
    Continue,
}

impl ChildFailure {
    pub const ALL: [ChildFailure; 3] = [
        ChildFailure::Wait,
        ChildFailure::Fail,
        ChildFailure::Continue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChildFailure::Wait => "wait",
            ChildFailure::Fail => "fail",
            ChildFailure::Continue => "continue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One `[[tasks]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Unique id, `[A-Za-z0-9._-]{1,128}`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,128}$"))]
    pub id: String,
    /// What to do; the prompt an agent receives.
    #[serde(default)]
    pub description: String,
    /// Agent that runs it. Default: `[meta] default_agent`, else the backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Applied when it differs from what the file said last time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Free-form labels. A `P0`…`P4` tag is the priority when `priority` is absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The group (convoy) this task belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Tasks (or groups) that must be completed first: ids of this file,
    /// or `<town>:<task>` for a task of another town on the same Redis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// 0 (first) … 4 (last). Ties keep file order. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4))]
    pub priority: Option<u8>,
    /// Extra attempts after a failure; overrides the agent's `retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub retries: Option<u32>,
    /// Longest one attempt may run (`90s`, `30m`); overrides the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// For a group: what a failed child does to it (`wait`, `fail`, `continue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_child_failure: Option<ChildFailure>,
    /// The most one attempt may cost, in USD; overrides the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_cost_usd: Option<f64>,
    /// The most turns one attempt may take; overrides the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_turns: Option<u32>,
    /// Where each value sits in the file, for diagnostics.
    #[serde(skip)]
    #[schemars(skip)]
    pub spans: TaskSpans,
}

/// Byte spans of a task's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSpans {
    /// The whole `[[tasks]]` table.
    pub table: Span,
    pub id: Span,
    pub agent: Option<Span>,
    pub parent: Option<Span>,
    pub depends_on: Vec<Span>,
}

/// Priority used when neither `priority` nor a `P<n>` tag says.
pub const DEFAULT_PRIORITY: u8 = 2;

impl TaskSpec {
    /// `priority`, else a `P0`–`P4` tag (how tinytown 0.10 users wrote it),
    /// else [`DEFAULT_PRIORITY`].
    pub fn effective_priority(&self) -> u8 {
        self.priority
            .or_else(|| {
                self.tags.iter().find_map(|t| match t.as_bytes() {
                    [b'P' | b'p', d @ b'0'..=b'4'] => Some(d - b'0'),
                    _ => None,
                })
            })
            .unwrap_or(DEFAULT_PRIORITY)
    }
}

fn keys_of<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T);
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Keys allowed at the top level, read from the schema so the loader and the
/// schema cannot disagree.
pub fn top_keys() -> Vec<String> {
    keys_of::<PlanFile>()
}
pub fn town_keys() -> Vec<String> {
    keys_of::<TownConfig>()
}
pub fn meta_keys() -> Vec<String> {
    keys_of::<Meta>()
}
pub fn agent_keys() -> Vec<String> {
    keys_of::<AgentSpec>()
}
pub fn task_keys() -> Vec<String> {
    keys_of::<TaskSpec>()
}

/// What the loader's walk produced, before the cross-reference checks in
/// `validate` turn it into a [`Plan`](super::Plan).
pub(super) struct Parsed {
    pub town: TownConfig,
    pub town_spans: HashMap<&'static str, Span>,
    pub meta: Meta,
    pub default_agent_span: Option<Span>,
    pub agents: Vec<(String, AgentSpec)>,
    pub agents_declared: bool,
    pub tasks: Vec<TaskSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_come_from_the_schema() {
        assert!(task_keys().contains(&"depends_on".to_string()));
        assert!(!task_keys().contains(&"spans".to_string()));
        assert!(agent_keys().contains(&"prefetch".to_string()));
        let mut top = top_keys();
        top.sort();
        assert_eq!(top, ["$schema", "agents", "meta", "tasks", "town"]);
    }

    #[test]
    fn priority_falls_back_to_p_tags() {
        let mut t = TaskSpec {
            tags: vec!["api".into(), "P1".into()],
            ..Default::default()
        };
        assert_eq!(t.effective_priority(), 1);
        t.priority = Some(3);
        assert_eq!(t.effective_priority(), 3);
        t.priority = None;
        t.tags.clear();
        assert_eq!(t.effective_priority(), DEFAULT_PRIORITY);
    }
}
