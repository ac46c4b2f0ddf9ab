//! podswarmctl as a library: its command line (for man pages and completions), the API client, and
//! the commands. The binary in `main.rs` only dispatches.
//!
//! `cmd/` holds one module per subcommand, each with its flags and its `run`; what several
//! commands share sits beside it: [`client`] (the API over the socket, HTTPS or HTTP),
//! [`kubeconfig`] (which API: flags, kubeconfig files, the socket), [`kube`] (the Kubernetes
//! API's paths of each type), [`input`] (reading `-f` manifests) and [`output`] (kubectl-shaped tables, ages, `-o json|yaml`). Resource words (`po`, `deploy` …)
//! are resolved through `podswarm_manifest::kinds`, the one table the API uses too.

pub mod client;
pub mod cmd;
pub mod input;
pub mod kube;
pub mod kubeconfig;
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
        /// API server, e.g. https://10.0.0.5:8080 (port 8080 if none; a bare HOST[:PORT] is
        /// HTTPS; http:// only for a node set up without TLS). Overrides the kubeconfig
        /// context's server; without --kubeconfig, KUBECONFIG or --context, no kubeconfig is read
        #[arg(long, global = true, env = "PODSWARM_SERVER")]
        pub server: Option<String>,
        /// Bearer token for the TCP API (overrides the kubeconfig user's); never sent over the
        /// socket
        #[arg(long, global = true, env = "PODSWARM_TOKEN", hide_env_values = true)]
        pub token: Option<String>,
        /// Kubeconfig file to read the API server, its CA and the token from. Without it: the
        /// KUBECONFIG list (merged as kubectl merges it), else this node's socket if it exists,
        /// else ~/.kube/config. For `token create` it is the file to write instead
        #[arg(long, global = true, value_name = "FILE")]
        pub kubeconfig: Option<std::path::PathBuf>,
        /// Kubeconfig context to use (default: its current-context, or its only context)
        #[arg(long, global = true, value_name = "NAME")]
        pub context: Option<String>,
        /// PEM file of the cluster CA that the server's certificate must chain to (overrides
        /// the kubeconfig's)
        #[arg(long, global = true, value_name = "FILE")]
        pub certificate_authority: Option<std::path::PathBuf>,
        /// Accept any server certificate (the connection is encrypted, but to whoever answers)
        #[arg(long, global = true)]
        pub insecure_skip_tls_verify: bool,
        /// The node's API socket. Used when no --server, --kubeconfig or --context is given:
        /// always if given explicitly, else when KUBECONFIG is unset and it exists (then
        /// ~/.kube/config is the fallback)
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
