//! HTTP client for the podswarm API: the node's Unix socket (no token needed there), or a
//! node's TCP API over HTTPS (or plain HTTP where a node is set up insecure) with a bearer token.
//! Which of them comes from [`crate::kubeconfig::select`]. Answers are read as the types of
//! `podswarm_api`, the contract podswarmd answers with.
//!
//! TLS is rustls with the ring provider (the workspace's one TLS stack; no OpenSSL). The
//! server's certificate must chain to the cluster CA given by `--certificate-authority` or the
//! kubeconfig, and name the host of the server URL (an IP address is checked as an IP SAN):
//! node certificates name the node, its advertised address, 127.0.0.1, ::1 and localhost. An
//! HTTPS server with no CA at all is refused before connecting rather than checked against the
//! system's web roots, which can never have signed a cluster CA's certificate: the error then
//! says how to get one. `--insecure-skip-tls-verify` skips the chain and name checks but still
//! verifies the handshake signatures, so the connection is at least with the key holder of the
//! certificate presented. A failed handshake keeps rustls's own text and adds what it most likely
//! means for podswarm (another cluster's CA, a host the certificate does not name, a clock).
//!
//! The token goes only over TCP: the socket authenticates by peer credentials, and a token there
//! would be one more place for it to leak to.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::kubeconfig::{Endpoint, Remote, Trust};

/// The TCP API's port when the server URL has none (podswarmd's default listen port).
pub const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    Tcp {
        /// The server URL as given, for messages.
        url: String,
        host: String,
        port: u16,
        /// The `Host` header: the URL's authority.
        authority: String,
        /// `None` for `http://`.
        tls: Option<Tls>,
    },
}

#[derive(Debug, Clone)]
struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// Where the CA came from (`None`: --insecure-skip-tls-verify), for messages.
    ca_source: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    token: Option<String>,
}

/// The parts of a server URL: (https?, host without brackets, port, authority).
fn parse_server(url: &str) -> Result<(bool, String, u16, String)> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some((scheme, _)) = url.split_once("://") {
        bail!(
            "server {url:?}: unsupported scheme {scheme:?}; use https:// (or http:// for a node set up without TLS)"
        );
    } else {
        // A bare host[:port] is HTTPS, the only TCP API a node serves by default.
        (true, url)
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .with_context(|| format!("server {url:?}: unclosed [ in the address"))?;
        (host, after.strip_prefix(':'))
    } else if authority.matches(':').count() == 1 {
        let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
        (host, Some(&port[1..]))
    } else {
        // No port, or a bare IPv6 address.
        (authority, None)
    };
    if host.is_empty() {
        bail!("server {url:?} has no host");
    }
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p
            .parse()
            .with_context(|| format!("server {url:?}: {p:?} is not a port"))?,
    };
    Ok((https, host.to_owned(), port, authority.to_owned()))
}

/// The ring provider, named rather than taken as the process default: which provider is the
/// default depends on the features other crates turn on.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(trust: &Trust, url: &str) -> Result<(Arc<ClientConfig>, Option<String>)> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?;
    let (mut config, source) = match trust {
        Trust::Unset => bail!(
            "the server {url} uses HTTPS, and no certificate authority is given to check its \
             certificate: give --certificate-authority FILE (the cluster CA), use a kubeconfig \
             from `podswarmctl token create --kubeconfig FILE`, or --insecure-skip-tls-verify"
        ),
        Trust::Insecure => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth(),
            None,
        ),
        Trust::Authority { pem, source } => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.with_context(|| format!("{source}: unreadable certificate"))?;
                roots.add(cert).with_context(|| {
                    format!("{source}: the certificate authority cannot be used")
                })?;
            }
            (
                builder.with_root_certificates(roots).with_no_client_auth(),
                Some(source.clone()),
            )
        }
    };
    // The client speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), source))
}

impl Client {
    /// A client of the chosen API.
    pub fn new(endpoint: &Endpoint) -> Result<Client> {
        match endpoint {
            Endpoint::Socket(path) => Ok(Client::unix(path.clone())),
            Endpoint::Remote(remote) => Client::remote(remote),
        }
    }

    /// A client of a node's Unix socket.
    pub fn unix(socket: PathBuf) -> Client {
        Client {
            target: Target::Unix(socket),
            token: None,
        }
    }

    /// A client of a node's TCP API.
    pub fn remote(remote: &Remote) -> Result<Client> {
        let url = &remote.server;
        let (https, host, port, authority) = parse_server(url)?;
        let tls = if https {
            let (config, ca_source) = tls_config(&remote.trust, url)?;
            let name = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(host.clone())
                    .with_context(|| format!("server {url:?}: {host:?} is not a host name"))?,
            };
            Some(Tls {
                config,
                name,
                ca_source,
            })
        } else {
            None
        };
        Ok(Client {
            target: Target::Tcp {
                url: url.clone(),
                host,
                port,
                authority,
                tls,
            },
            token: remote.token.clone(),
        })
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp { url, .. } => url.clone(),
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
            Target::Tcp { authority, .. } => authority.clone(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            // Its product is the field manager the API records podswarmctl's writes as.
            .header(
                "user-agent",
                concat!("podswarmctl/", env!("CARGO_PKG_VERSION")),
            );
        if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("accept")) {
            req = req.header("accept", "application/json");
        }
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
            Target::Tcp {
                host, port, tls, ..
            } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .with_context(unreachable)?;
                match tls {
                    None => {
                        let (sender, conn) =
                            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                                .await
                                .with_context(unreachable)?;
                        tokio::spawn(conn);
                        sender
                    }
                    Some(tls) => {
                        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config))
                            .connect(tls.name.clone(), stream)
                            .await
                            .map_err(|e| handshake_error(e, tls, host))
                            .with_context(unreachable)?;
                        let (sender, conn) =
                            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                                .await
                                .with_context(unreachable)?;
                        tokio::spawn(conn);
                        sender
                    }
                }
            }
        };
        sender.send_request(req).await.with_context(unreachable)
    }

    /// A request answered with a `podswarm_api` type; API errors become one-sentence errors
    /// with their details ([`ApiError`]). The API's warnings (a field podswarm ignores …) are
    /// printed as kubectl prints them.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        extra: &[(&str, String)],
    ) -> Result<T> {
        let answer = self.exchange(method, path, body, extra).await?;
        for warning in &answer.warnings {
            eprintln!("Warning: {warning}");
        }
        answer.decode(path)
    }

    /// A request whose whole answer the caller reads: its status, its warnings (not printed)
    /// and its body.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        extra: &[(&str, String)],
    ) -> Result<Answer> {
        let response = self.send(method, path, body, extra).await?;
        let status = response.status();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .filter_map(|w| w.to_str().ok())
            .map(warning_text)
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .context("the API closed the connection")?
            .to_bytes();
        Ok(Answer {
            status,
            warnings,
            body,
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

/// An API's whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: hyper::StatusCode,
    /// The `Warning` headers' texts.
    pub warnings: Vec<String>,
    pub body: Bytes,
}

impl Answer {
    /// The body as `T`, or the API's refusal as one-sentence error with its details
    /// ([`ApiError`]); `path` names the request when the body cannot be read.
    pub fn decode<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let status = self.status;
        podswarm_api::decode(status.as_u16(), &self.body).map_err(|e| match e {
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
}

/// A `Warning` header's text: `299 - "text"` as the API sends it (RFC 7234's form), unquoted.
fn warning_text(header: &str) -> String {
    let text = header
        .strip_prefix("299 - ")
        .or_else(|| header.strip_prefix("299 "))
        .unwrap_or(header);
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => text.to_owned(),
    }
}

/// A failed TLS handshake: rustls's error (the source, so `{:#}` prints its text) under a
/// sentence saying what it most likely means here.
fn handshake_error(error: std::io::Error, tls: &Tls, host: &str) -> anyhow::Error {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let meaning = match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        )) => format!(
            "the server's certificate is not signed by the given certificate authority ({}; is \
             the kubeconfig from another cluster?)",
            tls.ca_source.as_deref().unwrap_or("none")
        ),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "the server's certificate is not valid for {host:?} (a node's certificate names the \
             node, its advertised address, 127.0.0.1, ::1 and localhost; use one of those in the \
             server URL)"
        ),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "the server's certificate has expired (nodes renew theirs automatically; check \
               the clocks of the node and of this machine)"
            .to_owned(),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => "the server's certificate is not valid yet (check the clocks of the node and of \
               this machine)"
            .to_owned(),
        Some(rustls::Error::InvalidMessage(_)) => {
            "the server does not speak TLS (if the node serves plain HTTP, use an http:// server)"
                .to_owned()
        }
        _ => "the TLS handshake failed".to_owned(),
    };
    anyhow::Error::new(error).context(meaning)
}

/// `--insecure-skip-tls-verify`: any certificate chain and name are accepted, but the
/// handshake's signatures are still verified with the provider's algorithms, so the peer holds
/// the key of the certificate it presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the API sends (`daemon/src/api/kube/write.rs`) reads back as the text it escaped.
    #[test]
    fn warnings_read_as_sent() {
        assert_eq!(
            warning_text(r#"299 - "spec.type: \"NodePort\" is served like ClusterIP""#),
            r#"spec.type: "NodePort" is served like ClusterIP"#
        );
        assert_eq!(warning_text(r#"299 - "a \\ b""#), r"a \ b");
        assert_eq!(warning_text("plain"), "plain");
    }

    #[test]
    fn server_urls() {
        let parse = |u: &str| parse_server(u).map_err(|e| e.to_string());
        assert_eq!(
            parse("https://10.0.0.5:8080"),
            Ok((true, "10.0.0.5".into(), 8080, "10.0.0.5:8080".into()))
        );
        assert_eq!(
            parse("http://node-a/"),
            Ok((false, "node-a".into(), 8080, "node-a".into()))
        );
        assert_eq!(
            parse("node-a:9443"),
            Ok((true, "node-a".into(), 9443, "node-a:9443".into()))
        );
        assert_eq!(
            parse("https://[::1]:8443/x"),
            Ok((true, "::1".into(), 8443, "[::1]:8443".into()))
        );
        assert_eq!(parse("https://[::1]").map(|p| p.2), Ok(8080));
        assert_eq!(
            parse("ftp://x"),
            Err("server \"ftp://x\": unsupported scheme \"ftp\"; use https:// (or http:// for a node set up without TLS)".into())
        );
        assert_eq!(
            parse("https://"),
            Err("server \"https://\" has no host".into())
        );
        assert!(parse("https://x:port").is_err());
    }

    #[test]
    fn https_without_a_certificate_authority_is_refused_before_connecting() {
        let remote = Remote {
            server: "https://10.0.0.5:8080".into(),
            token: None,
            trust: Trust::Unset,
            namespace: None,
        };
        assert_eq!(
            Client::remote(&remote).map(|_| ()).map_err(|e| e.to_string()),
            Err("the server https://10.0.0.5:8080 uses HTTPS, and no certificate authority is given to check its certificate: give --certificate-authority FILE (the cluster CA), use a kubeconfig from `podswarmctl token create --kubeconfig FILE`, or --insecure-skip-tls-verify".into())
        );
        // Plain HTTP needs none.
        let plain = Remote {
            server: "http://10.0.0.5:8080".into(),
            ..remote
        };
        assert!(Client::remote(&plain).is_ok());
    }
}
