//! HTTP/1.1 `Upgrade` requests (WebSocket), tunnelled here rather than by pingora's proxy loop.
//!
//! pingora 0.9.1 tears an upgraded connection down right after the `101` whenever the
//! endpoint's answer is read before the proxy has handled the upgrade request's own (empty)
//! body: the end of that body is taken for the end of the tunnel (cloudflare/pingora#946; fixes
//! proposed in #947 and #1016, not released). With a fast endpoint, such as a pod on this node,
//! that happened to about one connection in five in our tests. So upgrade requests take this
//! path: the same endpoint choice, ejection, retries and `X-Forwarded-*` headers as every other
//! request, pingora's HTTP/1 client session for the request and the response (its framing and
//! timeouts), and after a `101` a two-way copy until either side closes or nothing moves for
//! `read_timeout`. An endpoint that refuses the upgrade gets its response passed on as it is.
//! Remove this module when pingora ships the fix.

use pingora_core::protocols::Stream;
use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_error::{Error, ErrorType};
use pingora_proxy::Session;
use tokio::net::TcpStream;

use crate::proxy::{Ctx, IngressProxy, body_for, forwarded_headers, respond, status_for};

/// Answers an upgrade request whose backend is chosen (`ctx.backend`), start to end.
pub(crate) async fn tunnel(
    proxy: &IngressProxy,
    session: &mut Session,
    ctx: &mut Ctx,
) -> pingora_error::Result<()> {
    let Some(backend) = ctx.backend.clone() else {
        return Ok(());
    };
    let shared = &proxy.shared;
    let name = backend.name();
    session.set_keepalive(None);

    // Connect, as `upstream_peer` and `fail_to_connect` do (upgrades are GETs: idempotent).
    let tcp = loop {
        let Some(target) = backend.pick(&ctx.tried, &shared.health) else {
            let e = Error::new(ErrorType::HTTPStatus(503));
            return respond(session, 503, body_for(503, &name, &e), None).await;
        };
        ctx.tried.push(target.addr);
        ctx.current = Some(target.addr);
        let e = match tokio::time::timeout(shared.connect_timeout, TcpStream::connect(target.addr))
            .await
        {
            Ok(Ok(tcp)) => break tcp,
            Ok(Err(e)) => Error::because(ErrorType::ConnectError, "connecting", e),
            Err(_) => Error::explain(ErrorType::ConnectTimedout, "connecting"),
        };
        shared.health.eject(&target.health);
        tracing::warn!(endpoint = %target.addr, POD = %target.pod, error = %e, "cannot connect to the endpoint; left out for a while");
        if ctx.tried.len() > shared.retries || !backend.has_untried(&ctx.tried) {
            let e = e.into_up();
            let code = status_for(&e);
            return respond(session, code, body_for(code, &name, &e), None).await;
        }
    };
    let _ = tcp.set_nodelay(true);
    let stream: Stream = Box::new(L4Stream::from(tcp));
    let mut upstream = ClientSession::new(stream);
    upstream.read_timeout = Some(shared.read_timeout);
    upstream.write_timeout = Some(shared.read_timeout);

    let mut req = session.req_header().clone();
    req.set_version(http::Version::HTTP_11);
    forwarded_headers(session, &mut req, proxy.scheme)?;
    let head = match upstream.write_request_header(Box::new(req)).await {
        Ok(_) => upstream.read_resp_header_parts().await,
        Err(e) => Err(e),
    };
    let head = match head {
        Ok(h) => h,
        Err(e) => {
            let e = e.into_up();
            let code = status_for(&e);
            return respond(session, code, body_for(code, &name, &e), None).await;
        }
    };
    let upgraded = head.status == http::StatusCode::SWITCHING_PROTOCOLS;
    session.write_response_header(head, false).await?;
    if !upgraded {
        while let Some(data) = upstream.read_body_bytes().await.map_err(|e| e.into_up())? {
            session.write_response_body(Some(data), false).await?;
        }
        return session.write_response_body(None, true).await;
    }

    // Both sides are byte streams now. Reads are cancel-safe (a read that is not ready has
    // consumed nothing), so waiting for either side in one select loses no bytes.
    upstream.maybe_upgrade_body_writer();
    upstream.read_timeout = None;
    let idle = shared.read_timeout;
    loop {
        tokio::select! {
            from_client = session.as_downstream_mut().read_request_body() => match from_client {
                Ok(Some(data)) => {
                    if upstream.write_body(&data).await.is_err() {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            },
            from_endpoint = upstream.read_body_bytes() => match from_endpoint {
                Ok(Some(data)) => {
                    if session.write_response_body(Some(data), false).await.is_err() {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            },
            () = tokio::time::sleep(idle) => {
                tracing::debug!(endpoint = ?ctx.current, "upgraded connection idle: closing it");
                break;
            }
        }
    }
    upstream.shutdown().await;
    let _ = session.write_response_body(None, true).await;
    Ok(())
}
