//! Readiness probes, evaluated by podswarmd from the node as the kubelet does: `httpGet` and
//! `tcpSocket` against the pod's IP (routable from its node), `exec` inside the container through
//! `podman exec`. Podman has no readiness concept (its health check is the liveness probe), so this
//! is the only place readiness is decided; Services and DNS only count ready pods.
//!
//! Kubernetes' rules: nothing before `initialDelaySeconds`, one probe per `periodSeconds`, ready
//! after `successThreshold` successes in a row, not ready after `failureThreshold` failures in a row.
//!
//! The `exec` and `httpGet` attempts themselves (`exec_in`, `http_get`) are shared with the
//! `preStop` hooks (`lifecycle.rs`), so both send the same requests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPHeader, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One container's readiness probe, resolved for this node.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadinessProbe {
    pub container: String,
    /// The container's name in podman, for `exec` probes.
    pub podman_name: String,
    pub probe: Probe,
    /// The probe's port with named ports resolved.
    pub port: Option<u16>,
}

#[derive(Debug)]
struct ProbeState {
    successes: i32,
    failures: i32,
    ready: bool,
    last: Option<Instant>,
    since: Instant,
}

#[derive(Debug)]
pub struct Prober {
    probes: RwLock<BTreeMap<String, Vec<ReadinessProbe>>>,
    states: Mutex<BTreeMap<(String, String), ProbeState>>,
    podman: PathBuf,
}

/// Resolves a probe's port against the container's named ports.
pub fn probe_port(probe: &Probe, container: &Container) -> Option<u16> {
    let port = probe
        .http_get
        .as_ref()
        .map(|h| &h.port)
        .or(probe.tcp_socket.as_ref().map(|t| &t.port))?;
    resolve_port(port, container)
}

/// A port number, or the number of the container port with that name (as the kubelet resolves
/// probe and lifecycle handler ports).
pub(crate) fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

impl Prober {
    pub fn new(podman: PathBuf) -> Prober {
        Prober {
            probes: RwLock::default(),
            states: Mutex::default(),
            podman,
        }
    }

    /// Sets a pod's probes; a changed set starts over (not ready until proven).
    pub fn set(&self, pod: &str, probes: Vec<ReadinessProbe>) {
        let mut all = self.probes.write().unwrap_or_else(PoisonError::into_inner);
        if all.get(pod) != Some(&probes) {
            self.states
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(p, _), _| p != pod);
            all.insert(pod.to_owned(), probes);
        }
    }

    /// Forgets pods that are gone.
    pub fn retain(&self, pods: &BTreeSet<String>) {
        self.probes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|p, _| pods.contains(p));
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(p, _), _| pods.contains(p));
    }

    /// Whether every readiness probe of the pod passes (a pod without probes is ready).
    pub fn is_ready(&self, pod: &str) -> bool {
        let probes = self.probes.read().unwrap_or_else(PoisonError::into_inner);
        let Some(list) = probes.get(pod) else {
            return true;
        };
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter().all(|p| {
            states
                .get(&(pod.to_owned(), p.container.clone()))
                .is_some_and(|s| s.ready)
        })
    }

    /// Runs the probes that are due for running pods (`pod key → pod IP`); true if any pod's
    /// readiness changed.
    pub async fn tick(&self, running: &BTreeMap<String, String>) -> bool {
        self.tick_at(running, Instant::now()).await
    }

    /// [`Prober::tick`] at a given moment: the schedule (initial delay, period) is a function of
    /// the moments it is called at, so tests step through periods without sleeping.
    pub async fn tick_at(&self, running: &BTreeMap<String, String>, now: Instant) -> bool {
        let mut due = Vec::new();
        {
            let probes = self.probes.read().unwrap_or_else(PoisonError::into_inner);
            let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
            // Pods that stopped running start over.
            states.retain(|(pod, _), _| running.contains_key(pod));
            for (pod, ip) in running {
                for p in probes.get(pod).into_iter().flatten() {
                    let st =
                        states
                            .entry((pod.clone(), p.container.clone()))
                            .or_insert(ProbeState {
                                successes: 0,
                                failures: 0,
                                ready: false,
                                last: None,
                                since: now,
                            });
                    let delay = Duration::from_secs(
                        p.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64,
                    );
                    let period =
                        Duration::from_secs(p.probe.period_seconds.unwrap_or(10).max(1) as u64);
                    if now.duration_since(st.since) >= delay
                        && st.last.is_none_or(|l| now.duration_since(l) >= period)
                    {
                        st.last = Some(now);
                        due.push((pod.clone(), ip.clone(), p.clone()));
                    }
                }
            }
        }
        let results =
            futures_util::future::join_all(due.iter().map(|(_, ip, p)| self.run(ip, p))).await;
        let mut changed = false;
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        for ((pod, _, p), ok) in due.into_iter().zip(results) {
            let Some(st) = states.get_mut(&(pod, p.container.clone())) else {
                continue;
            };
            let before = st.ready;
            if ok {
                st.successes += 1;
                st.failures = 0;
                if st.successes >= p.probe.success_threshold.unwrap_or(1).max(1) {
                    st.ready = true;
                }
            } else {
                st.failures += 1;
                st.successes = 0;
                if st.failures >= p.probe.failure_threshold.unwrap_or(3).max(1) {
                    st.ready = false;
                }
            }
            changed |= before != st.ready;
        }
        changed
    }

    async fn run(&self, ip: &str, p: &ReadinessProbe) -> bool {
        let timeout = Duration::from_secs(p.probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        let attempt = async {
            if let Some(exec) = &p.probe.exec {
                let command = exec.command.as_deref().unwrap_or_default();
                return exec_in(&self.podman, &p.podman_name, command).await.is_ok();
            }
            let Some(port) = p.port else { return false };
            if let Some(http) = &p.probe.http_get {
                let host = http.host.as_deref().unwrap_or(ip);
                let path = http.path.as_deref().unwrap_or("/");
                let https = http.scheme.as_deref() == Some("HTTPS");
                // Probes do not send their `httpHeaders` yet (preStop hooks do).
                return match http_get(host, port, path, https, PROBE_AGENT, &[]).await {
                    Ok(Some(status)) => (200..400).contains(&status),
                    // Like the kubelet, which does not verify certificates: a TLS listener that
                    // accepts connections counts; the handshake itself is not checked yet.
                    Ok(None) => true,
                    Err(_) => false,
                };
            }
            let host = p
                .probe
                .tcp_socket
                .as_ref()
                .and_then(|t| t.host.as_deref())
                .unwrap_or(ip);
            tokio::net::TcpStream::connect((host, port)).await.is_ok()
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or(false)
    }
}

/// The `User-Agent` of readiness probes (the kubelet's is `kube-probe/<version>`).
const PROBE_AGENT: &str = "podswarm-probe/1";

/// How much of a failed `podman exec`'s standard error a reason keeps: enough for podman's own
/// complaint ("no such container") or a command's last words, never a flood in the journal.
const STDERR_KEPT: usize = 512;

/// Runs `command` inside the podman container `container` (`podman exec <container> command…`),
/// as readiness probes and `preStop` hooks do. `Err` says why it failed: podman could not be run,
/// or the exit status with the start of what it wrote to standard error.
///
/// No time bound of its own: callers bound it (a probe's timeout, a pod's grace period); the
/// `podman exec` process is killed when the future is dropped.
pub(crate) async fn exec_in(
    podman: &Path,
    container: &str,
    command: &[String],
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(podman)
        .arg("exec")
        .arg(container)
        .args(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", podman.display()))?;
    let stderr = child.stderr.take();
    // Standard error is drained to its end while podman runs (a full pipe would block it), and
    // only its start is kept.
    let (status, stderr) = tokio::join!(child.wait(), read_start(stderr, STDERR_KEPT));
    let status = status.map_err(|e| format!("waiting for podman exec: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = stderr.trim();
    Err(if stderr.is_empty() {
        format!("podman exec: {status}")
    } else {
        format!("podman exec: {status}: {stderr}")
    })
}

/// Reads `from` to its end and keeps its first `keep` bytes.
async fn read_start(from: Option<impl tokio::io::AsyncRead + Unpin>, keep: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    let Some(mut from) = from else { return kept };
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// One HTTP GET of `path` at `host:port`, as readiness probes and `preStop` hooks send it: HTTP/1.1,
/// `Host: host:port` and `User-Agent: user_agent` unless `headers` set them (as the kubelet lets
/// `httpHeaders` do), then `headers`. `Ok(Some(status))` once the answer's head arrived (the body
/// is not read); `Ok(None)` for `https`: the connection was accepted, but podswarmd speaks no TLS
/// yet, so no request was sent. `Err` says why no answer came.
///
/// No time bound of its own: callers bound it.
pub(crate) async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    https: bool,
    user_agent: &str,
    headers: &[HTTPHeader],
) -> Result<Option<u16>, String> {
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    if https {
        return Ok(None);
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {host}:{port}: {e}"))?;
    // The connection task ends when the request is answered and the sender dropped.
    tokio::spawn(conn);
    let given = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    let mut request = hyper::Request::get(path);
    if !given("host") {
        // An IPv6 address is bracketed in the Host header (RFC 9110, section 7.2).
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        request = request.header("host", authority);
    }
    if !given("user-agent") {
        request = request.header("user-agent", user_agent);
    }
    for h in headers {
        request = request.header(h.name.as_str(), h.value.as_str());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid request for {path:?}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET {path} on {host}:{port}: {e}"))?;
    Ok(Some(response.status().as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HTTPGetAction, TCPSocketAction};

    fn probe(port: u16, http: bool, failure_threshold: i32) -> ReadinessProbe {
        let target = IntOrString::Int(i32::from(port));
        ReadinessProbe {
            container: "c".into(),
            podman_name: "x".into(),
            probe: Probe {
                http_get: http.then(|| HTTPGetAction {
                    path: Some("/ready".into()),
                    port: target.clone(),
                    ..HTTPGetAction::default()
                }),
                tcp_socket: (!http).then(|| TCPSocketAction {
                    port: target.clone(),
                    host: None,
                }),
                period_seconds: Some(1),
                failure_threshold: Some(failure_threshold),
                ..Probe::default()
            },
            port: Some(port),
        }
    }

    /// A real HTTP server on loopback whose /ready answers `status`.
    async fn server(status: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let app = axum::Router::new().route(
            "/ready",
            axum::routing::get(move || async move {
                (
                    axum::http::StatusCode::from_bytes(status.as_bytes()).unwrap_or_default(),
                    "",
                )
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (port, task)
    }

    #[tokio::test]
    async fn http_readiness_follows_the_answer_and_thresholds() {
        let (ok_port, _a) = server("200").await;
        let (bad_port, _b) = server("503").await;
        let prober = Prober::new("podman".into());
        let running = BTreeMap::from([
            ("ns/a".to_owned(), "127.0.0.1".to_owned()),
            ("ns/b".to_owned(), "127.0.0.1".to_owned()),
        ]);
        prober.set("ns/a", vec![probe(ok_port, true, 3)]);
        prober.set("ns/b", vec![probe(bad_port, true, 3)]);
        assert!(!prober.is_ready("ns/a"), "not ready before the first probe");
        assert!(prober.tick(&running).await);
        assert!(prober.is_ready("ns/a"));
        assert!(!prober.is_ready("ns/b"));
        assert!(prober.is_ready("ns/none"), "a pod without probes is ready");
    }

    #[tokio::test]
    async fn tcp_readiness_needs_failure_threshold_failures_to_drop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let prober = Prober::new("podman".into());
        let running = BTreeMap::from([("ns/a".to_owned(), "127.0.0.1".to_owned())]);
        prober.set("ns/a", vec![probe(port, false, 2)]);
        let start = Instant::now();
        prober.tick_at(&running, start).await;
        assert!(prober.is_ready("ns/a"));
        drop(listener);
        // One failure is not enough with failureThreshold 2.
        let first = start + Duration::from_millis(1050);
        assert!(!prober.tick_at(&running, first).await);
        assert!(prober.is_ready("ns/a"));
        assert!(
            prober
                .tick_at(&running, first + Duration::from_millis(1050))
                .await
        );
        assert!(!prober.is_ready("ns/a"));
    }
}
