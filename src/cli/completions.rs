//! `tt completions <shell>`: a completion script for the shell, on stdout.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliError, pipe};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let mut cmd = Cli::command();
    // Generated into memory first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "tt", &mut script);
    match std::io::stdout().write_all(&script) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => pipe::closed_stdout(),
        Err(e) => Err(CliError::Io {
            what: "writing the completion script to stdout".into(),
            source: e,
        }),
    }
}
