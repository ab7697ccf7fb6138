//! How each agent CLI is told about `tt mcp`, the town's MCP server: extra
//! arguments after its preset's argv, so the agent can call tinytown's tools
//! (`get_task`, `add_task`, `ask`, …) from inside its task.
//!
//! The server is this very `tt` binary (`std::env::current_exe`, read once
//! per worker process) with the argument `mcp`; it speaks for the task from
//! the environment the worker gives the command (`TT_TOWN`, `TT_TASK_ID`,
//! `TT_ATTEMPT`, `TT_AGENT`, `TT_FILE` or `REDIS_URL`), which the agent CLI
//! passes on to the servers it starts:
//!
//! - claude: `--mcp-config '{"mcpServers":{"tt":…}}'` (a stdio server; it
//!   inherits claude's environment) and `--allowedTools mcp__tt`, because
//!   print mode denies every tool not allowed up front.
//! - codex: `-c mcp_servers.tt.command=…`, `-c mcp_servers.tt.args=["mcp"]`
//!   and `-c mcp_servers.tt.env_vars=[…]`: codex starts MCP servers with a
//!   cleared environment plus the variables named there.
//!
//! The other presets take MCP servers from their own config files only
//! (gemini, opencode, amp, goose's `config.yaml`), or not at all (aider):
//! they get nothing here, and can still run `tt ask`, `tt progress`,
//! `tt assign`, `tt send` and `tt inbox --mine` as commands.
//!
//! The arguments go last: claude's `--mcp-config` takes every following
//! argument up to the next option as another config.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::config::AgentConfig;

/// The server's name in the agent CLI's config (its tools show as
/// `mcp__tt__<tool>` in claude).
pub const SERVER_NAME: &str = "tt";

/// What a server started by codex must be given from its environment.
const FORWARDED: &[&str] = &[
    "TT_TOWN",
    "TT_AGENT",
    "TT_WORKER",
    "TT_TASK_ID",
    "TT_ATTEMPT",
    "TT_FILE",
    "REDIS_URL",
];

/// The extra arguments of `config`'s preset; empty when it has none, when
/// `mcp = false`, or when this binary's path cannot be read.
pub fn args(config: &AgentConfig) -> Vec<String> {
    if !config.mcp {
        return Vec::new();
    }
    let Some(exe) = tt_exe() else {
        return Vec::new();
    };
    args_for(config.cli.as_deref().unwrap_or(""), &exe.to_string_lossy())
}

/// The extra arguments of preset `cli` for a server run as `exe mcp`.
pub fn args_for(cli: &str, exe: &str) -> Vec<String> {
    match cli {
        "claude" => {
            let config = serde_json::json!({
                "mcpServers": {
                    SERVER_NAME: { "type": "stdio", "command": exe, "args": ["mcp"] }
                }
            });
            vec![
                "--mcp-config".into(),
                config.to_string(),
                "--allowedTools".into(),
                format!("mcp__{SERVER_NAME}"),
            ]
        }
        "codex" => {
            let key = |k: &str| format!("mcp_servers.{SERVER_NAME}.{k}");
            let forwarded: Vec<toml::Value> = FORWARDED
                .iter()
                .map(|v| toml::Value::String(v.to_string()))
                .collect();
            vec![
                "-c".into(),
                format!("{}={}", key("command"), toml::Value::String(exe.into())),
                "-c".into(),
                format!("{}=[\"mcp\"]", key("args")),
                "-c".into(),
                format!("{}={}", key("env_vars"), toml::Value::Array(forwarded)),
            ]
        }
        _ => Vec::new(),
    }
}

/// This binary, once per process: what agents start as `tt mcp`.
fn tt_exe() -> Option<&'static PathBuf> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(|| match std::env::current_exe() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("cannot tell the path of this tt binary ({e}): agents get no `tt mcp`");
            None
        }
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_gets_a_config_naming_the_server() {
        let a = args_for("claude", "/opt/my tt/tt");
        assert_eq!(a[0], "--mcp-config");
        let v: serde_json::Value = serde_json::from_str(&a[1]).unwrap();
        assert_eq!(v["mcpServers"]["tt"]["command"], "/opt/my tt/tt");
        assert_eq!(v["mcpServers"]["tt"]["args"], serde_json::json!(["mcp"]));
        assert_eq!(&a[2..], ["--allowedTools", "mcp__tt"]);
    }

    #[test]
    fn codex_gets_config_overrides_that_parse_as_toml() {
        let a = args_for("codex", "/opt/q\"uote/tt");
        assert_eq!(a.len(), 6);
        let mut doc = String::new();
        for pair in a.chunks(2) {
            assert_eq!(pair[0], "-c");
            doc.push_str(&pair[1].replacen("mcp_servers.tt.", "", 1));
            doc.push('\n');
        }
        let t: toml::Table = toml::from_str(&doc).unwrap();
        assert_eq!(t["command"].as_str(), Some("/opt/q\"uote/tt"));
        assert_eq!(t["args"].as_array().map(Vec::len), Some(1));
        let vars = t["env_vars"].as_array().unwrap();
        assert!(vars.iter().any(|v| v.as_str() == Some("TT_TASK_ID")));
    }

    #[test]
    fn other_presets_get_nothing() {
        for cli in ["gemini", "aider", "goose", "opencode", "amp", "shell", ""] {
            assert!(args_for(cli, "/tt").is_empty(), "{cli}");
        }
    }
}
