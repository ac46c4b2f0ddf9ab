//! Kubernetes probes → podman health checks, which run *inside* the container.
//!
//! `exec` maps directly. `httpGet` and `tcpSocket` have no podman equivalent, so they become small
//! shell commands that use whatever the image has (`wget`, `curl`, `nc`); the URL, host and port
//! are passed as positional arguments (`"$1"`), never spliced into the script, so no manifest text
//! is ever interpreted by the shell. Liveness uses podman's regular check with `kill` on failure
//! (systemd's `Restart=` then restarts the container, as the kubelet would); startup uses podman's
//! startup check. Readiness is not a podman concept: it is recorded for podswarmd to evaluate.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::escape::{Value, generated, json_array};
use crate::{Ctx, Error};

const HTTP_SCRIPT: &str = "if command -v wget >/dev/null 2>&1; then exec wget -q -T \"$2\" -O /dev/null \"$1\"; else exec curl -fsS -k -m \"$2\" -o /dev/null \"$1\"; fi";
const TCP_SCRIPT: &str = "exec nc -z -w \"$3\" \"$1\" \"$2\"";

fn port(ctx: &Ctx<'_>, c: &Container, field: &str, p: &IntOrString) -> Result<i32, Error> {
    match p {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name))
            .map(|cp| cp.container_port)
            .ok_or_else(|| ctx.unsupported(field, format!("no container port is named {name:?}"))),
    }
}

/// The probe's command as argv.
pub(crate) fn command(
    ctx: &Ctx<'_>,
    c: &Container,
    field: &str,
    p: &Probe,
) -> Result<Vec<String>, Error> {
    let timeout = p.timeout_seconds.unwrap_or(1).max(1).to_string();
    if let Some(exec) = &p.exec {
        return Ok(exec.command.clone().unwrap_or_default());
    }
    if let Some(h) = &p.http_get {
        let port = port(ctx, c, &format!("{field}.httpGet.port"), &h.port)?;
        let scheme = if h.scheme.as_deref() == Some("HTTPS") {
            "https"
        } else {
            "http"
        };
        let host = h.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let path = h.path.clone().unwrap_or_else(|| "/".to_owned());
        let url = format!("{scheme}://{host}:{port}{path}");
        return Ok(vec![
            "/bin/sh".into(),
            "-c".into(),
            HTTP_SCRIPT.into(),
            "podswarm-probe".into(),
            url,
            timeout,
        ]);
    }
    if let Some(t) = &p.tcp_socket {
        let port = port(ctx, c, &format!("{field}.tcpSocket.port"), &t.port)?;
        let host = t.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
        return Ok(vec![
            "/bin/sh".into(),
            "-c".into(),
            TCP_SCRIPT.into(),
            "podswarm-probe".into(),
            host,
            port.to_string(),
            timeout,
        ]);
    }
    Err(ctx.unsupported(field, "a probe needs exec, httpGet or tcpSocket"))
}

fn secs(ctx: &Ctx<'_>, field: &str, n: i32) -> Result<Value, Error> {
    ctx.escape(field, generated(format!("{}s", n.max(0))))
}

/// `(key, value)` pairs for the `[Container]` section.
pub(crate) fn health_keys(
    ctx: &Ctx<'_>,
    c: &Container,
    field: &str,
) -> Result<Vec<(&'static str, Value)>, Error> {
    let mut keys = Vec::new();
    if let Some(p) = &c.liveness_probe {
        let f = format!("{field}.livenessProbe");
        let cmd = command(ctx, c, &f, p)?;
        keys.push(("HealthCmd", ctx.escape(&f, json_array(&cmd))?));
        keys.push((
            "HealthInterval",
            secs(ctx, &f, p.period_seconds.unwrap_or(10))?,
        ));
        keys.push((
            "HealthTimeout",
            secs(ctx, &f, p.timeout_seconds.unwrap_or(1))?,
        ));
        keys.push((
            "HealthRetries",
            ctx.escape(&f, generated(p.failure_threshold.unwrap_or(3).to_string()))?,
        ));
        if let Some(delay) = p.initial_delay_seconds.filter(|d| *d > 0) {
            keys.push(("HealthStartPeriod", secs(ctx, &f, delay)?));
        }
        keys.push(("HealthOnFailure", ctx.escape(&f, generated("kill"))?));
    }
    if let Some(p) = &c.startup_probe {
        let f = format!("{field}.startupProbe");
        let cmd = command(ctx, c, &f, p)?;
        keys.push(("HealthStartupCmd", ctx.escape(&f, json_array(&cmd))?));
        keys.push((
            "HealthStartupInterval",
            secs(ctx, &f, p.period_seconds.unwrap_or(10))?,
        ));
        keys.push((
            "HealthStartupTimeout",
            secs(ctx, &f, p.timeout_seconds.unwrap_or(1))?,
        ));
        keys.push((
            "HealthStartupRetries",
            ctx.escape(&f, generated(p.failure_threshold.unwrap_or(3).to_string()))?,
        ));
        keys.push(("HealthStartupSuccess", ctx.escape(&f, generated("1"))?));
    }
    Ok(keys)
}
