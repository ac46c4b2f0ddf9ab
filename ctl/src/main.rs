//! `podswarmctl`: the kubectl-shaped command line of podswarm.
//!
//! This binary is deliberately thin: parsing and validation live in `podswarm-manifest`, rendering
//! in `podswarm-generator`, so `render` shows exactly what a node would install.

use podswarmctl::cli::{Cli, Command};
use podswarmctl::{client, cluster, dns, membership, render};

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

const MAX_MANIFEST_BYTES: usize = 4 << 20;

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let client =
        || client::Client::new(cli.server.as_deref(), cli.token.clone(), cli.socket.clone());
    match &cli.command {
        Command::Render(args) => render::run(args),
        Command::Completion { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "podswarmctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Apply { inputs } => {
            cluster::apply(&client()?, &inputs.files, MAX_MANIFEST_BYTES).await
        }
        Command::Get {
            resource,
            name,
            scope,
            output,
        } => cluster::get_many(&client()?, resource, name.as_deref(), scope, *output).await,
        Command::Describe {
            resource,
            name,
            scope,
        } => cluster::describe(&client()?, resource, name, scope).await,
        Command::Delete {
            files,
            kind,
            name,
            scope,
        } => {
            cluster::delete(
                &client()?,
                files,
                kind.as_deref(),
                name.as_deref(),
                scope,
                MAX_MANIFEST_BYTES,
            )
            .await
        }
        Command::Logs {
            pod,
            container,
            follow,
            tail,
            scope,
        } => cluster::logs(&client()?, pod, container.as_deref(), *follow, *tail, scope).await,
        Command::Scale {
            target,
            name,
            replicas,
            scope,
        } => cluster::scale(&client()?, target, name.as_deref(), *replicas, scope).await,
        Command::Token { command } => cluster::token(&client()?, command).await,
        Command::Cluster(args) => membership::run(args).await,
        Command::Dns { command } => dns::run(&client()?, command).await,
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
