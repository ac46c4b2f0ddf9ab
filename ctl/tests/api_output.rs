//! podswarmctl's output against a stand-in API on a temporary Unix socket: kubectl-shaped tables
//! (golden files, `PODSWARM_BLESS=1` regenerates) and API errors as one clear line.

use std::process::Command;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn api() -> Router {
    let t = now();
    Router::new()
        .route(
            "/api/v1/pods",
            get(move || async move {
                axum::Json(json!({"items": [
                    {"namespace": "default", "name": "web-abc-0", "node": "node1", "ip": "10.244.0.2", "phase": "Running", "ready": true, "restarts": 0,
                     "reason": null, "created": t - 300, "containers": [{"name": "app", "state": "active/running"}]},
                    {"namespace": "default", "name": "web-abc-1", "node": "node1", "ip": "10.244.0.3", "phase": "Running", "ready": false, "restarts": 4,
                     "reason": "container app is restarting after exiting with status 1 (4 restarts)", "created": t - 7300,
                     "containers": [{"name": "app", "state": "activating/auto-restart"}]},
                    {"namespace": "shop", "name": "db-x-0", "node": "node1", "ip": null, "phase": "Pending", "ready": false, "restarts": 0,
                     "reason": "waiting for Secret shop/db", "created": t - 90000, "containers": []}
                ]}))
            }),
        )
        .route(
            "/api/v1/deployments",
            get(move || async move {
                axum::Json(json!({"items": [{"namespace": "default", "name": "web", "replicas": 2, "ready": 1, "upToDate": 2, "available": 1, "created": t - 400}]}))
            }),
        )
        .route(
            "/api/v1/manifests/{ns}/{kind}/{name}",
            delete(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({"error": "deployment default/nope not found", "details": []}))) }),
        )
}

/// Serves the stand-in API on a socket in `dir` from a background thread.
fn serve(dir: &std::path::Path) -> std::path::PathBuf {
    let socket = dir.join("api.sock");
    let path = socket.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
            let _ = tx.send(());
            let _ = axum::serve(listener, api()).await;
        });
    });
    let _ = rx.recv();
    socket
}

fn ctl(socket: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podswarmctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn golden(name: &str, actual: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("PODSWARM_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{e}"));
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (PODSWARM_BLESS=1 creates it)"));
    assert_eq!(
        actual, expected,
        "{name} changed (PODSWARM_BLESS=1 regenerates; review the diff)"
    );
}

#[test]
fn tables_read_like_kubectl() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = serve(dir.path());
    let (code, out, err) = ctl(&socket, &["get", "pods"]);
    assert_eq!(code, 0, "{err}");
    golden("get-pods.txt", &out);
    let (_, out, _) = ctl(&socket, &["get", "pods", "-A", "-o", "wide"]);
    golden("get-pods-all-wide.txt", &out);
    let (_, out, _) = ctl(&socket, &["get", "deploy"]);
    golden("get-deploy.txt", &out);
    let (code, out, err) = ctl(&socket, &["get", "pods,deploy"]);
    assert_eq!(code, 0, "{err}");
    golden("get-pods-deploy.txt", &out);
    let (code, out, err) = ctl(&socket, &["get", "pods", "-n", "empty"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "", "No resources found in empty namespace.\n")
    );
}

#[test]
fn api_errors_are_one_line_and_fail() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = serve(dir.path());
    let (code, _, err) = ctl(&socket, &["delete", "deployment", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: deployment default/nope not found\n"),
        "{err}"
    );
    let (code, _, err) = ctl(&socket, &["get", "pods", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(err, "error: pods \"nope\" not found in namespace default\n");
    let (code, _, err) = ctl(&dir.path().join("missing.sock"), &["get", "pods"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot reach the podswarm API at") && err.lines().count() == 1,
        "{err}"
    );
}
