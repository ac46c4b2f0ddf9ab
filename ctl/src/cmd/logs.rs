//! `podswarmctl logs`: a pod's journal, streamed as it arrives, so `-f` shows lines as they are
//! written. It reads the Kubernetes API's `pods/{name}/log`, as `kubectl logs` does, which the
//! node that answers proxies from the node that runs the pod.

use std::io::Write;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use hyper::Method;
use k8s_openapi::api::core::v1::Pod;

use super::Scope;
use super::rollout::status::parse_duration;
use crate::client::Client;
use crate::kube::object_path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod's name
    pub pod: String,
    /// Only this container's output
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing new lines as they are logged
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only this many of the most recent lines
    #[arg(long)]
    pub tail: Option<u64>,
    /// Each line after its time (RFC 3339, UTC)
    #[arg(long)]
    pub timestamps: bool,
    /// Only lines newer than this, e.g. 10s, 5m, 1h
    #[arg(long, value_parser = parse_duration, conflicts_with = "since_time")]
    pub since: Option<std::time::Duration>,
    /// Only lines from this time on (RFC 3339, e.g. 2026-12-02T10:00:00Z)
    #[arg(long)]
    pub since_time: Option<String>,
    /// At most this many bytes
    #[arg(long)]
    pub limit_bytes: Option<u64>,
    /// The previous instance of the container, the one before its last restart
    #[arg(short = 'p', long)]
    pub previous: bool,
    #[command(flatten)]
    pub scope: Scope,
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let mut path = format!(
        "{}/log?follow={}",
        object_path::<Pod>(&args.scope.namespace, &args.pod),
        args.follow
    );
    if let Some(n) = args.tail {
        path.push_str(&format!("&tailLines={n}"));
    }
    if let Some(c) = &args.container {
        path.push_str(&format!("&container={c}"));
    }
    if args.timestamps {
        path.push_str("&timestamps=true");
    }
    if let Some(d) = args.since {
        // Whole seconds, rounded up as kubectl rounds them.
        let seconds = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        path.push_str(&format!("&sinceSeconds={}", seconds.max(1)));
    }
    if let Some(t) = &args.since_time {
        let t: k8s_openapi::jiff::Timestamp = t
            .parse()
            .map_err(|e| anyhow::anyhow!("--since-time {t:?} is not an RFC 3339 time: {e}"))?;
        path.push_str(&format!("&sinceTime={t}"));
    }
    if let Some(n) = args.limit_bytes {
        path.push_str(&format!("&limitBytes={n}"));
    }
    if args.previous {
        path.push_str("&previous=true");
    }
    let response = client.send(Method::GET, &path, None, &[]).await?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body.collect().await?.to_bytes();
        // The refusal's message (`Status`), read as every other answer is.
        podswarm_api::decode::<serde::de::IgnoredAny>(status.as_u16(), &bytes)?;
        bail!("the API refused the request (status {status})");
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("the log stream broke")?.into_data() {
            stdout.write_all(&data)?;
            stdout.flush()?;
        }
    }
    Ok(())
}
