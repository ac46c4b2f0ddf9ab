//! podswarmctl as a library: its command line (for man pages and completions), the API client, and
//! the commands. The binary in `main.rs` only dispatches.

pub mod client;
pub mod cluster;
pub mod dns;
pub mod membership;
pub mod render;

pub mod cli {
    //! The command line definition.
    use clap::{Parser, Subcommand};

    use crate::{cluster, dns, membership, render};

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
        Apply {
            #[command(flatten)]
            inputs: render::Inputs,
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
        /// Create, join or leave a cluster (on this node)
        Cluster(membership::ClusterArgs),
        /// Cluster DNS settings
        Dns {
            #[command(subcommand)]
            command: dns::DnsCommand,
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
}
