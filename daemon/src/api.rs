//! The REST API (DESIGN.md): JSON, camelCase, errors as `{"error": "...", "details": [...]}`.
//!
//! The same routes are served twice: on TCP, where every request needs a bearer token (stored only
//! as a hash), and on the node's Unix socket, where the kernel-reported peer credentials decide
//! (root or the `podswarm` group), so `podswarmctl` on a node needs no token.
//!
//! This is the HTTP layer only. Reads answer from the current [`Snapshot`] of the read model
//! ([`crate::model`]), which derives pods, endpoints and Deployment status once per change for
//! every reader; writes go to the replicated state through the [`Link`], and a handler that wrote
//! answers only once the snapshot includes its write ([`Model::settled`]). Request bodies are
//! extractors ([`body`]) whose rejections keep the error shape.
//!
//! Every body this module reads or writes is a type of `podswarm_api`, the contract podswarmctl
//! reads with the same types; handlers build those values and nothing here writes JSON by hand,
//! so the wire format changes only where the contract does.

mod body;
mod kube;
mod logs;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State as AxState};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::serve::IncomingStream;
use podswarm_api::{
    Addresses, Applied, ApplyResult, CreatedToken, Deleted, DeploymentDetail, DeploymentRevision,
    Endpoints, ErrorBody, Health, HostBody, List, NewToken, ObjectRef, PodMove, Rebalance, Revoked,
    Scale, Scaled, ServiceDetail, Token, WhitelistBody,
};
use podswarm_manifest::{Limits, Object, Policy};
use serde::{Deserialize, Serialize};

use self::body::{JsonBody, JsonShape, Manifests};
use crate::link::Link;
use crate::metrics::Exporter;
use crate::model::{Model, Snapshot, WHITELIST_KEY};
use crate::reconcile::PodViews;
use crate::state::{Entry, ObjectKey, State};

/// Everything the handlers read.
pub struct Api {
    pub state: Arc<State>,
    /// The replicated state: every write goes there.
    pub link: Arc<Link>,
    /// What every read answers from.
    pub model: Arc<Model>,
    pub metrics: Exporter,
    pub limits: Limits,
    pub policy: Policy,
    pub node_name: String,
    pub journalctl: PathBuf,
    pub socket_group: String,
    /// The TCP API's port, which every node is assumed to share (for node-to-node requests).
    pub api_port: Option<u16>,
    /// The node certificate the TCP API serves HTTPS with and node-to-node requests present;
    /// `None` where the TCP API is plain HTTP (`api.insecure_plain_http`) or off.
    pub tls: Option<Arc<crate::tls::NodeTls>>,
    /// The Kubernetes form of the read model's objects, shared by the Kubernetes API's lists and
    /// watches.
    pub kube_objects: kube::cache::Cache,
}

/// A write the cluster state did not take. One podswarm-gossip could not put on this node's disk
/// (full, read-only) is 507 Insufficient Storage, so a client tells a disk to free from an outage
/// to wait out; anything else is 503.
fn unavailable(e: &crate::link::LinkError) -> ApiError {
    use podswarm_gossip::control::client::FailureKind;
    match e {
        crate::link::LinkError::Gossip(cause) if cause.kind() == Some(FailureKind::NotDurable) => {
            let mut error = ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                crate::reconcile::error_chain(cause),
            );
            error.body.details.push(
                "podswarm-gossip holds the write in memory (other nodes may get it) and stores it once the disk has room: free space on this node, then repeat the request"
                    .to_owned(),
            );
            error
        }
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::reconcile::error_chain(e),
        ),
    }
}

impl Api {
    /// An API over these sources with no reconciler behind it: pods are what `views` holds,
    /// `/metrics` counts no reconciler passes, requests and manifests get the default limits and
    /// policy, and the node has no TCP API (so no node-to-node log requests). For tests: this
    /// crate's, and podswarmctl's output tests, which drive this real router over a real
    /// [`State`] and [`Link`] rather than a stand-in. Adjust the fields before sharing it.
    pub fn without_reconciler(
        state: Arc<State>,
        link: Arc<Link>,
        views: PodViews,
        journalctl: PathBuf,
    ) -> Api {
        let model = Model::new(Arc::clone(&state), Arc::clone(&link), views);
        let metrics = Exporter::new(crate::metrics::Sources {
            reconcile: Arc::default(),
            reloads: Arc::new(|| 0),
            snapshots: model.subscribe(),
        });
        Api {
            node_name: link.node_name().to_owned(),
            state,
            link,
            model,
            metrics,
            limits: Limits::default(),
            policy: Policy::default(),
            journalctl,
            socket_group: "podswarm".to_owned(),
            api_port: None,
            tls: None,
            kube_objects: Default::default(),
        }
    }

    /// The address node `node` advertises (its record's), or why there is none to use.
    fn node_address(&self, node: &str) -> Result<std::net::IpAddr, String> {
        let address = self
            .model
            .current()
            .nodes()
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.address.clone())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| "its address is unknown".to_owned())?;
        address
            .parse()
            .map_err(|_| format!("{address:?} is not an address"))
    }

    /// This node's TCP API as a client elsewhere reaches it: `https://ADDRESS:PORT` (its
    /// advertised address), `http://` where it serves plain HTTP.
    pub fn server_url(&self) -> Option<String> {
        let port = self.api_port?;
        let address = self.node_address(&self.node_name).ok()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Some(format!(
            "{scheme}://{}",
            std::net::SocketAddr::new(address, port)
        ))
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
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(error),
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
        (self.status, axum::Json(self.body)).into_response()
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
        .route("/api/v1/pods/{ns}/{name}", get(get_pod))
        .route("/api/v1/pods/{ns}/{name}/logs", get(pod_logs))
        .route("/api/v1/deployments", get(list_deployments))
        .route("/api/v1/deployments/{ns}/{name}", get(get_deployment))
        .route(
            "/api/v1/deployments/{ns}/{name}/revisions",
            get(deployment_revisions),
        )
        .route(
            "/api/v1/deployments/{ns}/{name}/scale",
            put(scale_deployment),
        )
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
        .route("/api/v1/nodes/{name}/{action}", post(cordon_node))
        .route("/api/v1/rebalance", post(rebalance))
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
        .merge(kube::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(api)
}

/// TCP: a valid, unexpired bearer token, or 401.
pub fn tcp_router(api: Shared, max_body: usize) -> Router {
    routes(Arc::clone(&api), max_body).layer(middleware::from_fn_with_state(api, require_token))
}

async fn require_token(AxState(api): AxState<Shared>, request: Request, next: Next) -> Response {
    // Another node (its certificate chains to the cluster CA, which the handshake checked) may
    // read without a token: the log proxy. Writes always need a token.
    let node = request
        .extensions()
        .get::<ConnectInfo<crate::tls::TlsPeer>>()
        .is_some_and(|c| c.0.node);
    if node && request.method() == axum::http::Method::GET {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let token = token.as_deref();
    let holder = token.and_then(|t| {
        api.state.token_id(t).or_else(|| {
            crate::state::token_holder(api.model.current().tokens(), t, api.state.now())
                .map(|r| r.id.clone())
        })
    });
    let mut request = request;
    match (token, holder) {
        (Some(_), Some(token)) => {
            request.extensions_mut().insert(Caller { token });
            next.run(request).await
        }
        (Some(_), None) => unauthorized(
            &request,
            "the bearer token is not valid (unknown, revoked or expired)",
        ),
        (None, _) => unauthorized(
            &request,
            "a bearer token is required on TCP; create one with `podswarmctl token create` on a node",
        ),
    }
}

/// 401, in the error shape of the API the request is for.
fn unauthorized(request: &Request, message: &str) -> Response {
    let error = ApiError::new(StatusCode::UNAUTHORIZED, message);
    if kubernetes_request(request) {
        kube::KubeError::from(error).into_response()
    } else {
        error.into_response()
    }
}

/// Who made a request over TCP: the id of the token it presented (what `kubectl auth whoami`
/// shows).
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: String,
}

/// The peer of a Unix socket connection, as the kernel reports it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Whether the socket group admits this peer: looked up once per connection, off the async
    /// runtime (NSS may block), and shared by the connection's requests. A change of membership
    /// applies from the next connection on.
    admitted: Arc<tokio::sync::OnceCell<bool>>,
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        let (uid, gid) = match stream.io().peer_cred() {
            Ok(c) => (Some(c.uid()), Some(c.gid())),
            Err(_) => (None, None),
        };
        Peer {
            uid,
            gid,
            admitted: Arc::default(),
        }
    }
}

impl Peer {
    /// Root, a process of the socket group, or a member of it.
    async fn admitted(&self, group: &str) -> bool {
        let (Some(uid), Some(gid)) = (self.uid, self.gid) else {
            return false;
        };
        if uid == 0 {
            return true;
        }
        let group = group.to_owned();
        *self
            .admitted
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || crate::groups::admits(&group, uid, gid))
                    .await
                    .unwrap_or(false)
            })
            .await
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
    if peer.admitted(&api.socket_group).await {
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

async fn apply_manifests(
    AxState(api): AxState<Shared>,
    headers: axum::http::HeaderMap,
    Manifests(manifest): Manifests,
) -> ApiResult {
    let warnings: Vec<String> = manifest.warnings.iter().map(ToString::to_string).collect();
    let mut objects: Vec<Object> = manifest.objects.into_iter().map(|o| o.object).collect();
    record_updates(&api.model.settled(), &mut objects, &manager(&headers), None)?;
    let actions = api
        .link
        .apply(&objects)
        .await
        .map_err(|e| unavailable(&e))?;
    api.model.settled();
    let applied: Vec<Applied> = objects
        .iter()
        .map(ObjectKey::of)
        .zip(actions)
        .map(|(k, action)| Applied {
            kind: k.kind,
            namespace: k.namespace,
            name: k.name,
            action,
        })
        .collect();
    ok(ApplyResult { applied, warnings })
}

/// The field manager a write through podswarm's own paths is recorded as: the `User-Agent`'s
/// product (`podswarmctl`), as the Kubernetes API records it.
fn manager(headers: &axum::http::HeaderMap) -> String {
    kube::manager_of(None, headers).unwrap_or_else(|_| "unknown".to_owned())
}

/// Records each of `objects` as `manager`'s update (through `subresource`, where not the object
/// itself) of the object the state holds (a create where there is none) in its
/// `managedFields`, as the Kubernetes API records every write: the fields it changes become
/// `manager`'s, and other managers keep the rest (`kubectl apply --server-side` after a
/// `podswarmctl apply` still knows whose fields are whose).
fn record_updates(
    snapshot: &crate::model::Snapshot,
    objects: &mut [Object],
    manager: &str,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    for o in objects {
        let kind = o.kind();
        let old = snapshot
            .entry(kind, o.namespace(), o.name())
            .map(|e| e.object.to_value());
        let mut new = o.to_value();
        let api_version = new["apiVersion"].as_str().unwrap_or("v1").to_owned();
        let writer = kube::writer(manager, api_version, subresource);
        podswarm_api::kube::fields::update(kind, old.as_ref(), &mut new, &writer).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{} {}: {e}", kind.to_ascii_lowercase(), o.name()),
            )
        })?;
        o.metadata_mut().managed_fields =
            serde_json::from_value(new["metadata"]["managedFields"].take())
                .map_err(|e| ApiError::internal(&e))?;
    }
    Ok(())
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
    let deleted = delete_keys(&api, kind, &ns, &name)
        .await?
        .into_iter()
        .map(|k| ObjectRef {
            kind: k.kind,
            namespace: k.namespace,
            name: k.name,
        })
        .collect();
    ok(Deleted { deleted })
}

/// Deletes an object (a namespace with everything in it, as in Kubernetes), returning what went;
/// 404 when there was nothing to delete.
async fn delete_keys(
    api: &Shared,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<Vec<ObjectKey>, ApiError> {
    let namespace = if kind == "Namespace" {
        String::new()
    } else {
        ns.to_owned()
    };
    let key = ObjectKey {
        kind: kind.to_owned(),
        namespace,
        name: name.to_owned(),
    };
    let mut deleted = vec![key.clone()];
    if kind == "Namespace" {
        deleted.extend(
            api.model
                .settled()
                .entries()
                .map(|e| ObjectKey::of(&e.object))
                .filter(|k| k.namespace == name),
        );
    }
    let mut found = false;
    for k in &deleted {
        found |= api
            .link
            .delete(&k.kind, &k.namespace, &k.name)
            .await
            .map_err(|e| unavailable(&e))?;
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
    api.model.settled();
    Ok(deleted)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

/// Whether a request is the Kubernetes API's, whose errors are `Status` objects: its own paths,
/// with the lists podswarm's REST API once answered itself (`GET /api/v1/pods`, `services`,
/// `nodes`, now Kubernetes' lists) and a node by name.
fn kubernetes_request(request: &Request) -> bool {
    let path = request.uri().path();
    let shared = ["/api/v1/pods", "/api/v1/services", "/api/v1/nodes"].contains(&path)
        || path
            .strip_prefix("/api/v1/nodes/")
            .is_some_and(|name| !name.contains('/'));
    shared
        || ["/api", "/api/v1", "/version"].contains(&path)
        || ["/apis", "/openapi/", "/api/v1/namespaces"]
            .iter()
            .any(|p| path.starts_with(p))
}

async fn get_pod(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let key = format!("{ns}/{name}");
    let snapshot = api.model.current();
    let pod = snapshot
        .pod(&key)
        .ok_or_else(|| ApiError::not_found(format!("pod {key}")))?;
    ok(&pod.view)
}

/// `GET /api/v1/pods/:ns/:name/logs`' parameters (the Kubernetes handler fills them too).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    follow: Option<bool>,
    tail: Option<u64>,
    container: Option<String>,
    /// Each line after its time.
    timestamps: Option<bool>,
    /// Only lines from this time on (seconds since the epoch).
    since: Option<i64>,
    limit_bytes: Option<u64>,
    /// The previous instance of the container (the one before its last restart).
    previous: Option<bool>,
}

/// A pod's logs from the node that runs it: the same request, made to that node's API over mTLS
/// with this node's certificate (or, where the API is plain HTTP, with this node's own token,
/// whose hash the cluster holds), answered as a stream.
async fn proxy_logs(api: &Api, node: &str, uri: &axum::http::Uri) -> ApiResult {
    let unavailable = |why: String| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot get the logs from node {node}: {why}"),
        )
    };
    let port = api
        .api_port
        .ok_or_else(|| unavailable("this node has no TCP API (api.listen is empty)".to_owned()))?;
    let ip = api.node_address(node).map_err(unavailable)?;
    let target = std::net::SocketAddr::new(ip, port);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path).header(header::HOST, target.to_string());
    let connect = std::time::Duration::from_secs(5);
    let (mut sender, request) = match &api.tls {
        // mTLS: the node certificate is the credential, and the other node's must be from the
        // cluster CA, for that node's name.
        Some(tls) => {
            let stream = tokio::time::timeout(connect, tls.connect(node, target))
                .await
                .map_err(|_| unavailable(format!("{target} did not answer")))?
                .map_err(|e| unavailable(format!("{target}: {e}")))?;
            (
                handshake(hyper_util::rt::TokioIo::new(stream), &unavailable).await?,
                request,
            )
        }
        // Plain HTTP (`api.insecure_plain_http`): this node's own token.
        None => {
            let (_, token) = api
                .state
                .node_token(&api.node_name)
                .map_err(|e| ApiError::internal(&e))?;
            let stream = tokio::time::timeout(connect, tokio::net::TcpStream::connect(target))
                .await
                .map_err(|_| unavailable(format!("{target} did not answer")))?
                .map_err(|e| unavailable(format!("{target}: {e}")))?;
            (
                handshake(hyper_util::rt::TokioIo::new(stream), &unavailable).await?,
                request.header(header::AUTHORIZATION, format!("Bearer {token}")),
            )
        }
    };
    let request = request
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// An HTTP/1 client connection over `io`, its driver spawned.
async fn handshake<I>(
    io: I,
    unavailable: &impl Fn(String) -> ApiError,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>, ApiError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// The pod's journal (its containers' lines), streamed; `follow` keeps it open.
async fn pod_logs(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
    uri: axum::http::Uri,
) -> ApiResult {
    logs(&api, &ns, &name, &q, &uri).await
}

/// A pod's logs: from journald here, or from the node that runs it (the same request, `uri`,
/// made to that node).
async fn logs(
    api: &Shared,
    ns: &str,
    name: &str,
    q: &LogQuery,
    uri: &axum::http::Uri,
) -> ApiResult {
    let key = format!("{ns}/{name}");
    let pod = api
        .model
        .current()
        .pod(&key)
        .map(|p| p.view.clone())
        .ok_or_else(|| ApiError::not_found(format!("pod {key}")))?;
    if !pod.node.is_empty() && pod.node != api.node_name {
        return proxy_logs(api, &pod.node, uri).await;
    }
    if pod.units.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "pod {key} has no units yet: {}",
                pod.message.clone().unwrap_or_else(|| pod
                    .reason
                    .unwrap_or_default()
                    .as_str()
                    .to_owned())
            ),
        ));
    }
    let previous = q.previous == Some(true);
    let mut cmd = tokio::process::Command::new(&api.journalctl);
    // JSON, not `cat` (`logs.rs` says why); which instance wrote a line only matters for
    // `previous`.
    cmd.args([
        "--no-pager",
        "--output=json",
        if previous {
            "--output-fields=MESSAGE,CONTAINER_NAME,CONTAINER_ID"
        } else {
            "--output-fields=MESSAGE"
        },
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
    if let Some(since) = q.since {
        cmd.arg(format!("--since=@{since}"));
    }
    let shape = logs::Shape {
        timestamps: q.timestamps == Some(true),
        limit_bytes: q.limit_bytes,
    };
    if previous {
        // The whole journal of the containers, then the previous instance's part of it: a
        // finished log, so nothing to follow.
        return previous_logs(cmd, &key, q.tail, shape).await;
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
    let limit = shape.limit_bytes;
    let stream = futures_util::stream::unfold(
        (lines, child, limit),
        move |(mut lines, child, mut limit)| async move {
            if limit == Some(0) {
                return None;
            }
            match lines.next_line().await {
                Ok(Some(line)) => {
                    let text = logs::render(&logs::parse(&line), shape.timestamps);
                    let chunk = logs::within(&mut limit, text);
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(chunk)),
                        (lines, child, limit),
                    ))
                }
                _ => None,
            }
        },
    );
    log_response(Body::from_stream(stream))
}

fn log_response(body: Body) -> ApiResult {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .map_err(|e| ApiError::internal(&e))
}

/// `previous`: the previous instance of each container the journal query `cmd` selects (the
/// last `tail` lines of it), or 400 where a container has had no other instance (the kubelet's
/// "previous terminated container … not found").
async fn previous_logs(
    mut cmd: tokio::process::Command,
    key: &str,
    tail: Option<u64>,
    shape: logs::Shape,
) -> ApiResult {
    let out = cmd
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot run journalctl: {e}"),
            )
        })?;
    let lines: Vec<logs::Line> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(logs::parse)
        .collect();
    let mut kept = logs::previous(lines);
    if kept.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("previous terminated container in pod {key} not found"),
        ));
    }
    if let Some(n) = tail {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        kept.drain(..kept.len().saturating_sub(n));
    }
    let mut limit = shape.limit_bytes;
    let mut body = Vec::new();
    for l in &kept {
        body.extend(logs::within(&mut limit, logs::render(l, shape.timestamps)));
    }
    log_response(Body::from(body))
}

/// One object of the snapshot, or 404.
fn entry<'a>(
    snapshot: &'a Snapshot,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<&'a Entry, ApiError> {
    snapshot
        .entry(kind, ns, name)
        .ok_or_else(|| ApiError::not_found(format!("{} {ns}/{name}", kind.to_ascii_lowercase())))
}

/// A Deployment of the snapshot, or a 404 that names it.
fn deployment<'a>(
    snapshot: &'a Snapshot,
    ns: &str,
    name: &str,
) -> Result<&'a k8s_openapi::api::apps::v1::Deployment, ApiError> {
    match &entry(snapshot, "Deployment", ns, name)?.object {
        Object::Deployment(d) => Ok(d),
        _ => Err(ApiError::not_found(format!("deployment {ns}/{name}"))),
    }
}

async fn list_deployments(AxState(api): AxState<Shared>, Query(q): Query<ListQuery>) -> ApiResult {
    let snapshot = api.model.current();
    let items: Vec<&crate::model::DeploymentStatus> = snapshot
        .objects("Deployment", q.namespace.as_deref())
        .filter_map(|e| snapshot.deployment(e.object.namespace(), e.object.name()))
        .collect();
    ok(List::from(items))
}

async fn get_deployment(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let snapshot = api.model.current();
    let object = deployment(&snapshot, &ns, &name)?;
    ok(DeploymentDetail {
        status: snapshot.deployment(&ns, &name).cloned(),
        object: object.clone(),
    })
}

/// A Deployment's revisions, oldest first: its revision records ([`crate::rollout`]), from which
/// `podswarmctl rollout history` lists and `rollout undo` restores templates.
async fn deployment_revisions(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let snapshot = api.model.current();
    let object = deployment(&snapshot, &ns, &name)?;
    let current = podswarm_manifest::template_hash(&object.spec.template);
    let mut facts = api.link.rollout_facts(api.state.now());
    let records = facts.revisions.remove(&(ns, name)).unwrap_or_default();
    let mut items: Vec<DeploymentRevision> = records
        .into_iter()
        .map(|(hash, r)| {
            // Kubernetes copies the Deployment's annotations onto the ReplicaSet of its current
            // template, and kubectl prefers those; older revisions keep the cause they last
            // had (their record's), else their template's own.
            let cause = if hash == current {
                podswarm_api::kube::objects::change_cause(&object.metadata)
            } else {
                None
            };
            DeploymentRevision {
                revision: r.revision,
                change_cause: cause.or(r.change_cause).or_else(|| {
                    r.template
                        .metadata
                        .as_ref()
                        .and_then(podswarm_api::kube::objects::change_cause)
                }),
                template_hash: hash,
                created: r.created,
                template: r.template,
            }
        })
        .collect();
    items.sort_by_key(|r| r.revision);
    ok(List::from(items))
}

impl JsonShape for Scale {
    fn refused(e: &serde_json::Error) -> String {
        format!("the body must be {{\"replicas\": N}}: {e}")
    }
}

/// Sets a Deployment's replicas, and answers once the snapshot has the write. With
/// `resource_version`, only if the Deployment is still at that version (409 otherwise), as
/// Kubernetes' optimistic concurrency has it. The write is recorded in its `managedFields` as
/// `manager`'s update of `spec.replicas` through the `scale` subresource, as Kubernetes records
/// a scale.
async fn scale_to(
    api: &Shared,
    ns: &str,
    name: &str,
    replicas: i32,
    resource_version: Option<u64>,
    manager: &str,
) -> Result<(), ApiError> {
    if !(0..=1000).contains(&replicas) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("replicas must be between 0 and 1000, got {replicas}"),
        ));
    }
    let snapshot = api.model.settled();
    let found = entry(&snapshot, "Deployment", ns, name)?;
    if let Some(wanted) = resource_version.filter(|v| *v != found.version) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Operation cannot be fulfilled on deployments.apps {name:?}: the object has been modified (resourceVersion {} now, {wanted} given); please apply your changes to the latest version and try again",
                found.version
            ),
        ));
    }
    let Object::Deployment(mut d) = found.object.clone() else {
        return Err(ApiError::not_found(format!("deployment {ns}/{name}")));
    };
    d.spec.replicas = Some(replicas);
    let mut objects = [Object::Deployment(d)];
    record_updates(&snapshot, &mut objects, manager, Some("scale"))?;
    api.link
        .apply(&objects)
        .await
        .map_err(|e| unavailable(&e))?;
    api.model.settled();
    Ok(())
}

async fn scale_deployment(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    JsonBody(scale): JsonBody<Scale>,
) -> ApiResult {
    scale_to(&api, &ns, &name, scale.replicas, None, &manager(&headers)).await?;
    ok(Scaled {
        namespace: ns,
        name,
        replicas: scale.replicas,
    })
}

async fn get_service(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let snapshot = api.model.current();
    let e = entry(&snapshot, "Service", &ns, &name)?;
    let Object::Service(object) = &e.object else {
        return Err(ApiError::not_found(format!("service {ns}/{name}")));
    };
    ok(ServiceDetail {
        object: object.clone(),
        endpoints: snapshot.endpoints(&ns, &name).to_vec(),
        created: e.created,
    })
}

async fn service_endpoints(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let snapshot = api.model.current();
    entry(&snapshot, "Service", &ns, &name)?;
    ok(Endpoints {
        endpoints: snapshot.endpoints(&ns, &name).to_vec(),
    })
}

async fn service_addresses(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let snapshot = api.model.current();
    entry(&snapshot, "Service", &ns, &name)?;
    let addresses: Vec<String> = snapshot
        .endpoints(&ns, &name)
        .iter()
        .filter(|p| p.ready)
        .map(|p| format!("{}:{}", p.address, p.port))
        .collect();
    ok(Addresses { addresses })
}

async fn list_ingresses(AxState(api): AxState<Shared>, Query(q): Query<ListQuery>) -> ApiResult {
    let snapshot = api.model.current();
    let items: Vec<&k8s_openapi::api::networking::v1::Ingress> = snapshot
        .objects("Ingress", q.namespace.as_deref())
        .filter_map(|e| match &e.object {
            Object::Ingress(i) => Some(i),
            _ => None,
        })
        .collect();
    ok(List::from(items))
}

/// Every node as the API shows it, with how many of the snapshot's pods each runs.
fn node_items(snapshot: &crate::model::Snapshot) -> Vec<podswarm_api::Node> {
    let mut pods: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for p in snapshot.pods() {
        *pods.entry(p.view.node.as_str()).or_default() += 1;
    }
    snapshot
        .nodes()
        .iter()
        .map(|n| podswarm_api::Node {
            name: n.name.clone(),
            address: n.address.clone(),
            ready: n.ready,
            pod_subnet: n.subnet.clone(),
            labels: n.labels.clone(),
            pods: pods.get(n.name.as_str()).copied().unwrap_or(0),
            unschedulable: n.cordoned,
            draining: n.draining,
            stopping: n.stopping.clone(),
        })
        .collect()
}

/// `POST /api/v1/nodes/:name/cordon|drain|uncordon`: the node's maintenance state, as kubectl
/// means it; answers the node as it now is. A drain only starts here: the node's pods then move
/// (each once its replacement is ready), which `podswarmctl drain` follows through the pod list.
async fn cordon_node(
    AxState(api): AxState<Shared>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult {
    let cordon = match action.as_str() {
        "cordon" => Some(crate::link::Cordon {
            drain: false,
            since: crate::link::unix_now(),
            node_id: String::new(),
        }),
        "drain" => Some(crate::link::Cordon {
            drain: true,
            since: crate::link::unix_now(),
            node_id: String::new(),
        }),
        "uncordon" => None,
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")),
    };
    if !api
        .link
        .set_cordon(&name, cordon)
        .await
        .map_err(|e| unavailable(&e))?
    {
        return Err(ApiError::not_found(format!("node {name}")));
    }
    node_items(&api.model.settled())
        .into_iter()
        .find(|n| n.name == name)
        .map_or_else(|| Err(ApiError::not_found(format!("node {name}"))), ok)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RebalanceQuery {
    dry_run: Option<String>,
}

/// `POST /api/v1/rebalance[?dryRun=true]`: the moves that even out each Deployment's spread
/// over the nodes its pods may use (`schedule::rebalance`), from the pods this node expands and
/// places as its reconciler does; started (move records written) unless it is a dry run. The
/// moves themselves happen on the nodes, each a hand-over like a drain's.
async fn rebalance(AxState(api): AxState<Shared>, Query(q): Query<RebalanceQuery>) -> ApiResult {
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") => false,
        Some("" | "true") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("dryRun must be true or false, not {other:?}"),
            ));
        }
    };
    let entries = api.state.entries();
    let facts = api.link.rollout_facts(crate::link::unix_now());
    let pods = crate::rollout::expand(&entries, &facts).pods;
    let refs: Vec<&podswarm_manifest::PodInstance> = pods.iter().map(|(p, _)| p).collect();
    let moves = api.link.plan_rebalance(&refs);
    if !dry_run {
        let existing: std::collections::BTreeSet<String> =
            refs.iter().map(|p| crate::schedule::pod_key(p)).collect();
        api.link
            .start_moves(&moves, &existing)
            .await
            .map_err(|e| unavailable(&e))?;
    }
    ok(Rebalance {
        moves: moves
            .into_iter()
            .map(|m| PodMove {
                pod: m.pod,
                from: m.from,
                to: m.to,
            })
            .collect(),
        dry_run,
    })
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
    let value = serde_json::to_value(list).map_err(|e| ApiError::internal(&e))?;
    api.link
        .write(WHITELIST_KEY, Some(value))
        .await
        .map_err(|e| unavailable(&e))?;
    api.model.settled();
    ok(list)
}

async fn get_whitelist(AxState(api): AxState<Shared>) -> ApiResult {
    ok(api.model.current().whitelist())
}

impl JsonShape for WhitelistBody {
    fn refused(e: &serde_json::Error) -> String {
        format!("the body must be {{\"enabled\": true, \"hosts\": [...]}}: {e}")
    }
}

async fn put_whitelist(
    AxState(api): AxState<Shared>,
    JsonBody(body): JsonBody<WhitelistBody>,
) -> ApiResult {
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

impl JsonShape for HostBody {
    fn refused(e: &serde_json::Error) -> String {
        format!("the body must be {{\"host\": \"example.com\"}}: {e}")
    }
}

async fn add_whitelist_host(
    AxState(api): AxState<Shared>,
    JsonBody(body): JsonBody<HostBody>,
) -> ApiResult {
    let host = whitelist_host(&body.host)?;
    let mut list = api.model.settled().whitelist().clone();
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
    let mut list = api.model.settled().whitelist().clone();
    if !list.hosts.contains(&host) {
        return Err(ApiError::not_found(format!("whitelist host {host}")));
    }
    list.hosts.retain(|h| *h != host);
    write_whitelist(&api, &list).await
}

impl JsonShape for NewToken {
    fn refused(e: &serde_json::Error) -> String {
        format!("invalid token request: {e}")
    }
    /// No body: a token without description or expiry.
    fn when_empty() -> Option<Self> {
        Some(NewToken::default())
    }
}

async fn create_token(
    AxState(api): AxState<Shared>,
    JsonBody(req): JsonBody<NewToken>,
) -> ApiResult {
    let (record, token) =
        crate::state::new_token(None, &req.description, req.ttl_seconds, api.state.now())
            .map_err(|e| ApiError::internal(&e))?;
    let value = serde_json::to_value(&record).map_err(|e| ApiError::internal(&e))?;
    api.link
        .write(&format!("tokens/{}", record.id), Some(value))
        .await
        .map_err(|e| unavailable(&e))?;
    api.model.settled();
    ok(CreatedToken {
        id: record.id,
        token,
        description: record.description,
        expires: record.expires,
        server: api.server_url(),
        certificate_authority: api.tls.as_ref().and_then(|t| t.ca_pem()),
    })
}

async fn list_tokens(AxState(api): AxState<Shared>) -> ApiResult {
    let mut records = api.state.tokens();
    records.extend_from_slice(api.model.current().tokens());
    let items: Vec<Token> = records
        .into_iter()
        .map(|t| Token {
            id: t.id,
            description: t.description,
            created: t.created,
            expires: t.expires,
        })
        .collect();
    ok(List::from(items))
}

async fn revoke_token(AxState(api): AxState<Shared>, Path(id): Path<String>) -> ApiResult {
    // Cluster tokens are revoked in the cluster; tokens this node made before it joined one live
    // only in its state.
    if api.model.settled().tokens().iter().any(|t| t.id == id) {
        api.link
            .write(&format!("tokens/{id}"), None)
            .await
            .map_err(|e| unavailable(&e))?;
        api.model.settled();
        return ok(Revoked { revoked: id });
    }
    if tokio::task::block_in_place(|| api.state.revoke_token(&id))
        .map_err(|e| ApiError::internal(&e))?
    {
        ok(Revoked { revoked: id })
    } else {
        Err(ApiError::not_found(format!("token {id}")))
    }
}

async fn health(AxState(api): AxState<Shared>) -> ApiResult {
    ok(Health {
        status: "ok".to_owned(),
        node: api.node_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        state_version: api.state.version(),
    })
}

/// Prometheus text format ([`crate::metrics`]).
async fn metrics(AxState(api): AxState<Shared>) -> ApiResult {
    let text = api.metrics.render().map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};

    #[test]
    fn kinds_as_users_type_them() {
        assert_eq!(canonical_kind("deploy"), Some("Deployment"));
        assert_eq!(canonical_kind("SVC"), Some("Service"));
        assert_eq!(canonical_kind("statefulset"), None);
    }

    /// A node's API with no podswarm-gossip behind it: reads work, writes answer 503.
    struct Node {
        _dir: tempfile::TempDir,
        api: Shared,
        views: PodViews,
    }

    const MAX_BODY: usize = 1024;

    fn node() -> Node {
        node_of("podswarm")
    }

    fn node_of(socket_group: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (state, link, views) = crate::testing::offline(dir.path());
        let mut api =
            Api::without_reconciler(state, link, Arc::clone(&views), PathBuf::from("/bin/false"));
        api.socket_group = socket_group.into();
        Node {
            _dir: dir,
            api: Arc::new(api),
            views,
        }
    }

    /// One request through the real router over TCP: the status and the body (JSON, or the
    /// text as a JSON string).
    async fn call(api: &Shared, method: &str, path: &str, body: &[u8]) -> (StatusCode, Value) {
        call_as(api, method, path, body, "application/json").await
    }

    /// [`call`] asking for `accept`.
    async fn call_as(
        api: &Shared,
        method: &str,
        path: &str,
        body: &[u8],
        accept: &str,
    ) -> (StatusCode, Value) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = routes(Arc::clone(api), MAX_BODY);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, address.to_string())
            .header(header::ACCEPT, accept)
            .body(http_body_util::Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// A GET through the Unix socket router, whose peer is this test process.
    async fn call_unix(node: &Node, path: &str) -> (StatusCode, Value) {
        let socket = node._dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let app = unix_router(Arc::clone(&node.api), MAX_BODY)
            .into_make_service_with_connect_info::<Peer>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(header::HOST, "localhost")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn the_unix_socket_admits_root_and_the_socket_groups_processes() {
        let uid = nix::unistd::getuid().as_raw();
        let own = nix::unistd::Group::from_gid(nix::unistd::getgid())
            .unwrap()
            .unwrap()
            .name;
        // This process's own group is the socket group: in, root or not.
        let (status, _) = call_unix(&node_of(&own), "/api/v1/health").await;
        assert_eq!(status, StatusCode::OK);
        // A group that does not exist admits root alone.
        let (status, body) = call_unix(&node_of("no-such-group-here"), "/api/v1/health").await;
        if uid == 0 {
            assert_eq!(status, StatusCode::OK);
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(
                body["error"],
                "only root and members of the no-such-group-here group may use this socket"
            );
        }
    }

    fn assert_error_shape(body: &Value) {
        assert!(body["error"].is_string(), "{body}");
        assert!(body["details"].is_array(), "{body}");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_get_413_in_the_error_shape() {
        let node = node();
        let big = vec![b' '; MAX_BODY + 1];
        for (method, path) in [
            ("POST", "/api/v1/manifests"),
            ("PUT", "/api/v1/deployments/default/web/scale"),
            ("POST", "/api/v1/tokens"),
        ] {
            let (status, body) = call(&node.api, method, path, &big).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
            assert_error_shape(&body);
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("api.max_body_bytes")
            );
        }
    }

    #[tokio::test]
    async fn bad_manifests_get_400_with_the_line_and_field_at_fault() {
        let node = node();
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ncolour: red\n";
        let (status, body) = call(&node.api, "POST", "/api/v1/manifests", yaml.as_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error_shape(&body);
        // The field at fault, by document, object and path.
        let details = body["details"][0].as_str().unwrap_or_default();
        assert!(
            details.contains(r#"document 1, ConfigMap "c": colour: unknown field"#),
            "{body}"
        );
        // Text that is no YAML, by line.
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c\n";
        let (status, body) = call(&node.api, "POST", "/api/v1/manifests", yaml.as_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error_shape(&body);
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("request body, line 3, column 11: invalid YAML"),
            "{body}"
        );

        let (status, body) = call(&node.api, "POST", "/api/v1/manifests", b"\xff\xfe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["error"],
            "request body is not UTF-8 text (invalid byte at offset 0)"
        );
    }

    #[tokio::test]
    async fn json_bodies_of_the_wrong_shape_get_400() {
        let node = node();
        let cases: [(&str, &str, &[u8], &str); 4] = [
            (
                "PUT",
                "/api/v1/deployments/default/web/scale",
                br#"{"replicas": "x"}"#,
                "the body must be {\"replicas\": N}: ",
            ),
            (
                "PUT",
                "/api/v1/dns/whitelist",
                b"",
                "the body must be {\"enabled\": true, \"hosts\": [...]}: ",
            ),
            (
                "POST",
                "/api/v1/dns/whitelist/hosts",
                br#"{"hots": "example.com"}"#,
                "the body must be {\"host\": \"example.com\"}: ",
            ),
            (
                "POST",
                "/api/v1/tokens",
                br#"{"ttl": 5}"#,
                "invalid token request: ",
            ),
        ];
        for (method, path, body, error) in cases {
            let (status, answer) = call(&node.api, method, path, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
            assert_error_shape(&answer);
            assert!(
                answer["error"].as_str().unwrap().starts_with(error),
                "{answer}"
            );
        }
        // A token request may have no body; it then reaches the (absent) cluster state.
        let (status, answer) = call(&node.api, "POST", "/api/v1/tokens", b"").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        // Checked before the Deployment is looked up, as before.
        let (status, _) = call(
            &node.api,
            "PUT",
            "/api/v1/deployments/default/nope/scale",
            br#"{"replicas": 2000}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    /// The answers' JSON, as clients (podswarmctl of other versions, scripts, the booted-node
    /// tests) read it: names, `null`s and nesting did not change when the handlers became typed.
    #[tokio::test]
    async fn answers_keep_their_wire_format() {
        let node = node();
        let objects = crate::testing::objects(crate::testing::DEPLOYMENT);
        node.api.state.apply(objects).unwrap();
        node.api.model.refresh();
        let entry = node.api.state.entries().remove(0);

        // `total`, `revision` and `conditions` came with rollouts; the older fields kept their
        // names.
        let status = json!({"namespace": "shop", "name": "web", "replicas": 2, "ready": 0,
            "upToDate": 0, "available": 0, "created": entry.created, "version": entry.version,
            "total": 0, "revision": 0, "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                 "message": "Deployment \"web\" is progressing."}]});
        let (_, body) = call(&node.api, "GET", "/api/v1/deployments", b"").await;
        assert_eq!(body, json!({"items": [status]}));
        let (_, body) = call(&node.api, "GET", "/api/v1/deployments/shop/web", b"").await;
        assert_eq!(
            body,
            json!({"status": status, "object": entry.object.to_value()})
        );
        let (_, body) = call(&node.api, "GET", "/api/v1/nodes/me", b"").await;
        assert_eq!(body["kind"], "Node");
        assert_eq!(body["status"]["conditions"][0]["status"], "True");
        assert!(body["metadata"].get("annotations").is_none(), "{body}");
        // (Cordoning a known node needs gossip: `ctl/tests` does it.)
        let (code, body) = call(&node.api, "POST", "/api/v1/nodes/nope/drain", b"").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], json!("node nope not found"));
        let (code, _) = call(&node.api, "POST", "/api/v1/nodes/me/evict", b"").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        // Nothing runs: nothing to move, and nothing to write either (gossip is not there).
        let (_, body) = call(&node.api, "POST", "/api/v1/rebalance?dryRun=true", b"").await;
        assert_eq!(body, json!({"moves": [], "dryRun": true}));
        let (_, body) = call(&node.api, "POST", "/api/v1/rebalance", b"").await;
        assert_eq!(body, json!({"moves": [], "dryRun": false}));
        let (code, body) = call(&node.api, "POST", "/api/v1/rebalance?dryRun=maybe", b"").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "dryRun must be true or false, not \"maybe\"", "details": []})
        );
        let (_, body) = call(&node.api, "GET", "/api/v1/tokens", b"").await;
        assert_eq!(body, json!({"items": []}));
        let (_, body) = call(&node.api, "GET", "/api/v1/ingresses", b"").await;
        assert_eq!(body, json!({"items": []}));
        let (_, body) = call(&node.api, "GET", "/api/v1/health", b"").await;
        assert_eq!(
            body,
            json!({"status": "ok", "node": "me", "version": env!("CARGO_PKG_VERSION"),
                "stateVersion": node.api.state.version()})
        );
        let (_, body) = call(&node.api, "GET", "/api/v1/dns/whitelist", b"").await;
        assert_eq!(body, json!({"enabled": false, "hosts": []}));
    }

    /// A Deployment's revisions: `{"items": [...]}` of its records (none here: writing them
    /// takes gossip, which podswarmctl's tests have), 404 in the error shape for no Deployment.
    #[tokio::test]
    async fn revisions_are_listed_per_deployment() {
        let node = node();
        node.api
            .state
            .apply(crate::testing::objects(crate::testing::DEPLOYMENT))
            .unwrap();
        node.api.model.refresh();
        let (status, body) = call(
            &node.api,
            "GET",
            "/api/v1/deployments/shop/web/revisions",
            b"",
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"items": []})));
        let (status, body) = call(
            &node.api,
            "GET",
            "/api/v1/deployments/shop/nope/revisions",
            b"",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error_shape(&body);
        assert_eq!(body["error"], "deployment shop/nope not found");
    }

    #[tokio::test]
    async fn reads_answer_from_the_snapshot() {
        let node = node();
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]
"#;
        let objects = crate::testing::objects(yaml);
        node.api.state.apply(objects).unwrap();
        let view: crate::reconcile::PodView = serde_json::from_value(json!({
            "namespace": "shop", "name": "solo", "node": "me", "ip": "10.244.0.2",
            "phase": "Running", "ready": true, "restarts": 0, "labels": {"app": "web"},
            "unit": "podswarm-shop_solo.service", "units": [], "containers": [], "created": 1,
            "warnings": []
        }))
        .unwrap();
        node.views.write().unwrap().insert("shop/solo".into(), view);
        node.api.model.refresh();

        let (status, body) =
            call(&node.api, "GET", "/api/v1/services/shop/web/endpoints", b"").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"endpoints": [{"node": "me", "podName": "solo", "address": "10.244.0.2",
                "port": 8080, "portName": "http", "protocol": "TCP", "ready": true}]})
        );
        let (_, body) = call(&node.api, "GET", "/api/v1/services/shop/web/addresses", b"").await;
        assert_eq!(body, json!({"addresses": ["10.244.0.2:8080"]}));
        let (_, body) = call(
            &node.api,
            "GET",
            "/api/v1/namespaces/shop/endpoints/web",
            b"",
        )
        .await;
        assert_eq!(
            body["subsets"],
            json!([{"addresses": [{"ip": "10.244.0.2", "nodeName": "me",
                "targetRef": {"kind": "Pod", "namespace": "shop", "name": "solo"}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
        );
        let (_, body) = call(&node.api, "GET", "/api/v1/namespaces/shop/pods", b"").await;
        assert_eq!(body["items"][0]["metadata"]["name"], "solo");
        let (status, _) = call(&node.api, "GET", "/api/v1/pods/shop/solo", b"").await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = call(&node.api, "GET", "/api/v1/pods/shop/nope", b"").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "pod shop/nope not found");
        let (_, body) = call(&node.api, "GET", "/api/v1/pods", b"").await;
        assert_eq!(body["items"][0]["spec"]["nodeName"], "me");
        let (status, text) = call(&node.api, "GET", "/metrics", b"").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.as_str()
                .unwrap()
                .contains("podswarm_pods{phase=\"Running\"} 1\n")
        );
    }

    #[tokio::test]
    async fn shared_list_paths_answer_kubernetes() {
        let node = node();
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        for (path, kind) in [
            ("/api/v1/pods", "PodList"),
            ("/api/v1/services", "ServiceList"),
            ("/api/v1/nodes", "NodeList"),
        ] {
            let (status, body) = call_as(&node.api, "GET", path, b"", "application/json").await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body["kind"], kind, "{path}: {body}");
            assert_eq!(body["apiVersion"], "v1");
            let (_, body) = call_as(&node.api, "GET", path, b"", table).await;
            assert_eq!(body["kind"], "Table", "{path}: {body}");
            // What podswarmctl asked for until it read Kubernetes lists changes nothing.
            let (_, body) =
                call_as(&node.api, "GET", path, b"", "application/vnd.podswarm+json").await;
            assert_eq!(body["kind"], kind, "{path}: {body}");
        }
        let (status, body) = call_as(
            &node.api,
            "GET",
            "/api/v1/pods?labelSelector=a+in+(b)",
            b"",
            "*/*",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "BadRequest");
    }

    #[tokio::test]
    async fn a_stale_scale_is_a_conflict_and_a_bad_one_is_refused() {
        let node = node();
        let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: x}]
"#;
        node.api.state.apply(crate::testing::objects(yaml)).unwrap();
        node.api.model.refresh();
        let path = "/apis/apps/v1/namespaces/shop/deployments/web/scale";
        let (status, scale) = call_as(&node.api, "GET", path, b"", "application/json").await;
        assert_eq!(status, StatusCode::OK, "{scale}");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["spec"]["replicas"], 1);
        assert_eq!(scale["status"]["selector"], "app=web");
        let stale = br#"{"metadata": {"resourceVersion": "999"}, "spec": {"replicas": 3}}"#;
        let (status, body) = call_as(&node.api, "PUT", path, stale, "application/json").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Conflict");
        for bad in [
            &br#"{"spec": {"replicas": "x"}}"#[..],
            br#"{"spec": {"replicas": 2}, "extra": 1}"#,
            b"[1]",
        ] {
            let (status, body) = call_as(&node.api, "PUT", path, bad, "application/json").await;
            assert!(status.is_client_error(), "{body}");
            assert_eq!(body["kind"], "Status", "{body}");
        }
        let (status, body) = call_as(
            &node.api,
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/nope/scale",
            b"",
            "*/*",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "deployments.apps \"nope\" not found");
    }
}
