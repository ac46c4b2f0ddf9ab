//! `podswarmctl cluster …`: membership, on this node. These talk to the node's podswarm-gossip
//! socket rather than the API because they change which cluster the node belongs to (and a join
//! has to run on the node that joins).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use podswarm_gossip::control::client::request;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// podswarm-gossip's control socket
    #[arg(
        long,
        env = "PODSWARM_GOSSIP_SOCKET",
        default_value = "/run/podswarm/gossip/gossip.sock"
    )]
    pub gossip_socket: PathBuf,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a new cluster with this node as its only member (a fresh node already is one)
    Init {
        /// Address other nodes reach this one at
        #[arg(long)]
        advertise_addr: Option<IpAddr>,
    },
    /// Join the cluster that ADDRESS belongs to
    Join {
        /// A member's address (IP or name, optionally :port)
        address: String,
        /// The cluster's join token (`podswarmctl cluster join-token` on a member)
        #[arg(long, env = "PODSWARM_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// Address other nodes reach this one at (default: the one used to reach ADDRESS)
        #[arg(long)]
        advertise_addr: Option<IpAddr>,
    },
    /// Print the join token; --rotate replaces it (the old one stops working everywhere)
    JoinToken {
        /// Replace the token with a new one; the old one stops working on every node
        #[arg(long)]
        rotate: bool,
    },
    /// Leave the cluster; this node becomes a new one-node cluster
    Leave,
    /// Show this node's cluster, members and gossip counters
    Status {
        /// Output format (default: a table)
        #[arg(short = 'o', long, value_enum)]
        output: Option<StatusOutput>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatusOutput {
    Json,
}

async fn call(socket: &Path, body: Value) -> Result<Value> {
    Ok(request(socket, &body).await?)
}

pub async fn run(args: &Args) -> Result<()> {
    let socket = &args.gossip_socket;
    match &args.command {
        ClusterCommand::Init { advertise_addr } => {
            let v = call(
                socket,
                json!({"op": "init", "advertiseAddr": advertise_addr}),
            )
            .await?;
            println!("cluster {} initialized", text(&v, "cluster"));
            println!("join other nodes with:");
            println!(
                "  podswarmctl cluster join <this node's address> --token {}",
                text(&v, "token")
            );
        }
        ClusterCommand::Join {
            address,
            token,
            advertise_addr,
        } => {
            let v = call(
                socket,
                json!({"op": "join", "address": address, "token": token, "advertiseAddr": advertise_addr}),
            )
            .await
            .with_context(|| format!("cannot join through {address}"))?;
            println!("joined cluster {}", text(&v, "cluster"));
        }
        ClusterCommand::JoinToken { rotate } => {
            let v = call(socket, json!({"op": "join-token", "rotate": rotate})).await?;
            println!("{}", text(&v, "token"));
        }
        ClusterCommand::Leave => {
            let v = call(socket, json!({"op": "leave"})).await?;
            println!(
                "left the cluster; this node is now the only member of cluster {}",
                text(&v, "cluster")
            );
        }
        ClusterCommand::Status { output } => {
            let v = call(socket, json!({"op": "status"})).await?;
            match output {
                Some(StatusOutput::Json) => println!("{v:#}"),
                None => print!("{}", status_table(&v)),
            }
        }
    }
    Ok(())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn status_table(v: &Value) -> String {
    let mut out = format!(
        "cluster {}\nnode    {} ({}) at {}\n\n",
        text(v, "cluster"),
        text(v, "nodeName"),
        text(v, "nodeId"),
        text(v, "advertise")
    );
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    out.push_str(&format!(
        "{:<24} {:<18} {}\n",
        "MEMBER", "NODE ID", "ADDRESS"
    ));
    for m in members {
        out.push_str(&format!(
            "{:<24} {:<18} {}\n",
            m.get("name").and_then(Value::as_str).unwrap_or("<unknown>"),
            text(&m, "nodeId"),
            text(&m, "address")
        ));
    }
    out
}
