//! Multi-container pods on a booted node, for real, in both renderings: `.pod` + `.container`
//! (Podman 5, the default there) and `.kube` (what Podman 4.x nodes use), with a Secret as env and
//! volume, a ConfigMap volume, a shared emptyDir, and containers talking over the pod's localhost.

use std::time::Duration;

use podswarm_tests::ctl::{condition, pod_ip, podman_name, unit};
use podswarm_tests::node::{BootOptions, Node, nodes_or_skip};
use serde_json::Value;

const APP: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: "p@ss %h $HOME", token: t0k3n}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: site}
data: {index.html: "<h1>from a configmap</h1>\n"}
---
apiVersion: v1
kind: Pod
metadata: {name: duo, labels: {app: duo}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [{name: http, containerPort: 8080}]
    volumeMounts:
    - {name: site, mountPath: /www}
    - {name: shared, mountPath: /shared}
    readinessProbe:
      httpGet: {path: /index.html, port: http}
      periodSeconds: 1
  - name: side
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo \"PW=$PASSWORD\"; echo \"TOKEN=$(cat /sec/token)\"; while sleep 1; do wget -q -O /shared/page.html http://127.0.0.1:8080/index.html && break; done; exec sleep 3600"]
    # An exec probe: podswarmd runs it with `podman exec`, from its hardened unit.
    readinessProbe:
      exec: {command: [test, -f, /shared/page.html]}
      periodSeconds: 1
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    volumeMounts:
    - {name: sec, mountPath: /sec}
    - {name: shared, mountPath: /shared}
  volumes:
  - {name: site, configMap: {name: site}}
  - {name: sec, secret: {secretName: creds}}
  - {name: shared, emptyDir: {}}
"#;

fn pod(node: &Node) -> Value {
    let out = node.exec(&["podswarmctl", "get", "pod", "duo", "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn run(mode: &str) {
    let node = Node::boot(&format!("multi-{mode}"), &BootOptions::default());
    node.import_busybox();
    node.write(
        "/etc/podswarm/podswarm.toml",
        format!("[workloads]\nmulti_container = \"{mode}\"\n").as_bytes(),
    );
    node.install_podswarm();
    node.write("/root/app.yaml", APP.as_bytes());
    node.sh("podswarmctl apply -f /root/app.yaml");
    node.wait_for("the pod to be ready", Duration::from_secs(120), || {
        condition(&pod(&node), "Ready")
    });
    let p = pod(&node);
    let unit = unit(&p).to_owned();
    let files = node.sh("ls /etc/containers/systemd/podswarm/");
    match mode {
        "pod" => assert!(
            files.contains("podswarm-default_duo.pod")
                && files.contains("podswarm-default_duo_side.container"),
            "{files}"
        ),
        _ => assert!(
            files.contains("podswarm-default_duo.kube")
                && files.contains("podswarm-default_duo.kube.json"),
            "{files}"
        ),
    }
    assert_eq!(node.unit_property(&unit, "ActiveState"), "active");

    // Container output (logs of one container), env from the Secret, the Secret volume.
    node.wait_for("the sidecar's output", Duration::from_secs(30), || {
        node.exec(&["podswarmctl", "logs", "duo", "-c", "side"])
            .stdout
            .starts_with(b"PW=")
    });
    let logs = node.sh("podswarmctl logs duo -c side");
    assert!(
        logs.contains("PW=p@ss %h $HOME\n") && logs.contains("TOKEN=t0k3n\n"),
        "{logs}"
    );
    // The ConfigMap volume is served by one container, fetched by the other over the pod's
    // localhost, and shared through the emptyDir.
    let ip = pod_ip(&p).to_owned();
    assert!(
        node.sh(&format!("curl -sf http://{ip}:8080/index.html"))
            .contains("from a configmap")
    );
    let side = podman_name(&p, "side").to_owned();
    node.wait_for("the shared emptyDir", Duration::from_secs(30), || {
        node.exec(&["podman", "exec", &side, "cat", "/shared/page.html"])
            .stdout
            .starts_with(b"<h1>from a configmap")
    });
    // No secret value in a unit, a generated service or volume data; the desired state holds the
    // Secret object (as etcd does) but only root can read it.
    let grep = node.exec(&[
        "grep",
        "-rl",
        "p@ss",
        "/etc/containers/systemd/podswarm",
        "/run/systemd/generator",
        "/var/lib/podswarm/volumes",
    ]);
    assert!(
        grep.stdout.is_empty(),
        "a secret value reached a file: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    assert_eq!(
        node.sh("stat -c %a /var/lib/podswarm/state.json").trim(),
        "600"
    );

    node.sh("podswarmctl delete -f /root/app.yaml");
    node.wait_for("the pod's units to go", Duration::from_secs(60), || {
        !node
            .sh("systemctl list-units --no-legend --plain 'podswarm-default_*'")
            .contains("podswarm-default_duo")
    });
    assert!(
        node.sh("podman secret ls --format '{{.Name}}'")
            .trim()
            .is_empty(),
        "podman secrets of a deleted pod must go"
    );
}

#[test]
fn multi_container_pods_run_as_pod_units() {
    if nodes_or_skip("multi_container_pods_run_as_pod_units").is_some() {
        run("pod");
    }
}

#[test]
fn multi_container_pods_run_as_kube_units() {
    if nodes_or_skip("multi_container_pods_run_as_kube_units").is_some() {
        run("kube");
    }
}
