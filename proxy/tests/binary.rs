//! The real `podswarm-ingress` binary as a child process: configured by flags, environment and
//! a config file, serving, and stopping on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_podswarm-ingress");

fn free_port() -> u16 {
    dead_addr("127.0.0.1").port()
}

#[test]
fn validate_checks_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[ingress]\nhttp_listen = \"127.0.0.1:8080\"\nclass = \"edge\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[ingress]\nhttp_listn = \"x\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http_listn"));

    // Flags and environment override the file.
    let out = Command::new(BIN)
        .args(["--validate", "--config"])
        .arg(&good)
        .args(["--http-listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ingress.http_listen"));
    let out = Command::new(BIN)
        .args(["--validate", "--config"])
        .arg(&good)
        .env("PODSWARM_INGRESS_HTTPS_LISTEN", "nonsense")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ingress.https_listen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_view_and_stops_on_sigterm() {
    let web = backend("web", "127.0.0.2:0").await;
    let dir = tempfile::tempdir().unwrap();
    let view_path = dir.path().join("view.json");
    write_view(
        &view_path,
        &view(
            1,
            vec![service("web", vec![endpoint(web.addr, "n1", true)])],
            vec![ingress(
                "site",
                vec![rule(Some("web.test"), vec![prefix("/", "web")])],
            )],
        ),
    );
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("absent.toml"))
        .args(["--http-listen", &format!("127.0.0.1:{port}")])
        .arg("--view")
        .arg(&view_path)
        .env("PODSWARM_INGRESS_HTTPS_LISTEN", "")
        .env("PODSWARM_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .env_remove("INVOCATION_ID")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the binary never listened");
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "the binary exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(addr, "web.test", "/").await.backend(), "web");
    assert_eq!(get(addr, "other.test", "/").await.status, 404);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Outside systemd the log goes to stderr (stdout stays free for output).
    let read = |s: Option<&mut dyn std::io::Read>| {
        let mut text = String::new();
        if let Some(s) = s {
            let _ = s.read_to_string(&mut text);
        }
        text
    };
    let out = read(child.stdout.as_mut().map(|s| s as &mut dyn std::io::Read));
    let log = read(child.stderr.as_mut().map(|s| s as &mut dyn std::io::Read));
    assert!(exit.success(), "{exit}: {log}");
    assert!(
        out.is_empty(),
        "nothing but the log, and that on stderr: {out}"
    );
    assert!(log.contains("podswarm-ingress ready"), "{log}");
    assert!(log.contains("routing view loaded"), "{log}");
    assert!(log.contains("podswarm-ingress stopping"), "{log}");
}
