//! `podswarmctl render`: manifests in, the files a node would install out, as if every pod were
//! placed on one node. A dry run users can read, diff and check with Quadlet's own `--dryrun`.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use podswarm_generator::{MultiContainer, NodeContext, Options, PodNetwork, render_node};
use podswarm_manifest::{Limits, Manifest, Policy, parse};

use crate::input::{Inputs, inputs, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,
    /// Write the files into this directory instead of printing them
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The node's pod subnet; pods get addresses from it in order
    #[arg(long, default_value = "10.244.0.0/24", value_name = "CIDR")]
    pod_subnet: Ipv4Net,
    /// DNS server for pods (default: the subnet's gateway, where podswarm-dns listens)
    #[arg(long, value_name = "IP")]
    dns_server: Option<IpAddr>,
    /// Cluster DNS domain
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    cluster_domain: String,
    /// Node name for spec.nodeName
    #[arg(long, default_value = "node1", value_name = "NAME")]
    node_name: String,
    /// Node address for status.hostIP
    #[arg(long, value_name = "IP")]
    node_ip: Option<IpAddr>,
    /// Host path prefix that hostPath volumes may use (repeatable; default: none)
    #[arg(long = "host-path-allow", value_name = "PATH")]
    host_path_allow: Vec<String>,
    /// Allow `hostUsers: true` (the host's user namespace), as `allow_host_users` in podswarm.toml
    #[arg(long)]
    allow_host_users: bool,
    /// Directory on the node for ConfigMap volume files
    #[arg(long, default_value = "/var/lib/podswarm/volumes", value_name = "DIR")]
    data_dir: String,
    /// How pods with several containers become units: `pod` (.pod + .container, Podman 5) or
    /// `kube` (.kube + pod definition, Podman 4.7+)
    #[arg(long, value_enum, default_value_t = MultiMode::Pod)]
    multi_container: MultiMode,
    /// Largest manifest accepted, in bytes
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    max_bytes: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MultiMode {
    Pod,
    Kube,
}

pub fn run(args: &Args) -> Result<()> {
    let policy = Policy {
        host_path_allow: args.host_path_allow.clone(),
        allow_host_users: args.allow_host_users,
    };
    let limits = Limits {
        max_bytes: args.max_bytes,
        ..Limits::default()
    };
    let mut manifest = Manifest::default();
    for input in inputs(&args.inputs.files)? {
        let (name, text) = read_input(&input, args.max_bytes)?;
        let parsed = parse(&text, &name, &limits, &policy)?;
        manifest.objects.extend(parsed.objects);
        manifest.warnings.extend(parsed.warnings);
    }
    let mut stderr = std::io::stderr().lock();
    for w in &manifest.warnings {
        writeln!(stderr, "warning: {w}")?;
    }

    let network = PodNetwork {
        subnet: args.pod_subnet.trunc(),
    };
    let node = NodeContext {
        node_name: args.node_name.clone(),
        node_ip: args.node_ip,
        dns_server: Some(args.dns_server.unwrap_or(IpAddr::V4(network.gateway()))),
        network: network.clone(),
        cluster_domain: args.cluster_domain.clone(),
    };
    let options = Options {
        host_path_allow: args.host_path_allow.clone(),
        data_dir: args.data_dir.clone(),
        multi_container: match args.multi_container {
            MultiMode::Pod => MultiContainer::Pod,
            MultiMode::Kube => MultiContainer::Kube,
        },
        ..Options::default()
    };
    let objects: Vec<_> = manifest.objects.into_iter().map(|o| o.object).collect();
    let rendered = render_node(&objects, &node, &options)?;
    for w in &rendered.warnings {
        writeln!(stderr, "warning: {w}")?;
    }
    let mut files: Vec<(String, Vec<u8>)> = rendered
        .units
        .into_iter()
        .map(|u| (u.file_name, u.contents.into_bytes()))
        .collect();
    files.extend(
        rendered
            .data_files
            .into_iter()
            .map(|d| (format!("data{}", d.path), d.contents)),
    );
    let secrets: Vec<String> = rendered.secrets.into_iter().map(|s| s.name).collect();
    drop(stderr);

    match &args.out {
        Some(dir) => write_out(dir, &files, &secrets),
        None => {
            let mut stdout = std::io::stdout().lock();
            for (name, contents) in &files {
                writeln!(stdout, "==> {name} <==")?;
                stdout.write_all(contents)?;
                if !contents.ends_with(b"\n") {
                    writeln!(stdout)?;
                }
                writeln!(stdout)?;
            }
            if !secrets.is_empty() {
                writeln!(
                    stdout,
                    "==> podman secrets the node creates (values not shown) <=="
                )?;
                for s in &secrets {
                    writeln!(stdout, "{s}")?;
                }
            }
            Ok(())
        }
    }
}

fn write_out(dir: &Path, files: &[(String, Vec<u8>)], secrets: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, contents) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !secrets.is_empty() {
        let list: String = secrets.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(dir.join("secrets.txt"), list)
            .with_context(|| format!("cannot write {}", dir.join("secrets.txt").display()))?;
    }
    Ok(())
}
