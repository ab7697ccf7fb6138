//! What one agent runs and how: built from `[agents.<name>]` in tasks.toml,
//! from command-line flags, or both (flags win), and checked before a
//! worker starts so a typo fails at once, not at the first task.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::AgentError;
use super::budget::Budget;
use super::command::{self, TaskVars};
use crate::plan::presets::{Output, Preset};
use crate::plan::{self, AgentSpec, WorkspaceSpec, presets};
use crate::workspace::{self, Mode};

/// `retries` when nothing says: a failure fails the task.
pub const DEFAULT_RETRIES: u32 = 0;
/// `prefetch` when nothing says.
pub const DEFAULT_PREFETCH: u32 = 1;

/// A checked agent definition.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The agent name: the inbox its workers read.
    pub name: String,
    /// The preset the command came from, if any.
    pub cli: Option<String>,
    /// The argv template (see [`super::command`]) of a fresh attempt
    /// without budget flags; never empty.
    pub command: Vec<String>,
    /// Where in `command` budget and resume flags go: before a preset's
    /// prompt; the end of a `command`.
    pub splice_at: usize,
    /// The limits of an attempt (a task's own override them).
    pub budget: Budget,
    /// A retry continues the previous attempt's session, where the preset
    /// can.
    pub resume: bool,
    /// Longest an attempt may run before its process group is stopped.
    pub timeout: Option<Duration>,
    /// Attempts after the first that failures may use.
    pub retries: u32,
    /// Assigned-but-unclaimed tasks the dispatcher keeps per worker.
    pub prefetch: u32,
    /// Replicas `tt run` starts.
    pub count: u32,
    /// Extra environment of the command.
    pub env: BTreeMap<String, String>,
    /// Absolute directory the command runs in.
    pub workdir: PathBuf,
    /// Also takes ready tasks that have no agent.
    pub backlog: bool,
    /// `workspace = "worktree"`: where work lands and how; `None` for a
    /// shared `workdir`.
    pub workspace: Option<workspace::Options>,
    /// Time waiting for answers (`tt ask`) counts toward `timeout`.
    pub timeout_counts_questions: bool,
    /// Its preset gets the `tt mcp` server ([`super::mcp_wiring`]).
    pub mcp: bool,
}

/// What the command line of `tt agent` / `tt spawn` sets; each `Some`
/// replaces the value from tasks.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub cli: Option<String>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub workdir: Option<String>,
    /// `--backlog`: only turns it on.
    pub backlog: bool,
}

impl Overrides {
    /// Whether the flags alone say what to run.
    pub fn has_command(&self) -> bool {
        self.cli.is_some() || self.command.is_some()
    }
}

impl AgentConfig {
    /// The agent as `[agents.<name>]` declares it; `workdir` is relative to
    /// `project_dir` (the directory of tasks.toml).
    pub fn from_spec(name: &str, spec: &AgentSpec, project_dir: &Path) -> Result<Self, AgentError> {
        Self::resolve(
            name,
            Some(spec),
            &WorkspaceSpec::default(),
            &Overrides::default(),
            project_dir,
            "tasks.toml",
        )
    }

    /// The agent from tasks.toml (if declared there) with `flags` on top;
    /// `town` is `[town]`'s workspace setting, which the agent's overrides.
    /// `file` names tasks.toml in the error when neither gives a command.
    pub fn resolve(
        name: &str,
        spec: Option<&AgentSpec>,
        town: &WorkspaceSpec,
        flags: &Overrides,
        project_dir: &Path,
        file: &str,
    ) -> Result<Self, AgentError> {
        let empty = AgentSpec::default();
        let spec = spec.unwrap_or(&empty);
        // A flag that names the command replaces both of the file's ways.
        let (cli, command) = if flags.has_command() {
            (flags.cli.as_deref(), flags.command.as_deref())
        } else {
            (spec.cli.as_deref(), spec.command.as_deref())
        };
        let (cli, command, splice_at) = match (cli, command) {
            (Some(cli), _) => {
                let preset = presets::preset(cli).ok_or_else(|| unknown_preset(cli))?;
                let mut argv: Vec<String> = preset.argv.iter().map(|a| a.to_string()).collect();
                match (preset.permissions, &spec.permissions) {
                    (Some(p), value) => argv.extend([
                        p.flag.to_string(),
                        value.clone().unwrap_or_else(|| p.default.to_string()),
                    ]),
                    (None, Some(_)) => {
                        return Err(AgentError::NoPermissionFlag {
                            name: name.to_string(),
                            cli: cli.to_string(),
                        });
                    }
                    (None, None) => {}
                }
                argv.extend(spec.args.iter().cloned());
                let at = argv.len();
                argv.extend(preset.prompt.iter().map(|a| a.to_string()));
                (Some(cli.to_string()), argv, at)
            }
            (None, Some(argv)) => {
                let mut argv = argv.to_vec();
                argv.extend(spec.args.iter().cloned());
                let at = argv.len();
                (None, argv, at)
            }
            (None, None) => {
                return Err(AgentError::NoCommand {
                    name: name.to_string(),
                    file: file.to_string(),
                });
            }
        };
        if command.first().is_none_or(|program| program.is_empty()) {
            return Err(AgentError::EmptyCommand {
                name: name.to_string(),
            });
        }
        // The loader reports these in a file with their place; flags and
        // specs built in code come through here only.
        if let Some(bad) = command
            .iter()
            .flat_map(|a| plan::placeholder::unknown(a))
            .next()
        {
            return Err(AgentError::UnknownPlaceholder {
                agent: name.to_string(),
                name: bad.to_string(),
                help: plan::placeholder::hint(bad),
            });
        }
        let timeout = match flags.timeout.as_ref().or(spec.timeout.as_ref()) {
            Some(text) => Some(
                plan::parse_duration(text)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| AgentError::BadTimeout {
                        value: text.clone(),
                    })?,
            ),
            None => None,
        };
        let workdir = match flags.workdir.as_ref().or(spec.workdir.as_ref()) {
            Some(dir) => project_dir.join(dir),
            None => project_dir.to_path_buf(),
        };
        let resume = spec.resume.unwrap_or(true);
        Ok(Self {
            name: name.to_string(),
            cli,
            command,
            splice_at,
            budget: Budget {
                max_cost_usd: spec.max_cost_usd,
                max_turns: spec.max_turns.map(u64::from),
            },
            resume,
            timeout,
            retries: flags.retries.or(spec.retries).unwrap_or(DEFAULT_RETRIES),
            prefetch: spec.prefetch.unwrap_or(DEFAULT_PREFETCH).max(1),
            count: spec.count.unwrap_or(1).max(1),
            env: spec.env.clone(),
            workdir,
            backlog: flags.backlog || spec.backlog.unwrap_or(false),
            workspace: workspace_options(&spec.workspace.over(town)),
            timeout_counts_questions: spec.timeout_counts_questions.unwrap_or(false),
            mcp: spec.mcp.unwrap_or(true),
        })
    }

    /// The argv of one task's fresh attempt with the agent's budget.
    pub fn argv(&self, vars: &TaskVars) -> Vec<String> {
        self.argv_for(vars, &self.budget, None)
    }

    /// The argv of one attempt: with the budget flags the preset's CLI
    /// has, and, given the previous attempt's `session`, the flags that
    /// continue it (when the preset can and `resume` is on). The session
    /// is one argument of its own, never substituted into another.
    pub fn argv_for(&self, vars: &TaskVars, budget: &Budget, session: Option<&str>) -> Vec<String> {
        let at = self.splice_at.min(self.command.len());
        let mut out = command::render(&self.command[..at], vars);
        if let Some(p) = self.preset() {
            if let (Some(flag), Some(v)) = (p.max_cost_flag, budget.max_cost_usd) {
                out.extend([flag.to_string(), v.to_string()]);
            }
            if let (Some(flag), Some(v)) = (p.max_turns_flag, budget.max_turns) {
                out.extend([flag.to_string(), v.to_string()]);
            }
        }
        if let Some(session) = session {
            out.extend(self.resume_args(session));
        }
        out.extend(command::render(&self.command[at..], vars));
        // Last: claude's `--mcp-config` takes what follows (mcp_wiring).
        out.extend(super::mcp_wiring::args(self));
        out
    }

    /// What continues `session`, or nothing when this agent does not.
    fn resume_args(&self, session: &str) -> Vec<String> {
        match self.preset().and_then(|p| p.resume) {
            Some(args) if self.resume && !session.is_empty() => args
                .iter()
                .map(|a| {
                    if *a == "{session}" {
                        session.to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether a retry would continue a session.
    pub fn resumes(&self) -> bool {
        self.resume && self.preset().is_some_and(|p| p.resume.is_some())
    }

    /// The preset the command came from.
    pub fn preset(&self) -> Option<&'static Preset> {
        self.cli.as_deref().and_then(presets::preset)
    }

    /// The output format tt reads from the command, if any.
    pub fn output(&self) -> Option<Output> {
        self.preset().and_then(|p| p.output)
    }

    /// The program, for messages: the first argument of the argv (for a
    /// preset, the program it runs, which is not always its name).
    pub fn program(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }
}

fn workspace_options(spec: &WorkspaceSpec) -> Option<workspace::Options> {
    (spec.workspace == Some(Mode::Worktree)).then(|| workspace::Options {
        into: spec.into.clone(),
        land: spec.land.unwrap_or_default(),
        include: spec.include.clone().unwrap_or_default(),
        push: spec.push.clone(),
    })
}

fn unknown_preset(cli: &str) -> AgentError {
    let names = presets::names();
    let list = names.join(", ");
    let help = match plan::did_you_mean(cli, names.iter().copied()) {
        Some(near) => format!("did you mean `{near}`? presets: {list}"),
        None => format!("presets: {list}; or give your own argv with `--command prog {{id}}`"),
    };
    AgentError::UnknownPreset {
        cli: cli.to_string(),
        help,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AgentSpec {
        AgentSpec {
            command: Some(vec!["make".into(), "{id}".into()]),
            timeout: Some("90s".into()),
            retries: Some(2),
            prefetch: Some(3),
            count: Some(2),
            env: BTreeMap::from([("RUST_LOG".into(), "info".into())]),
            workdir: Some("sub/dir".into()),
            backlog: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn a_spec_becomes_a_config() {
        let c = AgentConfig::from_spec("backend", &spec(), Path::new("/p")).unwrap();
        assert_eq!(c.command, ["make", "{id}"]);
        assert_eq!(c.cli, None);
        assert_eq!(c.timeout, Some(Duration::from_secs(90)));
        assert_eq!((c.retries, c.prefetch, c.count), (2, 3, 2));
        assert_eq!(c.workdir, Path::new("/p/sub/dir"));
        assert!(c.backlog);
        assert_eq!(c.env["RUST_LOG"], "info");
    }

    #[test]
    fn defaults() {
        let s = AgentSpec {
            cli: Some("shell".into()),
            ..Default::default()
        };
        let c = AgentConfig::from_spec("x", &s, Path::new("/p")).unwrap();
        assert_eq!(c.command, ["sh", "-c", "{description}"]);
        assert_eq!(c.cli.as_deref(), Some("shell"));
        assert_eq!(c.timeout, None);
        assert_eq!((c.retries, c.prefetch, c.count), (0, 1, 1));
        assert_eq!(c.workdir, Path::new("/p"));
        assert!(!c.backlog);
        assert_eq!(c.workspace, None);
    }

    #[test]
    fn the_town_sets_the_workspace_and_the_agent_overrides_it() {
        let town = WorkspaceSpec {
            workspace: Some(Mode::Worktree),
            into: Some("work".into()),
            land: Some(workspace::Land::Rebase),
            ..Default::default()
        };
        let mut s = spec();
        s.workspace.land = Some(workspace::Land::Branch);
        let c = AgentConfig::resolve(
            "b",
            Some(&s),
            &town,
            &Overrides::default(),
            Path::new("/p"),
            "t",
        )
        .unwrap();
        let w = c.workspace.unwrap();
        assert_eq!(w.into.as_deref(), Some("work"));
        assert_eq!(w.land, workspace::Land::Branch);
        s.workspace.workspace = Some(Mode::Shared);
        let c = AgentConfig::resolve(
            "b",
            Some(&s),
            &town,
            &Overrides::default(),
            Path::new("/p"),
            "t",
        )
        .unwrap();
        assert_eq!(c.workspace, None);
    }

    #[test]
    fn flags_replace_the_file() {
        let flags = Overrides {
            cli: Some("claude".into()),
            timeout: Some("5m".into()),
            retries: Some(0),
            workdir: Some("/abs".into()),
            ..Default::default()
        };
        let c = AgentConfig::resolve(
            "b",
            Some(&spec()),
            &WorkspaceSpec::default(),
            &flags,
            Path::new("/p"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.command[0], "claude");
        assert_eq!(c.timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.retries, 0);
        assert_eq!(c.workdir, Path::new("/abs"));
        assert_eq!(c.env["RUST_LOG"], "info", "what flags do not set stays");
    }

    #[test]
    fn bad_definitions_are_usage_errors() {
        let none = AgentConfig::resolve(
            "b",
            None,
            &WorkspaceSpec::default(),
            &Overrides::default(),
            Path::new("/p"),
            "t.toml",
        );
        assert!(matches!(none, Err(AgentError::NoCommand { .. })));
        let typo = Overrides {
            cli: Some("cluade".into()),
            ..Default::default()
        };
        match AgentConfig::resolve(
            "b",
            None,
            &WorkspaceSpec::default(),
            &typo,
            Path::new("/p"),
            "t.toml",
        ) {
            Err(e @ AgentError::UnknownPreset { .. }) => {
                assert_eq!(e.exit_code(), 2);
                let AgentError::UnknownPreset { help, .. } = e else {
                    unreachable!()
                };
                assert!(help.contains("did you mean `claude`?"), "{help}");
            }
            other => panic!("{other:?}"),
        }
        let empty = Overrides {
            command: Some(vec![]),
            ..Default::default()
        };
        assert!(matches!(
            AgentConfig::resolve(
                "b",
                None,
                &WorkspaceSpec::default(),
                &empty,
                Path::new("/p"),
                "t.toml"
            ),
            Err(AgentError::EmptyCommand { .. })
        ));
        let slow = Overrides {
            command: Some(vec!["x".into()]),
            timeout: Some("soon".into()),
            ..Default::default()
        };
        assert!(matches!(
            AgentConfig::resolve(
                "b",
                None,
                &WorkspaceSpec::default(),
                &slow,
                Path::new("/p"),
                "t.toml"
            ),
            Err(AgentError::BadTimeout { .. })
        ));
    }
}
