//! Benchmark: membership and state convergence of real podswarm-gossip processes on loopback,
//! next to what the SWIM paper and memberlist's defaults predict for the same cluster size.
//!
//! For N = 10, 50, 100 members (one process each, on 127.60.x.y:7946, default settings: 1 s
//! probe period, gossip every 200 ms to 3 members, suspicion 5 probe periods):
//! - **dissemination:** a write on one node until 99% of the others have it (each node followed
//!   through a subscription on its control socket); median of 5 writes;
//! - **failure detection:** a member killed with SIGKILL until 99% of the others have dropped it
//!   from their member list (polled every 100 ms);
//! - **traffic:** UDP+TCP bytes sent per node per second over 10 idle seconds.
//!
//! Run: `cargo build --release --bins && cargo bench -p podswarm-tests --bench gossip`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podswarm_gossip::control::client::{Client, Event, Request, Response, Subscription};
use podswarm_tests::node::workspace_binary;
use serde_json::json;

struct Member {
    ip: Ipv4Addr,
    dir: PathBuf,
    child: Child,
}

impl Member {
    fn socket(&self) -> PathBuf {
        self.dir.join("g.sock")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(root: &Path, i: usize) -> Member {
    let ip = Ipv4Addr::new(127, 60, (i / 250) as u8, (i % 250 + 1) as u8);
    let dir = root.join(format!("m{i}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(workspace_binary("podswarm-gossip"))
        .args(["--config", "/nonexistent"])
        .arg("--node-name")
        .arg(format!("m{i}"))
        .arg("--listen")
        .arg(format!("{ip}:7946"))
        .arg("--advertise-addr")
        .arg(ip.to_string())
        .arg("--socket")
        .arg(dir.join("g.sock"))
        .arg("--key-dir")
        .arg(dir.join("keys"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("PODSWARM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    Member { ip, dir, child }
}

async fn call(m: &Member, request: Request) -> Response {
    let client = Client::new(m.socket());
    for _ in 0..100 {
        if let Ok(answer) = client.call(request.clone()).await {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} does not answer {request:?}", m.ip);
}

async fn members_seen(m: &Member) -> Vec<String> {
    Client::new(m.socket())
        .status()
        .await
        .map(|s| s.members)
        .unwrap_or_default()
        .iter()
        .map(|x| x.address.to_string())
        .collect()
}

async fn bytes_sent(members: &[Member]) -> u64 {
    let mut total = 0;
    for m in members {
        if let Response::Status(s) = call(m, Request::Status {}).await {
            total += s.metrics.bytes_sent;
        }
    }
    total
}

fn percentile_99(n: usize) -> usize {
    ((n as f64) * 0.99).ceil() as usize
}

async fn run(n: usize) -> (f64, f64, f64) {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut members: Vec<Member> = (0..n).map(|i| start(root.path(), i)).collect();
    let Response::JoinToken { token } =
        call(&members[0], Request::JoinToken { rotate: false }).await
    else {
        panic!("no join token");
    };
    for m in &members[1..] {
        let join = Request::Join {
            address: members[0].ip.to_string(),
            token: token.clone(),
            advertise_addr: None,
        };
        call(m, join).await;
    }
    let start_wait = Instant::now();
    loop {
        let mut full = 0;
        for m in &members {
            if members_seen(m).await.len() == n - 1 {
                full += 1;
            }
        }
        if full == n {
            break;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(120),
            "{full}/{n} members see everyone"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the joins' own traffic settle, then measure idle traffic.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = bytes_sent(&members).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = bytes_sent(&members).await;
    let bytes_per_node_s = (after - before) as f64 / n as f64 / 10.0;

    // Dissemination.
    let mut times = Vec::new();
    for round in 0..5 {
        let mut subs = Vec::new();
        for m in &members[1..] {
            let mut s = Subscription::open(&m.socket(), "bench/")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = s.next().await; // the snapshot
            subs.push(s);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t0 = Instant::now();
        for mut s in subs {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(Event::Change(..)) = s.next().await {
                    let _ = tx.send(t0.elapsed());
                }
            });
        }
        let put = Request::Put {
            key: format!("bench/{round}"),
            value: json!(round),
        };
        call(&members[0], put).await;
        let need = percentile_99(n - 1);
        let mut got = Vec::new();
        while got.len() < need {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Some(t)) => got.push(t),
                _ => panic!("only {} of {need} nodes got the write", got.len()),
            }
        }
        times.push(got[need - 1].as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let dissemination = times[times.len() / 2];

    // Failure detection.
    let victim = members.pop().unwrap_or_else(|| panic!("no members"));
    let addr = format!("{}:7946", victim.ip);
    let t0 = Instant::now();
    drop(victim);
    let need = percentile_99(n - 1);
    let detection = loop {
        let mut gone = 0;
        for m in &members {
            if !members_seen(m).await.contains(&addr) {
                gone += 1;
            }
        }
        if gone >= need {
            break t0.elapsed().as_secs_f64();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "failure not detected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    (dissemination, detection, bytes_per_node_s)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "| members | write → 99% | predicted (gossip) | failure detected by 99% | SWIM/podswarm predicted | memberlist predicted | bytes/node/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in [10usize, 50, 100] {
        let (dissemination, detection, bytes) = run(n).await;
        // Infection-style gossip, fanout 3 every 200 ms: about log_4(n) rounds.
        let rounds = ((n as f64).ln() / 4f64.ln()).ceil();
        let gossip_predicted = rounds * 0.2;
        // SWIM: first detection after e/(e-1) probe periods on average, then the suspicion
        // timeout (podswarm: 5 periods; memberlist: 4 × log10(n) periods, at least 4).
        let first = std::f64::consts::E / (std::f64::consts::E - 1.0);
        let ours = first + 5.0;
        let memberlist = first + 4.0 * (n as f64).log10().max(1.0);
        println!(
            "| {n} | {dissemination:.2} s | {gossip_predicted:.1} s | {detection:.1} s | {ours:.1} s | {memberlist:.1} s | {bytes:.0} |"
        );
    }
}
