//! Secure by default, on three booted nodes: the TCP API answers only HTTPS with a certificate
//! from the cluster CA; a kubeconfig from `token create --kubeconfig` works from another machine
//! while one naming another cluster's CA, or a broken one, fails saying why; a pod's logs come
//! from the node that runs it over mTLS, and go on streaming while both nodes renew their
//! (here one-minute) certificates; a client certificate from another CA is refused; and a flood
//! of half-open connections leaves the API answering, its memory bounded.

use std::time::Duration;

use podswarm_cluster::ca::{ClusterCa, NodeRequest};
use podswarm_tests::node::{BootOptions, Bridge, Node, form_cluster, nodes_or_skip};
use serde_json::Value;

const SUBNET: &str = "10.94.0";

/// Lifetime of the nodes' certificates: renewed every 40 s.
const LIFETIME_S: u64 = 60;

/// A pod on `node` that prints a numbered line every half second.
fn ticker(node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: ticker}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: tick
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: [/bin/sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done']
"
    )
}

/// `node`'s certificate expiry as `cluster status -o json` on `on` shows it.
fn expiry(on: &Node, node: &str) -> Option<u64> {
    let status: Value =
        serde_json::from_str(&on.sh("podswarmctl cluster status -o json")).unwrap_or_default();
    status["certificates"]
        .as_array()?
        .iter()
        .find(|c| c["node"] == node)?["notAfter"]
        .as_u64()
}

#[test]
fn the_api_is_https_with_the_cluster_ca_and_nodes_talk_mtls() {
    if nodes_or_skip("the_api_is_https_with_the_cluster_ca_and_nodes_talk_mtls").is_none() {
        return;
    }
    let bridge = Bridge::create(&format!("pswtl{}", std::process::id() % 100_000));
    let options = BootOptions {
        bridge: Some(bridge.name.clone()),
    };
    let nodes: Vec<Node> = ["t1", "t2", "t3"]
        .iter()
        .map(|n| Node::boot(n, &options))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.set_address(&format!("{SUBNET}.{}/24", i + 1));
        node.import_busybox();
        node.write(
            "/etc/podswarm/podswarm.toml",
            format!("[api]\ncertificate_lifetime_s = {LIFETIME_S}\n").as_bytes(),
        );
        node.install_podswarm();
    }
    let (t1, t2, t3) = (&nodes[0], &nodes[1], &nodes[2]);
    form_cluster(&nodes, &format!("{SUBNET}.1"));
    for node in [t1, t2, t3] {
        node.wait_for("all three nodes ready", Duration::from_secs(90), || {
            podswarm_tests::ctl::ready_nodes(node) == ["t1", "t2", "t3"]
        });
    }
    let t1_api = format!("{SUBNET}.1:8080");

    // Plain HTTP gets no HTTP answer (only a TLS alert, which curl takes for HTTP/0.9 bytes).
    let (ok, plain) = t2.try_sh(&format!("curl -sS -i -m 5 http://{t1_api}/api/v1/pods"));
    assert!(
        !ok && !plain.contains("HTTP/1") && !plain.contains("items"),
        "plain HTTP answered: {plain}"
    );

    // A kubeconfig made on t1 works from t2, as any machine's podswarmctl would use it.
    let made = t1.sh("podswarmctl token create --description tls --kubeconfig /root/kc 2>&1");
    assert!(made.contains("/root/kc"), "{made}");
    let kubeconfig = t1.sh("cat /root/kc");
    assert!(
        kubeconfig.contains(&format!("server: https://{t1_api}")),
        "{kubeconfig}"
    );
    t2.write("/root/kc", kubeconfig.as_bytes());
    // (`sh` fails the test on a failed command.)
    t2.sh("podswarmctl --kubeconfig /root/kc get pods");
    let nodes_via_t1 = t2.sh("podswarmctl --kubeconfig /root/kc get nodes");
    assert!(
        ["t1", "t2", "t3"].iter().all(|n| nodes_via_t1.contains(n)),
        "{nodes_via_t1}"
    );
    // Any node's API, with the same CA and token.
    let via_t3 = t2.sh(&format!(
        "podswarmctl --kubeconfig /root/kc --server https://{SUBNET}.3:8080 get nodes"
    ));
    assert!(via_t3.contains("t1"), "{via_t3}");

    // curl with the CA from the kubeconfig and the token.
    let field = |name: &str| {
        t2.sh(&format!(
            "awk '/{name}:/ {{print $2}}' /root/kc | tr -d '\"' | head -1"
        ))
        .trim()
        .to_owned()
    };
    let (ca_data, token) = (field("certificate-authority-data"), field("token"));
    assert!(!ca_data.is_empty() && !token.is_empty(), "{kubeconfig}");
    t2.sh(&format!("echo {ca_data} | base64 -d > /root/ca.pem"));
    let pods = t2.sh(&format!(
        "curl -sS -f -m 5 --cacert /root/ca.pem -H 'Authorization: Bearer {token}' https://{t1_api}/api/v1/pods"
    ));
    assert!(pods.contains("\"items\""), "{pods}");
    // Without a token, and without a node certificate, a request is refused.
    let (_, anonymous) = t2.try_sh(&format!(
            "curl -sS -m 5 -o /dev/null -w '%{{http_code}}' --cacert /root/ca.pem https://{t1_api}/api/v1/pods"
        ),
    );
    assert_eq!(anonymous.trim(), "401");

    // Another cluster's CA: the certificate problem is named.
    let other = ClusterCa::generate(7).unwrap_or_else(|e| panic!("{e}"));
    t2.write("/root/other-ca.pem", other.cert_pem().as_bytes());
    t2.sh(
        "sed \"s|certificate-authority-data: .*|certificate-authority-data: $(base64 -w0 /root/other-ca.pem)|\" /root/kc > /root/kc-other",
    );
    let (ok, foreign) = t2.try_sh("podswarmctl --kubeconfig /root/kc-other get pods");
    assert!(
        !ok && foreign.contains("certificate") && !foreign.contains("NAME"),
        "{foreign}"
    );
    // A CA that is not base64.
    t2.sh("sed 's|certificate-authority-data: .*|certificate-authority-data: not*base64|' /root/kc > /root/kc-bad");
    let (ok, bad) = t2.try_sh("podswarmctl --kubeconfig /root/kc-bad get pods");
    assert!(!ok && bad.contains("base64"), "{bad}");
    // A client certificate from another CA is refused at the handshake, token or not.
    let request = NodeRequest::generate("t1").unwrap_or_else(|e| panic!("{e}"));
    let stranger = other
        .sign_node(
            &request.csr_pem,
            "t1",
            &[],
            Duration::from_secs(3600),
            std::time::SystemTime::now(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    t2.write("/root/stranger.pem", stranger.cert_pem.as_bytes());
    t2.write("/root/stranger.key", request.key_pem.as_bytes());
    let (ok, refused) = t2.try_sh(&format!(
            "curl -sS -m 5 --cacert /root/ca.pem --cert /root/stranger.pem --key /root/stranger.key -H 'Authorization: Bearer {token}' https://{t1_api}/api/v1/pods"
        ),
    );
    assert!(!ok && !refused.contains("items"), "{refused}");

    // A pod's logs through t1 from t3 (mTLS between them), followed across both nodes'
    // certificate renewals without a break.
    t1.write("/root/ticker.yaml", ticker("t3").as_bytes());
    t1.sh("podswarmctl apply -f /root/ticker.yaml");
    t1.wait_for("the ticker running on t3", Duration::from_secs(90), || {
        podswarm_tests::ctl::running(t1)
            .iter()
            .any(|(pod, node, _)| pod == "ticker" && node == "t3")
    });
    let before = (expiry(t1, "t1"), expiry(t1, "t3"));
    assert!(
        before.0.is_some() && before.1.is_some(),
        "{}",
        t1.sh("podswarmctl cluster status")
    );
    t1.sh("nohup podswarmctl logs -f ticker > /root/follow 2>&1 & echo $! > /root/follow.pid");
    t1.wait_for("followed lines", Duration::from_secs(20), || {
        t1.sh("cat /root/follow").contains("tick")
    });
    // Past two thirds of the lifetime of both certificates, whenever they were signed.
    std::thread::sleep(Duration::from_secs(LIFETIME_S * 2 / 3 + 10));
    t1.wait_for(
        "renewed certificates on t1 and t3",
        Duration::from_secs(30),
        || {
            let now = (expiry(t1, "t1"), expiry(t1, "t3"));
            now.0 > before.0 && now.1 > before.1
        },
    );
    let followed = t1.sh("cat /root/follow");
    let ticks: Vec<u64> = followed
        .lines()
        .filter_map(|l| l.split("tick ").nth(1)?.trim().parse().ok())
        .collect();
    assert!(
        t1.exec(&["sh", "-c", "kill -0 $(cat /root/follow.pid)"])
            .status
            .success(),
        "logs -f ended: {followed}"
    );
    // Every tick from the first followed on, none missing: the stream never broke.
    assert!(ticks.len() > 80, "{} ticks: {followed}", ticks.len());
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in the followed lines: {followed}"
    );
    t1.sh("kill $(cat /root/follow.pid)");

    // A flood of 1,000 half-open connections from t2; then t1's API answers again.
    let idle = t1.unit_rss_kib("podswarm.service");
    t2.sh(&format!(
        "nohup bash -c 'ulimit -n 4096; for i in $(seq 1000); do exec {{fd}}<>/dev/tcp/{SUBNET}.1/8080 || true; done; sleep 8' >/dev/null 2>&1 & echo $! > /root/flood.pid"
    ));
    std::thread::sleep(Duration::from_secs(5));
    let flooded = t1.unit_rss_kib("podswarm.service");
    let open = t1.sh("ss -Htn state established '( sport = :8080 )' | wc -l");
    println!(
        "handshake flood: podswarmd RSS {idle} KiB idle, {flooded} KiB under 1,000 half-open connections ({} established)",
        open.trim()
    );
    t2.wait_for("the flood to end", Duration::from_secs(30), || {
        !t2.exec(&["sh", "-c", "kill -0 $(cat /root/flood.pid)"])
            .status
            .success()
    });
    let after = t2.sh(&format!(
        "curl -sS -f -m 5 --cacert /root/ca.pem -H 'Authorization: Bearer {token}' https://{t1_api}/api/v1/health"
    ));
    assert!(!after.is_empty(), "the API did not answer after the flood");
    assert!(
        flooded < idle + 64 * 1024,
        "podswarmd grew from {idle} KiB to {flooded} KiB under the flood"
    );

    // Plain HTTP only by an explicit setting, which --validate warns about.
    t1.write(
        "/root/insecure.toml",
        b"[api]\ninsecure_plain_http = true\n",
    );
    let (ok, validated) = t1.try_sh("podswarmd --config /root/insecure.toml --validate");
    assert!(
        ok && validated.contains("warning") && validated.contains("insecure_plain_http"),
        "{validated}"
    );
}
