//! `tt doctor`: whether this machine can run the plan's agents — each
//! declared agent's program on `PATH`, its version, and, for presets, every
//! flag tinytown passes listed in the CLI's `--help` — and whether the
//! Redis the town uses answers. Every problem comes with its fix.
//!
//! Reads `[town]`, `[meta]` and `[agents]` only, as a worker does, so a plan
//! whose tasks have mistakes can still be checked.

use serde_json::json;

use super::{CliError, Context, output};
use crate::agent::AgentConfig;
use crate::agent::probe::{self, Probe};
use crate::escape::escape;
use crate::store::{RedisTarget, Store, server};
use crate::workspace::{self, Land};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// How each preset's CLI is installed, as its docs say.
fn install_hint(preset: &str) -> Option<&'static str> {
    Some(match preset {
        "claude" => "npm install -g @anthropic-ai/claude-code",
        "codex" => "npm install -g @openai/codex",
        "gemini" => "npm install -g @google/gemini-cli",
        "aider" => "python -m pip install aider-install && aider-install",
        "goose" => "see https://block.github.io/goose/docs/getting-started/installation",
        "opencode" => "npm install -g opencode-ai",
        "amp" => "npm install -g @sourcegraph/amp",
        _ => return None,
    })
}

/// One line of the report: what was checked, and the fix when it failed.
struct Check {
    subject: String,
    ok: bool,
    detail: String,
    fix: Option<String>,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let settings = ctx.load_settings()?;
    let mut checks = Vec::new();
    let mut probes = Vec::new();
    // Some agent works in a worktree (`true`: one lands by rebase).
    let mut worktrees: Option<bool> = None;
    for (name, spec) in &settings.agents {
        let config = match AgentConfig::resolve(
            name,
            Some(spec),
            &settings.town.workspace,
            &Default::default(),
            &ctx.project_dir,
            &settings.file_name(),
        ) {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check {
                    subject: format!("agent `{name}`"),
                    ok: false,
                    detail: e.to_string(),
                    fix: Some(
                        "fix `[agents.".to_string() + name + "]` in " + &settings.file_name(),
                    ),
                });
                continue;
            }
        };
        if let Some(w) = &config.workspace {
            let rebase = w.land == Land::Rebase;
            worktrees = Some(worktrees.unwrap_or(false) || rebase);
        }
        let p = probe::probe(&config, config.cli.is_some()).await;
        checks.extend(agent_checks(name, &config, &p));
        probes.push(json!({ "agent": name, "cli": config.cli, "probe": p }));
    }
    if let Some(rebase) = worktrees {
        checks.push(git_check(&ctx.project_dir, rebase));
    }
    if settings.agents.is_empty() {
        checks.push(Check {
            subject: "agents".into(),
            ok: true,
            detail: format!("{} declares no `[agents]`", settings.file_name()),
            fix: None,
        });
    }
    let town = ctx.town(settings.town.name.as_deref());
    let target = ctx.target(settings.town.redis_url.as_deref());
    checks.push(redis_check(&target, &town).await);

    let problems = checks.iter().filter(|c| !c.ok).count();
    if args.json {
        let list: Vec<_> = checks
            .iter()
            .map(|c| json!({ "subject": c.subject, "ok": c.ok, "detail": c.detail, "fix": c.fix }))
            .collect();
        output::json(&json!({ "checks": list, "agents": probes, "problems": problems }));
    } else {
        for c in &checks {
            let mark = if c.ok { "ok" } else { "PROBLEM" };
            println!("{mark:<8} {}: {}", escape(&c.subject), escape(&c.detail));
            if let Some(fix) = &c.fix {
                println!("         fix: {}", escape(fix));
            }
        }
        match problems {
            0 => println!("no problems"),
            1 => println!("1 problem"),
            n => println!("{n} problems"),
        }
    }
    Ok(if problems == 0 { 0 } else { 1 })
}

fn agent_checks(name: &str, config: &AgentConfig, p: &Probe) -> Vec<Check> {
    let subject = match &config.cli {
        Some(cli) => format!("agent `{name}` (cli {cli})"),
        None => format!("agent `{name}`"),
    };
    let Some(path) = &p.path else {
        let install = config.cli.as_deref().and_then(install_hint);
        let fix = match install {
            Some(how) => format!("install it ({how}), or put it on PATH"),
            None if p.program.contains('/') => format!(
                "the path is relative to the agent's workdir {}",
                config.workdir.display()
            ),
            None => {
                "install it or put its directory on PATH (or `env = { PATH = \"…\" }` on the agent)"
                    .into()
            }
        };
        return vec![Check {
            subject,
            ok: false,
            detail: format!("`{}` is not found on PATH", p.program),
            fix: Some(fix),
        }];
    };
    let found = match &p.version {
        Some(v) => format!("{} at {}", v, path.display()),
        None => format!("`{}` at {}", p.program, path.display()),
    };
    let mut out = Vec::new();
    if let Some(e) = &p.error {
        out.push(Check {
            subject: subject.clone(),
            ok: false,
            detail: format!("{found}; {e}"),
            fix: Some(
                "run it by hand to see why (a login or first-run prompt?), then try again".into(),
            ),
        });
    } else if !p.rejected.is_empty() {
        let flags: Vec<String> = p.rejected.iter().map(|f| format!("`{f}`")).collect();
        out.push(Check {
            subject: subject.clone(),
            ok: false,
            detail: format!(
                "{found}; `{}` does not list {}",
                p.help.as_deref().unwrap_or("--help"),
                flags.join(", ")
            ),
            fix: Some(format!(
                "update it{}, or give this agent your own `command = [...]`",
                config
                    .cli
                    .as_deref()
                    .and_then(install_hint)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            )),
        });
    } else {
        let detail = match &p.help {
            Some(_) => format!("{found}; every flag tinytown passes is accepted"),
            None => found,
        };
        out.push(Check {
            subject,
            ok: true,
            detail,
            fix: None,
        });
    }
    out
}

/// The git that worktree agents need, and the repository around the plan.
fn git_check(project_dir: &std::path::Path, rebase: bool) -> Check {
    let subject = "git".to_string();
    let need = if rebase {
        workspace::probe::MIN_GIT_REBASE
    } else {
        workspace::probe::MIN_GIT
    };
    let fix = |what: &str| Check {
        subject: subject.clone(),
        ok: false,
        detail: what.to_string(),
        fix: Some(format!(
            "worktree agents need git ≥ {}.{} and tasks.toml in a git repository (`git init`), or `workspace = \"shared\"`",
            need.0, need.1
        )),
    };
    match workspace::probe::git_version() {
        Err(e) => fix(&e),
        Ok(v) if v < need => fix(&format!("git {}.{} is too old", v.0, v.1)),
        Ok(v) => match workspace::probe::repository_root(project_dir) {
            Err(e) => fix(&e),
            Ok(root) => Check {
                subject,
                ok: true,
                detail: format!("git {}.{}; repository {}", v.0, v.1, root.display()),
                fix: None,
            },
        },
    }
}

async fn redis_check(target: &RedisTarget, town: &str) -> Check {
    let subject = "redis".to_string();
    if let RedisTarget::Embedded { state_dir } = target
        && !server::has_data(state_dir)
    {
        let path_var = std::env::var("PATH").unwrap_or_default();
        return match probe::find_program("redis-server", std::path::Path::new("."), &path_var) {
            Some(p) => Check {
                subject,
                ok: true,
                detail: format!("embedded: `tt run` starts {} in {}", p.display(), state_dir.display()),
                fix: None,
            },
            None => Check {
                subject,
                ok: false,
                detail: "embedded, but `redis-server` is not found on PATH".into(),
                fix: Some(
                    "install Redis ≥ 6.2 (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), or set REDIS_URL".into(),
                ),
            },
        };
    }
    match Store::open(target, town).await {
        Ok(_) => Check {
            subject,
            ok: true,
            detail: format!("{} answers", target.describe()),
            fix: None,
        },
        Err(e) => Check {
            subject,
            ok: false,
            detail: e.to_string(),
            fix: Some(
                "start the server or fix REDIS_URL / `[town] redis_url` (see `tt doctor` in the README)".into(),
            ),
        },
    }
}
