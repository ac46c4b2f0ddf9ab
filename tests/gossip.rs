//! Real podswarm-gossip processes on loopback addresses (127.N.0.x, one N per test so tests can
//! run in parallel), driven through their control sockets the way podswarmd and podswarmctl drive
//! them: joining by token, convergence, failure detection, restarts, leaving, token rotation, and
//! packets that must be dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podswarm_cluster::{ClusterKey, Kind, Sealer};
use podswarm_gossip::control::client::request;
use podswarm_tests::node::workspace_binary;
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

    async fn call(&self, body: Value) -> Result<Value, String> {
        request(&self.socket(), &body)
            .await
            .map_err(|e| e.to_string())
    }

    async fn ok(&self, body: Value) -> Value {
        match self.call(body.clone()).await {
            Ok(v) => v,
            Err(e) => panic!("{} {body}: {e}\n{}", self.name, self.log()),
        }
    }

    async fn ready(&self) {
        wait_for(&format!("{} ready", self.name), || async {
            self.call(json!({"op": "status"})).await.is_ok()
        })
        .await;
    }

    async fn status(&self) -> Value {
        self.ok(json!({"op": "status"})).await
    }

    async fn members(&self) -> Vec<String> {
        let s = self.status().await;
        let mut names: Vec<String> = s["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["address"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    async fn value(&self, key: &str) -> Option<Value> {
        let v = self.ok(json!({"op": "get", "prefix": key})).await;
        v["entries"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["key"] == key))
            .map(|e| e["value"].clone())
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
    let token = nodes[0].ok(json!({"op": "join-token"})).await["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (i, g) in nodes.iter().enumerate().skip(1) {
        // Any member admits: each node joins through the one before it.
        let via = nodes[i - 1].ip.to_string();
        g.ok(json!({"op": "join", "address": via, "token": token}))
            .await;
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
            prints.push(g.status().await["fingerprint"].clone());
        }
        prints.windows(2).all(|w| w[0] == w[1])
    })
    .await;
}

#[tokio::test]
async fn three_nodes_join_by_token_and_every_write_reaches_every_node() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = cluster(root.path(), 31, 3).await;
    let clusters: Vec<Value> = futures(nodes.iter().map(|g| g.status()))
        .await
        .into_iter()
        .map(|s| s["cluster"].clone())
        .collect();
    assert!(
        clusters.windows(2).all(|w| w[0] == w[1]),
        "one cluster: {clusters:?}"
    );

    nodes[0]
        .ok(json!({"op": "put", "key": "objects/default/Service/small", "value": {"port": 80}}))
        .await;
    // Too big for a UDP packet: travels as a hint and is pulled.
    let big = "x".repeat(20_000);
    nodes[2]
        .ok(json!({"op": "put", "key": "objects/default/ConfigMap/big", "value": {"data": big}}))
        .await;
    nodes[1]
        .ok(json!({"op": "delete", "key": "objects/default/Service/small"}))
        .await;
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

async fn futures<F: std::future::Future<Output = Value>>(
    fs: impl Iterator<Item = F>,
) -> Vec<Value> {
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
    a.ok(json!({"op": "put", "key": "objects/default/Secret/s", "value": {"data": "hidden"}}))
        .await;
    let token = a.ok(json!({"op": "join-token"})).await["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Right cluster id, wrong secret.
    let (prefix, _) = token.rsplit_once('-').unwrap_or_else(|| panic!("{token}"));
    let wrong = format!("{prefix}-{}", "ab".repeat(32));
    let before = b.status().await["cluster"].clone();
    let err = b
        .call(json!({"op": "join", "address": a.ip.to_string(), "token": wrong}))
        .await
        .err()
        .unwrap_or_else(|| panic!("a wrong token joined"));
    assert!(
        err.contains("join refused") && err.contains("invalid join token"),
        "{err}"
    );
    let malformed = b
        .call(json!({"op": "join", "address": a.ip.to_string(), "token": "hello"}))
        .await
        .err()
        .unwrap_or_default();
    assert!(malformed.contains("PSWTKN-1-"), "{malformed}");
    let after = b.status().await;
    assert_eq!(after["cluster"], before, "still its own cluster");
    assert_eq!(b.value("objects/default/Secret/s").await, None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(b.members().await.is_empty());
    assert!(a.members().await.is_empty());
    assert_eq!(a.status().await["metrics"]["joinsRefused"], 1);
}

#[tokio::test]
async fn forged_tampered_and_replayed_packets_are_dropped_and_counted() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nodes = cluster(root.path(), 33, 2).await;
    let target = nodes[0].addr();
    let udp = std::net::UdpSocket::bind("127.33.0.9:0").unwrap_or_else(|e| panic!("{e}"));
    let metric = async |name: &str| {
        nodes[0].status().await["metrics"][name]
            .as_u64()
            .unwrap_or(0)
    };

    let forged_before = metric("droppedUnauthenticated").await;
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
        metric("droppedUnauthenticated").await >= forged_before + 2
    })
    .await;

    let replayed_before = metric("droppedReplayed").await;
    let packet = insider.seal(Kind::Swim, b"not a swim message");
    udp.send_to(&packet, target)
        .unwrap_or_else(|e| panic!("{e}"));
    udp.send_to(&packet, target)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("a replay drop", || async {
        metric("droppedReplayed").await == replayed_before + 1
    })
    .await;

    // The cluster is unaffected.
    assert_eq!(nodes[0].members().await, [nodes[1].addr().to_string()]);
}

#[tokio::test]
async fn a_killed_node_is_detected_and_catches_up_after_restart_without_resurrecting_deletes() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut nodes = cluster(root.path(), 34, 3).await;
    nodes[0]
        .ok(json!({"op": "put", "key": "objects/default/Pod/old", "value": {"v": 1}}))
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

    nodes[0]
        .ok(json!({"op": "delete", "key": "objects/default/Pod/old"}))
        .await;
    nodes[1]
        .ok(json!({"op": "put", "key": "objects/default/Pod/new", "value": {"v": 2}}))
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
    let old = nodes[0].ok(json!({"op": "join-token"})).await["token"].clone();

    let cluster_id = nodes[0].status().await["cluster"].clone();
    let left = nodes[2].ok(json!({"op": "leave"})).await;
    assert_ne!(
        left["cluster"], cluster_id,
        "a node that left is in a cluster of its own"
    );
    let gone = nodes[2].addr().to_string();
    for g in &nodes[..2] {
        wait_for(&format!("{} drops n3", g.name), || async {
            !g.members().await.contains(&gone) && g.value("nodes/n3").await.is_none()
        })
        .await;
    }

    let new = nodes[1]
        .ok(json!({"op": "join-token", "rotate": true}))
        .await["token"]
        .clone();
    assert_ne!(old, new);
    converged(&[&nodes[0], &nodes[1]]).await;
    let err = nodes[2]
        .call(json!({"op": "join", "address": nodes[0].ip.to_string(), "token": old}))
        .await
        .err()
        .unwrap_or_else(|| panic!("the rotated-out token still works"));
    assert!(err.contains("invalid join token"), "{err}");
    nodes[2]
        .ok(json!({"op": "join", "address": nodes[0].ip.to_string(), "token": new}))
        .await;
    wait_for("n3 is a member again", || async {
        nodes[0].members().await.contains(&gone)
    })
    .await;
}
