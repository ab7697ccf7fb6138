//! The command line: clap definitions, one file per command, and the one
//! place that prints and maps errors to exit codes (0 ok, 1 failed work,
//! 2 bad input or usage).

mod context;
mod error;
mod init;
mod output;
mod plan;
mod schema;
mod sync;
mod tasks;
mod towns;

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
    Tasks(tasks::ListArgs),
    /// Show one task.
    Task(tasks::ShowArgs),
    /// Every town in this Redis, with its task counts.
    Towns(towns::Args),
    /// Stop the embedded redis-server of this project (state is kept on disk).
    Down,
}

/// Runs `tt` with these arguments and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    output::install_error_hook();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        Command::Plan(args) => plan::run(&ctx, args),
        Command::Schema => schema::run(),
        Command::Sync(cmd) => sync::run(&ctx, cmd).await,
        Command::Tasks(args) => tasks::list(&ctx, args).await,
        Command::Task(args) => tasks::show(&ctx, args).await,
        Command::Towns(args) => towns::run(&ctx, args).await,
        Command::Down => towns::down(&ctx).await,
    }
}
