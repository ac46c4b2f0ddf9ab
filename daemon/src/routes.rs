//! Kernel routes to the other nodes' pod subnets ("host-gw", as flannel's backend of that name):
//! `<peer subnet> via <peer address>`, one per peer. Routes carry podswarm's own routing protocol
//! number, so podswarm only ever replaces or removes routes it made.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use serde::Deserialize;

/// The `proto` podswarm's routes carry (`ip route show proto 201`).
pub const PROTO: &str = "201";

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("cannot run {command}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

#[derive(Debug, Deserialize)]
struct Route {
    dst: String,
    gateway: Option<String>,
}

async fn ip(binary: &Path, args: &[&str]) -> Result<String, RouteError> {
    let command = format!("ip {}", args.join(" "));
    let out = tokio::process::Command::new(binary)
        .args(args)
        .output()
        .await
        .map_err(|source| RouteError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(RouteError::Failed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes podswarm's routes exactly `desired`. Returns how many routes changed.
pub async fn sync(
    binary: &Path,
    desired: &BTreeMap<Ipv4Net, Ipv4Addr>,
) -> Result<usize, RouteError> {
    let listed = ip(binary, &["-4", "-j", "route", "show", "proto", PROTO]).await?;
    let current: BTreeMap<String, Option<String>> = serde_json::from_str::<Vec<Route>>(&listed)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.dst, r.gateway))
        .collect();
    let mut changed = 0;
    for (subnet, via) in desired {
        let dst = subnet.to_string();
        if current.get(&dst).and_then(Option::as_deref) != Some(via.to_string().as_str()) {
            ip(
                binary,
                &[
                    "route",
                    "replace",
                    &dst,
                    "via",
                    &via.to_string(),
                    "proto",
                    PROTO,
                ],
            )
            .await?;
            changed += 1;
        }
    }
    for dst in current.keys() {
        if !desired.keys().any(|s| s.to_string() == *dst) {
            ip(binary, &["route", "del", dst, "proto", PROTO]).await?;
            changed += 1;
        }
    }
    Ok(changed)
}
