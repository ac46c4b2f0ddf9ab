//! podswarm-dns: the cluster DNS server of this node. See the library docs for the design; this
//! file wires configuration, logging and the server together and follows systemd's notify
//! protocol (READY once the sockets are bound and the view read, WATCHDOG pings when asked for,
//! STOPPING on SIGTERM).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use podswarm_config::process::{exit_code, init_logging, notify};
use podswarm_dns::Settings;
use podswarm_dns::cli::Args;
use sd_notify::NotifyState;

// One thread for this runtime (the first UDP loop, TCP, forwarding, the view): queries are
// answered inline, and a multi-threaded runtime only added wake-ups between threads (dnsperf: 53k
// q/s on one thread, 43k on two). The other CPUs get UDP loops of their own, each a thread with
// its own socket (`udp`), which scale where a shared runtime did not.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    exit_code("podswarm-dns", run(args).await)
}

async fn run(args: Args) -> Result<()> {
    let config = args.common.load(|c| args.apply(c))?;
    let settings = Settings::from_config(&config, Path::new("/etc/resolv.conf"))?;
    if args.common.validate {
        args.common.report(&config);
        return Ok(());
    }
    // Before the sockets exist: once anything can connect, a SIGTERM must mean a clean stop, not
    // the default action (death by signal).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut dns = podswarm_dns::serve(settings).await?;
    notify(&[NotifyState::Ready]);
    tracing::info!(listen = %dns.local_addr(), version = dns.view().version, "podswarm-dns ready");

    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let outcome = loop {
        tokio::select! {
            _ = term.recv() => break Ok(()),
            _ = tokio::signal::ctrl_c() => break Ok(()),
            result = dns.wait() => break result,
            _ = tokio::time::sleep(watchdog.unwrap_or(Duration::from_secs(3600))) => {
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
        }
    };
    notify(&[NotifyState::Stopping]);
    outcome?;
    tracing::info!("podswarm-dns stopping");
    dns.shutdown().await?;
    Ok(())
}
