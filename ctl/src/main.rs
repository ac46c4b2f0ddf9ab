//! `podswarmctl`: the kubectl-shaped command line of podswarm.
//!
//! This binary is deliberately thin: parsing and validation live in `podswarm-manifest`, rendering
//! in `podswarm-generator`, so `render` shows exactly what a node would install; each command is
//! its own module under `cmd/`.

use podswarmctl::cli::{Cli, Command};
use podswarmctl::{client, cmd};

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // Only commands that talk to the API build a client, so `render` and `completion` work
    // whatever --server says.
    let client =
        || client::Client::new(cli.server.as_deref(), cli.token.clone(), cli.socket.clone());
    match &cli.command {
        Command::Render(args) => cmd::render::run(args),
        Command::Completion(args) => cmd::completion::run(args),
        Command::Cluster(args) => cmd::cluster::run(args).await,
        Command::Apply(args) => cmd::apply::run(&client()?, args).await,
        Command::Get(args) => cmd::get::run(&client()?, args).await,
        Command::Describe(args) => cmd::describe::run(&client()?, args).await,
        Command::Delete(args) => cmd::delete::run(&client()?, args).await,
        Command::Logs(args) => cmd::logs::run(&client()?, args).await,
        Command::Scale(args) => cmd::scale::run(&client()?, args).await,
        Command::Rollout(args) => cmd::rollout::run(&client()?, args).await,
        Command::Cordon(args) => cmd::node::cordon(&client()?, args).await,
        Command::Uncordon(args) => cmd::node::uncordon(&client()?, args).await,
        Command::Drain(args) => cmd::node::drain(&client()?, args).await,
        Command::Rebalance(args) => cmd::rebalance::run(&client()?, args).await,
        Command::Token(args) => cmd::token::run(&client()?, args).await,
        Command::Dns(args) => cmd::dns::run(&client()?, args).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = dispatch(cli).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            // A manifest with several problems gets one line each, so all can be fixed in one go.
            if let Some(e) = error
                .downcast_ref::<podswarm_manifest::Error>()
                .filter(|e| !e.problems().is_empty())
            {
                for p in e.problems() {
                    let _ = writeln!(stderr, "error: {p}");
                }
            } else if let Some(e) = error
                .downcast_ref::<client::ApiError>()
                .filter(|e| !e.details.is_empty())
            {
                for d in &e.details {
                    let _ = writeln!(stderr, "error: {d}");
                }
            } else {
                let _ = writeln!(stderr, "error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
