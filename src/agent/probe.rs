//! Whether an agent's program can run on this machine, for `tt doctor`:
//! where it is on `PATH`, its version, and whether its `--help` lists every
//! flag the agent's argv passes (a CLI that renamed a flag fails every task
//! at its first second; this finds it before a run).
//!
//! Each probe runs the program with `--version` or `--help` and its
//! output, with the agent's `env` and `workdir`, and gives up after
//! [`PROBE_TIMEOUT`]: a CLI that waits for a login prompt must not hang the
//! check.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::AgentConfig;

/// Longest a `--version` or `--help` may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What probing one agent found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    /// The program as the argv names it.
    pub program: String,
    /// Where it was found; `None` when it was not.
    pub path: Option<PathBuf>,
    /// The first line `--version` printed, when asked (presets only: a
    /// plain `command` need not know `--version`).
    pub version: Option<String>,
    /// The command whose help was read, like `codex exec --help`.
    pub help: Option<String>,
    /// Flags of the argv that help does not list.
    pub rejected: Vec<String>,
    /// Why the help or version could not be read.
    pub error: Option<String>,
}

/// Probes `config`'s program; `check_flags` reads its help and checks the
/// argv's flags against it (for presets, whose argv tinytown wrote).
pub async fn probe(config: &AgentConfig, check_flags: bool) -> Probe {
    let program = config.program().to_string();
    let path_var = config
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let mut probe = Probe {
        path: find_program(&program, &config.workdir, &path_var),
        program,
        version: None,
        help: None,
        rejected: Vec::new(),
        error: None,
    };
    let Some(path) = probe.path.clone() else {
        return probe;
    };
    if !check_flags {
        return probe;
    }
    match output_of(config, &path, &["--version"]).await {
        Ok(text) => {
            probe.version = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(String::from)
        }
        Err(e) => probe.error = Some(format!("`{} --version`: {e}", probe.program)),
    }
    // The flags that start `tt mcp` are passed too: checked alike.
    let argv = [config.command.clone(), super::mcp_wiring::args(config)].concat();
    let (subcommands, flags) = split_argv(&argv);
    let mut args: Vec<&str> = subcommands.iter().map(String::as_str).collect();
    args.push("--help");
    let shown = format!("{} {}", probe.program, args.join(" "));
    match output_of(config, &path, &args).await {
        Ok(help) => probe.rejected = flags.into_iter().filter(|f| !lists(&help, f)).collect(),
        Err(e) => probe.error = Some(format!("`{shown}`: {e}")),
    }
    probe.help = Some(shown);
    probe
}

/// `program` as `execvp` would find it: a name with a `/` relative to
/// `workdir`, any other name in the directories of `path_var`.
pub fn find_program(program: &str, workdir: &Path, path_var: &str) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = workdir.join(program);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The subcommands (the words after the program up to the first flag or
/// placeholder: `exec` in `codex exec --json {prompt}`) and the flags
/// (`--json`; `--model=x` as `--model`) of an argv template.
pub fn split_argv(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let rest = argv.get(1..).unwrap_or_default();
    let subcommands: Vec<String> = rest
        .iter()
        .take_while(|a| !a.starts_with('-') && !a.contains('{'))
        .cloned()
        .collect();
    let mut flags: Vec<String> = Vec::new();
    for a in &rest[subcommands.len()..] {
        if a.starts_with('-') && a.len() > 1 && a != "--" {
            let flag = a.split('=').next().unwrap_or(a).to_string();
            if !flags.contains(&flag) {
                flags.push(flag);
            }
        }
    }
    (subcommands, flags)
}

/// Whether `help` lists `flag` as a word of its own (`-p` is not found in
/// `--print`, `--json` is not in `--jsonl`).
pub fn lists(help: &str, flag: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

/// Standard output and error of `path args…`, run as the agent runs its
/// command (its `env`, in its `workdir`), within [`PROBE_TIMEOUT`].
async fn output_of(config: &AgentConfig, path: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(args)
        .envs(&config.env)
        .current_dir(&config.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(PROBE_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(format!(
                "no answer within {}",
                humantime::format_duration(PROBE_TIMEOUT)
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot run it: {e}")),
        Ok(Ok(out)) => out,
    };
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if text.trim().is_empty() && !out.status.success() {
        return Err(format!("it printed nothing and {}", out.status));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subcommands_and_flags_of_an_argv() {
        let (sub, flags) = split_argv(&v(&[
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "{prompt}",
        ]));
        assert_eq!(sub, ["exec"]);
        assert_eq!(flags, ["--json", "--sandbox"]);
        let (sub, flags) = split_argv(&v(&["claude", "-p", "{prompt}", "--model=opus", "-p"]));
        assert!(sub.is_empty());
        assert_eq!(flags, ["-p", "--model"]);
        let (sub, flags) = split_argv(&v(&["sh"]));
        assert!(sub.is_empty() && flags.is_empty());
    }

    #[test]
    fn a_flag_is_listed_only_as_a_word_of_its_own() {
        let help = "Usage:\n  -p, --print  print\n      --output-format <f>\n  --jsonl\n";
        assert!(lists(help, "-p"));
        assert!(lists(help, "--print"));
        assert!(lists(help, "--output-format"));
        assert!(!lists(help, "--json"));
        assert!(!lists(help, "--output"));
        assert!(!lists(help, "-x"));
    }

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let plain = bin.join("plain");
        std::fs::write(&plain, "not executable").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path_var = format!("/nonexistent:{}", bin.display());
        assert_eq!(
            find_program("tool", dir.path(), &path_var),
            Some(tool.clone())
        );
        assert_eq!(find_program("plain", dir.path(), &path_var), None);
        assert_eq!(
            find_program("bin/tool", dir.path(), ""),
            Some(dir.path().join("bin/tool"))
        );
        assert_eq!(find_program("missing", dir.path(), &path_var), None);
        assert_eq!(find_program("", dir.path(), &path_var), None);
    }
}
