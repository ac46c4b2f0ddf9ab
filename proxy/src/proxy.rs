//! The pingora [`ProxyHttp`] implementation: one request from routing to logging.
//!
//! - `request_filter` routes with the current snapshot (the request keeps the backend it chose
//!   to the end, so a reload never changes a request halfway), redirects plain HTTP to HTTPS
//!   when the host has a certificate (308, method and body kept), and answers 404 when no rule
//!   matches and 503 when the matched service has no ready endpoint, each with a one-line
//!   plain-text body.
//! - `upstream_peer` picks an endpoint (`backend`: local first, round-robin, unhealthy and
//!   already-tried ones left out).
//! - `fail_to_connect` ejects the endpoint and allows a retry on another one for idempotent
//!   methods only (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), within `retries`; an error on a
//!   reused keep-alive connection is retried the way pingora does (idempotent methods, same
//!   endpoint allowed again), and nothing else is.
//! - `upstream_request_filter` appends the client address to `X-Forwarded-For` and sets
//!   `X-Forwarded-Proto` and `X-Forwarded-Host`; the `Host` header goes upstream unchanged.
//! - `fail_to_proxy` answers 502 (the endpoint failed), 504 (it did not answer in time) or the
//!   status chosen earlier, again with a short body; a response already under way is cut off
//!   instead.
//!
//! Bodies stream in both directions (pingora does not buffer them beyond a small retry
//! buffer). HTTP/1.1 `Upgrade` requests (WebSocket) take the `upgrade` module's path instead,
//! around a pingora 0.9.1 bug.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, header};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, OrErr};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use podswarm_view::watch::Current;

use crate::backend::{Backend, HealthRegistry};
use crate::routes::normalize_host;
use crate::snapshot::Snapshot;

/// What the proxies of both listeners share.
#[derive(Debug)]
pub struct Shared {
    pub current: Arc<Current<Snapshot>>,
    pub health: Arc<HealthRegistry>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Further endpoints tried after a failed connection (idempotent methods).
    pub retries: usize,
    /// The HTTPS listener's port, for redirects; `None`: no HTTPS, no redirects.
    pub https_port: Option<u16>,
    pub access_log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The proxy logic of one listener.
#[derive(Debug)]
pub struct IngressProxy {
    pub shared: Arc<Shared>,
    pub scheme: Scheme,
}

/// Per request.
#[derive(Debug)]
pub struct Ctx {
    started: Instant,
    /// As rules compare it.
    host: String,
    pub(crate) backend: Option<Arc<Backend>>,
    /// Endpoints this request has tried.
    pub(crate) tried: Vec<SocketAddr>,
    /// The endpoint in use.
    pub(crate) current: Option<SocketAddr>,
}

/// The `Host` header, or the authority of the request target (HTTP/2).
fn raw_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// Writes a short plain-text response of our own.
pub(crate) async fn respond(
    session: &mut Session,
    status: u16,
    body: String,
    location: Option<&str>,
) -> pingora_error::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    if let Some(location) = location {
        resp.insert_header(header::LOCATION, location)?;
    }
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
    }
    Ok(())
}

/// `X-Forwarded-For` (the client appended), `-Proto`, `-Host`; a `Host` header for HTTP/2
/// clients, which send the authority only.
pub(crate) fn forwarded_headers(
    session: &Session,
    upstream: &mut RequestHeader,
    scheme: Scheme,
) -> pingora_error::Result<()> {
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_canonical());
    if let Some(ip) = client {
        let earlier: Vec<&str> = session
            .req_header()
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        let value = if earlier.is_empty() {
            ip.to_string()
        } else {
            format!("{}, {ip}", earlier.join(", "))
        };
        upstream.insert_header("x-forwarded-for", value)?;
    }
    upstream.insert_header(
        "x-forwarded-proto",
        HeaderValue::from_static(scheme.as_str()),
    )?;
    // What `raw_host` reads, but as the request's own value: shared, not copied.
    let req = session.req_header();
    let host = match req.headers.get(header::HOST) {
        Some(v) if v.to_str().is_ok() => Some(v.clone()),
        _ => req
            .uri
            .authority()
            .map(|a| HeaderValue::from_str(a.as_str()))
            .transpose()
            .or_err(ErrorType::InvalidHTTPHeader, "invalid request authority")?,
    };
    if let Some(host) = host {
        upstream.insert_header("x-forwarded-host", host.clone())?;
        if upstream.headers.get(header::HOST).is_none() {
            upstream.insert_header(header::HOST, host)?;
        }
    }
    Ok(())
}

/// The status for a request that failed with `e`: 504 when an endpoint timed out, 502 when it
/// failed otherwise, the status chosen earlier for our own errors; 0 when the client is gone.
pub(crate) fn status_for(e: &Error) -> u16 {
    let upstream = *e.esource() == ErrorSource::Upstream;
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if upstream =>
        {
            504
        }
        _ if upstream => 502,
        _ => match e.esource() {
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            _ => 500,
        },
    }
}

/// The one-line body for an error status.
pub(crate) fn body_for(code: u16, backend: &str, e: &Error) -> String {
    match code {
        502 => format!("bad gateway: {backend} failed ({})\n", e.etype().as_str()),
        503 => format!("service unavailable: {backend} has no endpoint to try\n"),
        504 => format!("gateway timeout: {backend} did not answer in time\n"),
        400 => "bad request\n".to_owned(),
        _ => "internal error\n".to_owned(),
    }
}

/// An optional value in a log line, empty when absent, formatted only if the line is written.
struct OrEmpty<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrEmpty<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}

impl IngressProxy {
    fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, false, String::new());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.shared.connect_timeout);
        o.total_connection_timeout = Some(self.shared.connect_timeout);
        o.read_timeout = Some(self.shared.read_timeout);
        o.write_timeout = Some(self.shared.read_timeout);
        o.idle_timeout = Some(Duration::from_secs(60));
        peer
    }

    pub(crate) fn backend_name(ctx: &Ctx) -> String {
        ctx.backend
            .as_ref()
            .map_or_else(|| "the backend".to_owned(), |b| b.name())
    }
}

#[async_trait]
impl ProxyHttp for IngressProxy {
    type CTX = Ctx;

    // pingora's default adds a response compression module at level 0, which does nothing but
    // costs every request a module context and its filter calls. We never compress.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            host: String::new(),
            backend: None,
            tried: Vec::new(),
            current: None,
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora_error::Result<bool> {
        let snapshot = self.shared.current.get();
        ctx.host = raw_host(session.req_header())
            .map(normalize_host)
            .unwrap_or_default();
        if self.scheme == Scheme::Http
            && let Some(port) = self.shared.https_port
            && snapshot.certs.covers(&ctx.host)
        {
            let target = session
                .req_header()
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str());
            let location = if port == 443 {
                format!("https://{}{target}", ctx.host)
            } else {
                format!("https://{}:{port}{target}", ctx.host)
            };
            respond(
                session,
                308,
                format!("permanent redirect to {location}\n"),
                Some(&location),
            )
            .await?;
            return Ok(true);
        }
        let Some(backend) = snapshot
            .router
            .route(&ctx.host, session.req_header().uri.path())
        else {
            respond(
                session,
                404,
                "not found: no Ingress rule matches this host and path\n".to_owned(),
                None,
            )
            .await?;
            return Ok(true);
        };
        if backend.targets.is_empty() {
            let why = backend
                .problem
                .clone()
                .unwrap_or_else(|| format!("service {} has no ready endpoints", backend.name()));
            respond(session, 503, format!("service unavailable: {why}\n"), None).await?;
            return Ok(true);
        }
        ctx.backend = Some(backend.clone());
        if session.as_downstream().is_upgrade_req() {
            crate::upgrade::tunnel(self, session, ctx).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora_error::Result<Box<HttpPeer>> {
        let Some(backend) = ctx.backend.clone() else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no backend chosen",
            ));
        };
        let Some(target) = backend.pick(&ctx.tried, &self.shared.health) else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "every endpoint of the service has been tried",
            ));
        };
        ctx.tried.push(target.addr);
        ctx.current = Some(target.addr);
        Ok(Box::new(self.peer(target.addr)))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> pingora_error::Result<()> {
        forwarded_headers(session, upstream, self.scheme)
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(backend), Some(addr)) = (&ctx.backend, ctx.current)
            && let Some(t) = backend.targets.iter().find(|t| t.addr == addr)
        {
            self.shared.health.eject(&t.health);
            tracing::warn!(endpoint = %addr, POD = %t.pod, error = %e, "cannot connect to the endpoint; left out for a while");
        }
        let idempotent = session.req_header().method.is_idempotent();
        let more = ctx
            .backend
            .as_ref()
            .is_some_and(|b| b.has_untried(&ctx.tried));
        e.set_retry(idempotent && more && ctx.tried.len() <= self.shared.retries);
        e.more_context(format!("peer: {peer}"))
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        // pingora's rule: only idempotent requests, only on a reused connection (the endpoint
        // closed an idle keep-alive connection), and only with the whole body still at hand.
        let mut e = e.more_context(format!("peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        if e.retry() {
            // Not the endpoint's fault: it may be chosen again.
            if let Some(addr) = ctx.current {
                ctx.tried.retain(|a| *a != addr);
            }
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = status_for(e);
        session.set_keepalive(None);
        if code > 0 && session.response_written().is_none() {
            let body = body_for(code, &Self::backend_name(ctx), e);
            // The client may be gone already: nothing to do about that.
            let _ = respond(session, code, body, None).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    // `logging` below reports every failure once; pingora's own lines would repeat them.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        let upstream = OrEmpty(ctx.current);
        if let Some(e) = e {
            if status >= 500 {
                tracing::warn!(
                    host = %ctx.host,
                    path = %req.uri.path(),
                    status,
                    upstream = %upstream,
                    error = %e,
                    "request failed"
                );
            } else {
                tracing::debug!(host = %ctx.host, status, error = %e, "request ended with an error");
            }
        }
        if self.shared.access_log {
            let client = OrEmpty(session.client_addr());
            tracing::info!(
                target: "access",
                client = %client,
                method = %req.method,
                scheme = self.scheme.as_str(),
                host = %ctx.host,
                path = %req.uri.path(),
                status,
                upstream = %upstream,
                ms = u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "request"
            );
        }
    }
}
