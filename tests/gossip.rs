//! Real podswarm-gossip processes on loopback addresses (127.N.0.x, one N per test so tests can
//! run in parallel), driven through their control sockets the way podswarmd and podswarmctl drive
//! them: joining by token, convergence, failure detection, restarts, leaving, token rotation, and
//! packets that must be dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podswarm_cluster::{ClusterKey, Hlc, Kind, Sealer};
use podswarm_gossip::Counters;
use podswarm_gossip::control::chain;
use podswarm_gossip::control::client::{Client, ClientError, FailureKind, Response, Status};
use podswarm_gossip::control::protocol::MAX_REQUEST;
use podswarm_tests::node::workspace_binary;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

struct Gossip {
    name: String,
    dir: PathBuf,
    ip: Ipv4Addr,
    child: Option<Child>,
}

impl Gossip {
    fn start(root: &Path, net: u8, n: u8) -> Gossip {
        let name = format!("n{n}");
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut g = Gossip {
            name,
            dir,
            ip: Ipv4Addr::new(127, net, 0, n),
            child: None,
        };
        g.spawn();
        g
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("gossip.sock")
    }

    fn spawn(&mut self) {
        let config = self.dir.join("podswarm.toml");
        std::fs::write(
            &config,
            format!(
                "node_name = \"{}\"\n[paths]\nstate_dir = \"{}\"\n[cluster]\nlisten = \"{}:7946\"\nadvertise_addr = \"{}\"\nsocket = \"{}\"\nkey_dir = \"{}\"\nsync_interval_ms = 300\nprobe_period_ms = 200\n",
                self.name,
                self.dir.join("state").display(),
                self.ip,
                self.ip,
                self.socket().display(),
                self.dir.join("keys").display(),
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::File::create(self.dir.join("log")).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(workspace_binary("podswarm-gossip"))
            .arg("--config")
            .arg(&config)
            .env("PODSWARM_LOG", "info,podswarm_gossip=debug")
            .env_remove("INVOCATION_ID")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("podswarm-gossip: {e}"));
        self.child = Some(child);
    }

    fn client(&self) -> Client {
        Client::new(self.socket())
    }

    /// `result`, or a panic that shows what failed and the node's log.
    fn ok<T>(&self, what: &str, result: Result<T, ClientError>) -> T {
        result.unwrap_or_else(|e| panic!("{} {what}: {}\n{}", self.name, chain(&e), self.log()))
    }

    async fn ready(&self) {
        wait_for(&format!("{} ready", self.name), || async {
            self.client().status().await.is_ok()
        })
        .await;
    }

    async fn status(&self) -> Status {
        self.ok("status", self.client().status().await)
    }

    async fn members(&self) -> Vec<String> {
        let mut addresses: Vec<String> = self
            .status()
            .await
            .members
            .iter()
            .map(|m| m.address.to_string())
            .collect();
        addresses.sort();
        addresses
    }

    async fn value(&self, key: &str) -> Option<Value> {
        let items = self.ok(key, self.client().get(key).await);
        items.into_iter().find(|i| i.key == key).map(|i| i.value)
    }

    async fn put(&self, key: &str, value: Value) -> Hlc {
        self.ok(key, self.client().put(key, value).await)
    }

    async fn delete(&self, key: &str) -> Hlc {
        self.ok(key, self.client().delete(key).await)
    }

    async fn token(&self, rotate: bool) -> String {
        self.ok("join-token", self.client().join_token(rotate).await)
    }

    async fn join(&self, via: &Gossip, token: &str) -> Result<u64, ClientError> {
        self.client().join(&via.ip.to_string(), token, None).await
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip.into(), 7946)
    }

    fn key(&self) -> ClusterKey {
        let text = std::fs::read_to_string(self.dir.join("keys/cluster.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        ClusterKey::from_hex(v["key"].as_str().unwrap_or("")).unwrap_or_else(|| panic!("no key"))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Gossip {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn cluster(root: &Path, net: u8, n: u8) -> Vec<Gossip> {
    let nodes: Vec<Gossip> = (1..=n).map(|i| Gossip::start(root, net, i)).collect();
    for g in &nodes {
        g.ready().await;
    }
    let token = nodes[0].token(false).await;
    for (i, g) in nodes.iter().enumerate().skip(1) {
        // Any member admits: each node joins through the one before it.
        let joined = g.join(&nodes[i - 1], &token).await;
        g.ok("join", joined);
    }
    for g in &nodes {
        wait_for(&format!("{} sees every member", g.name), || async {
            g.members().await.len() == usize::from(n) - 1
        })
        .await;
    }
    nodes
}

async fn converged(nodes: &[&Gossip]) {
    wait_for("equal state on every node", || async {
        let mut prints = Vec::new();
        for g in nodes {
            prints.push(g.status().await.fingerprint);
        }
        prints.windows(2).all(|w| w[0] == w[1])
    })
    .await;
}

#[tokio::test]
async fn three_nodes_join_by_token_and_every_write_reaches_every_node() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = cluster(root.path(), 31, 3).await;
    let clusters: Vec<u64> = futures(nodes.iter().map(|g| g.status()))
        .await
        .into_iter()
        .map(|s| s.cluster)
        .collect();
    assert!(
        clusters.windows(2).all(|w| w[0] == w[1]),
        "one cluster: {clusters:?}"
    );

    let small = nodes[0]
        .put("objects/default/Service/small", json!({"port": 80}))
        .await;
    // Too big for a UDP packet: travels as a hint and is pulled.
    let big = "x".repeat(20_000);
    nodes[2]
        .put("objects/default/ConfigMap/big", json!({"data": big}))
        .await;
    let deleted = nodes[1].delete("objects/default/Service/small").await;
    // Versions come back typed; each names the node that wrote it.
    assert_eq!(small.node, nodes[0].status().await.node_id);
    assert_eq!(deleted.node, nodes[1].status().await.node_id);
    converged(&nodes.iter().collect::<Vec<_>>()).await;
    for g in &nodes {
        assert_eq!(
            g.value("objects/default/Service/small").await,
            None,
            "{}",
            g.name
        );
        assert_eq!(
            g.value("objects/default/ConfigMap/big")
                .await
                .map(|v| v["data"].as_str().map(str::len)),
            Some(Some(20_000)),
            "{}",
            g.name
        );
        assert!(
            g.value("nodes/n1").await.is_some(),
            "{} knows node n1",
            g.name
        );
    }
}

/// Each node's podswarmd asks its podswarm-gossip to sign its certificate: both chain to the one
/// cluster CA whichever node signs, carry the node's own names whatever the request says, and
/// every node's `status` shows every node's expiry.
#[tokio::test]
async fn node_certificates_are_signed_by_the_cluster_ca_and_their_expiry_is_on_record() {
    use podswarm_cluster::ca::NodeRequest;
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = cluster(root.path(), 36, 3).await;
    let lifetime = Duration::from_secs(3600);
    let mut signed = Vec::new();
    for g in &nodes[..2] {
        // The request names another node: the CA holder sets the names, not the requester.
        let request = NodeRequest::generate("someone-else").unwrap_or_else(|e| panic!("{e}"));
        let cert = g.ok(
            "sign-node",
            g.client()
                .sign_node(
                    &request.csr_pem,
                    lifetime,
                    vec!["192.0.2.7".parse().unwrap()],
                )
                .await,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(cert.not_after.abs_diff(now + 3600) < 10, "{cert:?}");
        signed.push((g.name.clone(), cert));
    }
    assert_eq!(
        signed[0].1.ca, signed[1].1.ca,
        "one CA signs for every node"
    );
    let ca = podswarm_cluster::ca::fingerprint_of(&signed[0].1.ca).unwrap();
    assert_eq!(
        nodes[2].status().await.ca,
        Some(podswarm_cluster::ca::fingerprint_text(&ca))
    );
    for (name, cert) in &signed {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert.cert.as_bytes()).unwrap();
        let text = String::from_utf8_lossy(&der).into_owned();
        assert!(
            text.contains(name.as_str()),
            "{name}'s certificate names it"
        );
        assert!(
            !text.contains("someone-else"),
            "{name}'s certificate names the requester's choice"
        );
    }
    wait_for("every node's certificate expiry on every node", || async {
        let shown: Vec<String> = nodes[2]
            .status()
            .await
            .certificates
            .iter()
            .map(|c| c.node.clone())
            .collect();
        shown == ["n1", "n2"]
    })
    .await;
    // Not a request: refused with the reason, and nothing recorded.
    let refused = nodes[2]
        .client()
        .sign_node("not a request", lifetime, Vec::new())
        .await
        .map(|_| ())
        .map_err(|e| chain(&e));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("request is not valid")),
        "{refused:?}"
    );
}

async fn futures<T, F: std::future::Future<Output = T>>(fs: impl Iterator<Item = F>) -> Vec<T> {
    let mut out = Vec::new();
    for f in fs {
        out.push(f.await);
    }
    out
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_node_learns_nothing() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = Gossip::start(root.path(), 32, 1);
    let b = Gossip::start(root.path(), 32, 2);
    a.ready().await;
    b.ready().await;
    a.put("objects/default/Secret/s", json!({"data": "hidden"}))
        .await;
    let token = a.token(false).await;
    // Right cluster id, wrong secret.
    let (prefix, _) = token.rsplit_once('-').unwrap_or_else(|| panic!("{token}"));
    let wrong = format!("{prefix}-{}", "ab".repeat(32));
    let before = b.status().await.cluster;
    let err = b
        .join(&a, &wrong)
        .await
        .err()
        .unwrap_or_else(|| panic!("a wrong token joined"));
    assert_eq!(err.kind(), Some(FailureKind::JoinRefused), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("join refused") && text.contains("invalid join token"),
        "{text}"
    );
    let malformed = b
        .join(&a, "hello")
        .await
        .err()
        .unwrap_or_else(|| panic!("a malformed token joined"));
    assert_eq!(malformed.kind(), Some(FailureKind::Refused), "{malformed}");
    assert!(malformed.to_string().contains("PSWTKN-2-"), "{malformed}");
    let after = b.status().await;
    assert_eq!(after.cluster, before, "still its own cluster");
    assert_eq!(b.value("objects/default/Secret/s").await, None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(b.members().await.is_empty());
    assert!(a.members().await.is_empty());
    assert_eq!(a.status().await.metrics.joins_refused, 1);
}

/// A token pins the cluster CA: one whose fingerprint is not the CA the member presents (another
/// cluster's token, or a member impersonated) is refused by the joiner itself before it sends
/// anything sealed with the token's secret, and says which CA it saw; a token of the first
/// format, garbage and a truncated token are refused before anything is sent at all.
#[tokio::test]
async fn a_token_pinning_another_ca_sends_nothing() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let a = Gossip::start(root.path(), 32, 1);
    let b = Gossip::start(root.path(), 32, 2);
    let c = Gossip::start(root.path(), 32, 3);
    a.ready().await;
    b.ready().await;
    c.ready().await;
    // c's own cluster has another CA: its token, with a's cluster id and secret, pins that CA.
    let token = a.token(false).await;
    let other = c.token(false).await;
    let parts: Vec<&str> = token.split('-').collect();
    let other_ca = other.split('-').nth(3).unwrap_or_else(|| panic!("{other}"));
    let pinned_elsewhere = format!("PSWTKN-2-{}-{other_ca}-{}", parts[2], parts[4]);
    let before = b.status().await;
    let err = b
        .join(&a, &pinned_elsewhere)
        .await
        .err()
        .unwrap_or_else(|| panic!("a token pinning another CA joined"));
    let text = err.to_string();
    assert!(
        text.contains("presents the cluster CA sha256:")
            && text.contains(&format!("pins sha256:{other_ca}"))
            && text.contains("nothing was sent"),
        "{text}"
    );
    let after = b.status().await;
    assert_eq!(after.cluster, before.cluster, "still its own cluster");
    assert_eq!(
        after.metrics.join_requests_sent, 0,
        "nothing sealed was sent"
    );
    assert_eq!(after.metrics.join_ca_mismatches, 1);
    let member = a.status().await.metrics;
    assert_eq!((member.joins_refused, member.joins_admitted), (0, 0));

    for bad in [
        format!("PSWTKN-1-{}-{}", parts[2], parts[4]),
        "garbage".to_owned(),
        token[..token.len() - 3].to_owned(),
    ] {
        let err = b
            .join(&a, &bad)
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad} joined"));
        assert_eq!(err.kind(), Some(FailureKind::Refused), "{bad}: {err}");
    }
    assert_eq!(b.status().await.metrics.join_requests_sent, 0);

    // The right token still joins, having checked the CA.
    b.join(&a, &token)
        .await
        .unwrap_or_else(|e| panic!("the right token: {e}"));
    assert_eq!(b.status().await.metrics.join_requests_sent, 1);
}

#[tokio::test]
async fn forged_tampered_and_replayed_packets_are_dropped_and_counted() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = cluster(root.path(), 33, 2).await;
    let target = nodes[0].addr();
    let udp = std::net::UdpSocket::bind("127.33.0.9:0").unwrap_or_else(|e| panic!("{e}"));
    let metric = async |pick: fn(&Counters) -> u64| pick(&nodes[0].status().await.metrics);
    let unauthenticated = |c: &Counters| c.dropped_unauthenticated;
    let replayed = |c: &Counters| c.dropped_replayed;

    let forged_before = metric(unauthenticated).await;
    let outsider = Sealer::new(&ClusterKey::generate(), 99);
    udp.send_to(&outsider.seal(Kind::Swim, b"let me in"), target)
        .unwrap_or_else(|e| panic!("{e}"));
    let insider = Sealer::new(&nodes[0].key(), 98);
    let mut tampered = insider.seal(Kind::Swim, b"payload");
    let last = tampered.len() - 1;
    tampered[last] ^= 0x40;
    udp.send_to(&tampered, target)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("two unauthenticated drops", || async {
        metric(unauthenticated).await >= forged_before + 2
    })
    .await;

    let replayed_before = metric(replayed).await;
    let packet = insider.seal(Kind::Swim, b"not a swim message");
    udp.send_to(&packet, target)
        .unwrap_or_else(|e| panic!("{e}"));
    udp.send_to(&packet, target)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("a replay drop", || async {
        metric(replayed).await == replayed_before + 1
    })
    .await;

    // The cluster is unaffected.
    assert_eq!(nodes[0].members().await, [nodes[1].addr().to_string()]);
}

/// Issue 11, fault 7: a bounded flood of random bytes at the gossip port, UDP and TCP (3000
/// datagrams at about 2000/s, 100 connections of 4 KiB each): nothing is accepted, the drop
/// counters rise, membership is unaffected, and a write still reaches the other node.
#[tokio::test]
async fn a_flood_of_random_udp_and_tcp_is_dropped_and_membership_holds() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = cluster(root.path(), 37, 2).await;
    let target = nodes[0].addr();
    let dropped =
        |c: &Counters| c.dropped_unauthenticated + c.dropped_malformed + c.dropped_replayed;
    let before = dropped(&nodes[0].status().await.metrics);
    // xorshift: reproducible noise without a dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = move |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let udp = std::net::UdpSocket::bind("127.37.0.9:0").unwrap_or_else(|e| panic!("{e}"));
    for i in 0..3000_usize {
        let len = 1 + (i * 7919) % 1400;
        let _ = udp.send_to(&noise(len), target);
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let garbage: Vec<Vec<u8>> = (0..100).map(|_| noise(4096)).collect();
    futures(garbage.into_iter().map(|bytes| async move {
        use tokio::io::AsyncWriteExt;
        if let Ok(Ok(mut s)) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(target),
        )
        .await
        {
            let _ = s.write_all(&bytes).await;
            let _ = s.shutdown().await;
        }
    }))
    .await;
    // The kernel may drop datagrams it cannot queue; most arrive and are counted.
    wait_for("the random datagrams counted as dropped", || async {
        dropped(&nodes[0].status().await.metrics) >= before + 1500
    })
    .await;
    let after = dropped(&nodes[0].status().await.metrics) - before;
    println!(
        "3000 random datagrams and 100 random TCP streams: {after} packets dropped and counted"
    );
    assert_eq!(nodes[0].members().await, [nodes[1].addr().to_string()]);
    assert_eq!(nodes[1].members().await, [nodes[0].addr().to_string()]);
    nodes[0].put("flood/after", json!("still here")).await;
    wait_for("the write after the flood on the other node", || async {
        nodes[1].value("flood/after").await == Some(json!("still here"))
    })
    .await;
}

#[tokio::test]
async fn a_killed_node_is_detected_and_catches_up_after_restart_without_resurrecting_deletes() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut nodes = cluster(root.path(), 34, 3).await;
    nodes[0]
        .put("objects/default/Pod/old", json!({"v": 1}))
        .await;
    converged(&nodes.iter().collect::<Vec<_>>()).await;

    nodes[2].kill();
    let dead = nodes[2].addr().to_string();
    wait_for("n1 declares n3 down", || async {
        !nodes[0].members().await.contains(&dead)
    })
    .await;
    // The journal line names the node, not only its SWIM identity.
    wait_for("n1 logs which member went down", || async {
        nodes[0].log().contains(&format!("member n3 ({dead}) down"))
    })
    .await;

    nodes[0].delete("objects/default/Pod/old").await;
    nodes[1]
        .put("objects/default/Pod/new", json!({"v": 2}))
        .await;

    nodes[2].spawn();
    nodes[2].ready().await;
    wait_for("n3 is back", || async {
        nodes[0].members().await.contains(&dead)
    })
    .await;
    converged(&nodes.iter().collect::<Vec<_>>()).await;
    for g in &nodes {
        assert_eq!(g.value("objects/default/Pod/old").await, None, "{}", g.name);
        assert_eq!(
            g.value("objects/default/Pod/new").await,
            Some(json!({"v": 2})),
            "{}",
            g.name
        );
    }
}

#[tokio::test]
async fn leaving_and_rotating_the_token() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = cluster(root.path(), 35, 3).await;
    let old = nodes[0].token(false).await;

    let cluster_id = nodes[0].status().await.cluster;
    let left = nodes[2].ok("leave", nodes[2].client().leave().await);
    assert_ne!(
        left, cluster_id,
        "a node that left is in a cluster of its own"
    );
    assert_eq!(nodes[2].status().await.cluster, left);
    let gone = nodes[2].addr().to_string();
    for g in &nodes[..2] {
        wait_for(&format!("{} drops n3", g.name), || async {
            !g.members().await.contains(&gone) && g.value("nodes/n3").await.is_none()
        })
        .await;
    }

    let new = nodes[1].token(true).await;
    assert_ne!(old, new);
    converged(&[&nodes[0], &nodes[1]]).await;
    let err = nodes[2]
        .join(&nodes[0], &old)
        .await
        .err()
        .unwrap_or_else(|| panic!("the rotated-out token still works"));
    assert!(err.to_string().contains("invalid join token"), "{err}");
    let joined = nodes[2].join(&nodes[0], &new).await;
    assert_eq!(nodes[2].ok("join", joined), cluster_id);
    wait_for("n3 is a member again", || async {
        nodes[0].members().await.contains(&gone)
    })
    .await;
}

/// What a hand-written client (`socat`, a script) gets for lines that are not requests: an answer
/// that says why, on a connection that still serves the next line.
#[tokio::test]
async fn lines_that_are_not_requests_are_answered_and_the_connection_goes_on() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let root = tempfile::tempdir().unwrap();
    let g = Gossip::start(root.path(), 36, 1);
    g.ready().await;
    let stream = tokio::net::UnixStream::connect(g.socket()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut answers = BufReader::new(read).lines();
    let mut next = async |line: &[u8]| -> Response {
        write.write_all(line).await.unwrap();
        let answer = answers.next_line().await.unwrap().unwrap();
        serde_json::from_str(&answer).unwrap()
    };
    let refused = |r: Response| match r {
        Response::Error(f) if f.kind == FailureKind::BadRequest => f.message,
        other => panic!("{other:?}"),
    };

    let unknown = refused(next(b"{\"op\":\"frobnicate\",\"key\":\"k\"}\n").await);
    assert!(
        unknown.contains("unknown variant `frobnicate`"),
        "{unknown}"
    );
    let mut long = br#"{"op":"put","key":"objects/long","value":""#.to_vec();
    long.resize(MAX_REQUEST + 1, b'x');
    long.extend_from_slice(b"\"}\n");
    let too_long = refused(next(&long).await);
    assert_eq!(
        too_long,
        format!("bad request: a line longer than {MAX_REQUEST} bytes")
    );
    let Response::Stored { version } =
        next(b"{\"op\":\"put\",\"key\":\"objects/short\",\"value\":1}\n").await
    else {
        panic!("the next request is served");
    };
    assert_eq!(version.node, g.status().await.node_id);
    assert_eq!(g.value("objects/long").await, None);
    assert_eq!(g.value("objects/short").await, Some(json!(1)));
}
