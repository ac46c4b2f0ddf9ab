//! podswarmd's command line, here rather than in `main.rs` so that the packaging tool can
//! generate its man page from the same definition.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigArgs};

#[derive(Debug, Parser)]
#[command(name = "podswarmd", version, about = "The podswarm node agent")]
pub struct Args {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// This node's name (default: the host name)
    #[arg(long, env = "PODSWARM_NODE_NAME")]
    pub node_name: Option<String>,
    /// TCP address of the API (empty: none)
    #[arg(long, env = "PODSWARM_API_LISTEN")]
    pub api_listen: Option<String>,
    /// Unix socket of the API; root and members of the socket group use it without a token
    #[arg(long, env = "PODSWARM_API_SOCKET")]
    pub api_socket: Option<PathBuf>,
    /// Directory of podswarmd's state file (the objects, pod addresses, token hashes)
    #[arg(long, env = "PODSWARM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory of the generated Quadlet units; podswarm owns it and nothing else writes there
    #[arg(long, env = "PODSWARM_UNIT_DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Directory of ConfigMap volume files
    #[arg(long, env = "PODSWARM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The cluster's pod network; each node uses one /24 of it
    #[arg(long, env = "PODSWARM_POD_CIDR")]
    pub pod_cidr: Option<String>,
    /// This node's pod subnet (default: a free /24 of the pod network, claimed through the cluster state)
    #[arg(long, env = "PODSWARM_NODE_SUBNET")]
    pub node_subnet: Option<String>,
    /// Cluster DNS domain
    #[arg(long, env = "PODSWARM_CLUSTER_DOMAIN")]
    pub cluster_domain: Option<String>,
    /// DNS server given to pods (default: the node subnet's gateway, where podswarm-dns listens)
    #[arg(long, env = "PODSWARM_DNS_SERVER")]
    pub dns_server: Option<IpAddr>,
    /// This node's address, for status.hostIP
    #[arg(long, env = "PODSWARM_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// Host path prefix hostPath volumes may use (repeatable)
    #[arg(
        long = "host-path-allow",
        env = "PODSWARM_HOST_PATH_ALLOW",
        value_delimiter = ','
    )]
    pub host_path_allow: Vec<String>,
}

impl Args {
    pub fn apply(&self, c: &mut Config) {
        if let Some(v) = &self.node_name {
            c.node_name = Some(v.clone());
        }
        if let Some(v) = &self.api_listen {
            c.api.listen = v.clone();
        }
        if let Some(v) = &self.api_socket {
            c.api.socket = v.clone();
        }
        if let Some(v) = &self.state_dir {
            c.paths.state_dir = v.clone();
        }
        if let Some(v) = &self.unit_dir {
            c.paths.unit_dir = v.clone();
        }
        if let Some(v) = &self.data_dir {
            c.paths.data_dir = v.clone();
        }
        if let Some(v) = &self.pod_cidr {
            c.network.pod_cidr = v.clone();
        }
        if let Some(v) = &self.node_subnet {
            c.network.node_subnet = Some(v.clone());
        }
        if let Some(v) = &self.cluster_domain {
            c.network.cluster_domain = v.clone();
        }
        if let Some(v) = self.dns_server {
            c.network.dns_server = Some(v);
        }
        if let Some(v) = self.node_ip {
            c.network.node_ip = Some(v);
        }
        if !self.host_path_allow.is_empty() {
            c.workloads.host_path_allow = self.host_path_allow.clone();
        }
    }
}
