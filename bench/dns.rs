//! Benchmark: podswarm-dns answering cluster names, against dnsmasq serving the same records, on
//! loopback in the same run.
//!
//! The records: 100 services in `default`, each with 3 ready endpoints, so an A query for
//! `svc-N.default.svc.cluster.local` answers 3 addresses. podswarm-dns reads them from a routing
//! view (as podswarmd publishes it); dnsmasq from a hosts file (`--addn-hosts`, authoritative for
//! `cluster.local` with `--local`, the same 5 s TTL). Queries: the 100 names in turn.
//!
//! For each server:
//! - **throughput:** `dnsperf` for 10 s, 100 queries outstanding, as fast as the server answers;
//! - **latency:** `dnsperf -v` for 5 s at a fixed 20 000 queries/s (a load both sustain), the p50
//!   and p99 of the per-query latencies it reports.
//!
//! Each server is pinned to CPU 0 and dnsperf to CPU 1 (`taskset`), so the two do not trade
//! places on a 2-core machine and both servers get the same one core; the figures are ratios, not
//! absolutes. The servers are measured twice, interleaved, and the better run of each kept, so a
//! burst of other load on the machine does not decide the ratio.
//!
//! A third server sets the scale: the **reflector** (this binary with `REFLECT` set) flips QR and
//! sends each query back, one datagram per system call; what it reaches is the loopback ceiling
//! of a simple server on this machine, and every server is also reported as a share of it.
//!
//! A second table runs everything unpinned, so podswarm-dns can use both cores (a UDP socket
//! and thread per core) while dnsmasq has one thread; dnsperf shares the cores with them there.
//! `DNS_BENCH_ONE_CORE=1` skips it. Run: `cargo build --release --bins && cargo bench -p
//! podswarm-tests --bench dns`.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podswarm_tests::node::workspace_binary;
use podswarm_tests::pinned;
use serde_json::json;

const SERVICES: usize = 100;
const ENDPOINTS: usize = 3;
const LATENCY_QPS: u32 = 20_000;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(service: usize, endpoint: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, (endpoint + 1) as u8, (service + 1) as u8)
}

fn name(service: usize) -> String {
    format!("svc-{service}.default.svc.cluster.local")
}

fn write_records(dir: &Path) {
    let services: Vec<_> = (0..SERVICES)
        .map(|s| {
            json!({
                "namespace": "default", "name": format!("svc-{s}"),
                "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                "endpoints": (0..ENDPOINTS).map(|e| json!({
                    "ip": ip(s, e).to_string(), "pod": format!("svc-{s}-{e}"), "node": "n1",
                    "ready": true, "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let view = json!({
        "version": 1, "clusterDomain": "cluster.local", "services": services,
        "pods": [], "recursionClients": ["127.0.0.0/8"], "whitelist": {"enabled": false, "hosts": []},
    });
    std::fs::write(dir.join("view.json"), view.to_string()).unwrap_or_else(|e| panic!("{e}"));

    let mut hosts = String::new();
    for s in 0..SERVICES {
        for e in 0..ENDPOINTS {
            hosts.push_str(&format!("{} {}\n", ip(s, e), name(s)));
        }
    }
    std::fs::write(dir.join("hosts"), hosts).unwrap_or_else(|e| panic!("{e}"));

    let queries: String = (0..SERVICES).map(|s| format!("{} A\n", name(s))).collect();
    std::fs::write(dir.join("queries"), queries).unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until `addr` answers an A query for the first service with 3 addresses.
fn wait_ready(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let out = Command::new("dig")
            .args([
                &format!("@{}", addr.ip()),
                "-p",
                &addr.port().to_string(),
                "+short",
                "+time=1",
                "+tries=1",
                &name(0),
            ])
            .output()
            .unwrap_or_else(|e| panic!("dig: {e}"));
        if String::from_utf8_lossy(&out.stdout).lines().count() == ENDPOINTS {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not answer on {addr}");
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

struct Figures {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    lost: u64,
}

fn dnsperf(cpu: Option<u32>, addr: SocketAddr, queries: &Path, extra: &[&str]) -> Child {
    pinned(cpu, "dnsperf")
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("dnsperf (apt-get install dnsperf): {e}"))
}

fn field(text: &str, label: &str) -> f64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in dnsperf output:\n{text}"))
}

fn measure(cpu: Option<u32>, addr: SocketAddr, queries: &Path) -> Figures {
    let out = dnsperf(cpu, addr, queries, &["-l", "10", "-q", "100"])
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let qps = field(&text, "Queries per second:");
    let lost = field(&text, "Queries lost:") as u64;

    // Verbose lines: `> NOERROR svc-1.default.svc.cluster.local A 0.000101`.
    let mut child = dnsperf(
        cpu,
        addr,
        queries,
        &["-l", "5", "-Q", &LATENCY_QPS.to_string(), "-v"],
    );
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut latencies: Vec<f64> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with("> NOERROR"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .collect();
    let _ = child.wait();
    assert!(!latencies.is_empty(), "dnsperf -v reported no latencies");
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] * 1e6;
    Figures {
        qps,
        p50_us: at(0.50),
        p99_us: at(0.99),
        lost,
    }
}

/// The loopback ceiling: a server that does nothing but flip QR and send each query back, one
/// datagram per system call as the simplest server would. Run as this binary with `REFLECT` set
/// to the address, so it can be pinned like the others.
fn reflect(addr: &str) -> ! {
    let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("reflector on {addr}: {e}"));
    let mut buf = [0u8; 4096];
    loop {
        let Ok((len, src)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if len >= 12 {
            buf[2] |= 0x80;
            let _ = socket.send_to(&buf[..len], src);
        }
    }
}

/// Waits until `addr` answers anything at all (the reflector answers no name properly).
fn wait_echo(addr: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let query = [0u8, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for _ in 0..200 {
        let _ = socket.send_to(&query, addr);
        if socket.recv_from(&mut [0u8; 64]).is_ok() {
            return;
        }
    }
    panic!("the reflector did not answer on {addr}");
}

/// One table: each server measured twice, interleaved, the better round of each kept.
/// `one_core`: servers on CPU 0 and dnsperf on CPU 1; otherwise all of them anywhere.
fn table(dir: &Path, one_core: bool) {
    let queries = dir.join("queries");
    let (server_cpu, client_cpu) = if one_core {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    let mut rounds: Vec<Vec<(&str, Figures)>> = Vec::new();
    for _ in 0..2 {
        // Fresh ports each round: nothing of the last round's sockets can be in the way.
        let mut results = Vec::new();
        {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let _dns = Server(
                pinned(server_cpu, workspace_binary("podswarm-dns"))
                    .args(["--config", "/nonexistent", "--listen", &addr.to_string()])
                    .arg("--view")
                    .arg(dir.join("view.json"))
                    .args(["--upstream", "127.0.0.1:9"])
                    .env("PODSWARM_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("podswarm-dns: {e}")),
            );
            wait_ready(addr, "podswarm-dns");
            results.push(("podswarm-dns", measure(client_cpu, addr, &queries)));
        }
        {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let _dnsmasq = Server(
                pinned(server_cpu, "dnsmasq")
                    .args([
                        "--keep-in-foreground",
                        "--conf-file=/dev/null",
                        "--pid-file=",
                        "--user=root",
                        "--bind-interfaces",
                        "--listen-address=127.0.0.1",
                        "--no-resolv",
                        "--no-hosts",
                        "--local=/cluster.local/",
                        "--local-ttl=5",
                        "--cache-size=10000",
                        &format!("--port={}", addr.port()),
                    ])
                    .arg(format!("--addn-hosts={}", dir.join("hosts").display()))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("dnsmasq (apt-get install dnsmasq-base): {e}")),
            );
            wait_ready(addr, "dnsmasq");
            results.push(("dnsmasq", measure(client_cpu, addr, &queries)));
        }
        {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
            let _reflector = Server(
                pinned(server_cpu, exe)
                    .env("REFLECT", addr.to_string())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("reflector: {e}")),
            );
            wait_echo(addr);
            results.push(("reflector", measure(client_cpu, addr, &queries)));
        }
        rounds.push(results);
    }
    // The better round of each server: throughput is capped by interference, never raised by it.
    let best = |i: usize| {
        rounds
            .iter()
            .map(|r| &r[i])
            .max_by(|a, b| a.1.qps.total_cmp(&b.1.qps))
            .unwrap_or_else(|| panic!("no rounds"))
    };
    let results = [best(0), best(1), best(2)];
    println!(
        "{}: {SERVICES} services x {ENDPOINTS} endpoints, A queries, loopback; latency at {LATENCY_QPS} q/s",
        if one_core {
            "one core (servers on CPU 0, dnsperf on CPU 1)"
        } else {
            "both cores (servers and dnsperf unpinned)"
        }
    );
    println!(
        "{:<14} {:>10} {:>8} {:>10} {:>10} {:>10}",
        "server", "q/s", "lost", "p50 µs", "p99 µs", "ceiling"
    );
    let ceiling = results[2].1.qps;
    for (name, f) in results {
        println!(
            "{:<14} {:>10.0} {:>8} {:>10.0} {:>10.0} {:>9.0}%",
            name,
            f.qps,
            f.lost,
            f.p50_us,
            f.p99_us,
            100.0 * f.qps / ceiling
        );
    }
    let (ours, reference) = (&results[0].1, &results[1].1);
    println!(
        "ratio: throughput {:.2}x dnsmasq, p99 {:.2}x dnsmasq\n",
        ours.qps / reference.qps,
        ours.p99_us / reference.p99_us
    );
}

fn main() {
    if let Ok(addr) = std::env::var("REFLECT") {
        reflect(&addr);
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_records(dir.path());
    table(dir.path(), true);
    if std::env::var_os("DNS_BENCH_ONE_CORE").is_none() {
        table(dir.path(), false);
    }
}
