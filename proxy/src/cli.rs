//! podswarm-ingress's command line (here so the packaging tool can generate its man page).

use std::path::PathBuf;

use clap::Parser;
use podswarm_config::{Config, ConfigArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podswarm-ingress",
    version,
    about = "podswarm's HTTP/HTTPS ingress: Kubernetes Ingress rules to service endpoints"
)]
pub struct Args {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Plain HTTP address (empty: none)
    #[arg(long, env = "PODSWARM_INGRESS_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// HTTPS address (empty: none)
    #[arg(long, env = "PODSWARM_INGRESS_HTTPS_LISTEN")]
    pub https_listen: Option<String>,
    /// The routing view published by podswarmd
    #[arg(long, env = "PODSWARM_VIEW")]
    pub view: Option<PathBuf>,
}

impl Args {
    pub fn apply(&self, c: &mut Config) {
        if let Some(v) = &self.http_listen {
            c.ingress.http_listen = v.clone();
        }
        if let Some(v) = &self.https_listen {
            c.ingress.https_listen = v.clone();
        }
        if let Some(v) = &self.view {
            c.paths.view = v.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let args = Args::parse_from([
            "podswarm-ingress",
            "--http-listen",
            "127.0.0.1:8080",
            "--https-listen",
            "",
            "--view",
            "/tmp/v.json",
        ]);
        let mut c = Config::default();
        args.apply(&mut c);
        assert_eq!(c.ingress.http_listen, "127.0.0.1:8080");
        assert_eq!(c.ingress.https_listen, "");
        assert_eq!(c.paths.view, PathBuf::from("/tmp/v.json"));
        assert!(c.validate().is_ok());

        let mut c = Config::default();
        Args::parse_from(["podswarm-ingress"]).apply(&mut c);
        assert_eq!(c.ingress.http_listen, "0.0.0.0:80");
        assert_eq!(c.ingress.https_listen, "0.0.0.0:443");
    }
}
