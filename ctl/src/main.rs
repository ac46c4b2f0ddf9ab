//! `podswarmctl`: the kubectl-shaped command line of podswarm.
//!
//! This binary is deliberately thin: parsing and validation live in `podswarm-manifest`, rendering
//! in `podswarm-generator`, so `render` shows exactly what a node would install.

mod client;
mod cluster;
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
    /// API server, e.g. http://10.0.0.5:8080 (default: this node's socket)
    #[arg(long, global = true, env = "PODSWARM_SERVER")]
    server: Option<String>,
    /// Bearer token for --server
    #[arg(long, global = true, env = "PODSWARM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The node's API socket
    #[arg(
        long,
        global = true,
        env = "PODSWARM_SOCKET",
        default_value = "/run/podswarm/api.sock"
    )]
    socket: std::path::PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update objects from files, directories or standard input
    Apply {
        #[arg(
            short = 'f',
            long = "filename",
            required = true,
            value_name = "FILE|DIR|-"
        )]
        files: Vec<String>,
    },
    /// List pods, deployments, services, ingresses or nodes
    Get {
        resource: String,
        name: Option<String>,
        #[command(flatten)]
        scope: cluster::Scope,
        #[arg(short = 'o', long, value_enum)]
        output: Option<cluster::Output>,
    },
    /// Show details of a pod, deployment or service
    Describe {
        resource: String,
        name: String,
        #[command(flatten)]
        scope: cluster::Scope,
    },
    /// Delete the objects of a file, or one object by kind and name
    Delete {
        #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
        files: Vec<String>,
        kind: Option<String>,
        name: Option<String>,
        #[command(flatten)]
        scope: cluster::Scope,
    },
    /// Print a pod's logs (its units' journal)
    Logs {
        pod: String,
        /// Only this container's output
        #[arg(short = 'c', long)]
        container: Option<String>,
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(long)]
        tail: Option<u64>,
        #[command(flatten)]
        scope: cluster::Scope,
    },
    /// Set a deployment's replica count: scale deploy/NAME --replicas N
    Scale {
        target: String,
        name: Option<String>,
        #[arg(long)]
        replicas: i32,
        #[command(flatten)]
        scope: cluster::Scope,
    },
    /// Manage API tokens
    Token {
        #[command(subcommand)]
        command: cluster::TokenCommand,
    },
    /// Print or write the Quadlet files a node would install for manifests, without a cluster
    Render(render::RenderArgs),
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

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
        Command::Apply { files } => cluster::apply(&client()?, files, MAX_MANIFEST_BYTES).await,
        Command::Get {
            resource,
            name,
            scope,
            output,
        } => cluster::get(&client()?, resource, name.as_deref(), scope, *output).await,
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
