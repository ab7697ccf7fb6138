//! Presets: the non-interactive command line of each agent CLI tt knows,
//! so `cli = "claude"` is all a tasks.toml needs.
//!
//! One table for both of its readers: the loader checks `cli = "…"` against
//! its names and the agent ([`crate::agent::config`]) runs its argv. It lives
//! in `plan`, the lower of the two layers, so neither depends upward.
//!
//! Each preset is an argv template (see [`crate::agent::command`]) run without a
//! shell. AI CLIs get `{prompt}`: the task description, then a line naming
//! the task id. Each form is the one the tool documents for scripts; where
//! a tool can edit files only with a permission flag, the preset adds the
//! narrowest documented one that lets it edit the working tree (never a
//! "skip every check" mode). Anything else — a model, more autonomy — is
//! what `command = [...]` is for.

/// One preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The name in `cli = "…"` and `--cli`.
    pub name: &'static str,
    /// The argv template.
    pub argv: &'static [&'static str],
    /// One line for `--help` and docs.
    pub about: &'static str,
}

/// Every preset, in the order the docs list them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "claude",
        // `-p` (print mode) runs one prompt and exits; `acceptEdits` lets it
        // edit files without a prompt nobody would answer.
        argv: &[
            "claude",
            "-p",
            "{prompt}",
            "--permission-mode",
            "acceptEdits",
        ],
        about: "Claude Code: claude -p <prompt> --permission-mode acceptEdits",
    },
    Preset {
        name: "codex",
        // `codex exec` defaults to a read-only sandbox.
        argv: &["codex", "exec", "--sandbox", "workspace-write", "{prompt}"],
        about: "OpenAI Codex: codex exec --sandbox workspace-write <prompt>",
    },
    Preset {
        name: "gemini",
        // `-p` is headless mode; `auto_edit` approves file edits only.
        argv: &["gemini", "--approval-mode", "auto_edit", "-p", "{prompt}"],
        about: "Gemini CLI: gemini --approval-mode auto_edit -p <prompt>",
    },
    Preset {
        name: "aider",
        argv: &["aider", "--yes-always", "--message", "{prompt}"],
        about: "aider: aider --yes-always --message <prompt>",
    },
    Preset {
        name: "goose",
        argv: &["goose", "run", "-t", "{prompt}"],
        about: "goose: goose run -t <prompt>",
    },
    Preset {
        name: "opencode",
        argv: &["opencode", "run", "{prompt}"],
        about: "opencode: opencode run <prompt>",
    },
    Preset {
        name: "amp",
        argv: &["amp", "-x", "{prompt}"],
        about: "Amp: amp -x <prompt> (execute mode)",
    },
    Preset {
        name: "shell",
        // The description is the script: for tasks like "make test".
        argv: &["sh", "-c", "{description}"],
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
            assert_eq!(
                p.argv.iter().filter(|a| **a == want).count(),
                1,
                "{}",
                p.name
            );
            assert_eq!(p.argv[0], if p.name == "shell" { "sh" } else { p.name });
        }
    }
}
