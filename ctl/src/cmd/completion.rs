//! `podswarmctl completion SHELL`: the completion script, from the same clap definition as the
//! command line itself, so it never lists a flag that does not exist.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell the script is for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: &Args) -> Result<()> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "podswarmctl",
        &mut std::io::stdout(),
    );
    Ok(())
}
