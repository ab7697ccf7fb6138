//! The command line: clap definitions, one file per command, and the one
//! place that prints and maps errors to exit codes (0 ok, 1 failed work,
//! 2 bad input or usage). What several commands share has a file named
//! after it, never another command's: `lookup` (ids and names checked),
//! `task_view` (records with their graph), `feed` (the events read or
//! followed), `time`, `agent_view`, `attempt`, `output`.

mod agent;
mod agent_view;
mod answer;
mod ask;
mod assign;
mod attempt;
mod attention;
mod cancel;
mod completions;
mod context;
mod dashboard;
mod doctor;
mod error;
mod feed;
mod history;
mod in_task;
mod inbox;
mod init;
mod kill;
mod list;
mod live;
mod lookup;
mod mcp;
mod migrate;
mod output;
mod pipe;
mod plan;
mod plan_picture;
mod progress;
mod prune;
mod recover;
mod retry;
mod run;
mod schema;
mod send;
mod status;
mod sync;
mod task_view;
mod tasks;
mod time;
mod towns;
mod workspaces;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use context::Context;
pub use error::CliError;
pub use schema::schema_json;

/// tinytown: a declarative, TOML-driven workflow runner for teams of coding agents.
///
/// Write the plan in tasks.toml, check it with `tt plan`, push it into Redis
/// with `tt sync push`, and read progress with `tt tasks`.
#[derive(Debug, Parser)]
#[command(name = "tt", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// The plan file.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "tasks.toml",
        env = "TT_FILE"
    )]
    pub file: PathBuf,
    /// Town (namespace in Redis). Default: `[town] name`, else the directory name.
    #[arg(long, global = true, env = "TT_TOWN")]
    pub town: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter tasks.toml and ignore `.tt/` in git.
    Init(init::Args),
    /// Validate tasks.toml and show groups, waves and order. Touches nothing.
    ///
    /// Exit status 0 when the plan is valid, 2 when it is not.
    ///
    /// Examples:
    ///   tt plan
    ///   tt plan -f examples/shop.toml --json
    #[command(verbatim_doc_comment)]
    Plan(plan::Args),
    /// Print the JSON schema of tasks.toml.
    Schema,
    /// Push the plan into Redis, or pull statuses back into the file.
    #[command(subcommand)]
    Sync(sync::Command),
    /// List tasks from Redis.
    ///
    /// Examples:
    ///   tt tasks --status pending
    ///   tt tasks --agent backend --json
    #[command(verbatim_doc_comment)]
    Tasks(tasks::ListArgs),
    /// Show one task.
    Task(tasks::ShowArgs),
    /// Every town in this Redis, with its task counts.
    Towns(towns::Args),
    /// Check that this machine can run the plan's agents: each CLI on PATH,
    /// its version, the flags tinytown passes, and the Redis.
    ///
    /// Exit status 0 when all is well, 1 with a fix printed for each problem.
    #[command(verbatim_doc_comment)]
    Doctor(doctor::Args),
    /// Run the plan: sync it, start the agents, dispatch ready tasks, and
    /// reload on every save of tasks.toml.
    ///
    /// Examples:
    ///   tt run
    ///   tt run --until-done          # exit 0 when all completed, 1 if any failed
    ///   tt run --no-agents           # agents run elsewhere (`tt agent NAME`)
    #[command(verbatim_doc_comment)]
    Run(run::Args),
    /// The town at a glance: task counts, group progress, agents, the
    /// runner, and why pending tasks wait.
    ///
    /// `--watch` redraws whenever an event happens (it blocks on the events
    /// stream, it does not poll) until Ctrl-C.
    ///
    /// Examples:
    ///   tt status
    ///   tt status --watch
    ///   tt status --json
    #[command(verbatim_doc_comment)]
    Status(status::Args),
    /// The town live in a browser: what needs you, the plan as a graph,
    /// the attempts, every task; retry, cancel and answer from the page.
    ///
    /// The first line printed is the URL to open, with a token drawn at
    /// random on every start; requests without it are refused. It listens
    /// on loopback unless `--addr` says otherwise. The JSON API the page
    /// uses is in docs/DASHBOARD.md.
    ///
    /// Examples:
    ///   tt dashboard
    ///   tt dashboard --addr 127.0.0.1:0 --open
    #[command(verbatim_doc_comment)]
    Dashboard(dashboard::Args),
    /// Workers of the town: state, current task, last heartbeat, host, pid.
    ///
    /// A worker whose heartbeat expired shows as `dead`.
    ///
    /// Examples:
    ///   tt list
    ///   tt list --json
    #[command(verbatim_doc_comment)]
    List(list::Args),
    /// Add an ad-hoc task for an agent; `tt run` dispatches it like any other.
    ///
    /// The task has `source = cli`: reloading tasks.toml never cancels it.
    /// Its id defaults to the next free `adhoc-<n>`; it runs after the file's
    /// tasks of the same priority. Exit status 2 if the id is taken.
    ///
    /// Examples:
    ///   tt assign backend "Fix the flaky login test"
    ///   tt assign backend "Add rate limiting" --id rate-limit --parent auth --tags api,P1
    ///   tt assign reviewer "Review the auth work" --depends-on auth --priority 1
    #[command(verbatim_doc_comment)]
    Assign(assign::Args),
    /// Put a message into an agent's inbox (`--urgent`: at the head).
    ///
    /// `supervisor` is the runner: `tt run` prints what it receives.
    ///
    /// Examples:
    ///   tt send backend "Rebase on main before the next task"
    ///   tt send backend --urgent "Stop touching the schema"
    ///   tt send supervisor "Deploying at 5pm"
    ///
    /// An agent whose task runs reads it with `tt inbox --mine` (or the MCP
    /// `get_task` tool). Exit status 2 for an agent the town does not know
    /// (not in tasks.toml, no worker, no task) unless `--create`.
    #[command(verbatim_doc_comment)]
    Send(send::Args),
    /// From inside a task: ask a person, wait for `tt answer`, print the
    /// answer on stdout.
    ///
    /// The task and attempt come from TT_TASK_ID and TT_ATTEMPT, which
    /// every worker sets. Exit 0 with the answer; 1 when the task ends or
    /// is cancelled while waiting, or at --timeout (the question is then
    /// withdrawn). While a question is open the attempt's `timeout` is
    /// paused (`timeout_counts_questions = true` on the agent counts it).
    ///
    /// Examples:
    ///   tt ask "The migration drops a column. Go ahead?" --choice yes --choice no
    ///   tt ask "Which API version should the client target?" --timeout 1h
    #[command(verbatim_doc_comment)]
    Ask(ask::Args),
    /// Answer the question a running task waits on.
    ///
    /// Examples:
    ///   tt answer migrate yes
    ///   tt answer migrate --choice 2
    #[command(verbatim_doc_comment)]
    Answer(answer::Args),
    /// From inside a task: record where the work stands (shown by `tt task`,
    /// `tt status` and `tt tasks --json`).
    ///
    /// Example:
    ///   tt progress "3 of 5 endpoints done"
    #[command(verbatim_doc_comment)]
    Progress(progress::Args),
    /// From inside a task: serve the town's tools to the agent CLI over
    /// stdio (Model Context Protocol).
    ///
    /// Tools: get_task, list_tasks, add_task, report_progress, ask,
    /// send_message. The claude and codex presets are given this server
    /// (`mcp = false` on the agent turns it off); another MCP client can
    /// start `tt mcp` the same way. The task comes from TT_TASK_ID and
    /// TT_ATTEMPT, the agent from TT_AGENT.
    ///
    /// Example:
    ///   claude -p "…" --mcp-config '{"mcpServers":{"tt":{"command":"tt","args":["mcp"]}}}'
    #[command(verbatim_doc_comment)]
    Mcp(mcp::Args),
    /// What waits in an agent's inbox, head first; `--mine` (inside a task)
    /// takes the messages sent to the task's agent.
    ///
    /// Examples:
    ///   tt inbox backend
    ///   tt inbox supervisor --json
    ///   tt inbox --mine
    #[command(verbatim_doc_comment)]
    Inbox(inbox::Args),
    /// Events of the town, oldest first (the last 100 by default).
    ///
    /// One line each: time (UTC), kind, task, agent, attempt, detail.
    /// `--follow` then prints new events as they happen, until Ctrl-C.
    ///
    /// Examples:
    ///   tt history
    ///   tt history --task login
    ///   tt history --follow --limit 20
    ///   tt history --json | jq 'select(.kind == "failed")'
    #[command(verbatim_doc_comment)]
    History(history::Args),
    /// Ask a worker, or every worker of an agent, to shut down.
    ///
    /// The worker stops its current process and exits; its task is
    /// requeued by the runner.
    ///
    /// Examples:
    ///   tt kill backend-2
    ///   tt kill backend
    #[command(verbatim_doc_comment)]
    Kill(kill::Args),
    /// Forget workers that stopped or whose heartbeat expired.
    ///
    /// Live workers are never touched; a dead one still holding claimed work
    /// is kept until the runner requeues it.
    ///
    /// Examples:
    ///   tt prune
    #[command(verbatim_doc_comment)]
    Prune(prune::Args),
    /// List the workers' git worktrees (`workspace = "worktree"`): worker,
    /// task, branch, dirty or clean, size on disk, landed.
    ///
    /// `tt workspaces prune` removes the worktrees of workers that no
    /// longer exist and the branches whose work landed; never a worktree
    /// with work in no commit, unless `--force`.
    ///
    /// Examples:
    ///   tt workspaces
    ///   tt workspaces --json
    ///   tt workspaces prune
    #[command(verbatim_doc_comment)]
    Workspaces(workspaces::Args),
    /// Cancel a task (a group: with its unfinished tasks).
    ///
    /// A running task's worker is told to stop it. Exit status 2 if the task
    /// already finished.
    ///
    /// Examples:
    ///   tt cancel login
    ///   tt cancel auth --reason "postponed to next sprint"
    #[command(verbatim_doc_comment)]
    Cancel(cancel::Args),
    /// Run a failed or cancelled task again (a group: its failed tasks and
    /// those cancelled with it).
    ///
    /// The task goes back to pending; the runner dispatches it as the next
    /// attempt. Exit status 2 for any other status.
    ///
    /// Examples:
    ///   tt retry login
    ///   tt retry auth
    #[command(verbatim_doc_comment)]
    Retry(retry::Args),
    /// Run one worker of an agent in the foreground: take tasks from its
    /// inbox, run each with its command, report how it ended.
    ///
    /// The command comes from `--cli` (a preset) or `--command` (an argv,
    /// last on the line), else from `[agents.<name>]` in tasks.toml. Output
    /// of each attempt goes to `.tt/logs/<task>/<attempt>.log`. Ctrl-C stops
    /// the running command and leaves its task for the runner to requeue.
    ///
    /// Examples:
    ///   tt agent backend
    ///   tt agent backend --cli claude --id backend-laptop
    ///   tt agent tests --timeout 10m --command make test TASK={id}
    ///   REDIS_URL=redis://ci-host:6379 tt --town shop agent backend
    #[command(verbatim_doc_comment)]
    Agent(agent::Args),
    /// Start a worker in the background (like `tt agent`, detached), print
    /// its id and pid once it has registered.
    ///
    /// Its output goes to `.tt/logs/agents/<id>.log`; `tt kill <id>` stops it.
    ///
    /// Examples:
    ///   tt spawn backend --cli claude
    ///   tt spawn reviewer --json --command ./review.sh {id}
    #[command(verbatim_doc_comment)]
    Spawn(agent::SpawnArgs),
    /// Requeue the work of workers whose heartbeat expired (what `tt run`
    /// does by itself), for towns whose workers run without a runner.
    Recover(recover::Args),
    /// Move towns written by an older tinytown (keys `tt:<town>:…`) to the
    /// cluster-safe key layout (`tt:{<town>}:…`).
    ///
    /// Each town moves at once or not at all (one script), keeping every
    /// value and TTL; a second run finds nothing to do. Refused while a
    /// `tt run` of the older version holds the town, and when the town has
    /// keys in both layouts (nothing moves; the message says how to keep
    /// one). `tt run` migrates its own town when it starts.
    ///
    /// Examples:
    ///   tt migrate --dry-run
    ///   tt migrate --town shop
    ///   tt migrate --all
    #[command(verbatim_doc_comment)]
    Migrate(migrate::Args),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   tt completions bash > ~/.local/share/bash-completion/completions/tt
    ///   tt completions zsh > "${fpath[1]}/_tt"
    #[command(verbatim_doc_comment)]
    Completions(completions::Args),
    /// Stop the embedded redis-server of this project (state is kept on disk).
    Down,
}

/// Runs `tt` with these arguments and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    output::install_error_hook();
    pipe::exit_quietly_when_stdout_closes();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Every command is a loop waiting on Redis, a file watch and child
    // processes, doing little per wake-up; handing a wake-up between
    // threads costs more CPU than that work. Therefore the runtime has one
    // thread (docs/PERFORMANCE.md has the measurement).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code();
            output::print_error(e);
            ExitCode::from(code)
        }
    }
}

/// Runs a parsed command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let ctx = Context::new(cli.global)?;
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Plan(args) => plan::run(&ctx, args).await,
        Command::Schema => schema::run(),
        Command::Sync(cmd) => sync::run(&ctx, cmd).await,
        Command::Tasks(args) => tasks::list(&ctx, args).await,
        Command::Task(args) => tasks::show(&ctx, args).await,
        Command::Towns(args) => towns::run(&ctx, args).await,
        Command::Doctor(args) => doctor::run(&ctx, args).await,
        Command::Run(args) => run::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Dashboard(args) => dashboard::run(&ctx, args).await,
        Command::List(args) => list::run(&ctx, args).await,
        Command::Assign(args) => assign::run(&ctx, args).await,
        Command::Send(args) => send::run(&ctx, args).await,
        Command::Ask(args) => ask::run(&ctx, args).await,
        Command::Answer(args) => answer::run(&ctx, args).await,
        Command::Progress(args) => progress::run(&ctx, args).await,
        Command::Mcp(args) => mcp::run(&ctx, args).await,
        Command::Inbox(args) => inbox::run(&ctx, args).await,
        Command::History(args) => history::run(&ctx, args).await,
        Command::Kill(args) => kill::run(&ctx, args).await,
        Command::Prune(args) => prune::run(&ctx, args).await,
        Command::Workspaces(args) => workspaces::run(&ctx, args).await,
        Command::Cancel(args) => cancel::run(&ctx, args).await,
        Command::Retry(args) => retry::run(&ctx, args).await,
        Command::Agent(args) => agent::run(&ctx, args).await,
        Command::Spawn(args) => agent::spawn(&ctx, args).await,
        Command::Recover(args) => recover::run(&ctx, args).await,
        Command::Migrate(args) => migrate::run(&ctx, args).await,
        Command::Completions(args) => completions::run(args),
        Command::Down => towns::down(&ctx).await,
    }
}
