//! `podswarmctl dns whitelist …`: which outside names podswarm-dns forwards. The list is cluster
//! state (replicated), so any node's API changes it for every node.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use podswarm_api::{HostBody, Whitelist, WhitelistBody};

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: DnsCommand,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// The forwarding whitelist
    Whitelist {
        #[command(subcommand)]
        command: WhitelistCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum WhitelistCommand {
    /// Print whether the whitelist is enforced and its domains
    Get,
    /// Replace the domains (and enforce the list, unless --enabled false)
    Set {
        /// Domains whose names (and subdomains) are forwarded
        hosts: Vec<String>,
        /// Whether the list is enforced; false forwards every name and keeps the list
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        enabled: bool,
    },
    /// Add domains
    Add {
        /// Domains whose names (and subdomains) are forwarded from now on
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    /// Remove domains
    Remove {
        /// Domains to take off the list
        #[arg(required = true)]
        hosts: Vec<String>,
    },
}

fn print(list: &Whitelist) {
    println!(
        "whitelist {}",
        if list.enabled {
            "enforced: only these domains are forwarded"
        } else {
            "not enforced: every name is forwarded (to pods and nodes)"
        }
    );
    for h in &list.hosts {
        println!("{h}");
    }
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let DnsCommand::Whitelist { command } = &args.command;
    let path = "/api/v1/dns/whitelist";
    // Each change answers with the whole list; the last answer is the list as it now stands.
    let mut list = Whitelist::default();
    match command {
        WhitelistCommand::Get => list = client.get(path).await?,
        WhitelistCommand::Set { hosts, enabled } => {
            let body = WhitelistBody {
                enabled: *enabled,
                hosts: hosts.clone(),
            };
            list = client.send_json(Method::PUT, path, &body).await?;
        }
        WhitelistCommand::Add { hosts } => {
            for host in hosts {
                let body = HostBody { host: host.clone() };
                list = client
                    .send_json(Method::POST, &format!("{path}/hosts"), &body)
                    .await?;
            }
        }
        WhitelistCommand::Remove { hosts } => {
            for host in hosts {
                list = client
                    .call(Method::DELETE, &format!("{path}/hosts/{host}"), None, &[])
                    .await?;
            }
        }
    }
    print(&list);
    Ok(())
}
