//! Presets: the non-interactive command line of each agent CLI tt knows,
//! so `cli = "claude"` is all a tasks.toml needs.
//!
//! One table for both of its readers: the loader checks `cli = "…"` against
//! its names and the agent ([`crate::agent::config`]) runs its argv. It lives
//! in `plan`, the lower of the two layers, so neither depends upward.
//!
//! Each preset is an argv template (see [`crate::agent::command`]) run
//! without a shell, in pieces: the program and its fixed flags, the
//! permission flag with its default (`permissions = "…"` replaces the
//! value), then the agent's `args`, the budget flags the CLI has, the
//! flags that resume a session, and last the prompt. AI CLIs get
//! `{prompt}`: the task description, then a line naming the task id.
//! Each form is the one the tool documents for scripts, with its
//! machine-readable output where it has one ([`Output`]); the doc each
//! comes from is named at the preset. Where a tool can edit files only
//! with a permission flag, the default is the narrowest documented one
//! that lets an unattended agent edit the working tree and run its tests
//! (never a "skip every check" mode).

/// A structured output tinytown reads (`crate::agent::adapter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Claude Code `--output-format stream-json --verbose`; Amp's
    /// `--stream-json` writes the same events.
    ClaudeStream,
    /// Codex `exec --json`.
    CodexJson,
    /// Gemini CLI `--output-format stream-json`.
    GeminiStream,
    /// opencode `run --format json`.
    OpencodeJson,
}

impl Output {
    /// Its name in docs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Output::ClaudeStream => "claude stream-json",
            Output::CodexJson => "codex exec --json",
            Output::GeminiStream => "gemini stream-json",
            Output::OpencodeJson => "opencode json",
        }
    }
}

/// The flag a preset's permissions are set with, and its default value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub flag: &'static str,
    pub default: &'static str,
}

/// One preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The name in `cli = "…"` and `--cli`.
    pub name: &'static str,
    /// The program and its fixed flags.
    pub argv: &'static [&'static str],
    /// The permission flag, if the CLI has one tt sets.
    pub permissions: Option<Permissions>,
    /// The end of the command line: the prompt.
    pub prompt: &'static [&'static str],
    /// What its output is, when tt can read it; `None`: plain text, kept
    /// in the log only.
    pub output: Option<Output>,
    /// Flag taking the most an attempt may cost, in USD.
    pub max_cost_flag: Option<&'static str>,
    /// Flag taking the most turns an attempt may take.
    pub max_turns_flag: Option<&'static str>,
    /// What continues a session: `{session}` is the id. Put before the
    /// prompt. `None`: the CLI cannot resume from a script.
    pub resume: Option<&'static [&'static str]>,
    /// One line for `--help` and docs.
    pub about: &'static str,
}

/// Every preset, in the order the docs list them.
pub const PRESETS: &[Preset] = &[
    // https://code.claude.com/docs/en/headless and
    // https://code.claude.com/docs/en/cli-reference: `-p` (print mode)
    // runs one prompt and exits; `--output-format stream-json` needs
    // `--verbose` in print mode. `acceptEdits` lets it edit files, and
    // `--allowedTools Bash` lets it run commands (tests) without a prompt
    // nobody would answer: in `-p`, `acceptEdits` alone refuses the shell.
    Preset {
        name: "claude",
        argv: &[
            "claude",
            "--output-format",
            "stream-json",
            "--verbose",
            "--allowedTools",
            "Bash",
        ],
        permissions: Some(Permissions {
            flag: "--permission-mode",
            default: "acceptEdits",
        }),
        prompt: &["-p", "{prompt}"],
        output: Some(Output::ClaudeStream),
        max_cost_flag: Some("--max-budget-usd"),
        max_turns_flag: Some("--max-turns"),
        resume: Some(&["--resume", "{session}"]),
        about: "Claude Code: claude --output-format stream-json --verbose --allowedTools Bash \
                --permission-mode acceptEdits -p <prompt>",
    },
    // https://developers.openai.com/codex/noninteractive: `codex exec
    // --json` writes JSON Lines; `--skip-git-repo-check` lets it run
    // outside a git repository; `workspace-write` lets it edit the
    // working tree and run commands in its sandbox (the default is
    // read-only). `codex exec [flags] resume <id> <prompt>` continues a
    // session: the flags go between `exec` and `resume`.
    Preset {
        name: "codex",
        argv: &["codex", "exec", "--json", "--skip-git-repo-check"],
        permissions: Some(Permissions {
            flag: "--sandbox",
            default: "workspace-write",
        }),
        prompt: &["{prompt}"],
        output: Some(Output::CodexJson),
        max_cost_flag: None,
        max_turns_flag: None,
        resume: Some(&["resume", "{session}"]),
        about: "OpenAI Codex: codex exec --json --skip-git-repo-check --sandbox workspace-write \
                <prompt>",
    },
    // https://geminicli.com/docs/cli/headless/ and
    // https://geminicli.com/docs/cli/cli-reference/: `-p` is headless
    // mode; `--approval-mode auto_edit` approves file edits only (shell
    // commands need `permissions = "yolo"`); `--resume <session id>`
    // continues a session (its `init` event names the id).
    Preset {
        name: "gemini",
        argv: &["gemini", "--output-format", "stream-json"],
        permissions: Some(Permissions {
            flag: "--approval-mode",
            default: "auto_edit",
        }),
        prompt: &["-p", "{prompt}"],
        output: Some(Output::GeminiStream),
        max_cost_flag: None,
        max_turns_flag: None,
        resume: Some(&["--resume", "{session}"]),
        about: "Gemini CLI: gemini --output-format stream-json --approval-mode auto_edit -p \
                <prompt>",
    },
    // https://aider.chat/docs/scripting.html: `--message` runs one
    // instruction and exits; `--yes-always` answers its questions. Aider
    // has no structured output: the log is all there is.
    Preset {
        name: "aider",
        argv: &["aider", "--yes-always"],
        permissions: None,
        prompt: &["--message", "{prompt}"],
        output: None,
        max_cost_flag: None,
        max_turns_flag: None,
        resume: None,
        about: "aider: aider --yes-always --message <prompt> (text output only)",
    },
    // https://block.github.io/goose/docs/guides/goose-cli-commands: `run
    // -t` runs one instruction; its permissions come from `GOOSE_MODE`
    // (`env`). Its text output is kept in the log only (newer releases
    // have `--output-format json`, which tt does not read yet).
    Preset {
        name: "goose",
        argv: &["goose", "run"],
        permissions: None,
        prompt: &["-t", "{prompt}"],
        output: None,
        max_cost_flag: None,
        max_turns_flag: None,
        resume: None,
        about: "goose: goose run -t <prompt> (text output only)",
    },
    // https://opencode.ai/docs/cli/: `run` is non-interactive, `--format
    // json` writes its events as JSON Lines, `--session <id>` continues a
    // session. Its permissions come from its config (`permission`).
    Preset {
        name: "opencode",
        argv: &["opencode", "run", "--format", "json"],
        permissions: None,
        prompt: &["{prompt}"],
        output: Some(Output::OpencodeJson),
        max_cost_flag: None,
        max_turns_flag: None,
        resume: Some(&["--session", "{session}"]),
        about: "opencode: opencode run --format json <prompt>",
    },
    // https://ampcode.com/manual: `-x` (execute mode) runs one prompt;
    // `--stream-json` writes Claude Code's stream-json events.
    Preset {
        name: "amp",
        argv: &["amp", "--stream-json"],
        permissions: None,
        prompt: &["-x", "{prompt}"],
        output: Some(Output::ClaudeStream),
        max_cost_flag: None,
        max_turns_flag: None,
        resume: None,
        about: "Amp: amp --stream-json -x <prompt> (execute mode)",
    },
    Preset {
        name: "shell",
        // The description is the script: for tasks like "make test".
        argv: &["sh", "-c"],
        permissions: None,
        prompt: &["{description}"],
        output: None,
        max_cost_flag: None,
        max_turns_flag: None,
        resume: None,
        about: "sh -c <description>: the task description is a shell script",
    },
];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Names of every preset, for messages.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

impl Preset {
    /// The whole argv template of a fresh attempt with the default
    /// permissions and no extra flags.
    pub fn template(&self) -> Vec<String> {
        let mut out: Vec<String> = self.argv.iter().map(|a| a.to_string()).collect();
        if let Some(p) = self.permissions {
            out.extend([p.flag.to_string(), p.default.to_string()]);
        }
        out.extend(self.prompt.iter().map(|a| a.to_string()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ai_preset_passes_the_prompt_as_one_argument() {
        for p in PRESETS {
            let want = if p.name == "shell" {
                "{description}"
            } else {
                "{prompt}"
            };
            let argv = p.template();
            assert_eq!(argv.iter().filter(|a| *a == want).count(), 1, "{}", p.name);
            assert_eq!(p.prompt.last(), Some(&want), "{}", p.name);
            assert_eq!(argv[0], if p.name == "shell" { "sh" } else { p.name });
            if let Some(r) = p.resume {
                assert_eq!(r.iter().filter(|a| **a == "{session}").count(), 1);
            }
        }
    }
}
