//! podswarm-gossip's command line (here so the packaging tool can generate its man page).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use podswarm_config::{Config, ConfigArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podswarm-gossip",
    version,
    about = "podswarm's cluster membership and replicated state"
)]
pub struct Args {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// This node's name (default: the host name)
    #[arg(long, env = "PODSWARM_NODE_NAME")]
    pub node_name: Option<String>,
    /// UDP and TCP address to listen on
    #[arg(long, env = "PODSWARM_GOSSIP_LISTEN")]
    pub listen: Option<String>,
    /// Address other nodes reach this one at
    #[arg(long, env = "PODSWARM_ADVERTISE_ADDR")]
    pub advertise_addr: Option<IpAddr>,
    /// Control socket
    #[arg(long, env = "PODSWARM_GOSSIP_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Directory of the cluster identity and key
    #[arg(long, env = "PODSWARM_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// State directory; the replicated state is kept in its gossip/ subdirectory
    #[arg(long, env = "PODSWARM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl Args {
    pub fn apply(&self, c: &mut Config) {
        if let Some(v) = &self.node_name {
            c.node_name = Some(v.clone());
        }
        if let Some(v) = &self.listen {
            c.cluster.listen = v.clone();
        }
        if let Some(v) = self.advertise_addr {
            c.cluster.advertise_addr = Some(v);
        }
        if let Some(v) = &self.socket {
            c.cluster.socket = v.clone();
        }
        if let Some(v) = &self.key_dir {
            c.cluster.key_dir = v.clone();
        }
        if let Some(v) = &self.state_dir {
            c.paths.state_dir = v.clone();
        }
    }
}
