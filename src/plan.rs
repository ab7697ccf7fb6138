//! The plan: tasks.toml parsed, checked and typed.
//!
//! [`load`] turns text into a [`Plan`] or into every [`Problem`] the file has
//! (syntax, keys, values, references, cycles) in one pass, each pointing at
//! its span. Nothing that fails here ever reaches Redis. [`read_plan`] is
//! the one way the file is read (regular files only, size capped).
//! [`presets`] is the table of agent CLIs that `cli = "…"` may name.

mod diagnostic;
mod load;
mod model;
mod peek;
pub mod placeholder;
pub mod presets;
mod read;
mod remote;
mod settings;
pub mod town_name;
mod validate;
mod workdir;
mod workspace;

pub use diagnostic::{LoadError, Problem, SHOWN, Severity, did_you_mean};
pub use load::{EntryError, load, load_file, load_task_entry, parse_duration};
pub use model::{
    AgentSpec, ChildFailure, DEFAULT_PRIORITY, Meta, PlanFile, Span, Status, TaskSpans, TaskSpec,
    TownConfig, WorkspaceSpec, agent_keys, meta_keys, task_keys, top_keys, town_keys,
};
pub use peek::peek_town;
pub use read::{MAX_PLAN_BYTES, read_plan};
pub use remote::{Absent, remote_cycle, unknown_remote};
pub use settings::{Settings, load_settings, load_settings_file};

use std::path::PathBuf;
use std::sync::Arc;

/// Ids of tasks and agents, and town names: `[A-Za-z0-9._-]{1,128}`.
/// Checked wherever an id arrives (file, command line, Redis message).
pub fn valid_id(id: &str) -> bool {
    id_problem(id).is_none()
}

/// Why `id` is not a [`valid_id`] (`contains `:` and a space`), or `None`.
pub fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("is empty".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut bad: Vec<char> = Vec::new();
    for c in id.chars().filter(|&c| !allowed(c)) {
        if !bad.contains(&c) && bad.len() < 5 {
            bad.push(c);
        }
    }
    let mut named: Vec<String> = bad
        .iter()
        .map(|&c| match c {
            ' ' => "a space".to_string(),
            '\t' => "a tab".to_string(),
            '\n' | '\r' => "a line break".to_string(),
            c if c.is_control() || c.is_whitespace() => format!("`{}`", c.escape_unicode()),
            c => format!("`{c}`"),
        })
        .collect();
    if let Some(last) = named.pop() {
        return Some(if named.is_empty() {
            format!("contains {last}")
        } else {
            format!("contains {} and {last}", named.join(", "))
        });
    }
    (id.len() > 128).then(|| format!("is {} characters long (at most 128)", id.len()))
}

/// What a bad id's message suggests.
pub const ID_HELP: &str = "use 1 to 128 of the characters A-Z a-z 0-9 . _ -";

/// A validated plan, with the source it came from so later stages can still
/// point at spans.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub source: Arc<String>,
    pub town: TownConfig,
    pub meta: Meta,
    /// Declared agents, in file order.
    pub agents: Vec<(String, AgentSpec)>,
    /// Tasks in file order.
    pub tasks: Vec<TaskSpec>,
    /// Non-fatal findings (unknown agent names and the like).
    pub warnings: Vec<Problem>,
}

impl Plan {
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The agent a task goes to: its own, else `[meta] default_agent`.
    pub fn agent_for<'a>(&'a self, task: &'a TaskSpec) -> Option<&'a str> {
        task.agent.as_deref().or(self.meta.default_agent.as_deref())
    }

    /// The file name shown in messages.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }
}
