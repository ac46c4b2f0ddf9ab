//! The REST API (DESIGN.md): JSON, camelCase, errors as `{"error": "...", "details": [...]}`.
//!
//! The same routes are served twice: on TCP, where every request needs a bearer token (stored only
//! as a hash), and on the node's Unix socket, where the kernel-reported peer credentials decide
//! (root or the `podswarm` group), so `podswarmctl` on a node needs no token.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::serve::IncomingStream;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podswarm_manifest::{Limits, Object, Policy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::reconcile::{Metrics, Phase, PodView, PodViews};
use crate::state::{Action, ObjectKey, State};

/// Everything the handlers read.
pub struct Api {
    pub state: Arc<State>,
    pub views: PodViews,
    pub metrics: Arc<Metrics>,
    pub reloads: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub limits: Limits,
    pub policy: Policy,
    pub node_name: String,
    pub node_ip: Option<String>,
    pub pod_subnet: String,
    pub journalctl: PathBuf,
    pub socket_group: String,
    /// The replicated state: writes go there, and pods on other nodes come from it.
    pub link: Option<Arc<crate::link::Link>>,
    /// The TCP API's port, which every node is assumed to share (for node-to-node requests).
    pub api_port: Option<u16>,
}

fn unavailable(e: &crate::link::LinkError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::reconcile::error_chain(e),
    )
}

fn action_of(word: &str) -> Action {
    match word {
        "created" => Action::Created,
        "configured" => Action::Configured,
        _ => Action::Unchanged,
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

type Shared = Arc<Api>;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    details: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            details: Vec::new(),
        }
    }
    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{} not found", what.into()))
    }
    fn internal(e: &dyn std::error::Error) -> Self {
        let chain = crate::reconcile::error_chain(e);
        tracing::error!(error = %chain, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, chain)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": self.error, "details": self.details})),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

/// The routes, without authentication (the listeners add theirs).
pub fn routes(api: Shared, max_body: usize) -> Router {
    Router::new()
        .route("/api/v1/manifests", post(apply_manifests))
        .route(
            "/api/v1/manifests/{ns}/{kind}/{name}",
            delete(delete_object),
        )
        .route("/api/v1/pods", get(list_pods))
        .route("/api/v1/pods/{ns}/{name}", get(get_pod))
        .route("/api/v1/pods/{ns}/{name}/logs", get(pod_logs))
        .route("/api/v1/deployments", get(list_deployments))
        .route("/api/v1/deployments/{ns}/{name}", get(get_deployment))
        .route(
            "/api/v1/deployments/{ns}/{name}/scale",
            put(scale_deployment),
        )
        .route("/api/v1/services", get(list_services))
        .route("/api/v1/services/{ns}/{name}", get(get_service))
        .route(
            "/api/v1/services/{ns}/{name}/endpoints",
            get(service_endpoints),
        )
        .route(
            "/api/v1/services/{ns}/{name}/addresses",
            get(service_addresses),
        )
        .route("/api/v1/ingresses", get(list_ingresses))
        .route("/api/v1/nodes", get(list_nodes))
        .route(
            "/api/v1/dns/whitelist",
            get(get_whitelist).put(put_whitelist),
        )
        .route("/api/v1/dns/whitelist/hosts", post(add_whitelist_host))
        .route(
            "/api/v1/dns/whitelist/hosts/{host}",
            delete(remove_whitelist_host),
        )
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(api)
}

/// TCP: a valid, unexpired bearer token, or 401.
pub fn tcp_router(api: Shared, max_body: usize) -> Router {
    routes(Arc::clone(&api), max_body).layer(middleware::from_fn_with_state(api, require_token))
}

async fn require_token(AxState(api): AxState<Shared>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t)
            if api.state.verify_token(t)
                || api
                    .link
                    .as_ref()
                    .is_some_and(|l| l.verify_token(t, api.state.now())) =>
        {
            next.run(request).await
        }
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is not valid (unknown, revoked or expired)").into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is required on TCP; create one with `podswarmctl token create` on a node").into_response(),
    }
}

/// The peer of a Unix socket connection, as the kernel reports it.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Peer {
                uid: Some(c.uid()),
                gid: Some(c.gid()),
            },
            Err(_) => Peer {
                uid: None,
                gid: None,
            },
        }
    }
}

/// Unix socket: root, or a member of the socket group, or 403.
pub fn unix_router(api: Shared, max_body: usize) -> Router {
    routes(Arc::clone(&api), max_body).layer(middleware::from_fn_with_state(api, require_peer))
}

async fn require_peer(
    AxState(api): AxState<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    if peer_allowed(&peer, &api.socket_group) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "only root and members of the {} group may use this socket",
                api.socket_group
            ),
        )
        .into_response()
    }
}

/// A group's id and members from /etc/group.
pub fn group_entry(name: &str) -> Option<(Option<u32>, Vec<String>)> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name).then(|| {
                (
                    f[2].parse().ok(),
                    f[3].split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            })
        })
}

fn peer_allowed(peer: &Peer, group: &str) -> bool {
    let Some(uid) = peer.uid else { return false };
    if uid == 0 {
        return true;
    }
    let Some((gid, members)) = group_entry(group) else {
        return false;
    };
    if gid.is_some() && peer.gid == gid {
        return true;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        f.len() >= 3 && f[2].parse::<u32>().ok() == Some(uid) && members.iter().any(|m| m == f[0])
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Applied {
    kind: String,
    namespace: String,
    name: String,
    action: Action,
}

async fn apply_manifests(
    AxState(api): AxState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let source = headers
        .get("x-podswarm-source")
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() < 256 && !s.chars().any(char::is_control))
        .unwrap_or("request body")
        .to_owned();
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{source} is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let manifest =
        podswarm_manifest::parse(text, &source, &api.limits, &api.policy).map_err(|e| {
            let details: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
            let status = if matches!(e, podswarm_manifest::Error::TooLarge { .. }) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            ApiError {
                status,
                error: e.to_string(),
                details,
            }
        })?;
    let warnings: Vec<String> = manifest.warnings.iter().map(ToString::to_string).collect();
    let objects: Vec<Object> = manifest.objects.into_iter().map(|o| o.object).collect();
    let applied = match &api.link {
        Some(link) => {
            let actions = link.apply(&objects).await.map_err(|e| unavailable(&e))?;
            objects
                .iter()
                .map(ObjectKey::of)
                .zip(actions.into_iter().map(action_of))
                .collect()
        }
        None => tokio::task::block_in_place(|| api.state.apply(objects))
            .map_err(|e| ApiError::internal(&e))?,
    };
    let applied: Vec<Applied> = applied
        .into_iter()
        .map(|(k, action)| Applied {
            kind: k.kind,
            namespace: k.namespace,
            name: k.name,
            action,
        })
        .collect();
    ok(json!({"applied": applied, "warnings": warnings}))
}

/// Kubernetes kind names as users type them.
fn canonical_kind(kind: &str) -> Option<&'static str> {
    Some(match kind.to_ascii_lowercase().as_str() {
        "pod" | "pods" | "po" => "Pod",
        "deployment" | "deployments" | "deploy" => "Deployment",
        "service" | "services" | "svc" => "Service",
        "ingress" | "ingresses" | "ing" => "Ingress",
        "configmap" | "configmaps" | "cm" => "ConfigMap",
        "secret" | "secrets" => "Secret",
        "namespace" | "namespaces" | "ns" => "Namespace",
        _ => return None,
    })
}

async fn delete_object(
    AxState(api): AxState<Shared>,
    Path((ns, kind, name)): Path<(String, String, String)>,
) -> ApiResult {
    let kind = canonical_kind(&kind)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("unknown kind {kind:?}")))?;
    let namespace = if kind == "Namespace" {
        String::new()
    } else {
        ns.clone()
    };
    let key = ObjectKey {
        kind: kind.to_owned(),
        namespace,
        name: name.clone(),
    };
    let mut deleted = vec![key.clone()];
    if kind == "Namespace" {
        // As in Kubernetes, a namespace takes its objects with it.
        deleted.extend(
            api.state
                .entries()
                .iter()
                .map(|e| ObjectKey::of(&e.object))
                .filter(|k| k.namespace == name),
        );
    }
    let mut found = false;
    for k in &deleted {
        found |= match &api.link {
            Some(link) => link
                .delete(&k.kind, &k.namespace, &k.name)
                .await
                .map_err(|e| unavailable(&e))?,
            None => tokio::task::block_in_place(|| api.state.delete(k))
                .map_err(|e| ApiError::internal(&e))?,
        };
    }
    if !found {
        return Err(ApiError::not_found(format!(
            "{kind} {}{name}",
            if kind == "Namespace" {
                String::new()
            } else {
                format!("{ns}/")
            }
        )));
    }
    ok(json!({"deleted": deleted}))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

/// Every pod of the cluster: this node's own views (its pods, and pods no node can take), and
/// the status other ready nodes published for theirs.
pub(crate) fn pod_map(api: &Api) -> BTreeMap<String, PodView> {
    let mut pods: BTreeMap<String, PodView> =
        api.views.read().map(|v| v.clone()).unwrap_or_default();
    if let Some(link) = &api.link {
        let ready: std::collections::BTreeSet<String> = link
            .nodes()
            .into_iter()
            .filter(|n| n.ready && n.name != api.node_name)
            .map(|n| n.name)
            .collect();
        for (key, view) in link.pod_records() {
            if ready.contains(&view.node) && !pods.contains_key(&key) {
                pods.insert(key, view);
            }
        }
    }
    pods
}

fn views(api: &Api) -> Vec<PodView> {
    pod_map(api).into_values().collect()
}

async fn list_pods(AxState(api): AxState<Shared>, Query(q): Query<ListQuery>) -> ApiResult {
    let pods: Vec<PodView> = views(&api)
        .into_iter()
        .filter(|p| q.namespace.as_ref().is_none_or(|ns| &p.namespace == ns))
        .collect();
    ok(json!({"items": pods}))
}

async fn get_pod(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let key = format!("{ns}/{name}");
    let pod = pod_map(&api)
        .remove(&key)
        .ok_or_else(|| ApiError::not_found(format!("pod {key}")))?;
    ok(pod)
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    follow: Option<bool>,
    tail: Option<u64>,
    container: Option<String>,
}

/// The pod's journal (`journalctl -u` of its units), streamed; `follow` keeps it open.
/// A pod's logs from the node that runs it: the same request, made to that node's API with this
/// node's own token (the cluster holds its hash), answered as a stream.
async fn proxy_logs(api: &Api, node: &str, uri: &axum::http::Uri) -> ApiResult {
    let unavailable = |why: String| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot get the logs from node {node}: {why}"),
        )
    };
    let link = api
        .link
        .as_ref()
        .ok_or_else(|| unavailable("no cluster".to_owned()))?;
    let port = api
        .api_port
        .ok_or_else(|| unavailable("this node has no TCP API (api.listen is empty)".to_owned()))?;
    let address = link
        .nodes()
        .into_iter()
        .find(|n| n.name == node)
        .map(|n| n.address)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| unavailable("its address is unknown".to_owned()))?;
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| unavailable(format!("{address:?} is not an address")))?;
    let target = std::net::SocketAddr::new(ip, port);
    let (_, token) = api
        .state
        .node_token(&api.node_name)
        .map_err(|e| ApiError::internal(&e))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(target),
    )
    .await
    .map_err(|_| unavailable(format!("{target} did not answer")))?
    .map_err(|e| unavailable(format!("{target}: {e}")))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(header::HOST, target.to_string())
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

async fn pod_logs(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
    uri: axum::http::Uri,
) -> ApiResult {
    let key = format!("{ns}/{name}");
    let pod = pod_map(&api)
        .remove(&key)
        .ok_or_else(|| ApiError::not_found(format!("pod {key}")))?;
    if !pod.node.is_empty() && pod.node != api.node_name {
        return proxy_logs(&api, &pod.node, &uri).await;
    }
    if pod.units.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "pod {key} has no units yet: {}",
                pod.reason.unwrap_or_default()
            ),
        ));
    }
    let mut cmd = tokio::process::Command::new(&api.journalctl);
    // JSON, not `cat`: conmon stores each line with its newline, and MESSAGE may be bytes.
    cmd.args([
        "--no-pager",
        "--output=json",
        "--output-fields=MESSAGE",
        "--quiet",
    ]);
    // Only what the containers wrote: podman's journald driver tags it with CONTAINER_NAME=
    // (repeated matches of one field are ORed by journalctl).
    let containers: Vec<&crate::reconcile::ContainerView> = pod
        .containers
        .iter()
        .filter(|c| q.container.as_ref().is_none_or(|n| &c.name == n))
        .collect();
    if containers.is_empty() {
        return Err(ApiError::not_found(format!(
            "container {:?} in pod {key}",
            q.container.clone().unwrap_or_default()
        )));
    }
    for c in containers {
        cmd.arg(format!("CONTAINER_NAME={}", c.podman_name));
    }
    if let Some(n) = q.tail {
        cmd.arg(format!("--lines={n}"));
    }
    if q.follow == Some(true) {
        cmd.arg("--follow");
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot run journalctl: {e}"),
            )
        })?;
    let stdout = child.stdout.take().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "journalctl has no output",
        )
    })?;
    // The child lives as long as the stream; dropping the response (client gone) kills it.
    let lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let stream = futures_util::stream::unfold((lines, child), |(mut lines, child)| async move {
        match lines.next_line().await {
            Ok(Some(line)) => Some((
                Ok::<Bytes, std::io::Error>(Bytes::from(journal_message(&line))),
                (lines, child),
            )),
            _ => None,
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(&e))
}

/// One journal entry (journalctl's JSON) as the line the container wrote, with one newline.
fn journal_message(json_line: &str) -> Vec<u8> {
    let entry: Value = serde_json::from_str(json_line).unwrap_or(Value::Null);
    let mut message = match entry.get("MESSAGE") {
        Some(Value::String(s)) => s.clone().into_bytes(),
        // journald gives non-UTF-8 messages as arrays of bytes.
        Some(Value::Array(bytes)) => bytes
            .iter()
            .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => Vec::new(),
    };
    if message.last() == Some(&b'\n') {
        message.pop();
    }
    message.push(b'\n');
    message
}

fn objects_of(api: &Api, kind: &str, ns: Option<&str>) -> Vec<crate::state::Entry> {
    api.state
        .entries()
        .into_iter()
        .filter(|e| e.object.kind() == kind && ns.is_none_or(|n| e.object.namespace() == n))
        .collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentView {
    namespace: String,
    name: String,
    replicas: i32,
    ready: usize,
    up_to_date: usize,
    available: usize,
    created: u64,
    version: u64,
}

fn deployment_view(api: &Api, e: &crate::state::Entry) -> Option<DeploymentView> {
    let Object::Deployment(d) = &e.object else {
        return None;
    };
    let pods = podswarm_manifest::pods_of(&e.object);
    let names: std::collections::BTreeSet<String> = pods
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    let owner = format!("Deployment/{}", e.object.name());
    let views: Vec<PodView> = views(api)
        .into_iter()
        .filter(|v| v.namespace == e.object.namespace() && v.owner.as_deref() == Some(&owner))
        .collect();
    let current: Vec<&PodView> = views
        .iter()
        .filter(|v| names.contains(&format!("{}/{}", v.namespace, v.name)))
        .collect();
    Some(DeploymentView {
        namespace: e.object.namespace().to_owned(),
        name: e.object.name().to_owned(),
        replicas: d.spec.replicas.unwrap_or(1),
        ready: views.iter().filter(|v| v.ready).count(),
        up_to_date: current.len(),
        available: current.iter().filter(|v| v.ready).count(),
        created: e.created,
        version: e.version,
    })
}

async fn list_deployments(AxState(api): AxState<Shared>, Query(q): Query<ListQuery>) -> ApiResult {
    let items: Vec<DeploymentView> = objects_of(&api, "Deployment", q.namespace.as_deref())
        .iter()
        .filter_map(|e| deployment_view(&api, e))
        .collect();
    ok(json!({"items": items}))
}

fn entry(api: &Api, kind: &str, ns: &str, name: &str) -> Result<crate::state::Entry, ApiError> {
    let key = ObjectKey {
        kind: kind.to_owned(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
    };
    api.state
        .get(&key)
        .ok_or_else(|| ApiError::not_found(format!("{} {ns}/{name}", kind.to_ascii_lowercase())))
}

async fn get_deployment(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let e = entry(&api, "Deployment", &ns, &name)?;
    ok(json!({"status": deployment_view(&api, &e), "object": e.object.to_value()}))
}

#[derive(Debug, Deserialize)]
struct Scale {
    replicas: i32,
}

async fn scale_deployment(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let scale: Scale = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"replicas\": N}}: {e}"),
        )
    })?;
    if !(0..=1000).contains(&scale.replicas) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "replicas must be between 0 and 1000, got {}",
                scale.replicas
            ),
        ));
    }
    let e = entry(&api, "Deployment", &ns, &name)?;
    let Object::Deployment(mut d) = e.object else {
        return Err(ApiError::not_found(format!("deployment {ns}/{name}")));
    };
    d.spec.replicas = Some(scale.replicas);
    match &api.link {
        Some(link) => {
            link.apply(&[Object::Deployment(d)])
                .await
                .map_err(|e| unavailable(&e))?;
        }
        None => {
            tokio::task::block_in_place(|| api.state.apply(vec![Object::Deployment(d)]))
                .map_err(|e| ApiError::internal(&e))?;
        }
    }
    ok(json!({"namespace": ns, "name": name, "replicas": scale.replicas}))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Endpoint {
    pub node: String,
    pub pod_name: String,
    pub address: String,
    pub port: i32,
    pub port_name: Option<String>,
    pub protocol: String,
    pub ready: bool,
}

/// A Service's endpoints: pods in its namespace matching its selector, one entry per pod and port,
/// with named target ports resolved against the pod's containers.
pub(crate) fn endpoints_of(api: &Api, e: &crate::state::Entry) -> Vec<Endpoint> {
    let Object::Service(svc) = &e.object else {
        return Vec::new();
    };
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let specs: BTreeMap<String, k8s_openapi::api::core::v1::PodSpec> = api
        .state
        .entries()
        .iter()
        .flat_map(|e| podswarm_manifest::pods_of(&e.object))
        .map(|p| (format!("{}/{}", p.namespace, p.name), p.spec))
        .collect();
    let mut out = Vec::new();
    for pod in views(api).into_iter().filter(|v| {
        v.namespace == e.object.namespace()
            && selector.iter().all(|(k, val)| v.labels.get(k) == Some(val))
    }) {
        let Some(ip) = pod.ip.clone() else { continue };
        let pod_spec = specs.get(&format!("{}/{}", pod.namespace, pod.name));
        for port in spec.ports.iter().flatten() {
            let target = match &port.target_port {
                None => Some(port.port),
                Some(IntOrString::Int(n)) => Some(*n),
                Some(IntOrString::String(name)) => pod_spec.and_then(|s| {
                    s.containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .find(|p| p.name.as_deref() == Some(name))
                        .map(|p| p.container_port)
                }),
            };
            let Some(target) = target else { continue };
            out.push(Endpoint {
                node: pod.node.clone(),
                pod_name: pod.name.clone(),
                address: ip.clone(),
                port: target,
                port_name: port.name.clone(),
                protocol: port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ready: pod.ready,
            });
        }
    }
    out
}

async fn list_services(AxState(api): AxState<Shared>, Query(q): Query<ListQuery>) -> ApiResult {
    let items: Vec<Value> = objects_of(&api, "Service", q.namespace.as_deref())
        .iter()
        .map(|e| {
            let eps = endpoints_of(&api, e);
            let mut v = e.object.to_value();
            v["podswarm"] = json!({"created": e.created, "readyEndpoints": eps.iter().filter(|p| p.ready).count(), "endpoints": eps.len()});
            v
        })
        .collect();
    ok(json!({"items": items}))
}

async fn get_service(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let e = entry(&api, "Service", &ns, &name)?;
    ok(
        json!({"object": e.object.to_value(), "endpoints": endpoints_of(&api, &e), "created": e.created}),
    )
}

async fn service_endpoints(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let e = entry(&api, "Service", &ns, &name)?;
    ok(json!({"endpoints": endpoints_of(&api, &e)}))
}

async fn service_addresses(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let e = entry(&api, "Service", &ns, &name)?;
    let addresses: Vec<String> = endpoints_of(&api, &e)
        .into_iter()
        .filter(|p| p.ready)
        .map(|p| format!("{}:{}", p.address, p.port))
        .collect();
    ok(json!({"addresses": addresses}))
}

async fn list_ingresses(AxState(api): AxState<Shared>, Query(q): Query<ListQuery>) -> ApiResult {
    let items: Vec<Value> = objects_of(&api, "Ingress", q.namespace.as_deref())
        .iter()
        .map(|e| e.object.to_value())
        .collect();
    ok(json!({"items": items}))
}

async fn list_nodes(AxState(api): AxState<Shared>) -> ApiResult {
    if let Some(link) = &api.link {
        let pods = views(&api);
        let items: Vec<Value> = link
            .nodes()
            .into_iter()
            .map(|n| {
                let count = pods.iter().filter(|p| p.node == n.name).count();
                json!({
                    "name": n.name,
                    "address": n.address,
                    "ready": n.ready,
                    "podSubnet": n.subnet,
                    "labels": n.labels,
                    "pods": count,
                })
            })
            .collect();
        return ok(json!({"items": items}));
    }
    let pods = views(&api).len();
    ok(json!({"items": [{
        "name": api.node_name,
        "address": api.node_ip,
        "ready": true,
        "podSubnet": api.pod_subnet,
        "pods": pods,
        "version": env!("CARGO_PKG_VERSION"),
    }]}))
}

/// A whitelist host as users type it: any case, optional trailing dot; stored lower case.
fn whitelist_host(text: &str) -> Result<String, ApiError> {
    let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if podswarm_manifest::is_dns1123_subdomain(&host) {
        Ok(host)
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not a domain name"),
        ))
    }
}

async fn write_whitelist(api: &Api, list: &podswarm_view::Whitelist) -> ApiResult {
    let link = api.link.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the DNS whitelist is cluster state; podswarm-gossip is not connected",
        )
    })?;
    let value = serde_json::to_value(list).map_err(|e| ApiError::internal(&e))?;
    link.write(crate::view::WHITELIST_KEY, Some(value))
        .await
        .map_err(|e| unavailable(&e))?;
    ok(list)
}

async fn get_whitelist(AxState(api): AxState<Shared>) -> ApiResult {
    ok(crate::view::whitelist(&api))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhitelistBody {
    #[serde(default = "yes")]
    enabled: bool,
    hosts: Vec<String>,
}

fn yes() -> bool {
    true
}

async fn put_whitelist(AxState(api): AxState<Shared>, body: Bytes) -> ApiResult {
    let body: WhitelistBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"enabled\": true, \"hosts\": [...]}}: {e}"),
        )
    })?;
    let mut hosts = body
        .hosts
        .iter()
        .map(|h| whitelist_host(h))
        .collect::<Result<Vec<_>, _>>()?;
    hosts.sort();
    hosts.dedup();
    write_whitelist(
        &api,
        &podswarm_view::Whitelist {
            enabled: body.enabled,
            hosts,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostBody {
    host: String,
}

async fn add_whitelist_host(AxState(api): AxState<Shared>, body: Bytes) -> ApiResult {
    let body: HostBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"host\": \"example.com\"}}: {e}"),
        )
    })?;
    let host = whitelist_host(&body.host)?;
    let mut list = crate::view::whitelist(&api);
    if !list.hosts.contains(&host) {
        list.hosts.push(host);
        list.hosts.sort();
    }
    write_whitelist(&api, &list).await
}

async fn remove_whitelist_host(
    AxState(api): AxState<Shared>,
    Path(host): Path<String>,
) -> ApiResult {
    let host = whitelist_host(&host)?;
    let mut list = crate::view::whitelist(&api);
    if !list.hosts.contains(&host) {
        return Err(ApiError::not_found(format!("whitelist host {host}")));
    }
    list.hosts.retain(|h| *h != host);
    write_whitelist(&api, &list).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewToken {
    #[serde(default)]
    description: String,
    ttl_seconds: Option<u64>,
}

async fn create_token(AxState(api): AxState<Shared>, body: Bytes) -> ApiResult {
    let req: NewToken = if body.is_empty() {
        NewToken {
            description: String::new(),
            ttl_seconds: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid token request: {e}"),
            )
        })?
    };
    let (record, token) = match &api.link {
        Some(link) => {
            let (record, token) =
                crate::state::new_token(None, &req.description, req.ttl_seconds, api.state.now())
                    .map_err(|e| ApiError::internal(&e))?;
            let value = serde_json::to_value(&record).map_err(|e| ApiError::internal(&e))?;
            link.write(&format!("tokens/{}", record.id), Some(value))
                .await
                .map_err(|e| unavailable(&e))?;
            (record, token)
        }
        None => tokio::task::block_in_place(|| {
            api.state.create_token(&req.description, req.ttl_seconds)
        })
        .map_err(|e| ApiError::internal(&e))?,
    };
    ok(
        json!({"id": record.id, "token": token, "description": record.description, "expires": record.expires}),
    )
}

async fn list_tokens(AxState(api): AxState<Shared>) -> ApiResult {
    let mut records = api.state.tokens();
    if let Some(link) = &api.link {
        records.extend(link.tokens());
    }
    let items: Vec<Value> = records.iter().map(|t| json!({"id": t.id, "description": t.description, "created": t.created, "expires": t.expires})).collect();
    ok(json!({"items": items}))
}

async fn revoke_token(AxState(api): AxState<Shared>, Path(id): Path<String>) -> ApiResult {
    if let Some(link) = &api.link
        && link.tokens().iter().any(|t| t.id == id)
    {
        link.write(&format!("tokens/{id}"), None)
            .await
            .map_err(|e| unavailable(&e))?;
        return ok(json!({"revoked": id}));
    }
    if tokio::task::block_in_place(|| api.state.revoke_token(&id))
        .map_err(|e| ApiError::internal(&e))?
    {
        ok(json!({"revoked": id}))
    } else {
        Err(ApiError::not_found(format!("token {id}")))
    }
}

async fn health(AxState(api): AxState<Shared>) -> ApiResult {
    ok(
        json!({"status": "ok", "node": api.node_name, "version": env!("CARGO_PKG_VERSION"), "stateVersion": api.state.version()}),
    )
}

/// Prometheus text format.
async fn metrics(AxState(api): AxState<Shared>) -> Response {
    let m = &api.metrics;
    let mut phases: BTreeMap<&str, usize> = [
        ("Pending", 0),
        ("Running", 0),
        ("Succeeded", 0),
        ("Failed", 0),
    ]
    .into();
    let pods = views(&api);
    for p in &pods {
        let name = match p.phase {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        };
        *phases.entry(name).or_default() += 1;
    }
    let mut out = String::new();
    let counters: [(&str, &str, u64); 8] = [
        (
            "podswarm_systemd_reloads_total",
            "systemd daemon reloads requested by podswarmd",
            (api.reloads)(),
        ),
        (
            "podswarm_reconcile_passes_total",
            "reconcile passes",
            m.passes.load(Ordering::Relaxed),
        ),
        (
            "podswarm_reconcile_errors_total",
            "reconcile passes that failed",
            m.errors.load(Ordering::Relaxed),
        ),
        (
            "podswarm_unit_files_written_total",
            "Quadlet files written",
            m.files_written.load(Ordering::Relaxed),
        ),
        (
            "podswarm_unit_files_removed_total",
            "Quadlet files removed",
            m.files_removed.load(Ordering::Relaxed),
        ),
        (
            "podswarm_unit_starts_total",
            "start jobs",
            m.starts.load(Ordering::Relaxed),
        ),
        (
            "podswarm_unit_restarts_total",
            "restart jobs",
            m.restarts.load(Ordering::Relaxed),
        ),
        (
            "podswarm_unit_stops_total",
            "stop jobs",
            m.stops.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    out.push_str("# HELP podswarm_pods pods on this node by phase\n# TYPE podswarm_pods gauge\n");
    for (phase, n) in phases {
        out.push_str(&format!("podswarm_pods{{phase=\"{phase}\"}} {n}\n"));
    }
    out.push_str(&format!("# HELP podswarm_state_version version of the desired state\n# TYPE podswarm_state_version gauge\npodswarm_state_version {}\n", api.state.version()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_messages_get_exactly_one_newline() {
        assert_eq!(journal_message(r#"{"MESSAGE":"hello\n"}"#), b"hello\n");
        assert_eq!(journal_message(r#"{"MESSAGE":"hello"}"#), b"hello\n");
        assert_eq!(
            journal_message(r#"{"MESSAGE":[104,255,10]}"#),
            vec![104, 255, 10]
        );
        assert_eq!(journal_message("not json"), b"\n");
    }

    #[test]
    fn kinds_as_users_type_them() {
        assert_eq!(canonical_kind("deploy"), Some("Deployment"));
        assert_eq!(canonical_kind("SVC"), Some("Service"));
        assert_eq!(canonical_kind("statefulset"), None);
    }
}
