//! HTTP client for the podswarm API: the node's Unix socket by default (no token needed there),
//! or `--server http://host:port` with a bearer token.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    Tcp { address: String, host: String },
}

#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    token: Option<String>,
}

impl Client {
    pub fn new(server: Option<&str>, token: Option<String>, socket: PathBuf) -> Result<Client> {
        let target = match server {
            None => Target::Unix(socket),
            Some(url) => {
                let rest = match url.strip_prefix("http://") {
                    Some(r) => r,
                    None if url.starts_with("https://") => bail!(
                        "https:// servers are not supported yet; use http:// on a trusted network or the node's socket"
                    ),
                    None => url,
                };
                let authority = rest.split('/').next().unwrap_or(rest);
                if authority.is_empty() {
                    bail!("--server {url:?} has no host");
                }
                let address = if authority.contains(':') && !authority.ends_with(']') {
                    authority.to_owned()
                } else {
                    format!("{authority}:8080")
                };
                Target::Tcp {
                    address,
                    host: authority.to_owned(),
                }
            }
        };
        Ok(Client { target, token })
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp { address, .. } => address.clone(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        extra: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let host = match &self.target {
            Target::Unix(_) => "localhost".to_owned(),
            Target::Tcp { host, .. } => host.clone(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let (Some(token), Target::Tcp { .. }) = (&self.token, &self.target) {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let body = match body {
            Some((bytes, content_type)) => {
                req = req.header("content-type", content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req.body(body).context("cannot build the request")?;
        let unreachable = || format!("cannot reach the podswarm API at {}", self.describe());
        let mut sender = match &self.target {
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.with_context(|| {
                    format!("{} (is podswarmd running on this node, and are you root or in the podswarm group?)", unreachable())
                })?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .with_context(unreachable)?;
                tokio::spawn(conn);
                sender
            }
            Target::Tcp { address, .. } => {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .with_context(unreachable)?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .with_context(unreachable)?;
                tokio::spawn(conn);
                sender
            }
        };
        sender.send_request(req).await.with_context(unreachable)
    }

    /// A JSON request; API errors become one-sentence errors with their details.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        extra: &[(&str, String)],
    ) -> Result<Value> {
        let response = self.send(method, path, body, extra).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("the API closed the connection")?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            return Ok(value);
        }
        Err(api_error(status, &value))
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub message: String,
    pub details: Vec<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

fn api_error(status: StatusCode, value: &Value) -> anyhow::Error {
    let message = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the API answered {status}"));
    let details = value
        .get("details")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    anyhow!(ApiError { message, details })
}
