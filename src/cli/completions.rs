//! `tt completions <shell>`: a completion script for the shell, on stdout.

use clap::CommandFactory;

use super::{Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "tt", &mut std::io::stdout());
    Ok(0)
}
