//! The settings of a workspace as tasks.toml names them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an agent's commands run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every worker runs in `workdir` (the directory of tasks.toml).
    #[default]
    Shared,
    /// Every worker runs in a git worktree of its own under
    /// `.tt/worktrees/<worker>`, one branch per attempt.
    Worktree,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Shared, Mode::Worktree];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::Worktree => "worktree",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// How a finished attempt's work lands on `into`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Land {
    /// A merge commit per task: the task's commits stay as they were.
    #[default]
    Merge,
    /// The task's commits replayed on the tip: a linear history.
    Rebase,
    /// Nothing lands: the task's branch is left for review or a pull request.
    Branch,
}

impl Land {
    pub const ALL: [Land; 3] = [Land::Merge, Land::Rebase, Land::Branch];

    pub fn as_str(self) -> &'static str {
        match self {
            Land::Merge => "merge",
            Land::Rebase => "rebase",
            Land::Branch => "branch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}
