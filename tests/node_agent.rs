//! podswarmd on a booted node with real systemd 257 and Podman 5.4: what a user does and sees.

use std::time::Duration;

use podswarm_tests::ctl::{condition, items, name, pod_ip, unit};
use podswarm_tests::node::{BootOptions, Node, nodes_or_skip};
use serde_json::Value;

/// A value with systemd specifiers, variables, quotes, backslashes and spaces.
const WEIRD: &str = r#"100% %h $HOME ${PATH} "q" 'single' back\slash  two  spaces"#;

fn manifest() -> String {
    let weird_yaml = serde_json::to_string(WEIRD).unwrap_or_default();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 1
  selector:
    matchLabels: {{app: hello}}
  template:
    metadata:
      labels: {{app: hello}}
    spec:
      # busybox httpd as PID 1 ignores SIGTERM: every stop takes the whole grace period.
      terminationGracePeriodSeconds: 3
      containers:
      - name: web
        image: localhost/busybox:latest
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "echo \"VALUE=$WEIRD\"; exec httpd -f -p 8080 -h /www"]
        env:
        - name: WEIRD
          value: {weird_yaml}
        ports:
        - {{name: http, containerPort: 8080}}
        readinessProbe:
          httpGet: {{path: /index.html, port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: unready
  labels: {{app: hello}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: web
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
    - {{name: http, containerPort: 8080}}
    readinessProbe:
      httpGet: {{path: /missing, port: http}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector: {{app: hello}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
"#
    )
}

fn pods(node: &Node) -> Vec<Value> {
    items(node, "pods")
}

#[test]
fn a_workload_runs_survives_podswarm_and_is_deleted() {
    if nodes_or_skip("a_workload_runs_survives_podswarm_and_is_deleted").is_none() {
        return;
    }
    let node = Node::boot("agent", &BootOptions::default());
    node.import_busybox();
    node.install_podswarm();

    node.write("/root/app.yaml", manifest().as_bytes());
    let applied = node.sh("podswarmctl apply -f /root/app.yaml");
    assert!(
        applied.contains("deployment/hello created")
            && applied.contains("service/hello created")
            && applied.contains("pod/unready created"),
        "{applied}"
    );
    node.wait_for("the pod to be ready", Duration::from_secs(90), || {
        pods(&node).iter().any(|p| condition(p, "Ready"))
    });
    // Readiness is the probe's verdict, not just "running".
    node.wait_for("the unready pod to run", Duration::from_secs(60), || {
        pods(&node)
            .iter()
            .any(|p| name(p) == "unready" && p["status"]["phase"] == "Running")
    });
    std::thread::sleep(Duration::from_secs(3));
    let unready = pods(&node)
        .into_iter()
        .find(|p| name(p) == "unready")
        .unwrap_or(Value::Null);
    assert!(!condition(&unready, "Ready"), "{unready}");
    let pod = pods(&node)
        .into_iter()
        .find(|p| name(p) != "unready")
        .unwrap_or(Value::Null);
    let unit = unit(&pod).to_owned();
    let ip = pod_ip(&pod).to_owned();
    let name = name(&pod).to_owned();

    // The user's tools: systemctl, curl, journalctl.
    let units = node.sh("systemctl list-units --no-legend --plain 'podswarm-*'");
    assert!(
        units
            .lines()
            .any(|l| l.starts_with(&unit) && l.contains(" active running")),
        "{units}"
    );
    let page = node.sh(&format!("curl -sf http://{ip}:8080/"));
    assert!(page.contains("hello from podswarm"), "{page}");
    let journal = node.sh(&format!("journalctl -u {unit} --no-pager -o cat"));
    assert!(
        journal.lines().any(|l| l == format!("VALUE={WEIRD}")),
        "the env value did not reach the container intact:\n{journal}"
    );
    let env = node.sh(&format!(
        "podman exec {} sh -c 'printf %s \"$WEIRD\"'",
        unit.trim_end_matches(".service")
    ));
    assert_eq!(env, WEIRD);
    // podswarmd's own log lines carry the pod as journal fields.
    let about_pod = node.sh(&format!("journalctl --no-pager -o cat _SYSTEMD_UNIT=podswarm.service POD={name} NAMESPACE=default UNIT={unit}"));
    assert!(about_pod.contains("pod unit started"), "{about_pod}\n{}", node.sh("journalctl -u podswarm -o verbose --no-pager -n 12 | grep -vE '_(SOURCE|BOOT|MACHINE|HOSTNAME|TRANSPORT|CAP|SELINUX|UID|GID|COMM|EXE|CMDLINE|PID|SYSTEMD_(CGROUP|SLICE|INVOCATION))'"));
    // Exactly what the container wrote: no podman or systemd lines.
    let logs = node.sh(&format!("podswarmctl logs {name}"));
    assert_eq!(logs, format!("VALUE={WEIRD}\n"));
    let wrong = node.exec(&["podswarmctl", "logs", &name, "-c", "nope"]);
    assert!(
        !wrong.status.success()
            && String::from_utf8_lossy(&wrong.stderr).contains("container \"nope\"")
    );
    let addresses = node.sh("podswarmctl get svc hello -o json");
    assert!(addresses.contains("hello"), "{addresses}");
    let endpoints: Value = serde_json::from_str(&node.sh("curl -sf --unix-socket /run/podswarm/api.sock http://localhost/api/v1/services/default/hello/addresses")).unwrap_or(Value::Null);
    assert_eq!(
        endpoints["addresses"],
        serde_json::json!([format!("{ip}:8080")])
    );

    // Restarting or killing podswarm never restarts the workload.
    let invocation = node.unit_property(&unit, "InvocationID");
    assert_eq!(invocation.len(), 32);
    node.sh("systemctl restart podswarm");
    node.wait_for("podswarmd after restart", Duration::from_secs(60), || {
        node.exec(&["podswarmctl", "get", "pods"]).status.success()
    });
    assert_eq!(
        node.unit_property(&unit, "InvocationID"),
        invocation,
        "systemctl restart podswarm restarted the workload"
    );
    let main_pid = node.unit_property("podswarm.service", "MainPID");
    node.sh(&format!("kill -9 {main_pid}"));
    node.wait_for(
        "systemd to restart a killed podswarmd",
        Duration::from_secs(60),
        || {
            let pid = node.unit_property("podswarm.service", "MainPID");
            pid != main_pid
                && pid != "0"
                && node.exec(&["podswarmctl", "get", "pods"]).status.success()
        },
    );
    assert_eq!(
        node.unit_property(&unit, "InvocationID"),
        invocation,
        "kill -9 of podswarmd restarted the workload"
    );
    assert!(
        node.sh(&format!("curl -sf http://{ip}:8080/"))
            .contains("hello from podswarm")
    );

    // Delete: units stop, files go.
    let deleted = node.sh("podswarmctl delete -f /root/app.yaml");
    assert!(deleted.contains("deployment/hello deleted"), "{deleted}");
    node.wait_for("the pod to be gone", Duration::from_secs(60), || {
        pods(&node).is_empty()
    });
    // Deletion is asynchronous, as in Kubernetes: the units stop within the grace period, then
    // leave no trace in systemctl.
    node.wait_for(
        "the units to stop and disappear",
        Duration::from_secs(60),
        || {
            !node
                .sh("systemctl list-units --no-legend --plain 'podswarm-default_*'")
                .contains("podswarm-default_")
        },
    );
    // The files go in the pass after the stops (unit files outlive their stop jobs).
    node.wait_for(
        "only the network unit to remain",
        Duration::from_secs(30),
        || node.sh("ls /etc/containers/systemd/podswarm/").trim() == "podswarm.network",
    );
    let units = node.sh("systemctl list-units --no-legend --plain 'podswarm-*'");
    assert!(!units.contains(&unit), "{units}");
}

fn reloads_metric(node: &Node) -> u64 {
    let text = node.sh("curl -sf --unix-socket /run/podswarm/api.sock http://localhost/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("podswarm_systemd_reloads_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// Reload requests PID 1 logged from podswarmd since `cursor`.
fn reloads_in_journal(node: &Node, cursor: &str) -> usize {
    let out = node.sh(&format!(
        "journalctl --no-pager -o cat --after-cursor='{cursor}' _PID=1"
    ));
    out.lines()
        .filter(|l| {
            l.starts_with("Reload requested from client PID") && l.contains("('podswarmd')")
        })
        .count()
}

#[test]
fn fifty_pods_cost_one_reload() {
    if nodes_or_skip("fifty_pods_cost_one_reload").is_none() {
        return;
    }
    let node = Node::boot("batch", &BootOptions::default());
    node.import_busybox();
    node.install_podswarm();
    node.wait_for("the first pass", Duration::from_secs(30), || {
        reloads_metric(&node) != u64::MAX
    });
    let before = reloads_metric(&node);
    let cursor = node
        .sh("journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'")
        .trim()
        .to_owned();
    node.write(
        "/root/batch.yaml",
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: batch}\nspec:\n  replicas: 50\n  selector: {matchLabels: {app: batch}}\n  template:\n    metadata: {labels: {app: batch}}\n    spec:\n      containers:\n      - {name: c, image: localhost/busybox:latest, imagePullPolicy: Never, command: [/bin/sleep, '3600']}\n",
    );
    node.sh("podswarmctl apply -f /root/batch.yaml");
    node.wait_for("50 running pods", Duration::from_secs(240), || {
        pods(&node)
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 50
    });
    assert_eq!(
        reloads_metric(&node) - before,
        1,
        "podswarmd reloaded more than once for one batch"
    );
    assert_eq!(
        reloads_in_journal(&node, &cursor),
        1,
        "PID 1 saw more than one reload request from podswarmd"
    );
    let active = node
        .sh("systemctl list-units --no-legend --plain --state=active 'podswarm-default_batch-*'");
    assert_eq!(active.lines().count(), 50, "{active}");
}
