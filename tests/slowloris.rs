//! Issue 11, fault 7 (second half): slowloris against podswarm-ingress, run as the package runs it
//! (its unit's environment and open-file limit: systemd's default soft limit, 1024, unless the
//! unit sets `LimitNOFILE`). 1000 connections each send a request header one byte at a time, a byte
//! every 200 ms, and never finish it; meanwhile an ordinary client sends requests one after another. Every one of its
//! requests must be answered 200, none slower than a second, and the ingress's memory must stay
//! bounded. The figures are printed (docs/RELIABILITY.md records a run).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podswarm_tests::node::workspace_binary;
use podswarm_tests::{Proc, free_port, unit_environment};
use serde_json::json;

const SLOW: usize = 1000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One ordinary request through the ingress: its status line's code and how long it took.
fn request(addr: SocketAddr) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let status = (|| {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: slow.test\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        text.split_whitespace().nth(1)?.parse().ok()
    })();
    (status, started.elapsed())
}

#[test]
fn slow_headers_do_not_starve_other_clients() {
    // A backend that answers every request at once.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let backend_port = backend
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    std::thread::spawn(move || {
        for stream in backend.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                );
            });
        }
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let view = json!({
        "version": 1, "clusterDomain": "cluster.local",
        "services": [{"namespace": "default", "name": "slow",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
            "endpoints": [{"ip": "127.0.0.1", "pod": "slow-0", "node": "n1", "ready": true,
                "ports": [{"name": "http", "protocol": "TCP", "port": backend_port}]}]}],
        "pods": [], "recursionClients": [], "whitelist": {"enabled": false, "hosts": []},
        "ingresses": [{"namespace": "default", "name": "slow", "class": null,
            "rules": [{"host": "slow.test", "paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": "slow", "port": "http"}}]}],
            "defaultBackend": null, "tls": []}],
    });
    let view_path = dir.path().join("view.json");
    std::fs::write(&view_path, view.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    // The open-file soft limit its unit gives it (as far as this process may: `ulimit -n` takes
    // the lower of the two); the hard limit stays this process's, as systemd's default (524288)
    // would.
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/systemd/podswarm-ingress.service"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let limit: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1024);
    let ingress = Proc(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -S -n $(( {limit} < $(ulimit -H -n) ? {limit} : $(ulimit -H -n) )) && exec \"$0\" \"$@\""
            ))
            .arg(workspace_binary("podswarm-ingress"))
            .args(["--config", "/nonexistent", "--https-listen", ""])
            .arg("--http-listen")
            .arg(addr.to_string())
            .arg("--view")
            .arg(&view_path)
            .envs(unit_environment("podswarm-ingress.service"))
            .env("PODSWARM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("podswarm-ingress: {e}")),
    );
    let pid = ingress.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while request(addr).0 != Some(200) {
        assert!(Instant::now() < deadline, "the ingress never answered 200");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_before = rss_kib(pid);

    // The slow clients: one thread writes a byte to each of them in turn. This process holds
    // them all, so it needs a soft limit above them too.
    podswarm_config::process::raise_open_file_limit();
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..SLOW {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => slow.push(s),
            Err(e) => panic!("slow client {} could not connect: {e}", slow.len()),
        }
    }
    let header = b"GET / HTTP/1.1\r\nHost: slow.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripper = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut open = slow.len();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < header.len() {
                open = slow
                    .iter_mut()
                    .filter_map(|s| s.write_all(&header[i..=i]).ok())
                    .count();
                i += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            open
        })
    };

    // The ordinary client, meanwhile: 100 requests one after another.
    let mut slowest = Duration::ZERO;
    let mut failed = Vec::new();
    let mut rss_peak = 0;
    for i in 0..100 {
        let (status, took) = request(addr);
        slowest = slowest.max(took);
        if status != Some(200) || took > Duration::from_secs(1) {
            failed.push(format!("request {i}: {status:?} in {took:?}"));
        }
        rss_peak = rss_peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let still_open = dripper.join().unwrap_or(0);
    println!(
        "{SLOW} slow clients ({still_open} still open at the end): 100 ordinary requests, {} failed, slowest {:.1} ms; ingress RSS {} KiB before, {} KiB at most during",
        failed.len(),
        slowest.as_secs_f64() * 1000.0,
        rss_before,
        rss_peak
    );
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(
        rss_peak < rss_before + 256 * 1024,
        "the ingress grew from {rss_before} KiB to {rss_peak} KiB"
    );
}
