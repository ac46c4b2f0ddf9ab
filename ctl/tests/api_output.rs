//! podswarmctl's output against a stand-in API on a temporary Unix socket: kubectl-shaped tables
//! and every API command's transcript (golden files, `PODSWARM_BLESS=1` regenerates), API errors
//! as one clear line, and `delete -f` against a stand-in that holds objects and cascades
//! Namespaces as podswarmd does.

use std::process::Command;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

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
                     "reason": null, "created": t - 300, "owner": "Deployment/web", "containers": [{"name": "app", "state": "active/running"}]},
                    {"namespace": "default", "name": "web-abc-1", "node": "node1", "ip": "10.244.0.3", "phase": "Running", "ready": false, "restarts": 4,
                     "reason": "CrashLoopBackOff", "message": "container app exited with status 1; restarting (4 restarts)", "created": t - 7300, "owner": "Deployment/web",
                     "containers": [{"name": "app", "state": "activating/auto-restart"}]},
                    {"namespace": "shop", "name": "db-x-0", "node": "node1", "ip": null, "phase": "Pending", "ready": false, "restarts": 0,
                     "reason": "ContainerCreating", "message": "waiting for Secret shop/db", "created": t - 90000, "containers": []}
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
        .route(
            "/api/v1/services",
            get(move || async move {
                axum::Json(json!({"items": [
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"selector": {"app": "web", "tier": "front"}, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
                     "podswarm": {"created": t - 420, "readyEndpoints": 1, "endpoints": 2}},
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
                     "spec": {"type": "NodePort", "ports": [{"port": 5432, "protocol": "TCP"}]},
                     "podswarm": {"created": t - 90000, "readyEndpoints": 0, "endpoints": 0}}
                ]}))
            }),
        )
        .route(
            "/api/v1/ingresses",
            get(|| async {
                axum::Json(json!({"items": [
                    {"metadata": {"name": "web", "namespace": "default"},
                     "spec": {"ingressClassName": "podswarm", "rules": [{"host": "a.example"}, {}], "tls": [{"secretName": "a"}]}},
                    {"metadata": {"name": "bare", "namespace": "default"}, "spec": {}}
                ]}))
            }),
        )
        .route(
            "/api/v1/nodes",
            get(|| async {
                axum::Json(json!({"items": [
                    {"name": "node1", "address": "192.0.2.10", "ready": true, "podSubnet": "10.244.0.0/24", "pods": 3},
                    {"name": "node2", "address": "192.0.2.11", "ready": false, "podSubnet": "10.244.1.0/24", "pods": 0}
                ]}))
            }),
        )
        .route(
            "/api/v1/pods/{ns}/{name}",
            get(|Path((ns, name)): Path<(String, String)>| async move {
                axum::Json(json!({"namespace": ns, "name": name, "node": "node1", "ip": "10.244.0.2", "phase": "Running",
                    "ready": true, "restarts": 0, "reason": null, "owner": "Deployment/web", "unit": format!("podswarm-{ns}_{name}.service"),
                    "containers": [{"name": "app", "image": "localhost/busybox:latest", "unit": "podswarm-default_web-abc-0_app.service", "state": "active/running", "restarts": 0}],
                    "warnings": ["spec.affinity is not supported and is ignored"]}))
            }),
        )
        .route(
            "/api/v1/pods/{ns}/{name}/logs",
            get(|Path((ns, name)): Path<(String, String)>, RawQuery(q): RawQuery| async move {
                format!("logs of {ns}/{name} with {}\nsecond line\n", q.unwrap_or_default())
            }),
        )
        .route(
            "/api/v1/deployments/{ns}/{name}",
            get(|Path((ns, name)): Path<(String, String)>| async move {
                axum::Json(json!({
                    "status": {"namespace": ns, "name": name, "replicas": 2, "ready": 1, "upToDate": 2, "available": 1},
                    "object": {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "front"}}}}
                }))
            }),
        )
        .route(
            "/api/v1/deployments/{ns}/{name}/scale",
            put(|Path((ns, name)): Path<(String, String)>, body: String| async move {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                axum::Json(json!({"namespace": ns, "name": name, "replicas": v["replicas"]}))
            }),
        )
        .route(
            "/api/v1/services/{ns}/{name}",
            get(|| async {
                axum::Json(json!({"endpoints": [
                    {"address": "10.244.0.2", "port": 8080, "podName": "web-abc-0", "ready": true},
                    {"address": "10.244.0.3", "port": 8080, "podName": "web-abc-1", "ready": false}
                ]}))
            }),
        )
        .route(
            "/api/v1/tokens",
            get(move || async move {
                axum::Json(json!({"items": [
                    {"id": "a1b2", "description": "ci", "created": t - 4000, "expires": t + 88200},
                    {"id": "c3d4", "description": "", "created": t - 300, "expires": t - 10},
                    {"id": "e5f6", "description": "admin", "created": t - 90000, "expires": null}
                ]}))
            })
            .post(|body: String| async move {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                axum::Json(json!({"id": "a1b2", "token": format!("psw_secret_{}_{}", v["description"].as_str().unwrap_or("?"), v["ttlSeconds"])}))
            }),
        )
        .route(
            "/api/v1/tokens/{id}",
            delete(|| async { axum::Json(json!({})) }),
        )
        .route(
            "/api/v1/manifests",
            post(|headers: axum::http::HeaderMap, body: String| async move {
                let source = headers.get("x-podswarm-source").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
                axum::Json(json!({
                    "applied": [
                        {"kind": "Namespace", "namespace": "", "name": "shop", "action": "unchanged"},
                        {"kind": "Deployment", "namespace": "shop", "name": "web", "action": "configured"},
                        {"kind": "ConfigMap", "namespace": "shop", "name": format!("{}-bytes", body.len()), "action": "created"}
                    ],
                    "warnings": [format!("{source}: spec.affinity is not supported and is ignored")]
                }))
            }),
        )
}

/// Serves the stand-in API on a socket in `dir` from a background thread.
fn serve(dir: &std::path::Path) -> std::path::PathBuf {
    serve_with(dir, api())
}

fn serve_with(dir: &std::path::Path, router: Router) -> std::path::PathBuf {
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
            let _ = axum::serve(listener, router).await;
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

/// Runs each command line against `socket` and writes what a user sees (exit status, stdout,
/// stderr) one after another, with `dir` shown as `$DIR` so the transcript is stable.
fn transcript(socket: &std::path::Path, dir: &std::path::Path, commands: &[&[&str]]) -> String {
    let mut out = String::new();
    for args in commands {
        let (code, stdout, stderr) = ctl(socket, args);
        out.push_str(&format!(
            "$ podswarmctl {}\n[exit {code}]\n--- stdout\n{stdout}--- stderr\n{stderr}\n",
            args.join(" ")
        ));
    }
    out.replace(&dir.display().to_string(), "$DIR")
}

#[test]
fn every_api_command_prints_like_kubectl() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = serve(dir.path());
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, "kind: Namespace\n").unwrap_or_else(|e| panic!("{e}"));
    let file = file.display().to_string();
    golden(
        "commands.txt",
        &transcript(
            &socket,
            dir.path(),
            &[
                &["get", "svc"],
                &["get", "services", "-A", "-o", "wide"],
                &["get", "ingress", "web", "-o", "json"],
                &["get", "ing"],
                &["get", "ingresses", "-A"],
                &["get", "no"],
                &["get", "nodes", "-o", "wide"],
                &["get", "node", "node2", "-o", "yaml"],
                &["get", "deployments", "-A", "-o", "wide"],
                &["get", "po", "web-abc-0"],
                &["get", "pods,svc,no"],
                &["describe", "pod", "web-abc-0"],
                &["describe", "deploy", "web"],
                &["describe", "deployment", "web", "-n", "shop"],
                &["describe", "svc", "web"],
                &["apply", "-f", &file],
                &["scale", "deploy/web", "--replicas", "3"],
                &[
                    "scale",
                    "deployments",
                    "web",
                    "--replicas",
                    "0",
                    "-n",
                    "shop",
                ],
                &["logs", "web-abc-0", "--tail", "5", "-c", "app"],
                &["logs", "-f", "db-x-0", "-n", "shop"],
                &["token", "create", "--description", "ci", "--ttl", "90m"],
                &["token", "list"],
                &["token", "revoke", "a1b2"],
            ],
        ),
    );
}

/// The stand-in's objects: (lower-case kind, namespace, name), namespace empty for Namespaces.
type Objects = Arc<Mutex<BTreeSet<(String, String, String)>>>;

/// A stand-in API with state, whose Namespaces take their objects with them when deleted, as
/// podswarmd's API (and Kubernetes) does.
fn stateful_api(objects: Objects) -> Router {
    async fn remove(
        State(objects): State<Objects>,
        Path((ns, kind, name)): Path<(String, String, String)>,
    ) -> (StatusCode, axum::Json<Value>) {
        let kind = kind.to_ascii_lowercase();
        let mut objects = objects.lock().unwrap_or_else(|e| e.into_inner());
        let key = if kind == "namespace" {
            (kind.clone(), String::new(), name.clone())
        } else {
            (kind.clone(), ns.clone(), name.clone())
        };
        let mut deleted: Vec<(String, String, String)> = Vec::new();
        if objects.remove(&key) {
            deleted.push(key);
        }
        if kind == "namespace" {
            let inside: Vec<_> = objects.iter().filter(|k| k.1 == name).cloned().collect();
            for k in inside {
                objects.remove(&k);
                deleted.push(k);
            }
        }
        if deleted.is_empty() {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(
                    json!({"error": format!("{kind} {ns}/{name} not found"), "details": []}),
                ),
            );
        }
        let deleted: Vec<Value> = deleted
            .into_iter()
            .map(|(kind, namespace, name)| json!({"kind": kind, "namespace": namespace, "name": name}))
            .collect();
        (StatusCode::OK, axum::Json(json!({"deleted": deleted})))
    }
    Router::new()
        .route("/api/v1/manifests/{ns}/{kind}/{name}", delete(remove))
        .with_state(objects)
}

const SHOP: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: localhost/busybox:latest}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n";

fn shop_objects() -> Objects {
    Arc::new(Mutex::new(
        [
            ("namespace", "", "shop"),
            ("deployment", "shop", "web"),
            ("service", "shop", "web"),
            ("configmap", "shop", "settings"),
            ("configmap", "default", "settings"),
        ]
        .into_iter()
        .map(|(k, ns, n)| (k.to_owned(), ns.to_owned(), n.to_owned()))
        .collect(),
    ))
}

#[test]
fn deleting_a_file_with_its_namespace_removes_everything_cleanly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let objects = shop_objects();
    let socket = serve_with(dir.path(), stateful_api(objects.clone()));
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, SHOP).unwrap_or_else(|e| panic!("{e}"));
    let file = file.display().to_string();

    // The Namespace comes first in the file; deleting it first would take the other objects
    // with it and report each of them as not found.
    let (code, out, err) = ctl(&socket, &["delete", "-f", &file]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        "deployment/web deleted\nservice/web deleted\nconfigmap/settings deleted\nconfigmap/settings deleted\nnamespace/shop deleted\n"
    );
    assert!(objects.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
}

#[test]
fn an_object_the_same_delete_already_removed_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let objects = shop_objects();
    let socket = serve_with(dir.path(), stateful_api(objects.clone()));
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, SHOP).unwrap_or_else(|e| panic!("{e}"));
    let file = file.display().to_string();
    let (code, out, err) = ctl(&socket, &["delete", "-f", &file, "-f", &file]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out.lines().count(),
        5,
        "each object is reported once: {out}"
    );
    assert!(objects.lock().unwrap_or_else(|e| e.into_inner()).is_empty());

    // Objects that really are missing still fail the command, with one line each.
    let (code, out, err) = ctl(&socket, &["delete", "-f", &file]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err.lines().filter(|l| l.contains("not found")).count(),
        5,
        "{err}"
    );
}
