//! HTTP client for the podswarm API: the node's Unix socket by default (no token needed there),
//! or `--server http://host:port` with a bearer token. Answers are read as the types of
//! `podswarm_api`, the contract podswarmd answers with.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

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

    /// A request answered with a `podswarm_api` type; API errors become one-sentence errors
    /// with their details ([`ApiError`]).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        extra: &[(&str, String)],
    ) -> Result<T> {
        let response = self.send(method, path, body, extra).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("the API closed the connection")?
            .to_bytes();
        podswarm_api::decode(status.as_u16(), &bytes).map_err(|e| match e {
            podswarm_api::Error::Refused { body, .. } => anyhow!(ApiError {
                message: body.error,
                details: body.details,
            }),
            podswarm_api::Error::Status { .. } => anyhow!(ApiError {
                message: format!("the API answered {status}"),
                details: Vec::new(),
            }),
            unreadable => anyhow::Error::new(unreadable).context(path.to_owned()),
        })
    }

    /// A GET.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None, &[]).await
    }

    /// A request with a JSON body.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body).context("cannot write the request body")?;
        self.call(method, path, Some((bytes, "application/json")), &[])
            .await
    }
}

/// The API's refusal: its one sentence, and the details that go with it (a manifest's problems).
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
