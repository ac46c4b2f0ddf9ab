//! `/etc/podswarm/podswarm.toml`: one file, every key optional, unknown keys refused. Flags and
//! `PODSWARM_*` variables override it (each binary's `cli.rs`); `--validate` checks it and exits.
//! Every daemon reads the whole file, so a key one of them does not know is still an error for
//! all of them.

pub mod process;

/// The flags every podswarm daemon takes for its configuration, flattened into each one's
/// command line (`#[command(flatten)]`), and reading the file they name.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (missing file: defaults)
    #[arg(
        long,
        env = "PODSWARM_CONFIG",
        default_value = "/etc/podswarm/podswarm.toml"
    )]
    pub config: PathBuf,
    /// Check the configuration and exit
    #[arg(long)]
    pub validate: bool,
}

impl ConfigArgs {
    /// The file's configuration with the daemon's own flags applied over it, validated.
    pub fn load(&self, flags: impl FnOnce(&mut Config)) -> Result<Config, ConfigError> {
        let mut config = Config::load(&self.config)?;
        flags(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// For `--validate`: what to print once everything derived from the configuration was built.
    pub fn valid_message(&self) -> String {
        format!("{}: configuration is valid", self.config.display())
    }

    /// For `--validate`: prints `config`'s warnings (to stderr) and the verdict.
    pub fn report(&self, config: &Config) {
        for warning in config.warnings() {
            eprintln!("warning: {warning}");
        }
        println!("{}", self.valid_message());
    }
}

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    /// This node's name (default: the host name).
    pub node_name: Option<String>,
    pub api: ApiConfig,
    pub paths: PathsConfig,
    pub network: NetworkConfig,
    pub workloads: WorkloadsConfig,
    pub cluster: ClusterConfig,
    pub dns: DnsConfig,
    pub ingress: IngressConfig,
}

/// podswarm-ingress: Ingress rules from the routing view, proxied to service endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// Plain HTTP address; empty string: no HTTP listener.
    pub http_listen: String,
    /// HTTPS address (certificates from the Ingresses' `spec.tls`); empty string: no HTTPS.
    pub https_listen: String,
    /// Ingresses with this `ingressClassName` are served, and so are those that name no class.
    pub class: String,
    /// How long connecting to an endpoint may take before the next one is tried.
    pub connect_timeout_ms: u64,
    /// How long an endpoint may stay silent while a response is expected (then 504).
    pub read_timeout_secs: u64,
    /// Further endpoints tried after a failed connection, for idempotent methods only.
    pub retries: usize,
    /// How long an endpoint that refused a connection is left out.
    pub eject_secs: u64,
    /// How often every endpoint gets a TCP health check; 0: no active checks.
    pub health_interval_secs: u64,
    /// On SIGTERM, how long requests in progress may take to finish.
    pub shutdown_grace_secs: u64,
    /// One log line per request (info).
    pub access_log: bool,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            http_listen: "0.0.0.0:80".to_owned(),
            https_listen: "0.0.0.0:443".to_owned(),
            class: "podswarm".to_owned(),
            connect_timeout_ms: 3000,
            read_timeout_secs: 60,
            retries: 2,
            eject_secs: 10,
            health_interval_secs: 5,
            shutdown_grace_secs: 5,
            access_log: false,
        }
    }
}

/// podswarm-dns: the cluster domain's records, forwarding for pods and nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP and TCP address; the node's pods use the pod subnet's gateway on this port.
    pub listen: String,
    /// Where names outside the cluster domain go (`IP` or `IP:port`); empty: the nameservers of
    /// /etc/resolv.conf.
    pub upstreams: Vec<String>,
    /// TTL of cluster records, seconds.
    pub ttl_secs: u32,
    /// Forwarded answers kept in the cache.
    pub cache_size: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: "0.0.0.0:53".to_owned(),
            upstreams: Vec::new(),
            ttl_secs: 5,
            cache_size: 4096,
        }
    }
}

/// podswarm-gossip: membership, the replicated state, joining.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// UDP (SWIM) and TCP (anti-entropy, joins) address.
    pub listen: String,
    /// The address other nodes reach this one at (default: chosen by `cluster init`/`join`).
    pub advertise_addr: Option<IpAddr>,
    /// The local socket podswarmd and podswarmctl use.
    pub socket: PathBuf,
    /// Where the cluster identity and key live (0700, owned by the podswarm user).
    pub key_dir: PathBuf,
    /// Node labels for `nodeSelector`.
    pub labels: BTreeMap<String, String>,
    /// How long deletes are remembered; a node away for longer must rejoin.
    pub tombstone_ttl_secs: u64,
    /// How often each node compares its whole state with a random peer.
    pub sync_interval_ms: u64,
    /// SWIM probe period; failure detection takes a few of these.
    pub probe_period_ms: u64,
    /// How often nodes that are not active members (declared down, partitioned away) are
    /// contacted again. A healed partition merges within about this long plus a few probe
    /// periods, however it split.
    pub reconnect_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            listen: "0.0.0.0:7946".to_owned(),
            advertise_addr: None,
            socket: PathBuf::from("/run/podswarm/gossip/gossip.sock"),
            key_dir: PathBuf::from("/etc/podswarm/cluster"),
            labels: BTreeMap::new(),
            tombstone_ttl_secs: 7 * 24 * 3600,
            sync_interval_ms: 5000,
            probe_period_ms: 1000,
            reconnect_interval_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// TCP listener; requests need a bearer token. Empty string: no TCP listener.
    pub listen: String,
    /// Unix socket; peers are authenticated by their credentials (root or `socket_group`).
    pub socket: PathBuf,
    pub socket_group: String,
    /// Largest request body accepted (bytes); larger ones get 413.
    pub max_body_bytes: usize,
    /// Serve the TCP API as plain HTTP instead of HTTPS: bearer tokens and node-to-node
    /// requests then cross the network in clear. Off unless set; `--validate` warns about it.
    pub insecure_plain_http: bool,
    /// Lifetime of this node's certificate (seconds), renewed at two thirds of it.
    pub certificate_lifetime_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    pub state_dir: PathBuf,
    pub unit_dir: PathBuf,
    pub data_dir: PathBuf,
    pub podman: PathBuf,
    pub journalctl: PathBuf,
    pub quadlet_generator: PathBuf,
    /// iproute2's `ip`, for the routes to other nodes' pod subnets.
    pub ip: PathBuf,
    /// The routing view podswarmd publishes for podswarm-dns and podswarm-ingress.
    pub view: PathBuf,
    /// Where podswarmd writes the TLS Secrets Ingresses name (one PEM file each, for
    /// podswarm-ingress; root:podswarm 0750, files 0640).
    pub tls_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub pod_cidr: String,
    /// This node's pod subnet; default: a free /24 of `pod_cidr` claimed in the cluster state.
    pub node_subnet: Option<String>,
    pub cluster_domain: String,
    /// DNS server for pods; default: the node subnet's gateway, where podswarm-dns listens.
    pub dns_server: Option<IpAddr>,
    /// This node's address, for `status.hostIP`.
    pub node_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiContainerMode {
    /// `pod` where Podman ≥ 5, else `kube`.
    Auto,
    Pod,
    Kube,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadsConfig {
    pub host_path_allow: Vec<String>,
    /// Whether pods may ask for the host's user namespace (`hostUsers: true`); by default each
    /// pod runs in one of its own.
    pub allow_host_users: bool,
    pub multi_container: MultiContainerMode,
    /// Memory and CPU limits; `auto` enforces them where the cgroup controllers exist.
    pub enforce_resources: Toggle,
    /// How many units are started or stopped at once.
    pub parallel_jobs: usize,
    /// How long a pod on its way out waits for every node's DNS and ingress to drop it before
    /// it is stopped anyway (a node that cannot say so delays a stop by at most this).
    pub drain_timeout_ms: u64,
    /// How long a pod placed on another node (a drain, a node that no longer fits it) keeps
    /// serving here while it waits for that node's copy to be ready and take over, before it
    /// goes anyway.
    pub move_timeout_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "0.0.0.0:8080".to_owned(),
            socket: PathBuf::from("/run/podswarm/api.sock"),
            socket_group: "podswarm".to_owned(),
            max_body_bytes: 4 << 20,
            insecure_plain_http: false,
            certificate_lifetime_s: 90 * 86_400,
        }
    }
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            state_dir: PathBuf::from("/var/lib/podswarm"),
            unit_dir: PathBuf::from("/etc/containers/systemd/podswarm"),
            data_dir: PathBuf::from("/var/lib/podswarm/volumes"),
            podman: PathBuf::from("podman"),
            journalctl: PathBuf::from("journalctl"),
            quadlet_generator: PathBuf::from(
                "/usr/lib/systemd/system-generators/podman-system-generator",
            ),
            ip: PathBuf::from("ip"),
            view: PathBuf::from("/run/podswarm/view.json"),
            tls_dir: PathBuf::from("/run/podswarm/tls"),
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            pod_cidr: "10.244.0.0/16".to_owned(),
            node_subnet: None,
            cluster_domain: "cluster.local".to_owned(),
            dns_server: None,
            node_ip: None,
        }
    }
}

impl Default for WorkloadsConfig {
    fn default() -> Self {
        WorkloadsConfig {
            host_path_allow: Vec::new(),
            allow_host_users: false,
            multi_container: MultiContainerMode::Auto,
            enforce_resources: Toggle::Auto,
            parallel_jobs: 16,
            drain_timeout_ms: 5000,
            move_timeout_ms: 120_000,
        }
    }
}

impl Config {
    /// Reads the file; a missing file means all defaults (the package installs a commented one).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    pub fn pod_cidr(&self) -> Result<Ipv4Net, ConfigError> {
        self.network
            .pod_cidr
            .parse()
            .map_err(|_| ConfigError::Invalid {
                field: "network.pod_cidr",
                message: format!("{:?} is not an IPv4 CIDR", self.network.pod_cidr),
            })
    }

    /// The node's /24 (or the configured subnet), checked to lie inside the pod CIDR.
    pub fn node_subnet(&self) -> Result<Ipv4Net, ConfigError> {
        let cidr = self.pod_cidr()?;
        let subnet: Ipv4Net = match &self.network.node_subnet {
            Some(s) => s.parse().map_err(|_| ConfigError::Invalid {
                field: "network.node_subnet",
                message: format!("{s:?} is not an IPv4 CIDR"),
            })?,
            None => Ipv4Net::new(cidr.network(), 24.max(cidr.prefix_len())).map_err(|e| {
                ConfigError::Invalid {
                    field: "network.pod_cidr",
                    message: e.to_string(),
                }
            })?,
        };
        if !cidr.contains(&subnet) {
            return Err(ConfigError::Invalid {
                field: "network.node_subnet",
                message: format!("{subnet} is not inside the pod CIDR {cidr}"),
            });
        }
        if subnet.prefix_len() > 29 {
            return Err(ConfigError::Invalid {
                field: "network.node_subnet",
                message: format!("{subnet} is too small for pods"),
            });
        }
        Ok(subnet.trunc())
    }

    /// Everything that can be checked without touching the system.
    /// Settings that are valid but weaken the node: `--validate` prints them, the daemons log them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.api.insecure_plain_http && !self.api.listen.is_empty() {
            warnings.push(format!(
                "api.insecure_plain_http = true: the TCP API on {} is plain HTTP, so bearer tokens and node-to-node requests cross the network unencrypted and unauthenticated; remove the setting to serve HTTPS",
                self.api.listen
            ));
        }
        warnings
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.node_subnet()?;
        if !(60..=398 * 86_400).contains(&self.api.certificate_lifetime_s) {
            return Err(ConfigError::Invalid {
                field: "api.certificate_lifetime_s",
                message: format!(
                    "{} is not between 60 (a minute) and 34387200 (398 days)",
                    self.api.certificate_lifetime_s
                ),
            });
        }
        if !self.api.listen.is_empty() {
            self.api
                .listen
                .parse::<SocketAddr>()
                .map_err(|_| ConfigError::Invalid {
                    field: "api.listen",
                    message: format!("{:?} is not an address:port", self.api.listen),
                })?;
        }
        if !podswarm_manifest::is_dns1123_subdomain(
            self.network.cluster_domain.trim_end_matches('.'),
        ) {
            return Err(ConfigError::Invalid {
                field: "network.cluster_domain",
                message: format!("{:?} is not a DNS name", self.network.cluster_domain),
            });
        }
        for p in &self.workloads.host_path_allow {
            if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
                return Err(ConfigError::Invalid {
                    field: "workloads.host_path_allow",
                    message: format!("{p:?} must be an absolute path without '..'"),
                });
            }
        }
        if let Some(name) = &self.node_name
            && !podswarm_manifest::is_dns1123_subdomain(name)
        {
            return Err(ConfigError::Invalid {
                field: "node_name",
                message: format!("{name:?} is not a DNS-1123 name"),
            });
        }
        self.cluster
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Invalid {
                field: "cluster.listen",
                message: format!("{:?} is not an address:port", self.cluster.listen),
            })?;
        for (key, value) in &self.cluster.labels {
            if !podswarm_manifest::is_qualified_name(key)
                || !podswarm_manifest::is_label_value(value)
            {
                return Err(ConfigError::Invalid {
                    field: "cluster.labels",
                    message: format!("{key:?} = {value:?} is not a valid label"),
                });
            }
        }
        if self.cluster.sync_interval_ms < 100
            || self.cluster.probe_period_ms < 50
            || self.cluster.reconnect_interval_ms < 100
        {
            return Err(ConfigError::Invalid {
                field: "cluster",
                message: "sync_interval_ms and reconnect_interval_ms must be at least 100 and probe_period_ms at least 50"
                    .to_owned(),
            });
        }
        self.dns
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Invalid {
                field: "dns.listen",
                message: format!("{:?} is not an address:port", self.dns.listen),
            })?;
        for u in &self.dns.upstreams {
            if u.parse::<SocketAddr>().is_err() && u.parse::<IpAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "dns.upstreams",
                    message: format!("{u:?} is not an address or address:port"),
                });
            }
        }
        self.validate_ingress()?;
        if self.workloads.parallel_jobs == 0 {
            return Err(ConfigError::Invalid {
                field: "workloads.parallel_jobs",
                message: "must be at least 1".to_owned(),
            });
        }
        if self.workloads.drain_timeout_ms > 600_000 {
            return Err(ConfigError::Invalid {
                field: "workloads.drain_timeout_ms",
                message: "must be at most 600000 (10 minutes)".to_owned(),
            });
        }
        if self.workloads.move_timeout_ms > 3_600_000 {
            return Err(ConfigError::Invalid {
                field: "workloads.move_timeout_ms",
                message: "must be at most 3600000 (1 hour)".to_owned(),
            });
        }
        Ok(())
    }
}

impl Config {
    fn validate_ingress(&self) -> Result<(), ConfigError> {
        let i = &self.ingress;
        for (field, value) in [
            ("ingress.http_listen", &i.http_listen),
            ("ingress.https_listen", &i.https_listen),
        ] {
            if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    field,
                    message: format!("{value:?} is not an address:port"),
                });
            }
        }
        if i.http_listen.is_empty() && i.https_listen.is_empty() {
            return Err(ConfigError::Invalid {
                field: "ingress",
                message: "http_listen and https_listen cannot both be empty".to_owned(),
            });
        }
        if !podswarm_manifest::is_dns1123_subdomain(&i.class) {
            return Err(ConfigError::Invalid {
                field: "ingress.class",
                message: format!("{:?} is not an IngressClass name", i.class),
            });
        }
        if i.connect_timeout_ms == 0 || i.read_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "ingress",
                message: "connect_timeout_ms and read_timeout_secs must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse(
            "[network]\npod_cidr = \"10.50.0.0/16\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            c.node_subnet().map(|s| s.to_string()).ok(),
            Some("10.50.0.0/24".to_owned())
        );
        assert_eq!(c.api.socket, PathBuf::from("/run/podswarm/api.sock"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn plain_http_is_warned_about_and_certificate_lifetimes_are_bounded() {
        let c = Config::parse("", Path::new("t.toml")).unwrap();
        assert!(!c.api.insecure_plain_http);
        assert_eq!(c.api.certificate_lifetime_s, 90 * 86_400);
        assert!(c.warnings().is_empty());
        let c = Config::parse("[api]\ninsecure_plain_http = true\n", Path::new("t.toml")).unwrap();
        assert!(c.validate().is_ok());
        let warnings = c.warnings();
        assert!(
            warnings.len() == 1 && warnings[0].contains("unencrypted"),
            "{warnings:?}"
        );
        let c = Config::parse("[api]\ncertificate_lifetime_s = 5\n", Path::new("t.toml")).unwrap();
        let e = c.validate().map_err(|e| e.to_string());
        assert!(
            e.as_ref()
                .is_err_and(|e| e.contains("certificate_lifetime_s")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = Config::parse(
            "[api]\nlisten = \"0.0.0.0:1\"\nlsten = 2\n",
            Path::new("t.toml"),
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|e| e.contains("lsten")), "{e:?}");
    }

    #[test]
    fn ingress_section() {
        let c = Config::parse("", Path::new("t.toml")).unwrap();
        assert_eq!(c.ingress.http_listen, "0.0.0.0:80");
        assert_eq!(c.ingress.https_listen, "0.0.0.0:443");
        assert_eq!(c.ingress.class, "podswarm");
        assert_eq!(c.paths.tls_dir, PathBuf::from("/run/podswarm/tls"));
        let c = Config::parse(
            "[ingress]\nhttps_listen = \"\"\nclass = \"internal\"\neject_secs = 3\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.ingress.eject_secs, 3);
        for (text, field) in [
            ("[ingress]\nhttp_listen = \"80\"\n", "ingress.http_listen"),
            ("[ingress]\nclass = \"Not_A_Class\"\n", "ingress.class"),
            (
                "[ingress]\nhttp_listen = \"\"\nhttps_listen = \"\"\n",
                "cannot both be empty",
            ),
        ] {
            let c = Config::parse(text, Path::new("t.toml")).unwrap();
            let e = c.validate().map_err(|e| e.to_string());
            assert!(
                e.as_ref().is_err_and(|e| e.contains(field)),
                "{text}: {e:?}"
            );
        }
        let e = Config::parse("[ingress]\nlisten = \"x\"\n", Path::new("t.toml"))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(e.is_err_and(|e| e.contains("listen")));
    }

    #[test]
    fn bad_values_are_named() {
        let c = Config::parse(
            "[network]\nnode_subnet = \"192.168.0.0/24\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let e = c.validate().map_err(|e| e.to_string());
        assert!(e.is_err_and(|e| e.contains("network.node_subnet") && e.contains("not inside")));
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// The commented file the packages install is valid, and uncommenting every example keeps it
    /// valid: the documentation cannot drift from the code.
    #[test]
    fn the_shipped_config_file_is_valid_commented_and_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/podswarm.toml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let commented = Config::parse(&text, &path).unwrap();
        assert!(commented.validate().is_ok());
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.contains(" = ") && !rest.contains(':')
                        || rest.starts_with("node_name") =>
                {
                    rest.to_owned()
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&uncommented, &path)
            .unwrap_or_else(|e| panic!("uncommented: {e}\n{uncommented}"));
        c.validate().unwrap_or_else(|e| panic!("uncommented: {e}"));
        assert_eq!(c.node_name.as_deref(), Some("node1"));
        assert_eq!(c.workloads.host_path_allow, ["/srv/shared"]);
    }
}
