//! `tt agent <name>`: run one worker of an agent in the foreground, and
//! `tt spawn <name>`: start the same worker in the background.
//!
//! What the worker runs comes from `--cli` / `--command`, else from
//! `[agents.<name>]` in tasks.toml (flags override single settings of the
//! file). A spawned worker is this binary in `tt agent` mode in a session
//! of its own, so closing the terminal does not stop it; its output goes to
//! `.tt/logs/agents/<id>.log`, and `tt spawn` returns once it has
//! registered (or says why it did not).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CliError, Context, output};
use crate::agent::worker::{self, Note, Reporter, Worker};
use crate::agent::{AgentConfig, AgentError, Overrides};
use crate::plan::valid_id;
use crate::state_dir::journal_path;
use crate::store::{RedisTarget, Store};

/// How long `tt spawn` waits for the worker to register.
const SPAWN_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Agent name: the inbox this worker serves.
    name: String,
    /// Worker id. Default: `<name>-<pid>`.
    #[arg(long)]
    id: Option<String>,
    /// A preset: claude, codex, gemini, aider, goose, opencode, amp, shell.
    #[arg(long, value_name = "PRESET", conflicts_with = "command")]
    cli: Option<String>,
    /// The command to run per task, as separate arguments, never through a
    /// shell; `{id}`, `{description}`, `{tags}`, `{parent}`, `{attempt}`,
    /// `{prompt}` are substituted in each. Takes every argument after it,
    /// so put it last.
    #[arg(
        long,
        value_name = "ARG",
        num_args = 1..,
        allow_hyphen_values = true
    )]
    command: Option<Vec<String>>,
    /// Longest a task may run, like `30m` or `1h30m`; then its process
    /// group is stopped and the attempt fails.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Attempts after a failure before the task is failed.
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// Directory the command runs in, relative to tasks.toml.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// Also take ready tasks that have no agent (the town backlog).
    #[arg(long)]
    backlog: bool,
    /// Exit after one task has run.
    #[arg(long)]
    once: bool,
    /// Set by `tt spawn`: send stdout and stderr to the worker's log.
    #[arg(long, hide = true)]
    detached: bool,
}

#[derive(Debug, clap::Args)]
pub struct SpawnArgs {
    #[command(flatten)]
    worker: Args,
    /// Print the worker's id, pid and log as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn overrides(&self) -> Overrides {
        Overrides {
            cli: self.cli.clone(),
            command: self.command.clone(),
            timeout: self.timeout.clone(),
            retries: self.retries,
            workdir: self.workdir.clone(),
            backlog: self.backlog,
        }
    }
}

/// Prints notes on stdout, each with its time (the same lines a spawned
/// worker writes to its log).
struct Printer;

impl Reporter for Printer {
    fn report(&self, note: &Note) {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{now} {note}");
        let _ = out.flush();
    }
}

/// A worker, ready to run: its config and where its Redis is.
struct Setup {
    config: AgentConfig,
    town: String,
    target: RedisTarget,
    plan_file: Option<PathBuf>,
}

/// Finds what the worker runs and which town and Redis it serves.
fn setup(ctx: &Context, args: &Args) -> Result<Setup, CliError> {
    check_id(&args.name, "agent name")?;
    let flags = args.overrides();
    let file_name = ctx.file.display().to_string();
    let (spec, town_workspace, town_name, url, plan_file) = if ctx.file.exists() {
        // Its tables only: a worker never needs the tasks, and a large
        // plan's parse would stay in its memory (README "Performance").
        match ctx.load_settings() {
            Ok(plan) => (
                plan.agent(&args.name).cloned(),
                plan.town.workspace.clone(),
                plan.town.name.clone(),
                plan.town.redis_url.clone(),
                Some(ctx.project_dir.join(plan.file_name())),
            ),
            // Flags say what to run: an invalid file only matters for the
            // town and the Redis, which survive most mistakes.
            Err(_) if flags.has_command() => {
                let (name, url) = ctx.peek_town()?;
                (None, Default::default(), name, url, None)
            }
            Err(e) => return Err(e),
        }
    } else {
        (None, Default::default(), None, None, None)
    };
    let config = AgentConfig::resolve(
        &args.name,
        spec.as_ref(),
        &town_workspace,
        &flags,
        &ctx.project_dir,
        &file_name,
    )
    .map_err(CliError::from)?;
    if !config.workdir.is_dir() {
        return Err(AgentError::Workdir {
            name: config.name.clone(),
            path: config.workdir.clone(),
        }
        .into());
    }
    Ok(Setup {
        config,
        town: ctx.town(town_name.as_deref()),
        target: ctx.target(url.as_deref()),
        plan_file,
    })
}

fn check_id(id: &str, what: &str) -> Result<(), CliError> {
    if valid_id(id) {
        return Ok(());
    }
    Err(CliError::Usage {
        message: format!("{what} `{id}` is not valid"),
        help: "use 1 to 128 of the characters A-Z a-z 0-9 . _ -".into(),
    })
}

/// `tt agent`.
pub async fn run(ctx: &Context, args: Args) -> Result<u8, CliError> {
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", args.name, std::process::id()));
    check_id(&id, "worker id")?;
    // Before anything is written there: task output is private.
    let state = crate::state_dir::path(&ctx.project_dir);
    crate::state_dir::secure(&state).map_err(|source| {
        CliError::from(AgentError::Io {
            what: format!("make `{}` private (mode 0700)", state.display()),
            source,
        })
    })?;
    if args.detached {
        // First, so that even a start-up error lands in the log.
        redirect_output(&journal_path(&ctx.project_dir, &id))?;
    }
    let setup = setup(ctx, &args)?;
    let store = super::context::open_migrated(&setup.target, &setup.town).await?;
    let shutdown = crate::os::shutdown_on_signals().map_err(|source| AgentError::Io {
        what: "listen for signals".into(),
        source,
    })?;
    let worker = Worker {
        id,
        config: setup.config,
        town: setup.town,
        target: setup.target,
        project_dir: ctx.project_dir.clone(),
        plan_file: setup.plan_file,
        once: args.once,
    };
    worker::run(worker, store, Arc::new(Printer), shutdown).await?;
    Ok(0)
}

/// Points stdout and stderr at the worker's log (for `tt spawn`).
fn redirect_output(log: &Path) -> Result<(), CliError> {
    use std::os::fd::AsRawFd;
    let io = |source| {
        CliError::from(AgentError::Io {
            what: format!("open the worker log `{}`", log.display()),
            source,
        })
    };
    let file = crate::state_dir::open_log(log).map_err(io)?;
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 takes two descriptors this process owns; `file`
        // stays open for the call, and the copy keeps the file open after.
        if unsafe { libc::dup2(file.as_raw_fd(), fd) } == -1 {
            return Err(io(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// `tt spawn`.
pub async fn spawn(ctx: &Context, args: SpawnArgs) -> Result<u8, CliError> {
    let SpawnArgs { worker: args, json } = args;
    if let Some(id) = &args.id {
        check_id(id, "worker id")?;
    }
    // Every mistake in the flags or the file shows here, not in a log.
    let setup = setup(ctx, &args)?;
    let store = Store::open(&setup.target, &setup.town).await?;
    let exe = std::env::current_exe().map_err(|source| AgentError::Io {
        what: "find the `tt` executable".into(),
        source,
    })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("agent").arg(&args.name);
    if let Some(id) = &args.id {
        cmd.arg("--id").arg(id);
    }
    if let Some(timeout) = &args.timeout {
        cmd.arg("--timeout").arg(timeout);
    }
    if let Some(retries) = args.retries {
        cmd.arg("--retries").arg(retries.to_string());
    }
    if let Some(workdir) = &args.workdir {
        cmd.arg("--workdir").arg(workdir);
    }
    if args.backlog {
        cmd.arg("--backlog");
    }
    if args.once {
        cmd.arg("--once");
    }
    cmd.arg("--detached")
        .arg("--town")
        .arg(&setup.town)
        .arg("-f")
        .arg(
            ctx.project_dir
                .join(ctx.file.file_name().unwrap_or_default()),
        );
    if let Some(cli) = &args.cli {
        cmd.arg("--cli").arg(cli);
    }
    // Last: it takes every argument after it.
    if let Some(command) = &args.command {
        cmd.arg("--command").args(command);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its parent is not a `tt run`: a runner pid it inherited would
        // make it stop at once, taking its runner for gone.
        .env_remove(crate::agent::worker::RUNNER_PID_ENV);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory; it
        // makes the worker a session (and group) of its own, out of reach
        // of the terminal's hangup and Ctrl-C.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|source| AgentError::Io {
        what: "start the worker".into(),
        source,
    })?;
    let pid = child.id();
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{pid}", args.name));
    let log = journal_path(&ctx.project_dir, &id);
    let shown_log = log
        .strip_prefix(&ctx.project_dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| log.clone());

    let started = Instant::now();
    loop {
        if store.worker_alive(&id).await? {
            break;
        }
        let failed = |what: String| AgentError::SpawnFailed {
            id: id.clone(),
            what,
            log: log.clone(),
            log_tail: last_lines(&log, 10),
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(failed(format!("exited ({status}) before it registered")).into());
            }
            Ok(None) => {}
            Err(e) => return Err(failed(format!("cannot be watched: {e}")).into()),
        }
        if started.elapsed() >= SPAWN_DEADLINE {
            return Err(failed(format!(
                "(pid {pid}) did not register within {}s; it may still be starting",
                SPAWN_DEADLINE.as_secs()
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if json {
        output::json(&json!({ "id": id, "pid": pid, "log": log }));
    } else {
        println!(
            "spawned worker `{id}` (pid {pid}) of agent `{}`; log: {}",
            args.name,
            shown_log.display()
        );
    }
    Ok(0)
}

/// The last `n` non-empty lines of a file, each indented after a newline.
fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("\n    {l}"))
        .collect()
}
