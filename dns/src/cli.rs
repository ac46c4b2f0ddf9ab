//! podswarm-dns's command line (here so the packaging tool can generate its man page).

use std::path::PathBuf;

use clap::Parser;
use podswarm_config::{Config, ConfigArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podswarm-dns",
    version,
    about = "podswarm's cluster DNS: service and pod records, forwarding for pods and nodes"
)]
pub struct Args {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// UDP and TCP address to listen on
    #[arg(long, env = "PODSWARM_DNS_LISTEN")]
    pub listen: Option<String>,
    /// The routing view published by podswarmd
    #[arg(long, env = "PODSWARM_VIEW")]
    pub view: Option<PathBuf>,
    /// Upstream server (IP or IP:port) for names outside the cluster domain; repeat for more
    /// (default: the nameservers of /etc/resolv.conf)
    #[arg(
        long = "upstream",
        env = "PODSWARM_DNS_UPSTREAMS",
        value_delimiter = ','
    )]
    pub upstreams: Vec<String>,
}

impl Args {
    pub fn apply(&self, c: &mut Config) {
        if let Some(v) = &self.listen {
            c.dns.listen = v.clone();
        }
        if let Some(v) = &self.view {
            c.paths.view = v.clone();
        }
        if !self.upstreams.is_empty() {
            c.dns.upstreams = self.upstreams.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let args = Args::parse_from([
            "podswarm-dns",
            "--listen",
            "127.0.0.1:5353",
            "--view",
            "/tmp/v.json",
            "--upstream",
            "192.0.2.1",
            "--upstream",
            "192.0.2.2:54",
        ]);
        let mut c = Config::default();
        args.apply(&mut c);
        assert_eq!(c.dns.listen, "127.0.0.1:5353");
        assert_eq!(c.paths.view, PathBuf::from("/tmp/v.json"));
        assert_eq!(c.dns.upstreams, ["192.0.2.1", "192.0.2.2:54"]);

        let mut c = Config::default();
        Args::parse_from(["podswarm-dns"]).apply(&mut c);
        assert_eq!(c.dns.listen, "0.0.0.0:53");
        assert!(c.dns.upstreams.is_empty());
    }
}
