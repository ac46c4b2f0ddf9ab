//! Benchmark: podswarm-ingress against nginx as a reverse proxy to the same backend, on loopback
//! in the same run, measured with `wrk`.
//!
//! The backend is one nginx serving two static files (a 13-byte `/small` and a 64 KiB `/large`)
//! from memory-cached disk. The two proxies under test route `Host: bench.local` to it:
//! podswarm-ingress through a routing view with one Ingress, one Service and one ready endpoint
//! (as podswarmd publishes it); nginx with an `upstream` block holding 32 idle keep-alive
//! connections, HTTP/1.1 to the backend and the same `X-Forwarded-*` headers, access log off.
//! Each proxy is pinned to CPU 0 (one nginx worker; podswarm-ingress's runtime on that one CPU),
//! wrk and the backend to CPU 1, so both proxies get the same single core.
//!
//! For each case and proxy: `wrk -t1 -c50 -d10s --latency`, requests per second and the p99
//! latency wrk reports. The cases: 13 B and 64 KiB bodies with keep-alive (wrk's default); 13 B
//! over HTTPS with keep-alive, both proxies with the same P-256 certificate (rustls and ring
//! against nginx with OpenSSL); and 13 B with a new connection for every request
//! (`Connection: close`). Two interleaved rounds; the better of each is kept so a burst of
//! unrelated load does not decide the ratio.
//!
//! podswarm-ingress runs with the environment its unit sets (`Environment=` of
//! packaging/systemd/podswarm-ingress.service: mimalloc's settings).
//!
//! A second table runs both proxies with a worker per CPU (podswarm-ingress's default, nginx's
//! `worker_processes auto`) and nothing pinned but the backend: how each uses the second core,
//! with wrk sharing the cores. `INGRESS_BENCH_ONE_CORE=1` skips it.
//!
//! Run: `cargo build --release --bins && cargo bench -p podswarm-tests --bench ingress`
//! (needs `wrk` and `nginx`: `apt-get install wrk nginx-light`).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use podswarm_tests::node::workspace_binary;
use podswarm_tests::{Proc, free_port, pinned, unit_environment};
use serde_json::json;

fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} is not listening on {addr}");
}

/// An nginx with `workers` worker processes (`auto`: one per CPU).
fn nginx(dir: &Path, name: &str, cpu: Option<u32>, workers: &str, server_block: &str) -> Proc {
    let prefix = dir.join(name);
    std::fs::create_dir_all(prefix.join("logs")).unwrap_or_else(|e| panic!("{e}"));
    let conf = format!(
        "worker_processes {workers};\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         keepalive_requests 100000;\n{server_block}\n}}\n",
        p = prefix.display()
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("{e}"));
    let child = pinned(cpu, "/usr/sbin/nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("nginx (apt-get install nginx-light): {e}"));
    Proc(child)
}

struct Figures {
    rps: f64,
    p99_ms: f64,
    errors: u64,
}

fn to_ms(v: &str) -> f64 {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().unwrap_or_else(|e| panic!("{v}: {e}")) * factor
}

/// What one wrk run asks for.
struct Case {
    label: &'static str,
    https: bool,
    path: &'static str,
    /// A new connection for every request (`Connection: close`), instead of keep-alive.
    close: bool,
}

const CASES: [Case; 4] = [
    Case {
        label: "13 B",
        https: false,
        path: "/small",
        close: false,
    },
    Case {
        label: "64 KiB",
        https: false,
        path: "/large",
        close: false,
    },
    Case {
        label: "HTTPS 13 B",
        https: true,
        path: "/small",
        close: false,
    },
    Case {
        label: "new conn. 13 B",
        https: false,
        path: "/small",
        close: true,
    },
];

impl Case {
    fn url(&self, http: SocketAddr, https: SocketAddr) -> String {
        if self.https {
            format!("https://{https}{}", self.path)
        } else {
            format!("http://{http}{}", self.path)
        }
    }

    fn host(&self) -> &'static str {
        if self.https {
            "Host: secure.local"
        } else {
            "Host: bench.local"
        }
    }

    /// Fails the benchmark unless the proxy answers this case with the whole file: a redirect
    /// or an error page would be measured as fast as anything.
    fn check(&self, http: SocketAddr, https: SocketAddr, who: &str) {
        let out = std::process::Command::new("curl")
            .args([
                "-sk",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download}",
                "-H",
            ])
            .arg(self.host())
            .arg(self.url(http, https))
            .output()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        let len = if self.path == "/large" { 64 * 1024 } else { 13 };
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got, format!("200 {len}"), "{who}, {}", self.label);
    }
}

fn wrk(cpu: Option<u32>, http: SocketAddr, https: SocketAddr, case: &Case) -> Figures {
    let mut command = pinned(cpu, "wrk");
    command.args(["-t1", "-c50", "-d10s", "--latency", "-H", case.host()]);
    if case.close {
        command.args(["-H", "Connection: close"]);
    }
    let out = command
        .arg(case.url(http, https))
        .output()
        .unwrap_or_else(|e| panic!("wrk (apt-get install wrk): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| to_ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% in wrk output:\n{text}"));
    // "Non-2xx or 3xx responses: N" and "Socket errors: connect a, read b, write c, timeout d".
    let non_2xx: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let socket: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Figures {
        rps,
        p99_ms,
        errors: non_2xx + socket,
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(www.join("small"), "hello, bench\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(www.join("large"), vec![b'x'; 64 * 1024]).unwrap_or_else(|e| panic!("{e}"));

    // One certificate for both proxies: P-256, the key type most clusters' issuers hand out.
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let cert = rcgen::CertificateParams::new(vec!["bench.local".to_owned()])
        .and_then(|p| p.self_signed(&key))
        .unwrap_or_else(|e| panic!("{e}"));
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_pem, key.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
    // podswarmd's form of a Secret: chain, then key, in one file.
    let secret = dir.path().join("bench.pem");
    std::fs::write(&secret, format!("{}{}", cert.pem(), key.serialize_pem()))
        .unwrap_or_else(|e| panic!("{e}"));

    let backend_port = free_port();
    let _backend = nginx(
        dir.path(),
        "backend",
        Some(1),
        "1",
        &format!(
            "  server {{ listen 127.0.0.1:{backend_port}; root {}; }}",
            www.display()
        ),
    );
    wait_listening(([127, 0, 0, 1], backend_port).into(), "the backend");

    let view = json!({
        "version": 1, "clusterDomain": "cluster.local",
        "services": [{"namespace": "default", "name": "bench",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
            "endpoints": [{"ip": "127.0.0.1", "pod": "bench-0", "node": "n1", "ready": true,
                "ports": [{"name": "http", "protocol": "TCP", "port": backend_port}]}]}],
        "pods": [], "recursionClients": [], "whitelist": {"enabled": false, "hosts": []},
        // Plain HTTP for bench.local; HTTPS for secure.local (which plain HTTP would redirect).
        "ingresses": [
            {"namespace": "default", "name": "bench", "class": null,
             "rules": [{"host": "bench.local", "paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": "bench", "port": "http"}}]}],
             "defaultBackend": null, "tls": []},
            {"namespace": "default", "name": "secure", "class": null,
             "rules": [{"host": "secure.local", "paths": [{"path": "/", "pathType": "Prefix",
                 "backend": {"service": "bench", "port": "http"}}]}],
             "defaultBackend": null,
             // No hosts: the default certificate, for wrk, which sends no server name to an
             // address.
             "tls": [{"hosts": [], "secret": "bench-tls", "certFile": secret, "secretVersion": 1}]},
        ],
    });
    let view_path = dir.path().join("view.json");
    std::fs::write(&view_path, view.to_string()).unwrap_or_else(|e| panic!("{e}"));

    table(
        dir.path(),
        &view_path,
        (&cert_pem, &key_pem),
        backend_port,
        true,
    );
    if std::env::var_os("INGRESS_BENCH_ONE_CORE").is_none() {
        table(
            dir.path(),
            &view_path,
            (&cert_pem, &key_pem),
            backend_port,
            false,
        );
    }
}

/// One table: both proxies measured in two interleaved rounds, the better of each kept.
/// `one_core`: each proxy on CPU 0 with one worker, wrk on CPU 1; otherwise the proxies with a
/// worker per CPU and wrk wherever the scheduler puts them (the backend stays on CPU 1).
fn table(
    dir: &Path,
    view_path: &Path,
    (cert_pem, key_pem): (&Path, &Path),
    backend_port: u16,
    one_core: bool,
) {
    let (proxy_cpu, client_cpu) = if one_core {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    let mut rounds: Vec<Vec<(usize, &str, Figures)>> = Vec::new();
    for _ in 0..2 {
        let mut round = Vec::new();
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let https: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        {
            let _ingress = Proc(
                pinned(proxy_cpu, workspace_binary("podswarm-ingress"))
                    .args(["--config", "/nonexistent"])
                    .arg("--http-listen")
                    .arg(http.to_string())
                    .arg("--https-listen")
                    .arg(https.to_string())
                    .arg("--view")
                    .arg(view_path)
                    .envs(unit_environment("podswarm-ingress.service"))
                    .env("PODSWARM_LOG", "warn,rustls=error")
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("podswarm-ingress: {e}")),
            );
            wait_listening(http, "podswarm-ingress");
            wait_listening(https, "podswarm-ingress (HTTPS)");
            for (i, case) in CASES.iter().enumerate() {
                case.check(http, https, "podswarm-ingress");
                round.push((i, "podswarm-ingress", wrk(client_cpu, http, https, case)));
            }
        }
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let https: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        {
            let location = "    location / {\n      proxy_pass http://backend;\n\
                 proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
                 proxy_set_header Host $host;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_set_header X-Forwarded-Proto $scheme;\n\
                 proxy_set_header X-Forwarded-Host $host;\n    }";
            let _nginx = nginx(
                dir,
                "proxy",
                proxy_cpu,
                if one_core { "1" } else { "auto" },
                &format!(
                    "  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 32; }}\n\
                     server {{\n    listen {http};\n{location}\n  }}\n\
                     server {{\n    listen {https} ssl;\n    ssl_certificate {};\n\
                     ssl_certificate_key {};\n{location}\n  }}",
                    cert_pem.display(),
                    key_pem.display()
                ),
            );
            wait_listening(http, "nginx");
            wait_listening(https, "nginx (HTTPS)");
            for (i, case) in CASES.iter().enumerate() {
                case.check(http, https, "nginx");
                round.push((i, "nginx", wrk(client_cpu, http, https, case)));
            }
        }
        rounds.push(round);
    }

    println!(
        "wrk -t1 -c50 -d10s, loopback, keep-alive unless 'new conn.'; {}",
        if one_core {
            "one core: each proxy on CPU 0 (one worker), wrk on CPU 1"
        } else {
            "both cores: a worker per CPU for each proxy, nothing pinned but the backend"
        }
    );
    println!(
        "{:<16} {:<18} {:>10} {:>10} {:>8}",
        "case", "proxy", "req/s", "p99 ms", "errors"
    );
    for (i, case) in CASES.iter().enumerate() {
        let best = |who: &str| {
            rounds
                .iter()
                .flatten()
                .filter(|(j, w, _)| *j == i && *w == who)
                .map(|(_, _, f)| f)
                .max_by(|a, b| a.rps.total_cmp(&b.rps))
                .unwrap_or_else(|| panic!("no figures for {who}"))
        };
        let (ours, theirs) = (best("podswarm-ingress"), best("nginx"));
        for (who, f) in [("podswarm-ingress", ours), ("nginx", theirs)] {
            println!(
                "{:<16} {:<18} {:>10.0} {:>10.2} {:>8}",
                case.label, who, f.rps, f.p99_ms, f.errors
            );
        }
        println!(
            "{:<16} ratio: throughput {:.2}x nginx, p99 {:.2}x nginx",
            case.label,
            ours.rps / theirs.rps,
            ours.p99_ms / theirs.p99_ms
        );
    }
}
