//! podswarm-gossip: this node's membership and copy of the replicated cluster state. See the
//! library docs for the design; this file wires configuration, logging, the session and the
//! control socket together and follows systemd's notify protocol.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use podswarm_config::process::{exit_code, hostname, init_logging, notify};
use podswarm_gossip::cli::Args;
use podswarm_gossip::node::{Node, Settings};
use sd_notify::NotifyState;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    exit_code("podswarm-gossip", run(args).await)
}

async fn run(args: Args) -> Result<()> {
    let config = args.common.load(|c| args.apply(c))?;
    if args.common.validate {
        args.common.report(&config);
        return Ok(());
    }
    let settings = Settings {
        listen: config.cluster.listen.parse().context("cluster.listen")?,
        node_name: config.node_name.clone().unwrap_or_else(hostname),
        advertise_ip: config.cluster.advertise_addr,
        // Its own subdirectory: /var/lib/podswarm itself belongs to podswarmd.
        state_dir: config.paths.state_dir.join("gossip"),
        key_dir: config.cluster.key_dir.clone(),
        labels: config.cluster.labels.clone(),
        tombstone_ttl: Duration::from_secs(config.cluster.tombstone_ttl_secs),
        sync_interval: Duration::from_millis(config.cluster.sync_interval_ms),
        probe_period: Duration::from_millis(config.cluster.probe_period_ms),
        reconnect_interval: Duration::from_millis(config.cluster.reconnect_interval_ms),
    };
    // Before the sockets exist: once anything can connect, a SIGTERM must mean a clean stop (the
    // replica saved, a leave announced), not death by signal.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let listener = podswarm_gossip::control::bind(&config.cluster.socket)?;
    let node = Node::start(settings).await?;
    tokio::spawn(podswarm_gossip::control::serve(listener, node.clone()));
    notify(&[NotifyState::Ready]);
    tracing::info!(socket = %config.cluster.socket.display(), "podswarm-gossip ready");

    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            // No watchdog ping is sent for a node that cannot serve: exit, and systemd (the
            // unit restarts on failure) starts it afresh from the identity on disk.
            _ = node.stuck() => {
                notify(&[NotifyState::Stopping]);
                anyhow::bail!("no cluster session could be started again after a failed init, join or leave");
            }
            _ = tokio::time::sleep(watchdog.unwrap_or(Duration::from_secs(3600))) => {
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
        }
    }
    notify(&[NotifyState::Stopping]);
    node.shutdown().await;
    let _ = std::fs::remove_file(&config.cluster.socket);
    Ok(())
}
