//! podswarmd: the node agent. Reads `/etc/podswarm/podswarm.toml` (flags and `PODSWARM_*` override
//! it), serves the API, and reconciles desired pods into Quadlet units run by systemd.
//!
//! Workloads are systemd units of their own, so stopping or crashing podswarmd stops nothing: on
//! start it adopts what runs and changes only the difference.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long podswarmd's first pass waits for its gossip node to exchange state with a member.
const PEER_SYNC_WAIT: Duration = Duration::from_secs(30);

use anyhow::{Context, Result, bail};
use clap::Parser;
use podswarm_daemon::api::{self, Api, Peer};
use podswarm_daemon::cli::Args;
use podswarm_daemon::config::process::{exit_code, hostname, init_logging, notify};
use podswarm_daemon::config::{MultiContainerMode, Toggle};
use podswarm_daemon::groups;
use podswarm_daemon::link::Link;
use podswarm_daemon::metrics::{Exporter, Sources};
use podswarm_daemon::model::Model;
use podswarm_daemon::podman::PodmanCli;
use podswarm_daemon::reconcile::{Reconciler, Settings, error_chain};
use podswarm_daemon::state::{State, system_clock};
use podswarm_generator::{MultiContainer, NodeContext, Options, PodNetwork};
use podswarm_manifest::{Limits, Policy};
use podswarm_units::{DbusSystemd, Systemd};
use tokio::sync::watch;

/// Whether the node's cgroup tree can enforce memory and CPU limits here.
fn cgroup_controllers_present() -> bool {
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .map(|c| {
            let set: Vec<&str> = c.split_whitespace().collect();
            set.contains(&"memory") && set.contains(&"cpu")
        })
        .unwrap_or(false)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    exit_code("podswarmd", run(args).await)
}

async fn run(args: Args) -> Result<()> {
    let config = args.common.load(|c| args.apply(c))?;
    if args.common.validate {
        args.common.report(&config);
        return Ok(());
    }
    let node_name = config.node_name.clone().unwrap_or_else(hostname);
    for dir in [
        &config.paths.state_dir,
        &config.paths.unit_dir,
        &config.paths.data_dir,
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let policy = Policy {
        host_path_allow: config.workloads.host_path_allow.clone(),
        allow_host_users: config.workloads.allow_host_users,
    };
    let state = Arc::new(State::open(
        &config.paths.state_dir,
        &policy,
        system_clock(),
    )?);

    // The replicated state, through podswarm-gossip. The pod subnet comes from it: the one this
    // node held before (configured, or recorded at its last start) unless another node claimed
    // it first, else a free /24 of the pod CIDR — which the very first start waits for.
    let link = Link::new(
        config.cluster.socket.clone(),
        node_name.clone(),
        Arc::clone(&state),
        policy.clone(),
    );
    let (shutdown_tx, shutdown) = watch::channel(false);
    let views = podswarm_daemon::reconcile::PodViews::default();
    // Until the first reconcile pass has observed what runs here, the (empty) views must not
    // replace this node's status records: other nodes would move its pods.
    link.hold_views();
    let link_task = tokio::spawn(Arc::clone(&link).run(views.clone(), shutdown.clone()));
    let cidr = config.pod_cidr()?;
    let configured = match config.network.node_subnet {
        Some(_) => Some(config.node_subnet()?),
        None => None,
    };
    let subnet = match configured.or(state.subnet()) {
        Some(s) => s,
        None => link.claim_subnet(cidr, None).await,
    };
    state.set_membership(state.cluster(), Some(subnet))?;
    link.set_rendering_subnet(subnet);
    tokio::spawn(keep_subnet(
        Arc::clone(&link),
        Arc::clone(&state),
        cidr,
        subnet,
    ));
    tokio::spawn(keep_routes(Arc::clone(&link), config.paths.ip.clone()));

    let podman = Arc::new(PodmanCli {
        binary: config.paths.podman.clone(),
        journalctl: config.paths.journalctl.clone(),
    });
    let multi_container = match config.workloads.multi_container {
        MultiContainerMode::Pod => MultiContainer::Pod,
        MultiContainerMode::Kube => MultiContainer::Kube,
        MultiContainerMode::Auto => match podman.major_version().await {
            Ok(v) if v >= 5 => MultiContainer::Pod,
            Ok(_) => MultiContainer::Kube,
            Err(e) => bail!(
                "cannot tell the podman version (set workloads.multi_container to skip this): {e}"
            ),
        },
    };
    let enforce_resources = match config.workloads.enforce_resources {
        Toggle::On => true,
        Toggle::Off => false,
        Toggle::Auto => cgroup_controllers_present(),
    };
    if !enforce_resources {
        tracing::warn!(
            "memory and CPU limits are not enforced: the cgroup controllers are missing here (pods say so)"
        );
    }
    let network = PodNetwork { subnet };
    let dns_server = config
        .network
        .dns_server
        .unwrap_or(IpAddr::V4(network.gateway()));
    let settings = Settings {
        node: NodeContext {
            node_name: node_name.clone(),
            node_ip: config.network.node_ip,
            network,
            dns_server: Some(dns_server),
            cluster_domain: config.network.cluster_domain.clone(),
        },
        options: Options {
            multi_container,
            data_dir: config.paths.data_dir.to_string_lossy().into_owned(),
            host_path_allow: config.workloads.host_path_allow.clone(),
            enforce_resources,
        },
        unit_dir: config.paths.unit_dir.clone(),
        data_dir: config.paths.data_dir.clone(),
        parallel_jobs: config.workloads.parallel_jobs,
        quadlet_generator: config.paths.quadlet_generator.clone(),
        podman: config.paths.podman.clone(),
    };
    let systemd = Arc::new(
        DbusSystemd::connect()
            .await
            .context("cannot talk to systemd")?,
    );
    let mut reconciler =
        Reconciler::new(Arc::clone(&systemd), podman, Arc::clone(&state), settings);
    reconciler.views = views;
    let placer = Arc::clone(&link);
    reconciler.placer = Some(Arc::new(move |pods| placer.place_claimed(pods)));
    let facts = Arc::clone(&link);
    reconciler.facts = Some(Arc::new(move |now| facts.rollout_facts(now)));
    let drains = Arc::clone(&link);
    let drain_timeout = Duration::from_millis(config.workloads.drain_timeout_ms);
    reconciler.drain = Some(Arc::new(move |pod| {
        let link = Arc::clone(&drains);
        Box::pin(async move { link.wait_drained(&pod, drain_timeout).await })
    }));
    let handoffs = Arc::clone(&link);
    let move_timeout = Duration::from_millis(config.workloads.move_timeout_ms);
    reconciler.handoff = Some(Arc::new(move |pod| {
        let link = Arc::clone(&handoffs);
        Box::pin(async move {
            link.wait_handoff(&pod, move_timeout).await;
        })
    }));
    let reconciler = Arc::new(reconciler);

    let reload_source = Arc::clone(&systemd);
    let model = Model::new(
        Arc::clone(&state),
        Arc::clone(&link),
        Arc::clone(&reconciler.views),
    );
    let model_task = tokio::spawn(Arc::clone(&model).run(shutdown.clone()));
    // Opt-in automatic rollback (`podswarm.io/auto-rollback`): only the lowest-named live node
    // writes; it ends with the shutdown signal.
    tokio::spawn(podswarm_daemon::autorollback::run(
        Arc::clone(&link),
        model.subscribe(),
        shutdown.clone(),
    ));
    let metrics = Exporter::new(Sources {
        reconcile: Arc::clone(&reconciler.metrics),
        reloads: Arc::new(move || reload_source.reload_count()),
        snapshots: model.subscribe(),
    });
    // The node certificate, for HTTPS on the TCP API and mTLS to other nodes; podswarm-gossip
    // signs it once it serves the cluster, and again at two thirds of its lifetime.
    let tls = (!config.api.listen.is_empty() && !config.api.insecure_plain_http).then(|| {
        podswarm_daemon::tls::NodeTls::new(
            &node_name,
            config.network.node_ip.into_iter().collect(),
            Duration::from_secs(config.api.certificate_lifetime_s),
        )
    });
    if let Some(tls) = &tls {
        tokio::spawn(Arc::clone(tls).run(Arc::clone(&link), shutdown.clone()));
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let api = Arc::new(Api {
        state: Arc::clone(&state),
        link: Arc::clone(&link),
        model: Arc::clone(&model),
        metrics,
        limits: Limits {
            max_bytes: config.api.max_body_bytes,
            ..Limits::default()
        },
        policy,
        node_name: node_name.clone(),
        journalctl: config.paths.journalctl.clone(),
        socket_group: config.api.socket_group.clone(),
        api_port: config
            .api
            .listen
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.port()),
        tls: tls.clone(),
        kube_objects: Default::default(),
    });
    let (drained_tx, drained_rx) = tokio::sync::watch::channel(std::collections::BTreeSet::new());
    let drained_task = tokio::spawn(Arc::clone(&link).publish_drained(drained_rx));
    let view_task = tokio::spawn(podswarm_daemon::view::publish(
        model.subscribe(),
        drained_tx,
        config.network.node_ip,
        config.paths.view.clone(),
        config.paths.tls_dir.clone(),
        config.network.cluster_domain.clone(),
        ipnet::IpNet::V4(cidr),
        shutdown.clone(),
    ));
    // This node's token record, so other nodes accept its requests (a pod's logs).
    let (record, _) = state.node_token(&node_name)?;
    tokio::spawn(Arc::clone(&link).keep(
        format!("tokens/{}", record.id),
        serde_json::to_value(&record)?,
    ));

    // Placement needs the cluster's state: before it is here, this node would see itself alone
    // and place every pod of the cluster on itself (as it would start them). So the first pass
    // waits for it, as a first start waits for podswarm-gossip to claim a subnet.
    while !link.synced(Duration::from_secs(10)).await {
        tracing::warn!(
            "waiting for podswarm-gossip's copy of the cluster state before reconciling"
        );
    }
    // And for that copy to be the cluster's: after a power cut, podswarm-gossip's own replica
    // still says this node runs the pods other nodes took over meanwhile, until it has
    // exchanged state with a member. A node cut off from every member goes on after a while.
    if !link.peer_synced(PEER_SYNC_WAIT).await {
        tracing::warn!(
            waited_s = PEER_SYNC_WAIT.as_secs(),
            "no other member has exchanged state with podswarm-gossip yet; reconciling with what it holds"
        );
    }
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let reconcile_task = tokio::spawn(Arc::clone(&reconciler).run(shutdown.clone(), ready_tx));
    let probe_task = tokio::spawn(Arc::clone(&reconciler).run_probes(shutdown.clone()));

    let mut servers = Vec::new();
    let socket = &config.api.socket;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(socket);
    let unix = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
        if let Some(gid) = groups::gid_of(&config.api.socket_group) {
            std::os::unix::fs::chown(socket, None, Some(gid)).with_context(|| {
                format!(
                    "cannot give {} to group {}",
                    socket.display(),
                    config.api.socket_group
                )
            })?;
        }
    }
    let unix_app = api::unix_router(Arc::clone(&api), config.api.max_body_bytes)
        .into_make_service_with_connect_info::<Peer>();
    let mut stop = shutdown.clone();
    servers.push(tokio::spawn(async move {
        axum::serve(unix, unix_app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
    }));
    if !config.api.listen.is_empty() {
        let tcp = tokio::net::TcpListener::bind(&config.api.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.api.listen))?;
        let tcp_app = api::tcp_router(Arc::clone(&api), config.api.max_body_bytes);
        let mut stop = shutdown.clone();
        match &tls {
            Some(tls) => {
                let tcp =
                    podswarm_daemon::tls::TlsListener::new(tcp, Arc::clone(tls), shutdown.clone())?;
                let tcp_app =
                    tcp_app.into_make_service_with_connect_info::<podswarm_daemon::tls::TlsPeer>();
                servers.push(tokio::spawn(async move {
                    axum::serve(tcp, tcp_app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.changed().await;
                        })
                        .await
                }));
            }
            None => servers.push(tokio::spawn(async move {
                axum::serve(tcp, tcp_app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await
            })),
        }
    }
    tracing::info!(node = %node_name, subnet = %subnet, socket = %socket.display(), listen = %config.api.listen, "podswarmd started");

    // Ready once the first pass has adopted or started what should run.
    let _ = ready_rx.await;
    link.views_ready();
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("reconciled"),
    ]);

    let mut watchdog = tokio::time::interval(
        sd_notify::watchdog_enabled()
            .map(|d| d / 2)
            .unwrap_or(Duration::from_secs(3600)),
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = watchdog.tick() => {
                // Ping only while the reconciler task lives: a wedged daemon gets restarted.
                if !reconcile_task.is_finished() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    }
    tracing::info!("stopping; workloads keep running");
    notify(&[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);
    for s in servers {
        match s.await {
            Ok(Err(e)) => {
                tracing::warn!(error = %error_chain(&e), "API server stopped with an error")
            }
            Err(e) => tracing::warn!(error = %e, "API server task failed"),
            Ok(Ok(())) => {}
        }
    }
    let _ = reconcile_task.await;
    let _ = probe_task.await;
    let _ = link_task.await;
    let _ = view_task.await;
    drained_task.abort();
    let _ = model_task.await;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// Keeps this node's subnet claim; when another node's earlier claim wins it (two one-node
/// clusters joined), records a free subnet and exits so systemd restarts podswarmd on it: every
/// pod needs a new address then, and a restart is the one path that renders them all afresh.
async fn keep_subnet(
    link: Arc<Link>,
    state: Arc<State>,
    cidr: ipnet::Ipv4Net,
    subnet: ipnet::Ipv4Net,
) {
    let mut changes = link.changes();
    loop {
        let claimed = link.claim_subnet(cidr, Some(subnet)).await;
        if claimed != subnet {
            tracing::error!(old = %subnet, new = %claimed, "another node holds this node's pod subnet; restarting on a new one");
            if let Err(e) = state.set_membership(state.cluster(), Some(claimed)) {
                tracing::error!(error = %error_chain(&e), "cannot record the new subnet");
            }
            std::process::exit(1);
        }
        while link.holds_subnet(subnet) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Keeps one kernel route per peer subnet, on every change of the cluster and every 10 s.
async fn keep_routes(link: Arc<Link>, ip: std::path::PathBuf) {
    let mut changes = link.changes();
    let mut failing = false;
    loop {
        match podswarm_daemon::routes::sync(&ip, &link.peer_routes()).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(changed = n, "pod routes updated");
                }
                failing = false;
            }
            Err(e) if !failing => {
                tracing::error!(error = %error_chain(&e), "cannot update the routes to other nodes' pods");
                failing = true;
            }
            Err(_) => {}
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), changes.changed()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
