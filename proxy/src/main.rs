//! podswarm-ingress: the HTTP/HTTPS ingress of this node. See the library docs for the design;
//! this file wires configuration, logging and the server together and follows systemd's notify
//! protocol (READY once the sockets are bound and the view read, WATCHDOG pings when asked for,
//! STOPPING on SIGTERM, then up to `ingress.shutdown_grace_secs` for requests in progress).

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use podswarm_config::process::{exit_code, init_logging, notify};
use podswarm_ingress::Settings;
use podswarm_ingress::cli::Args;
use sd_notify::NotifyState;

// pingora allocates and frees header maps, buffers and tasks for every request: with glibc's
// malloc that was a tenth of the CPU time (perf), and mimalloc made 13-byte responses 13% and
// 64 KiB ones 53% faster (bench/ingress.rs). Its idle RSS is kept low by the unit's settings.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The runtime of the first worker, the view's watcher and health checks; the other workers
// have threads and runtimes of their own (see the library docs).
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    podswarm_ingress::forward_library_logs(log::LevelFilter::Warn);
    exit_code("podswarm-ingress", run(args).await)
}

async fn run(args: Args) -> Result<()> {
    let config = args.common.load(|c| args.apply(c))?;
    let settings = Settings::from_config(&config)?;
    if args.common.validate {
        args.common.report(&config);
        return Ok(());
    }
    // Before the sockets exist: once anything can connect, a SIGTERM must mean a clean stop, not
    // the default action (death by signal).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut ingress = podswarm_ingress::serve(settings).await?;
    notify(&[NotifyState::Ready]);
    tracing::info!(
        http = ?ingress.http_addr(),
        https = ?ingress.https_addr(),
        version = ingress.view_version(),
        "podswarm-ingress ready"
    );

    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            () = ingress.wait() => anyhow::bail!("a listener stopped"),
            _ = tokio::time::sleep(watchdog.unwrap_or(Duration::from_secs(3600))) => {
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
        }
    }
    notify(&[NotifyState::Stopping]);
    tracing::info!("podswarm-ingress stopping");
    ingress.shutdown().await;
    tracing::debug!("podswarm-ingress stopped");
    Ok(())
}
