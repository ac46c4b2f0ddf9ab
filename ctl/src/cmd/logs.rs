//! `podswarmctl logs`: a pod's journal, streamed as it arrives, so `-f` shows lines as they are
//! written. It reads the Kubernetes API's `pods/{name}/log`, as `kubectl logs` does, which the
//! node that answers proxies from the node that runs the pod.

use std::io::Write;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use hyper::Method;
use k8s_openapi::api::core::v1::Pod;

use super::Scope;
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
