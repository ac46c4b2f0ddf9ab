//! Pods in user namespaces of their own, on a booted node with real systemd and Podman: container
//! root is root inside and an unprivileged, unshared range of host IDs outside; emptyDir,
//! ConfigMap and Secret volumes work; `hostUsers: true` only where the node's policy allows it.

use std::time::Duration;

use podswarm_tests::ctl;
use podswarm_tests::node::{BootOptions, Node, nodes_or_skip};

const MANIFEST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: first}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo written > /scratch/out && exec sleep 3600"]
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec}}
---
apiVersion: v1
kind: Pod
metadata: {name: second}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: localhost/busybox:latest, imagePullPolicy: Never, command: [/bin/sleep, "3600"]}
"#;

/// What else must work in a pod's own user namespace: a non-root `runAsUser`/`runAsGroup`, a
/// PersistentVolumeClaim it writes, a `hostPort`, an exec liveness probe and an HTTP readiness
/// probe.
const THIRD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: third}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - name: app
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo kept >> /data/out && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080, hostPort: 18080}]
    livenessProbe: {exec: {command: [test, -f, /data/out]}, periodSeconds: 1}
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
"#;

const HOST_USERS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: host}
spec:
  hostUsers: true
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: localhost/busybox:latest, imagePullPolicy: Never, command: [/bin/sleep, "3600"]}
"#;

/// The podman name of a running pod's one container, once the API says it runs.
fn running(node: &Node, pod: &str) -> String {
    let mut name = String::new();
    node.wait_for(&format!("{pod} to run"), Duration::from_secs(120), || {
        let found = ctl::items(node, "pods")
            .into_iter()
            .find(|p| ctl::name(p) == pod && p["status"]["phase"] == "Running");
        if let Some(p) = found {
            name = ctl::podman_name(&p, "app").to_owned();
        }
        !name.is_empty()
    });
    name
}

/// The first line of the container's `/proc/PID/uid_map` on the host: (inside, outside, count).
fn uid_map(node: &Node, container: &str) -> (u64, u64, u64) {
    let pid = node
        .sh(&format!(
            "podman inspect -f '{{{{.State.Pid}}}}' {container}"
        ))
        .trim()
        .to_owned();
    let map = node.sh(&format!("head -n1 /proc/{pid}/uid_map"));
    let fields: Vec<u64> = map
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(fields.len(), 3, "uid_map of {container}: {map:?}");
    (fields[0], fields[1], fields[2])
}

/// The real UID (on the host) of the container's main process.
fn host_uid(node: &Node, container: &str) -> u64 {
    let pid = node
        .sh(&format!(
            "podman inspect -f '{{{{.State.Pid}}}}' {container}"
        ))
        .trim()
        .to_owned();
    let status = node.sh(&format!("grep '^Uid:' /proc/{pid}/status"));
    status
        .split_whitespace()
        .nth(1)
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in {status:?}"))
}

#[test]
fn every_pod_has_its_own_user_namespace_unless_the_policy_allows_the_hosts() {
    if nodes_or_skip("every_pod_has_its_own_user_namespace_unless_the_policy_allows_the_hosts")
        .is_none()
    {
        return;
    }
    let node = Node::boot("userns", &BootOptions::default());
    node.import_busybox();
    node.install_podswarm();
    let ranges = node.sh("grep '^containers:' /etc/subuid /etc/subgid");
    assert_eq!(ranges.lines().count(), 2, "the package's ranges: {ranges}");

    node.write("/root/app.yaml", MANIFEST.as_bytes());
    node.sh("podswarmctl apply -f /root/app.yaml");
    let first = running(&node, "first");
    let second = running(&node, "second");

    // Root inside; its volumes work: it wrote to its emptyDir, and reads its ConfigMap and Secret.
    assert_eq!(node.sh(&format!("podman exec {first} id -u")).trim(), "0");
    assert_eq!(
        node.sh(&format!("podman exec {first} cat /scratch/out"))
            .trim(),
        "written"
    );
    assert_eq!(
        node.sh(&format!("podman exec {first} cat /etc/cfg/greeting")),
        "hello"
    );
    assert_eq!(
        node.sh(&format!("podman exec {first} cat /etc/sec/token")),
        "s3cret"
    );
    // Outside, an unprivileged UID, and the two pods' ranges do not meet.
    let uid = host_uid(&node, &first);
    assert!(uid >= 65536, "container root is host UID {uid}");
    let (inside, a, a_len) = uid_map(&node, &first);
    let (_, b, b_len) = uid_map(&node, &second);
    assert_eq!(inside, 0);
    assert!(a_len >= 65536 && b_len >= 65536, "{a_len} {b_len}");
    assert!(
        a + a_len <= b || b + b_len <= a,
        "ranges overlap: {a}+{a_len} and {b}+{b_len}"
    );
    println!("first: host UID {uid}, range {a}+{a_len}; second: range {b}+{b_len}");

    // A non-root user, a claim it writes, a host port and both kinds of probe.
    node.write("/root/third.yaml", THIRD.as_bytes());
    node.sh("podswarmctl apply -f /root/third.yaml");
    let third = running(&node, "third");
    let ready = |node: &Node| {
        ctl::items(node, "pods")
            .iter()
            .any(|p| ctl::name(p) == "third" && ctl::condition(p, "Ready"))
    };
    node.wait_for("third ready", Duration::from_secs(60), || ready(&node));
    assert_eq!(
        node.sh(&format!(
            "podman exec {third} sh -c 'echo $(id -u):$(id -g)'"
        ))
        .trim(),
        "1000:1000"
    );
    assert_eq!(
        node.sh(&format!("podman exec {third} cat /data/out")),
        "kept\n"
    );
    assert!(
        node.sh("curl -sf http://127.0.0.1:18080/")
            .contains("hello from podswarm")
    );
    assert!(host_uid(&node, &third) >= 65536);
    // Deleted and applied again, the pod gets a user namespace again (perhaps another range),
    // and its claim's files are still its own: read and written again.
    node.sh("podswarmctl delete pod third");
    node.wait_for("third gone", Duration::from_secs(60), || {
        !node.sh("podman ps --format '{{.Names}}'").contains(&third)
    });
    node.sh("podswarmctl apply -f /root/third.yaml");
    let again = running(&node, "third");
    node.wait_for("third ready again", Duration::from_secs(60), || {
        ready(&node)
    });
    assert_eq!(
        node.sh(&format!("podman exec {again} cat /data/out")),
        "kept\nkept\n"
    );

    // hostUsers: true is refused by default, naming the setting; nothing of it is stored.
    node.write("/root/host.yaml", HOST_USERS.as_bytes());
    let refused = node.exec(&["podswarmctl", "apply", "-f", "/root/host.yaml"]);
    let text = String::from_utf8_lossy(&refused.stderr).into_owned()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("hostUsers") && text.contains("allow_host_users"),
        "{text}"
    );
    assert!(!node.sh("podswarmctl get pods").contains("host"));

    // Allowed by the node's policy, it runs in the host's user namespace.
    assert!(
        !node
            .exec(&["test", "-e", "/etc/podswarm/podswarm.toml"])
            .status
            .success(),
        "the test writes its own podswarm.toml"
    );
    node.write(
        "/etc/podswarm/podswarm.toml",
        b"[workloads]\nallow_host_users = true\n",
    );
    node.sh("systemctl restart podswarm.service");
    node.wait_for("podswarmd to answer", Duration::from_secs(60), || {
        node.exec(&["podswarmctl", "get", "nodes"]).status.success()
    });
    node.sh("podswarmctl apply -f /root/host.yaml");
    let host = running(&node, "host");
    assert_eq!(uid_map(&node, &host), (0, 0, 4_294_967_295));
    // The others kept their namespaces through the restart.
    assert_eq!(uid_map(&node, &first).1, a);
}
