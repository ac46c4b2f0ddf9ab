//! kubectl against a booted three-node cluster, as a Kubernetes user meets podswarm: a
//! kubeconfig from `podswarmctl token create --kubeconfig` on kc1, pointed at kc2, used from kc3
//! by each kubectl client the suite has (`PODSWARM_KUBECTLS`: the one on PATH and the newest,
//! copied into the node). Objects written through kc1 are read through kc2; pods run on all three
//! nodes; logs come from the node that runs the pod; a watch sees a pod another node starts;
//! the corpus's guestbook (its images swapped for the local busybox, which no registry is needed
//! for) is applied, rolled out and deleted through kubectl alone.

use std::time::Duration;

use podswarm_tests::node::{BootOptions, Bridge, Node, form_cluster, nodes_or_skip};

const SUBNET: &str = "10.92.0";

/// Three pods that print a numbered line every half second, one per node (podswarm spreads a
/// Deployment's pods).
const TICKER: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: ticker}
spec:
  replicas: 3
  selector: {matchLabels: {app: ticker}}
  template:
    metadata: {labels: {app: ticker}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: tick
        image: localhost/busybox:latest
        imagePullPolicy: Never
        command: [/bin/sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done']
";

/// The corpus's guestbook with every image the local busybox, sleeping (it has no redis or
/// PHP): what kubectl sends is the corpus's own manifest otherwise.
fn guestbook() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/guestbook-all-in-one.yaml"
    );
    let original = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = String::new();
    for line in original.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("image:") {
            let indent = &line[..line.len() - trimmed.len()];
            assert!(!rest.trim().is_empty(), "{line}");
            out.push_str(&format!(
                "{indent}image: localhost/busybox:latest\n{indent}imagePullPolicy: Never\n{indent}command: [/bin/sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The kubectl clients to run, as `ctl/tests/kubectl.rs` reads them.
fn clients() -> Vec<std::path::PathBuf> {
    let list = std::env::var("PODSWARM_KUBECTLS").unwrap_or_default();
    let from_path = std::process::Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|p| !p.is_empty());
    if list.is_empty() {
        from_path.into_iter().map(Into::into).collect()
    } else {
        list.split(':').map(Into::into).collect()
    }
}

#[test]
fn kubectl_drives_a_three_node_cluster() {
    if nodes_or_skip("kubectl_drives_a_three_node_cluster").is_none() {
        return;
    }
    let clients = clients();
    if clients.is_empty() {
        assert!(
            std::env::var("PODSWARM_REQUIRE_NODES").as_deref() != Ok("1"),
            "no kubectl: tests/setup.sh installs one"
        );
        println!("SKIPPED kubectl_drives_a_three_node_cluster: no kubectl");
        return;
    }
    let bridge = Bridge::create(&format!("pswkc{}", std::process::id() % 100_000));
    let options = BootOptions {
        bridge: Some(bridge.name.clone()),
    };
    let nodes: Vec<Node> = ["kc1", "kc2", "kc3"]
        .iter()
        .map(|n| Node::boot(n, &options))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.set_address(&format!("{SUBNET}.{}/24", i + 1));
        node.import_busybox();
        node.install_podswarm();
    }
    // k2 serves the API kubectl talks to; k1 is written through, k3 runs kubectl.
    let (k1, k3) = (&nodes[0], &nodes[2]);
    form_cluster(&nodes, &format!("{SUBNET}.1"));
    for node in &nodes {
        node.wait_for("all three nodes ready", Duration::from_secs(90), || {
            podswarm_tests::ctl::ready_nodes(node) == ["kc1", "kc2", "kc3"]
        });
    }

    // The kubeconfig k1 hands out, pointed at k2, on k3.
    k1.sh("podswarmctl token create --description kubectl --kubeconfig /root/kc");
    let kubeconfig = k1.sh("cat /root/kc").replace(
        &format!("https://{SUBNET}.1:8080"),
        &format!("https://{SUBNET}.2:8080"),
    );
    assert!(
        kubeconfig.contains(&format!("https://{SUBNET}.2:8080")),
        "{kubeconfig}"
    );
    k3.write("/root/kc", kubeconfig.as_bytes());
    k3.write("/root/guestbook.yaml", guestbook().as_bytes());

    // Written through k1.
    k1.write("/root/ticker.yaml", TICKER.as_bytes());
    k1.sh("podswarmctl apply -f /root/ticker.yaml");

    for (n, client) in clients.iter().enumerate() {
        let kubectl = format!("/usr/local/bin/kubectl-{n}");
        k3.install(client, &kubectl, 0o755);
        let k =
            |args: &str| format!("{kubectl} --kubeconfig /root/kc --request-timeout=30s {args}");
        let version = k3.sh(&format!("{kubectl} version --client -o json"));
        println!(
            "kubectl {client:?}: {}",
            version
                .lines()
                .find(|l| l.contains("gitVersion"))
                .unwrap_or_default()
                .trim()
        );

        // The ticker's pods, on all three nodes, Running, read through k2.
        let mut wide = String::new();
        k3.wait_for(
            "three ticker pods Running on kc1, kc2, kc3",
            Duration::from_secs(120),
            || {
                wide = k3
                    .try_sh(&k("get pods -l app=ticker -o wide --no-headers"))
                    .1;
                let running: Vec<&str> = wide.lines().filter(|l| l.contains(" Running ")).collect();
                running.len() == 3
                    && ["kc1", "kc2", "kc3"]
                        .iter()
                        .all(|n| running.iter().any(|l| l.contains(&format!(" {n} "))))
            },
        );
        let pod_on = |node: &str| -> String {
            wide.lines()
                .find(|l| l.contains(&format!(" {node} ")))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_default()
                .to_owned()
        };

        // Events through k2, of pods that k1 placed and k1 and k3 run: k2 saw them start.
        let mut events = String::new();
        k3.wait_for("k2's events of the ticker", Duration::from_secs(60), || {
            events = k3.try_sh(&k("get events")).1;
            events.contains("Started container tick") && events.contains("ScalingReplicaSet")
        });

        // Logs of a pod on k3 through k2's API, followed: k2 proxies to k3.
        let on_k3 = pod_on("kc3");
        let (_, followed) = k3.try_sh(&format!("timeout 4 {}", k(&format!("logs -f {on_k3}"))));
        let ticks = followed.lines().filter(|l| l.starts_with("tick ")).count();
        assert!(
            ticks >= 4,
            "kubectl logs -f {on_k3} through k2:\n{followed}"
        );
        let tail = k3.sh(&k(&format!("logs --tail=2 {}", pod_on("kc1"))));
        assert_eq!(
            tail.lines().filter(|l| l.starts_with("tick ")).count(),
            2,
            "{tail}"
        );
        // `--timestamps` and `--previous` from kc1's real journal: its pod restarted (a new
        // container, as every start of the unit runs one) counts from 0 again, and the lines
        // of the instance before are the previous ones.
        let on_k1 = pod_on("kc1");
        let stamped = k3.sh(&k(&format!("logs --timestamps --tail=1 {on_k1}")));
        assert!(
            stamped.starts_with("20") && stamped.contains("Z tick "),
            "kubectl logs --timestamps:\n{stamped}"
        );
        k1.sh(&format!(
            "systemctl restart podswarm-default_{on_k1}.service"
        ));
        let mut previous = String::new();
        k3.wait_for(
            "the log of the pod's instance before its restart",
            Duration::from_secs(60),
            || {
                previous = k3.try_sh(&k(&format!("logs --previous {on_k1}"))).1;
                previous.lines().any(|l| l == "tick 0")
                    && previous.lines().filter(|l| l.starts_with("tick ")).count() >= 4
            },
        );

        // A watch through k2 sees the pod a scale through k1 starts, wherever it runs.
        k3.sh(&format!(
            "nohup sh -c '{}' > /root/watch 2>&1 & echo $! > /root/watch.pid",
            k("get pods -l app=ticker -w --watch-only --request-timeout=60s")
        ));
        std::thread::sleep(Duration::from_secs(2));
        k1.sh("podswarmctl scale deploy/ticker --replicas 4");
        let first: Vec<String> = wide
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        k3.wait_for(
            "the watch to show a fourth ticker pod",
            Duration::from_secs(60),
            || {
                k3.sh("cat /root/watch").lines().any(|l| {
                    l.split_whitespace()
                        .next()
                        .is_some_and(|p| p.starts_with("ticker-") && !first.iter().any(|f| f == p))
                        && l.contains("Running")
                })
            },
        );
        k3.sh("kill $(cat /root/watch.pid) || true");
        let scaled = k3.sh(&k("scale deployment ticker --replicas=3"));
        assert!(scaled.contains("scaled"), "{scaled}");
        let status = k3.sh(&k("rollout status deployment/ticker --timeout=120s"));
        assert!(status.contains("successfully rolled out"), "{status}");

        // The corpus's guestbook through kubectl alone: applied with default validation,
        // unchanged when applied again, applied server-side, rolled out, described, deleted.
        let applied = k3.sh(&k("apply -f /root/guestbook.yaml"));
        assert!(
            applied.contains("deployment.apps/frontend created"),
            "{applied}"
        );
        let again = k3.sh(&k("apply -f /root/guestbook.yaml"));
        assert!(
            again.contains("deployment.apps/frontend unchanged"),
            "{again}"
        );
        // Then server-side: kubectl takes over client-side apply's fields (its migration's
        // patches too go through this node's API).
        let server_side = k3.sh(&k("apply --server-side -f /root/guestbook.yaml"));
        assert!(
            server_side.contains("deployment.apps/frontend serverside-applied"),
            "{server_side}"
        );
        let managers = k3.sh(&k(
            "get deployment frontend --show-managed-fields -o jsonpath='{.metadata.managedFields[*].manager}'",
        ));
        assert!(
            managers.contains("kubectl") && !managers.contains("kubectl-client-side-apply"),
            "{managers}"
        );
        for deployment in ["redis-master", "redis-replica", "frontend"] {
            let status = k3.sh(&k(&format!(
                "rollout status deployment/{deployment} --timeout=180s"
            )));
            assert!(
                status.contains("successfully rolled out"),
                "{deployment}: {status}"
            );
        }
        let described = k3.sh(&k("describe deployment frontend"));
        assert!(
            described.contains("3 desired") || described.contains("Replicas:"),
            "{described}"
        );
        let node = k3.sh(&k("describe node kc3"));
        assert!(node.contains("Ready") && node.contains("kc3"), "{node}");
        let (ok, deleted) = k3.try_sh(&k("delete -f /root/guestbook.yaml"));
        assert!(
            ok && deleted.contains("deployment.apps \"frontend\" deleted"),
            "{deleted}"
        );
        let left = k3.sh(&k("get deployments -o name"));
        assert!(
            !left.contains("frontend") && left.contains("ticker"),
            "{left}"
        );
        // Written through k2, seen through k1's own API.
        assert!(!podswarm_tests::ctl::deployments(k1).contains_key("frontend"));
    }
    drop(bridge);
}
