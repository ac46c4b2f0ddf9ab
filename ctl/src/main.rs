//! `podswarmctl`: the kubectl-shaped command line of podswarm.
//!
//! This binary is deliberately thin: parsing and validation live in `podswarm-manifest`, rendering
//! in `podswarm-generator`, so `render` shows exactly what a node would install; each command is
//! its own module under `cmd/`.

use podswarmctl::cli::{Cli, Command};
use podswarmctl::cmd::token::TokenCommand;
use podswarmctl::kubeconfig::{self, Environment, Flags};
use podswarmctl::{client, cmd};

use std::io::Write;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

async fn dispatch(cli: Cli, socket_given: bool) -> anyhow::Result<()> {
    // `token create --kubeconfig FILE` (the spelling users know from the docs) writes FILE: for
    // that one command the global flag names the output, and the API is chosen as if it had
    // not been given.
    let writes_kubeconfig = matches!(
        &cli.command,
        Command::Token(cmd::token::Args {
            command: TokenCommand::Create { .. }
        })
    );
    let (read, write) = if writes_kubeconfig {
        (None, cli.kubeconfig.clone())
    } else {
        (cli.kubeconfig.clone(), None)
    };
    let flags = Flags {
        server: cli.server.clone(),
        token: cli.token.clone(),
        kubeconfig: read,
        context: cli.context.clone(),
        certificate_authority: cli.certificate_authority.clone(),
        insecure_skip_tls_verify: cli.insecure_skip_tls_verify,
        socket: cli.socket.clone(),
        socket_given,
    };
    // Only commands that talk to the API build a client, so `render` and `completion` work
    // whatever --server or the kubeconfig say.
    let client = || -> anyhow::Result<client::Client> {
        client::Client::new(&kubeconfig::select(&flags, &Environment::current())?)
    };
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
        Command::Token(args) => cmd::token::run(&client()?, args, write.as_deref()).await,
        Command::Dns(args) => cmd::dns::run(&client()?, args).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // An explicit --socket (or PODSWARM_SOCKET) is used even when it does not exist; only the
    // default gives way to ~/.kube/config (see `kubeconfig`).
    let socket_given = matches!(
        matches.value_source("socket"),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = dispatch(cli, socket_given).await;
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
