//! podswarmctl as a library: its command line (for man pages and completions), the API client, and
//! the commands. The binary in `main.rs` only dispatches.
//!
//! `cmd/` holds one module per subcommand, each with its flags and its `run`; what several
//! commands share sits beside it: [`client`] (the API), [`input`] (reading `-f` manifests) and
//! [`output`] (kubectl-shaped tables, ages, `-o json|yaml`). Resource words (`po`, `deploy` …)
//! are resolved through `podswarm_manifest::kinds`, the one table the API uses too.

pub mod client;
pub mod cmd;
pub mod input;
pub mod output;

pub mod cli {
    //! The command line definition.
    use clap::{Parser, Subcommand};

    use crate::cmd;

    #[derive(Debug, Parser)]
    #[command(
        name = "podswarmctl",
        version,
        about = "Control a podswarm cluster",
        propagate_version = true
    )]
    pub struct Cli {
        /// API server, e.g. http://10.0.0.5:8080 (default: this node's socket)
        #[arg(long, global = true, env = "PODSWARM_SERVER")]
        pub server: Option<String>,
        /// Bearer token for --server
        #[arg(long, global = true, env = "PODSWARM_TOKEN", hide_env_values = true)]
        pub token: Option<String>,
        /// The node's API socket
        #[arg(
            long,
            global = true,
            env = "PODSWARM_SOCKET",
            default_value = "/run/podswarm/api.sock"
        )]
        pub socket: std::path::PathBuf,
        #[command(subcommand)]
        pub command: Command,
    }

    #[derive(Debug, Subcommand)]
    pub enum Command {
        /// Create or update objects from files, directories or standard input
        Apply(cmd::apply::Args),
        /// List pods, deployments, services, ingresses or nodes
        Get(cmd::get::Args),
        /// Show details of a pod, deployment or service
        Describe(cmd::describe::Args),
        /// Delete the objects of a file, or one object by kind and name
        Delete(cmd::delete::Args),
        /// Print a pod's logs (its units' journal)
        Logs(cmd::logs::Args),
        /// Set a deployment's replica count: scale deploy/NAME --replicas N
        Scale(cmd::scale::Args),
        /// Manage a deployment's rollout: status, history, undo, restart, pause, resume
        Rollout(cmd::rollout::Args),
        /// Mark a node unschedulable: it takes no new pod, and keeps the ones it runs
        Cordon(cmd::node::CordonArgs),
        /// Mark a node schedulable again
        Uncordon(cmd::node::CordonArgs),
        /// Cordon a node and move its pods away gracefully, waiting until none is left
        Drain(cmd::node::DrainArgs),
        /// Move pods gracefully so each deployment is spread evenly over the nodes it may use
        Rebalance(cmd::rebalance::Args),
        /// Create, join or leave a cluster (on this node)
        Cluster(cmd::cluster::Args),
        /// Cluster DNS settings
        Dns(cmd::dns::Args),
        /// Manage API tokens
        Token(cmd::token::Args),
        /// Print or write the Quadlet files a node would install for manifests, without a cluster
        Render(cmd::render::Args),
        /// Print a shell completion script
        Completion(cmd::completion::Args),
    }
}
