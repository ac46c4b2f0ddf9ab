//! Kubernetes `preStop` hooks, run by podswarmd right before a pod is stopped.
//!
//! Semantics followed (the kubelet's, Kubernetes 1.29+):
//!
//! - each container's `lifecycle.preStop` handler runs before the container gets SIGTERM; the
//!   handlers of a pod's containers run concurrently (the kubelet kills containers in parallel);
//! - `exec` runs the command inside the container (`podman exec <container> command…`) and
//!   succeeds when it exits 0; `httpGet` sends a GET to `host` (default: the pod's IP) at `port`
//!   (a number, or the name of one of the container's ports) and `path`, with its `httpHeaders`,
//!   and succeeds on any answer, whatever its status, as the kubelet's does; `sleep` waits
//!   `seconds`;
//! - all of it is bounded by the pod's `terminationGracePeriodSeconds` (default 30): a handler
//!   still running then is abandoned (an `exec`'s podman process is killed) and the stop goes on;
//!   with a grace period of 0 no handler runs at all (the kubelet runs hooks only with a grace
//!   period left);
//! - a failed handler is logged and the stop goes on (Kubernetes records a `FailedPreStopHook`
//!   event and kills the container anyway);
//! - `tcpSocket` is accepted by Kubernetes' validation in a lifecycle handler but deprecated and
//!   never run: the kubelet fails it as an invalid handler, and so does this module (intake warns);
//! - `postStart` is not supported (intake warns).
//!
//! Two differences remain: an `https` `httpGet` only connects (podswarmd speaks no TLS yet, see
//! `probe::http_get`), which counts as a failure here since no request was sent; and the grace
//! period the hooks use is not taken off the stop's own (the rendered unit gives podman the full
//! grace period between SIGTERM and SIGKILL), so a pod may take up to twice its grace period.
//!
//! Why podswarmd runs them, not systemd (`ExecStop=` or `ExecStopPre=` in the unit): a hook must
//! run after the pod has left every node's routing view (DNS, ingress), so that no new request
//! reaches a pod that is shutting down, and before SIGTERM. Only podswarmd knows when the pod has
//! left the other nodes' views; a unit's stop commands would run as soon as the stop job starts,
//! and also on every restart or node shutdown, where Kubernetes would not drain first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podswarm_manifest::PodInstance;
use tokio::time::Instant;

use crate::probe::{exec_in, http_get, resolve_port};

/// Kubernetes' `terminationGracePeriodSeconds` when a pod does not set it.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The `User-Agent` of `httpGet` hooks (the kubelet's is `kube-lifecycle/<version>`), so that an
/// application can tell a hook from a readiness probe.
const HOOK_AGENT: &str = "podswarm-lifecycle/1";

/// Which action a handler names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Exec,
    HttpGet,
    Sleep,
    /// Deprecated in lifecycle handlers and never run (it fails, as in Kubernetes).
    TcpSocket,
    /// No action at all (intake refuses it; objects stored before that check may still have it).
    Missing,
}

impl Handler {
    /// The action a handler names, checked in the kubelet's order (exec, httpGet, sleep).
    fn of(handler: &LifecycleHandler) -> Handler {
        if handler.exec.is_some() {
            Handler::Exec
        } else if handler.http_get.is_some() {
            Handler::HttpGet
        } else if handler.sleep.is_some() {
            Handler::Sleep
        } else if handler.tcp_socket.is_some() {
            Handler::TcpSocket
        } else {
            Handler::Missing
        }
    }
}

impl fmt::Display for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The manifest's field names, so a log line points at the field.
        f.write_str(match self {
            Handler::Exec => "exec",
            Handler::HttpGet => "httpGet",
            Handler::Sleep => "sleep",
            Handler::TcpSocket => "tcpSocket",
            Handler::Missing => "none",
        })
    }
}

/// How one container's `preStop` hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEnd {
    /// It finished: the command exited 0, the GET was answered (any status), the sleep ended.
    Done,
    /// It could not run or failed, with why.
    Failed(String),
    /// It was still running when the grace period ran out, and was abandoned.
    TimedOut,
}

/// One container's `preStop` hook and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub container: String,
    pub handler: Handler,
    pub end: HookEnd,
}

/// What the `preStop` phase of a pod did. Whatever it says, the pod is to be stopped now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreStopOutcome {
    /// The hooks that ran, in the pod's container order; empty when no container has one (or the
    /// grace period is 0).
    pub hooks: Vec<Hook>,
    /// The pod's grace period, which bounded the hooks.
    pub grace: Duration,
    /// How long the hooks took, at most `grace`.
    pub elapsed: Duration,
}

/// The pod's grace period: `terminationGracePeriodSeconds`, or Kubernetes' default.
pub fn grace_period(pod: &PodInstance) -> Duration {
    pod.spec
        .termination_grace_period_seconds
        .map_or(DEFAULT_GRACE, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        })
}

/// The podman names of a pod's containers by container name, as [`pre_stop`] takes them.
pub fn podman_names(
    pod: &PodInstance,
    options: &podswarm_generator::Options,
) -> BTreeMap<String, String> {
    pod.spec
        .containers
        .iter()
        .map(|c| {
            let name = crate::reconcile::podman_name(pod, &c.name, options);
            (c.name.clone(), name)
        })
        .collect()
}

/// Runs the `preStop` hooks of `pod`'s containers concurrently, within the pod's grace period, and
/// logs how each ended. `ip` is the pod's address (the default host of `httpGet` hooks), `podman`
/// the podman binary (for `exec` hooks), `podman_names` the podman name of each container by its
/// name (see [`podman_names`]). Never fails: a hook that fails or times out is logged and
/// reported, and the caller stops the pod in any case.
pub async fn pre_stop(
    pod: &PodInstance,
    ip: Option<&str>,
    podman: &Path,
    podman_names: &BTreeMap<String, String>,
) -> PreStopOutcome {
    let grace = grace_period(pod);
    let hooks: Vec<(&Container, &LifecycleHandler)> = pod
        .spec
        .containers
        .iter()
        .filter_map(|c| Some((c, c.lifecycle.as_ref()?.pre_stop.as_ref()?)))
        .collect();
    let (namespace, name) = (pod.namespace.as_str(), pod.name.as_str());
    if hooks.is_empty() || grace.is_zero() {
        if !hooks.is_empty() {
            tracing::info!(
                namespace,
                pod = name,
                "terminationGracePeriodSeconds is 0: no preStop hook runs, as in Kubernetes"
            );
        }
        return PreStopOutcome {
            hooks: Vec::new(),
            grace,
            elapsed: Duration::ZERO,
        };
    }
    tracing::info!(
        namespace,
        pod = name,
        hooks = hooks.len(),
        grace_s = grace.as_secs(),
        "running preStop hooks"
    );
    let start = Instant::now();
    // One deadline for all: the phase as a whole ends within the grace period.
    let deadline = start + grace;
    let runs = hooks.into_iter().map(|(container, handler)| async move {
        let kind = Handler::of(handler);
        let run = run(container, handler, ip, podman, podman_names);
        let end = match tokio::time::timeout_at(deadline, run).await {
            Ok(Ok(())) => HookEnd::Done,
            Ok(Err(reason)) => HookEnd::Failed(reason),
            Err(_) => HookEnd::TimedOut,
        };
        // Logged as each ends, so the journal shows when. Fields become journal fields
        // (NAMESPACE=, POD=, CONTAINER=): `journalctl POD=web-…`.
        let container = container.name.as_str();
        let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &end {
            HookEnd::Done => tracing::info!(
                namespace,
                pod = name,
                container,
                handler = %kind,
                elapsed_ms,
                "preStop hook done"
            ),
            HookEnd::Failed(reason) => tracing::warn!(
                namespace,
                pod = name,
                container,
                handler = %kind,
                elapsed_ms,
                error = %reason,
                "preStop hook failed; the stop goes on"
            ),
            HookEnd::TimedOut => tracing::warn!(
                namespace,
                pod = name,
                container,
                handler = %kind,
                grace_s = grace.as_secs(),
                "preStop hook still running when the grace period ran out; the stop goes on"
            ),
        }
        Hook {
            container: container.to_owned(),
            handler: kind,
            end,
        }
    });
    let hooks = futures_util::future::join_all(runs).await;
    PreStopOutcome {
        hooks,
        grace,
        elapsed: start.elapsed().min(grace),
    }
}

/// Runs one handler to its end (unbounded: [`pre_stop`] bounds it).
async fn run(
    container: &Container,
    handler: &LifecycleHandler,
    ip: Option<&str>,
    podman: &Path,
    podman_names: &BTreeMap<String, String>,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.as_deref().unwrap_or_default();
        if command.is_empty() {
            return Err("exec.command is empty".to_owned());
        }
        let podman_name = podman_names
            .get(&container.name)
            .ok_or_else(|| format!("no podman container is known for {:?}", container.name))?;
        return exec_in(podman, podman_name, command).await;
    }
    if let Some(http) = &handler.http_get {
        let port = resolve_port(&http.port, container).ok_or_else(|| match &http.port {
            IntOrString::Int(n) => format!("port {n} is not a port number"),
            IntOrString::String(name) => format!("the container has no port named {name:?}"),
        })?;
        let host = http
            .host
            .as_deref()
            .or(ip)
            .ok_or("the pod has no IP address and the hook names no host")?;
        let path = http.path.as_deref().unwrap_or("/");
        let https = http.scheme.as_deref() == Some("HTTPS");
        let headers = http.http_headers.as_deref().unwrap_or_default();
        return match http_get(host, port, path, https, HOOK_AGENT, headers).await? {
            // Any answer will do: the kubelet does not look at the status of a hook's answer.
            Some(status) => {
                tracing::debug!(container = %container.name, status, path, "preStop GET answered");
                Ok(())
            }
            None => Err(format!(
                "HTTPS: {host}:{port} accepts connections, but podswarmd speaks no TLS yet, so \
                 GET {path} was not sent"
            )),
        };
    }
    if let Some(sleep) = &handler.sleep {
        // Intake refuses negative seconds; stored objects that predate that check sleep 0.
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(sleep.seconds).unwrap_or(0),
        ))
        .await;
        return Ok(());
    }
    if handler.tcp_socket.is_some() {
        return Err(
            "tcpSocket is deprecated in lifecycle handlers and never run (the kubelet fails it \
             too); use exec, httpGet or sleep"
                .to_owned(),
        );
    }
    Err("the handler names no action (exec, httpGet or sleep)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A pod `shop/web` with the given containers (JSON) and grace period.
    fn pod(containers: serde_json::Value, grace: Option<i64>) -> PodInstance {
        let spec = serde_json::json!({
            "containers": containers,
            "terminationGracePeriodSeconds": grace,
        });
        PodInstance {
            namespace: "shop".into(),
            name: "web".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            spec: serde_json::from_value(spec).unwrap(),
            owner: None,
        }
    }

    fn names(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(c, p)| ((*c).to_owned(), (*p).to_owned()))
            .collect()
    }

    fn ends(outcome: &PreStopOutcome) -> Vec<(&str, Handler, &HookEnd)> {
        outcome
            .hooks
            .iter()
            .map(|h| (h.container.as_str(), h.handler, &h.end))
            .collect()
    }

    /// A fake `podman` in `dir`: appends its arguments (one a line, then `--`) to `dir/args`, and
    /// fails with a message on standard error for the container `bad`.
    fn fake_podman(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("podman");
        let script = format!(
            // One append per run (hooks run concurrently): the record of one run stays whole.
            "#!/bin/sh\nout=''\nfor a in \"$@\"; do out=\"$out$a\n\"; done\n\
             printf '%s--\\n' \"$out\" >> '{args}'\n\
             if [ \"$2\" = bad ]; then echo 'Error: no container with name or ID \"bad\"' >&2; exit 125; fi\n",
            args = dir.join("args").display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A one-request HTTP server on loopback answering 503; yields the request's head.
    async fn server() -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&chunk[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        (port, task)
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_hook_takes_its_seconds() {
        let pod = pod(
            serde_json::json!([{"name": "app", "image": "x",
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}]),
            None,
        );
        let outcome = pre_stop(&pod, None, Path::new("podman"), &BTreeMap::new()).await;
        assert_eq!(ends(&outcome), [("app", Handler::Sleep, &HookEnd::Done)]);
        assert_eq!(outcome.elapsed, Duration::from_secs(5));
        assert_eq!(outcome.grace, DEFAULT_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_grace_period_bounds_every_hook() {
        let pod = pod(
            serde_json::json!([
                {"name": "slow", "image": "x", "lifecycle": {"preStop": {"sleep": {"seconds": 60}}}},
                {"name": "quick", "image": "x", "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}},
                {"name": "none", "image": "x"},
            ]),
            Some(2),
        );
        let start = Instant::now();
        let outcome = pre_stop(&pod, None, Path::new("podman"), &BTreeMap::new()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(outcome.elapsed, Duration::from_secs(2));
        assert_eq!(
            ends(&outcome),
            [
                ("slow", Handler::Sleep, &HookEnd::TimedOut),
                ("quick", Handler::Sleep, &HookEnd::Done),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_hook_runs_without_hooks_or_grace() {
        let start = Instant::now();
        let without = pod(serde_json::json!([{"name": "app", "image": "x"}]), None);
        let outcome = pre_stop(&without, None, Path::new("podman"), &BTreeMap::new()).await;
        assert!(outcome.hooks.is_empty());
        let zero = pod(
            serde_json::json!([{"name": "app", "image": "x",
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}]),
            Some(0),
        );
        let outcome = pre_stop(&zero, None, Path::new("podman"), &BTreeMap::new()).await;
        assert!(outcome.hooks.is_empty());
        assert_eq!(outcome.grace, Duration::ZERO);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn http_get_hook_sends_the_request_to_the_named_port() {
        let (port, request) = server().await;
        let pod = pod(
            serde_json::json!([{"name": "app", "image": "x",
                "ports": [{"name": "admin", "containerPort": port}],
                "lifecycle": {"preStop": {"httpGet": {
                    "path": "/drain?within=5s", "port": "admin",
                    "httpHeaders": [{"name": "X-Reason", "value": "shutdown"}]}}}}]),
            None,
        );
        let outcome = pre_stop(
            &pod,
            Some("127.0.0.1"),
            Path::new("podman"),
            &BTreeMap::new(),
        )
        .await;
        // A 503 is an answer: the kubelet does not look at a hook's status either.
        assert_eq!(ends(&outcome), [("app", Handler::HttpGet, &HookEnd::Done)]);
        let head = request.await.unwrap();
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("GET /drain?within=5s HTTP/1.1"));
        let headers: Vec<String> = lines.map(str::to_ascii_lowercase).collect();
        assert!(
            headers.contains(&format!("host: 127.0.0.1:{port}")),
            "{head}"
        );
        assert!(
            headers.contains(&"user-agent: podswarm-lifecycle/1".to_owned()),
            "{head}"
        );
        assert!(headers.contains(&"x-reason: shutdown".to_owned()), "{head}");
    }

    #[tokio::test]
    async fn exec_hook_runs_podman_exec_in_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let podman = fake_podman(dir.path());
        let pod = pod(
            serde_json::json!([{"name": "app", "image": "x",
                "lifecycle": {"preStop": {"exec": {"command": ["/bin/drain", "--within", "5 s"]}}}}]),
            None,
        );
        let outcome = pre_stop(&pod, None, &podman, &names(&[("app", "shop_web")])).await;
        assert_eq!(ends(&outcome), [("app", Handler::Exec, &HookEnd::Done)]);
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(
            args.lines().collect::<Vec<_>>(),
            ["exec", "shop_web", "/bin/drain", "--within", "5 s", "--"]
        );
    }

    #[tokio::test]
    async fn a_failing_hook_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let podman = fake_podman(dir.path());
        let (port, request) = server().await;
        let pod = pod(
            serde_json::json!([
                {"name": "bad", "image": "x", "lifecycle": {"preStop": {"exec": {"command": ["stop"]}}}},
                {"name": "tcp", "image": "x", "lifecycle": {"preStop": {"tcpSocket": {"port": 80}}}},
                {"name": "unnamed", "image": "x", "lifecycle": {"preStop": {"httpGet": {"port": "metrics"}}}},
                {"name": "good", "image": "x", "lifecycle": {"preStop": {"exec": {"command": ["stop"]}}}},
                {"name": "web", "image": "x", "lifecycle": {"preStop": {"httpGet": {"port": port}}}},
            ]),
            None,
        );
        let podman_names = names(&[("bad", "bad"), ("good", "shop_web-good")]);
        let outcome = pre_stop(&pod, Some("127.0.0.1"), &podman, &podman_names).await;
        let ends = ends(&outcome);
        let HookEnd::Failed(reason) = ends[0].2 else {
            panic!("{ends:?}")
        };
        assert!(
            reason.contains("125") && reason.contains("no container with name"),
            "{reason}"
        );
        assert!(
            matches!(ends[1], ("tcp", Handler::TcpSocket, HookEnd::Failed(r)) if r.contains("deprecated")),
            "{ends:?}"
        );
        assert!(
            matches!(ends[2], ("unnamed", Handler::HttpGet, HookEnd::Failed(r)) if r.contains("\"metrics\"")),
            "{ends:?}"
        );
        assert_eq!(
            ends[3..],
            [
                ("good", Handler::Exec, &HookEnd::Done),
                ("web", Handler::HttpGet, &HookEnd::Done),
            ]
        );
        assert!(request.await.unwrap().starts_with("GET / HTTP/1.1\r\n"));
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert!(args.contains("exec\nshop_web-good\nstop\n--\n"), "{args}");
    }

    #[tokio::test]
    async fn http_get_without_an_address_fails() {
        let pod = pod(
            serde_json::json!([{"name": "app", "image": "x",
                "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/stop"}}}}]),
            None,
        );
        let outcome = pre_stop(&pod, None, Path::new("podman"), &BTreeMap::new()).await;
        assert!(
            matches!(&outcome.hooks[0].end, HookEnd::Failed(r) if r.contains("no IP address")),
            "{outcome:?}"
        );
    }
}
