//! The real kubectl against podswarmd's real TCP router (HTTPS, bearer token, the cluster CA),
//! with a kubeconfig as `token create --kubeconfig` writes it. Every command a kubectl user
//! would try is run; those podswarm serves must work, and every result, working or not, goes
//! into the conformance table `docs/KUBERNETES.md` (a golden file: `EXPECTORATE=overwrite`
//! regenerates it), so the table says what kubectl does today, not what was hoped.
//! Skipped, saying so, where no kubectl is installed.

// Helpers outside `#[test]` functions may unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod support;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use podswarm_api::{ContainerView, Phase, PodView};
use support::{NODE_NAMES, https_node, kubeconfig, now};

/// A running, ready pod of the web Deployment on node-a, as its reconciler reports it.
fn running_pod(name: &str) -> PodView {
    let unit = format!("podswarm-default_{name}.service");
    PodView {
        namespace: "default".into(),
        name: name.into(),
        node: "node-a".into(),
        ip: Some("10.244.0.2".into()),
        phase: Phase::Running,
        ready: true,
        restarts: 1,
        reason: None,
        message: None,
        owner: Some("Deployment/web".into()),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        unit: unit.clone(),
        units: vec![unit.clone()],
        containers: vec![ContainerView {
            name: "web".into(),
            podman_name: format!("default_{name}_web"),
            image: "localhost/web:1".into(),
            unit,
            state: "active/running".into(),
            restarts: 1,
        }],
        created: now() - 930,
        warnings: Vec::new(),
        ready_since: Some(now() - 300),
        terminating: false,
        moving: false,
        replaces: None,
    }
}

/// kubectl with `args`, the kubeconfig only and an empty HOME (no cached discovery); requests
/// time out after 10 s, so a command podswarm does not serve fails rather than hangs.
fn kubectl(home: &Path, config: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("kubectl")
        .args(args)
        .arg("--request-timeout=10s")
        .env("HOME", home)
        .env("KUBECONFIG", config)
        .env("KUBECACHEDIR", home.join("cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kubectl_version() -> Option<String> {
    let out = std::process::Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let version = v["clientVersion"]["gitVersion"].as_str()?;
    // `v1.32.4-dispatcher` → `1.32`, for the test output.
    let mut parts = version.trim_start_matches('v').split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: localhost/web:1}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {a: '1', b: '2'}
";

/// What a command must show for podswarm to count it as working.
enum Expect {
    /// Exit 0 and every one of these in stdout.
    Works(&'static [&'static str]),
    /// Exit ≠ 0 with this in stderr: the right error is the right behaviour.
    Refuses(&'static str),
    /// Not served yet (what is missing): it must fail rather than hang.
    NotYet(&'static str),
}

#[test]
fn kubectl_against_podswarm() {
    let Some(version) = kubectl_version() else {
        println!("SKIPPED kubectl_against_podswarm: no kubectl on PATH");
        return;
    };
    let (node, pki, address, token) = https_node(NODE_NAMES);
    node.apply(APP);
    node.pods([running_pod("web-0")]);
    let home = tempfile::tempdir().unwrap();
    let cluster = format!(
        "    server: https://{address}\n    certificate-authority-data: {}\n",
        BASE64.encode(&pki.ca_pem)
    );
    let config = kubeconfig(home.path(), "config", &cluster, &token);
    let bad = kubeconfig(home.path(), "bad", &cluster, "not-a-token");

    let checks: &[(&str, &[&str], Option<&str>, Expect)] = &[
        (
            "version",
            &["version"],
            None,
            Expect::Works(&["Server Version: v1."]),
        ),
        (
            "api-resources",
            &["api-resources"],
            None,
            Expect::Works(&[
                "deployments",
                "pods",
                "services",
                "ingresses",
                "nodes",
                "configmaps",
                "secrets",
                "namespaces",
            ]),
        ),
        (
            "get deploy,svc",
            &["get", "deploy,svc"],
            None,
            Expect::Works(&["deployment.apps/web", "service/web", "80/TCP"]),
        ),
        (
            "get cm -A",
            &["get", "cm", "-A"],
            None,
            Expect::Works(&["NAMESPACE", "shop", "settings"]),
        ),
        (
            "get pods,svc -A",
            &["get", "pods,svc", "-A"],
            None,
            Expect::Works(&["default     service/web"]),
        ),
        (
            "get nodes -o wide",
            &["get", "nodes", "-o", "wide"],
            None,
            Expect::Works(&["node-a", "INTERNAL-IP", "podswarm/"]),
        ),
        (
            "get svc web -o yaml",
            &["get", "svc", "web", "-o", "yaml"],
            None,
            Expect::Works(&["kind: Service", "resourceVersion"]),
        ),
        (
            "get node NAME -o yaml",
            &["get", "node", "node-a", "-o", "yaml"],
            None,
            Expect::Works(&["kind: Node", "kubeletVersion"]),
        ),
        (
            "get pods,svc,nodes -A -o yaml",
            &["get", "pods,svc,nodes", "-A", "-o", "yaml"],
            None,
            Expect::Works(&["kind: Service", "kind: Node"]),
        ),
        (
            "get deploy -l app=web",
            &["get", "deploy", "-l", "app=web"],
            None,
            Expect::Works(&["web"]),
        ),
        (
            "describe deploy",
            &["describe", "deploy", "web"],
            None,
            Expect::Works(&["Name:", "web", "Replicas:"]),
        ),
        (
            "get pod NAME (absent)",
            &["get", "pod", "nosuch"],
            None,
            Expect::Refuses("Error from server (NotFound): pods \"nosuch\" not found"),
        ),
        (
            "get hpa (unsupported kind)",
            &["get", "hpa"],
            None,
            Expect::Refuses("the server doesn't have a resource type \"hpa\""),
        ),
        (
            "apply -f",
            &["apply", "-f", "-"],
            Some(APP),
            Expect::NotYet("the OpenAPI documents, create and patch"),
        ),
        (
            "delete svc",
            &["delete", "svc", "web"],
            None,
            Expect::NotYet("delete"),
        ),
        (
            "get pods -w",
            &["get", "pods", "-w"],
            None,
            Expect::NotYet("watch"),
        ),
        (
            "get pods -o wide",
            &["get", "pods", "-o", "wide"],
            None,
            Expect::Works(&["web-0", "1/1", "Running", "10.244.0.2", "node-a", "15m"]),
        ),
        (
            "describe pod",
            &["describe", "pod", "web-0"],
            None,
            Expect::Works(&[
                "Status:",
                "Running",
                "IP:",
                "10.244.0.2",
                "Restart Count:  1",
            ]),
        ),
        (
            "logs POD",
            &["logs", "web-0"],
            None,
            Expect::Works(&["CONTAINER_NAME=default_web-0_web", "second line"]),
        ),
        (
            "logs -f --tail 5 -c web POD",
            &["logs", "-f", "--tail", "5", "-c", "web", "web-0"],
            None,
            Expect::Works(&["--lines=5", "--follow"]),
        ),
        (
            "logs --timestamps POD",
            &["logs", "--timestamps", "web-0"],
            None,
            Expect::Refuses("timestamps is not supported"),
        ),
        (
            "scale",
            &["scale", "deploy/web", "--replicas=3"],
            None,
            Expect::Works(&["deployment.apps/web scaled"]),
        ),
        (
            "get deploy (after scale)",
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
            None,
            Expect::Works(&["3"]),
        ),
        (
            "scale --current-replicas (wrong)",
            &[
                "scale",
                "deploy/web",
                "--current-replicas=7",
                "--replicas=4",
            ],
            None,
            Expect::Refuses("Expected replicas to be 7, was 3"),
        ),
        (
            "scale --resource-version (stale)",
            &[
                "scale",
                "deploy/web",
                "--resource-version=1",
                "--replicas=4",
            ],
            None,
            Expect::Refuses("Expected resource version to be 1"),
        ),
        (
            "rollout status",
            &["rollout", "status", "deploy/web", "--timeout=5s"],
            None,
            Expect::NotYet("watch"),
        ),
        (
            "auth whoami",
            &["auth", "whoami"],
            None,
            Expect::NotYet("SelfSubjectReview"),
        ),
    ];

    let mut table = String::from(
        "# kubectl against podswarm\n\n\
         Generated by `ctl/tests/kubectl.rs` (`EXPECTORATE=overwrite cargo nextest run -p podswarmctl \
         --test kubectl` regenerates it): the real kubectl on PATH (1.32 in CI), over HTTPS with a kubeconfig \
         as `podswarmctl token create --kubeconfig` writes it, against podswarmd's real API router \
         holding a Deployment with one running pod, a Service and a ConfigMap. Each line is a command as a user types \
         it and what kubectl did: \"works\" is checked by the test; \"not yet\" commands are run \
         too, and must fail rather than hang (kubectl's message is in the test's output).\n\n\
         | command | result |\n|---|---|\n",
    );
    for (name, args, stdin, expect) in checks {
        let (code, out, err) = kubectl(home.path(), &config, args, *stdin);
        let result = match expect {
            Expect::Works(wanted) => {
                assert_eq!(code, 0, "kubectl {name}: {err}");
                for w in *wanted {
                    assert!(out.contains(w), "kubectl {name} lacks {w:?}:\n{out}");
                }
                "works".to_owned()
            }
            Expect::Refuses(message) => {
                assert_ne!(code, 0, "kubectl {name} should fail:\n{out}");
                assert!(err.contains(message), "kubectl {name}: {err}");
                format!("works: refused with `{message}`")
            }
            Expect::NotYet(missing) => {
                println!("kubectl {version} {name}: exit {code}: {}", err.trim());
                assert_ne!(code, 0, "kubectl {name} works now: check it and say so");
                format!("not yet: needs {missing} (kubectl exits with {code})")
            }
        };
        table.push_str(&format!("| `kubectl {name}` | {result} |\n"));
    }
    let (code, _, err) = kubectl(home.path(), &bad, &["get", "pods"], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
    table.push_str("| `kubectl get pods` with a revoked or unknown token | works: refused with `Unauthorized` |\n");
    expectorate::assert_contents("../docs/KUBERNETES.md", &table);
}
