//! `podswarmctl`: the kubectl-shaped command line of podswarm.
//!
//! This binary is deliberately thin: parsing and validation live in `podswarm-manifest`, rendering
//! in `podswarm-generator`, so `render` shows exactly what a node would install.

mod render;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "podswarmctl",
    version,
    about = "Control a podswarm cluster",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print or write the Quadlet files a node would install for manifests, without a cluster
    Render(render::RenderArgs),
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "podswarmctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            // A manifest with several problems gets one line each, so all can be fixed in one go.
            match error.downcast_ref::<podswarm_manifest::Error>() {
                Some(e) if !e.problems().is_empty() => {
                    for p in e.problems() {
                        let _ = writeln!(stderr, "error: {p}");
                    }
                }
                _ => {
                    let _ = writeln!(stderr, "error: {error:#}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
