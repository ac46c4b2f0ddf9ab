//! `podswarmctl cluster …`: membership, on this node. These talk to the node's podswarm-gossip
//! socket rather than the API because they change which cluster the node belongs to (and a join
//! has to run on the node that joins).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::output::{age, now};
use anyhow::{Context, Result};
use clap::Subcommand;
use podswarm_gossip::control::client::{Client, Status};

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

pub async fn run(args: &Args) -> Result<()> {
    let gossip = Client::new(&args.gossip_socket);
    match &args.command {
        ClusterCommand::Init { advertise_addr } => {
            let init = gossip.init(*advertise_addr).await?;
            println!("cluster {} initialized", hex(init.cluster));
            println!("join other nodes with:");
            println!(
                "  podswarmctl cluster join <this node's address> --token {}",
                init.token
            );
        }
        ClusterCommand::Join {
            address,
            token,
            advertise_addr,
        } => {
            let cluster = gossip
                .join(address, token, *advertise_addr)
                .await
                .with_context(|| format!("cannot join through {address}"))?;
            println!("joined cluster {}", hex(cluster));
        }
        ClusterCommand::JoinToken { rotate } => {
            println!("{}", gossip.join_token(*rotate).await?);
        }
        ClusterCommand::Leave => {
            let cluster = gossip.leave().await?;
            println!(
                "left the cluster; this node is now the only member of cluster {}",
                hex(cluster)
            );
        }
        ClusterCommand::Status { output } => {
            let status = gossip.status().await?;
            match output {
                // Through `Value`, as when the answer was untyped: the same keys in the same order.
                Some(StatusOutput::Json) => println!("{:#}", serde_json::to_value(&status)?),
                None => print!("{}", status_table(&status)),
            }
        }
    }
    Ok(())
}

/// Cluster and node ids as every other place shows them.
fn hex(id: u64) -> String {
    format!("{id:016x}")
}

fn status_table(s: &Status) -> String {
    let mut out = format!(
        "cluster {}\nnode    {} ({}) at {}\n",
        hex(s.cluster),
        s.node_name,
        hex(s.node_id),
        s.advertise
    );
    // What join tokens pin: compare it with the middle of a PSWTKN-2 token.
    if let Some(ca) = &s.ca {
        out.push_str(&format!("ca      {ca}\n"));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<24} {:<18} {}\n",
        "MEMBER", "NODE ID", "ADDRESS"
    ));
    for m in &s.members {
        out.push_str(&format!(
            "{:<24} {:<18} {}\n",
            m.name.as_deref().unwrap_or("<unknown>"),
            hex(m.node_id),
            m.address
        ));
    }
    if !s.certificates.is_empty() {
        out.push_str(&format!("\n{:<24} {}\n", "NODE CERTIFICATE", "EXPIRES"));
        for c in &s.certificates {
            out.push_str(&format!("{:<24} {}\n", c.node, expiry(c.not_after, now())));
        }
    }
    out
}

/// `2027-02-28T18:00:00Z (in 89d)`, or `… (expired)`.
fn expiry(not_after: u64, now: u64) -> String {
    let date = i64::try_from(not_after)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| not_after.to_string());
    if not_after > now {
        format!("{date} (in {})", age(now, not_after))
    } else {
        format!("{date} (expired)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_gossip::control::client::Member;

    #[test]
    fn the_status_table_names_members_and_shows_ids_in_hex() {
        let status = Status {
            cluster: 0xc1,
            node_id: 0xa,
            node_name: "n1".to_owned(),
            advertise: "10.0.0.1:7946".parse().unwrap(),
            members: vec![
                Member {
                    node_id: 0xb,
                    name: Some("n2".to_owned()),
                    address: "10.0.0.2:7946".parse().unwrap(),
                },
                Member {
                    node_id: 0xc,
                    name: None,
                    address: "10.0.0.3:7946".parse().unwrap(),
                },
            ],
            entries: 3,
            fingerprint: String::new(),
            ca: Some("sha256:ab12".to_owned()),
            certificates: Vec::new(),
            metrics: Default::default(),
        };
        assert_eq!(
            expiry(1_800_000_000, 1_800_000_000 - 89 * 86_400 - 5),
            "2027-01-15T08:00:00Z (in 89d)"
        );
        assert_eq!(
            expiry(1_800_000_000, 1_800_000_001),
            "2027-01-15T08:00:00Z (expired)"
        );
        assert_eq!(
            status_table(&status),
            "cluster 00000000000000c1\n\
             node    n1 (000000000000000a) at 10.0.0.1:7946\n\
             ca      sha256:ab12\n\n\
             MEMBER                   NODE ID            ADDRESS\n\
             n2                       000000000000000b   10.0.0.2:7946\n\
             <unknown>                000000000000000c   10.0.0.3:7946\n"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["nodeId"], "000000000000000a");
        assert_eq!(json["members"][1]["name"], serde_json::Value::Null);
        assert_eq!(json["metrics"]["joinsRefused"], 0);
    }
}
