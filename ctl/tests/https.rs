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

use std::net::Ipv4Addr;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use support::{NODE_NAMES, TestNode, https_node, kubeconfig, pki, pki_named};

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
