//! podswarmctl over HTTPS against podswarmd's real TCP router (bearer tokens required), served
//! over tokio-rustls with a cluster CA and node certificate made by rcgen as `cluster init` makes
//! them (ECDSA P-256; SANs the node name, 127.0.0.1, ::1, localhost). The real binary reads a
//! kubeconfig or the flags; what it must do: work with the right CA, name the certificate
//! problem with another cluster's CA or a certificate for another host, explain a broken
//! kubeconfig before connecting, work with `--insecure-skip-tls-verify`, and refuse HTTPS
//! without any CA.

// Helpers outside `#[test]` functions may unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::Method;
use podswarm_api::{CreatedToken, NewToken};
use support::TestNode;

/// A cluster CA, and a server configuration whose certificate it signed for `names`.
struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki(names: &[&str]) -> Pki {
    pki_named("podswarm CA", names)
}

/// [`pki`] with a CA called `ca_name`: every cluster's CA has the same name, so another
/// cluster's CA fails the signature check (BadSignature) rather than the issuer lookup.
fn pki_named(ca_name: &str, names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

/// What a node's certificate names.
const NODE_NAMES: &[&str] = &["node-a", "127.0.0.1", "::1", "localhost"];

/// A token of the node's API, created over its socket.
fn token(node: &TestNode) -> String {
    let request = NewToken {
        description: "https test".into(),
        ttl_seconds: None,
    };
    let created: CreatedToken = node
        .block_on(
            node.client()
                .send_json(Method::POST, "/api/v1/tokens", &request),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    node.wait_for("the token in the read model", |n| {
        n.api
            .model
            .current()
            .tokens()
            .iter()
            .any(|t| t.id == created.id)
    });
    created.token
}

/// A kubeconfig as kubectl writes it, with `cluster` the cluster's fields (indented by 4).
fn kubeconfig(dir: &Path, name: &str, cluster: &str, token: &str) -> String {
    let text = format!(
        "apiVersion: v1\nkind: Config\npreferences: {{}}\nclusters:\n- name: podswarm\n  cluster:\n{cluster}contexts:\n- name: podswarm\n  context:\n    cluster: podswarm\n    user: me\ncurrent-context: podswarm\nusers:\n- name: me\n  user:\n    token: {token}\n"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs the real podswarmctl with `args` only: no socket, no KUBECONFIG, an empty HOME.
fn ctl(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podswarmctl"))
        .args(args)
        .env("HOME", home)
        .env("PODSWARM_SOCKET", home.join("no-such.sock"))
        .env_remove("KUBECONFIG")
        .env_remove("PODSWARM_SERVER")
        .env_remove("PODSWARM_TOKEN")
        .env_remove("PODSWARM_NAMESPACE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn https_node(names: &[&str]) -> (TestNode, Pki, SocketAddr, String) {
    let node = TestNode::start("node-a", Ipv4Addr::LOCALHOST.into());
    let pki = pki(names);
    let address = node.serve_https(Arc::clone(&pki.server));
    let token = token(&node);
    (node, pki, address, token)
}

#[test]
fn a_kubeconfig_with_the_cluster_ca_reaches_the_api_over_https() {
    let (node, pki, address, token) = https_node(NODE_NAMES);
    let home = tempfile::tempdir().unwrap();
    let cluster = format!(
        "    server: https://{address}\n    certificate-authority-data: {}\n",
        BASE64.encode(&pki.ca_pem)
    );
    let file = kubeconfig(home.path(), "config", &cluster, &token);
    let (code, out, err) = ctl(home.path(), &["--kubeconfig", &file, "get", "nodes"]);
    assert_eq!(code, 0, "{err}");
    let (_, by_socket, _) = support::ctl(&node.socket, &["get", "nodes"]);
    assert_eq!(out, by_socket);
    assert!(out.contains("node-a"), "{out}");

    // KUBECONFIG (a list with a missing file first) and localhost, also on the certificate.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_podswarmctl"))
        .args([
            "get",
            "nodes",
            "--server",
            &format!("https://localhost:{}", address.port()),
        ])
        .env("HOME", home.path())
        .env("PODSWARM_SOCKET", home.path().join("no-such.sock"))
        .env(
            "KUBECONFIG",
            format!("{}/missing:{file}", home.path().display()),
        )
        .env_remove("PODSWARM_SERVER")
        .env_remove("PODSWARM_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        by_socket,
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // The CA as a file, by flag.
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let (code, out, err) = ctl(
        home.path(),
        &[
            "get",
            "nodes",
            "--server",
            &format!("https://{address}"),
            "--token",
            &token,
            "--certificate-authority",
            &ca.display().to_string(),
        ],
    );
    assert_eq!((code, out.as_str()), (0, by_socket.as_str()), "{err}");

    // The token is sent, and checked: a wrong one is the API's 401.
    let (code, _, err) = ctl(
        home.path(),
        &["--kubeconfig", &file, "get", "nodes", "--token", "wrong"],
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("error: the bearer token"), "{err}");
}

#[test]
fn certificate_problems_are_named() {
    let (_node, _pki, address, token) = https_node(NODE_NAMES);
    let home = tempfile::tempdir().unwrap();

    // Another cluster's CA: the same name, another key; and a CA of another name.
    for (other, rustls_says) in [
        (pki(NODE_NAMES), "BadSignature"),
        (pki_named("someone else", NODE_NAMES), "UnknownIssuer"),
    ] {
        let cluster = format!(
            "    server: https://{address}\n    certificate-authority-data: {}\n",
            BASE64.encode(&other.ca_pem)
        );
        let file = kubeconfig(home.path(), "other", &cluster, &token);
        let (code, out, err) = ctl(home.path(), &["--kubeconfig", &file, "get", "pods"]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            format!(
                "error: cannot reach the podswarm API at https://{address}: the server's certificate is not signed by the given certificate authority (kubeconfig {file} (cluster podswarm); is the kubeconfig from another cluster?): invalid peer certificate: {rustls_says}\n"
            )
        );
    }
    let file = home.path().join("other").display().to_string();

    // certificate-authority-data that is not base64: said before connecting.
    let broken = kubeconfig(
        home.path(),
        "broken",
        &format!("    server: https://{address}\n    certificate-authority-data: '%%%'\n"),
        &token,
    );
    let (code, _, err) = ctl(home.path(), &["--kubeconfig", &broken, "get", "pods"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "error: kubeconfig {broken}: cluster podswarm: certificate-authority-data is not valid base64"
        )),
        "{err}"
    );

    // HTTPS without a CA.
    let server = format!("https://{address}");
    let (code, _, err) = ctl(
        home.path(),
        &["get", "pods", "--server", &server, "--token", &token],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "error: the server {server} uses HTTPS, and no certificate authority is given to check its certificate: give --certificate-authority FILE (the cluster CA), use a kubeconfig from `podswarmctl token create --kubeconfig FILE`, or --insecure-skip-tls-verify\n"
        )
    );

    // --insecure-skip-tls-verify: any certificate, here one of another CA.
    let (code, _, err) = ctl(
        home.path(),
        &[
            "--kubeconfig",
            &file,
            "--insecure-skip-tls-verify",
            "get",
            "pods",
        ],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_certificate_for_another_host_is_named() {
    let (_node, pki, address, token) = https_node(&["node-b", "10.9.9.9"]);
    let home = tempfile::tempdir().unwrap();
    let cluster = format!(
        "    server: https://{address}\n    certificate-authority-data: {}\n",
        BASE64.encode(&pki.ca_pem)
    );
    let file = kubeconfig(home.path(), "config", &cluster, &token);
    let (code, _, err) = ctl(home.path(), &["--kubeconfig", &file, "get", "pods"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the podswarm API at https://{address}: the server's certificate is not valid for \"127.0.0.1\""
        )),
        "{err}"
    );
    assert!(
        err.contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );
}

#[test]
fn token_create_kubeconfig_without_a_tcp_api_still_shows_the_token() {
    // The test node serves no TCP API of its own, so the answer names no server.
    let node = TestNode::start("node-a", Ipv4Addr::LOCALHOST.into());
    let file = node.path().join("out.kubeconfig");
    let (code, out, err) = support::ctl(
        &node.socket,
        &[
            "token",
            "create",
            "--kubeconfig",
            &file.display().to_string(),
        ],
    );
    assert_eq!(code, 1);
    assert!(!out.trim().is_empty(), "the token must be printed: {err}");
    assert!(
        err.ends_with("error: the node that answered serves no TCP API, so there is no server to write into a kubeconfig; enable its TCP API, or create the token on a node that serves one\n"),
        "{err}"
    );
    assert!(!file.exists());
}
