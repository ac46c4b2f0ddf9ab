//! `podswarmctl dns whitelist …`: which outside names podswarm-dns forwards. The list is cluster
//! state (replicated), so any node's API changes it for every node.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::{Value, json};

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

fn print(v: &Value) {
    let enabled = v["enabled"].as_bool().unwrap_or(false);
    println!(
        "whitelist {}",
        if enabled {
            "enforced: only these domains are forwarded"
        } else {
            "not enforced: every name is forwarded (to pods and nodes)"
        }
    );
    for h in v["hosts"].as_array().into_iter().flatten() {
        println!("{}", h.as_str().unwrap_or(""));
    }
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let DnsCommand::Whitelist { command } = &args.command;
    let path = "/api/v1/dns/whitelist";
    let v = match command {
        WhitelistCommand::Get => client.json(Method::GET, path, None, &[]).await?,
        WhitelistCommand::Set { hosts, enabled } => {
            let body = serde_json::to_vec(&json!({"enabled": enabled, "hosts": hosts}))?;
            client
                .json(Method::PUT, path, Some((body, "application/json")), &[])
                .await?
        }
        WhitelistCommand::Add { hosts } => {
            let mut last = Value::Null;
            for host in hosts {
                let body = serde_json::to_vec(&json!({"host": host}))?;
                last = client
                    .json(
                        Method::POST,
                        &format!("{path}/hosts"),
                        Some((body, "application/json")),
                        &[],
                    )
                    .await?;
            }
            last
        }
        WhitelistCommand::Remove { hosts } => {
            let mut last = Value::Null;
            for host in hosts {
                last = client
                    .json(Method::DELETE, &format!("{path}/hosts/{host}"), None, &[])
                    .await?;
            }
            last
        }
    };
    print(&v);
    Ok(())
}
