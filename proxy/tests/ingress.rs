//! The real ingress on 127.0.0.1 in front of real backends on 127.0.0.x, asked by real HTTP
//! clients (hyper over TCP, over rustls with SNI, HTTP/1.1 and HTTP/2), with the view in a file
//! that is replaced the way podswarmd replaces it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;
use podswarm_view::watch::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- routing ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_routed_by_host_and_path() {
    let web = backend("web", "127.0.0.2:0").await;
    let api = backend("api", "127.0.0.3:0").await;
    let wild = backend("wild", "127.0.0.4:0").await;
    let v = view(
        1,
        vec![
            service("web", vec![endpoint(web.addr, "n1", true)]),
            service("api", vec![endpoint(api.addr, "n1", true)]),
            service("wild", vec![endpoint(wild.addr, "n1", true)]),
        ],
        vec![ingress(
            "site",
            vec![
                rule(
                    Some("shop.test"),
                    vec![prefix("/", "web"), prefix("/api", "api")],
                ),
                rule(Some("*.apps.test"), vec![prefix("/", "wild")]),
            ],
        )],
    );
    let ing = start(Some(&v)).await;
    let a = ing.http();
    assert_eq!(get(a, "shop.test", "/").await.backend(), "web");
    assert_eq!(get(a, "shop.test:80", "/index.html").await.backend(), "web");
    assert_eq!(get(a, "SHOP.test", "/api").await.backend(), "api");
    assert_eq!(
        get(a, "shop.test", "/api/v1/items?x=1").await.backend(),
        "api"
    );
    assert_eq!(get(a, "shop.test", "/apiary").await.backend(), "web");
    assert_eq!(get(a, "one.apps.test", "/").await.backend(), "wild");
    // The backend sees the request as the client sent it.
    let seen = get(a, "shop.test:80", "/api/x?q=1").await.json();
    assert_eq!(seen["path"], "/api/x");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(seen["host"], "shop.test:80");

    for (host, path) in [
        ("unknown.test", "/"),
        ("two.levels.apps.test", "/"),
        ("apps.test", "/"),
    ] {
        let r = get(a, host, path).await;
        assert_eq!(r.status, 404, "{host}{path}");
        assert_eq!(
            r.body, "not found: no Ingress rule matches this host and path\n",
            "{host}"
        );
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_backend_and_named_ports() {
    let web = backend("web", "127.0.0.2:0").await;
    let fallback = backend("fallback", "127.0.0.3:0").await;
    let mut site = ingress(
        "site",
        vec![rule(
            Some("shop.test"),
            vec![podswarm_view::IngressPath {
                path: "/exact".into(),
                path_type: podswarm_view::PathType::Exact,
                backend: podswarm_view::IngressBackend {
                    service: "web".into(),
                    port: podswarm_view::BackendPort::Name("http".into()),
                },
            }],
        )],
    );
    site.default_backend = Some(to("fallback"));
    let v = view(
        1,
        vec![
            service("web", vec![endpoint(web.addr, "n1", true)]),
            service("fallback", vec![endpoint(fallback.addr, "n1", true)]),
        ],
        vec![site],
    );
    let ing = start(Some(&v)).await;
    assert_eq!(
        get(ing.http(), "shop.test", "/exact").await.backend(),
        "web"
    );
    assert_eq!(
        get(ing.http(), "shop.test", "/exact/").await.backend(),
        "fallback"
    );
    assert_eq!(
        get(ing.http(), "elsewhere.test", "/").await.backend(),
        "fallback"
    );
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_of_another_class_are_not_served() {
    let web = backend("web", "127.0.0.2:0").await;
    let mut theirs = ingress(
        "theirs",
        vec![rule(Some("theirs.test"), vec![prefix("/", "web")])],
    );
    theirs.class = Some("nginx".into());
    let mut classless = ingress(
        "classless",
        vec![rule(Some("classless.test"), vec![prefix("/", "web")])],
    );
    classless.class = None;
    let v = view(
        1,
        vec![service("web", vec![endpoint(web.addr, "n1", true)])],
        vec![theirs, classless],
    );
    let ing = start(Some(&v)).await;
    assert_eq!(get(ing.http(), "theirs.test", "/").await.status, 404);
    assert_eq!(get(ing.http(), "classless.test", "/").await.status, 200);
    ing.server.shutdown().await;
}

// ---- endpoints ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_round_robin_over_ready_endpoints_only() {
    let a = backend("a", "127.0.0.2:0").await;
    let b = backend("b", "127.0.0.3:0").await;
    let c = backend("c", "127.0.0.4:0").await;
    let not_ready = backend("not-ready", "127.0.0.5:0").await;
    let v = view(
        1,
        vec![service(
            "web",
            vec![
                endpoint(a.addr, "n1", true),
                endpoint(b.addr, "n2", true),
                endpoint(not_ready.addr, "n2", false),
                endpoint(c.addr, "n3", true),
            ],
        )],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    let ing = start(Some(&v)).await;
    let mut answers = Vec::new();
    for _ in 0..9 {
        answers.push(get(ing.http(), "any.test", "/").await);
    }
    // Strict rotation: every endpoint once in each round of three.
    for round in answers.chunks(3) {
        let mut names: Vec<String> = round.iter().map(Answer::backend).collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
    }
    assert_eq!(not_ready.hits(), 0);
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_endpoint_on_this_node_is_preferred() {
    let here = backend("here", "127.0.0.2:0").await;
    let there = backend("there", "127.0.0.3:0").await;
    let v = view(
        1,
        vec![service(
            "web",
            vec![
                endpoint(there.addr, "other-node", true),
                endpoint(here.addr, "test-node", true),
            ],
        )],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    let ing = start(Some(&v)).await;
    for _ in 0..4 {
        assert_eq!(get(ing.http(), "x.test", "/").await.backend(), "here");
    }
    // The local one gone: the others take over without an error (GET is retried).
    here.stop();
    for _ in 0..4 {
        assert_eq!(get(ing.http(), "x.test", "/").await.backend(), "there");
    }
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_ejected_after_its_first_failure() {
    let alive = backend("alive", "127.0.0.2:0").await;
    let dead = dead_addr("127.0.0.3");
    let v = view(
        1,
        vec![service(
            "web",
            vec![endpoint(dead, "n1", true), endpoint(alive.addr, "n1", true)],
        )],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    // POST is not retried: the request that meets the dead endpoint fails, and only that one.
    let ing = start(Some(&v)).await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = send(
            ing.http(),
            request("POST", "x.test", "/", &[], &format!("n={i}")),
        )
        .await;
        if r.status == 502 {
            assert!(
                r.body.starts_with("bad gateway: default/web:80 failed"),
                "{}",
                r.body
            );
        } else {
            assert_eq!(r.backend(), "alive");
            assert_eq!(r.json()["bodyBytes"], 3);
        }
        statuses.push(r.status);
    }
    let failures = statuses.iter().filter(|s| **s == 502).count();
    assert_eq!(failures, 1, "{statuses:?}");
    let first_ok = statuses.iter().position(|s| *s == 200).unwrap_or(0);
    assert!(
        statuses[first_ok..].iter().skip(1).all(|s| *s == 200),
        "no error after the first: {statuses:?}"
    );
    ing.server.shutdown().await;

    // GET (idempotent) goes on to the next endpoint: no error at all.
    let ing = start(Some(&v)).await;
    for _ in 0..10 {
        let r = get(ing.http(), "x.test", "/").await;
        assert_eq!((r.status, r.backend().as_str()), (200, "alive"));
    }
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_keep_a_dead_endpoint_out() {
    let alive = backend("alive", "127.0.0.2:0").await;
    let dead = dead_addr("127.0.0.3");
    let v = view(
        1,
        vec![service(
            "web",
            vec![endpoint(dead, "n1", true), endpoint(alive.addr, "n1", true)],
        )],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    let ing = start_with(Some(&v), |s| {
        s.health_interval = Some(Duration::from_millis(100));
        // Passive ejection alone would not cover this test.
        s.eject = Duration::ZERO;
    })
    .await;
    // Give the first round of checks time to finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..6 {
        let r = send(
            ing.http(),
            request("POST", "x.test", "/", &[], &i.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ready_endpoint_is_503_with_the_reason() {
    let idle = backend("idle", "127.0.0.2:0").await;
    let v = view(
        1,
        vec![service("idle", vec![endpoint(idle.addr, "n1", false)])],
        vec![ingress(
            "site",
            vec![
                rule(Some("idle.test"), vec![prefix("/", "idle")]),
                rule(Some("ghost.test"), vec![prefix("/", "ghost")]),
            ],
        )],
    );
    let ing = start(Some(&v)).await;
    let r = get(ing.http(), "idle.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        "service unavailable: service default/idle has no ready endpoints\n"
    );
    let r = get(ing.http(), "ghost.test", "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        "service unavailable: service default/ghost does not exist\n"
    );
    assert_eq!(idle.hits(), 0);
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_does_not_answer_in_time_is_504() {
    let slow = backend("slow", "127.0.0.2:0").await;
    let v = view(
        1,
        vec![service("slow", vec![endpoint(slow.addr, "n1", true)])],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "slow")])])],
    );
    let ing = start_with(Some(&v), |s| s.read_timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = get(ing.http(), "x.test", "/sleep/3000").await;
    assert_eq!(r.status, 504);
    assert_eq!(
        r.body,
        "gateway timeout: default/slow:80 did not answer in time\n"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Fast enough: fine.
    assert_eq!(get(ing.http(), "x.test", "/sleep/10").await.status, 200);
    ing.server.shutdown().await;
}

// ---- headers, upgrades ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_sees_x_forwarded_headers() {
    let web = backend("web", "127.0.0.2:0").await;
    let v = view(
        1,
        vec![service("web", vec![endpoint(web.addr, "n1", true)])],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    let ing = start(Some(&v)).await;
    let seen = get(ing.http(), "shop.test:8080", "/").await.json();
    assert_eq!(seen["xff"], "127.0.0.1");
    assert_eq!(seen["xfp"], "http");
    assert_eq!(seen["xfh"], "shop.test:8080");
    assert_eq!(seen["host"], "shop.test:8080");
    // An existing X-Forwarded-For is appended to; the others are replaced.
    let seen = send(
        ing.http(),
        request(
            "GET",
            "shop.test",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.test"),
            ],
            "",
        ),
    )
    .await
    .json();
    assert_eq!(seen["xff"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["xfp"], "http");
    assert_eq!(seen["xfh"], "shop.test");
    ing.server.shutdown().await;
}

/// Many times over: pingora 0.9.1 alone closed about one fast tunnel in five right after the
/// 101 (see `upgrade.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through_every_time() {
    let ws = backend("ws", "127.0.0.2:0").await;
    let dir = tempfile::tempdir().unwrap();
    let (pem, der) = certificate(dir.path(), "ws", &["wss.test"]);
    let mut site = ingress("site", vec![rule(None, vec![prefix("/", "ws")])]);
    site.tls = vec![tls(&["wss.test"], &pem)];
    let v = view(
        1,
        vec![service(
            "ws",
            // A dead endpoint first: the upgrade goes on to the next one.
            vec![
                endpoint(dead_addr("127.0.0.3"), "n1", true),
                endpoint(ws.addr, "n1", true),
            ],
        )],
        vec![site],
    );
    let ing = start(Some(&v)).await;
    let mut failures = Vec::new();
    for _ in 0..100 {
        let tcp = tokio::net::TcpStream::connect(ing.http()).await.unwrap();
        if let Err(e) = upgrade_roundtrip(tcp, "ws.test").await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 100: {:?}",
        failures.len(),
        failures.first()
    );
    // Over TLS (wss://) as well.
    let client = tls_client(&[&der], &[b"http/1.1"]);
    for _ in 0..10 {
        let (stream, _) = tls_connect(&client, ing.https(), "wss.test").await.unwrap();
        upgrade_roundtrip(stream, "wss.test")
            .await
            .unwrap_or_else(|e| panic!("wss: {e}"));
    }
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_gets_the_endpoint_answer() {
    let web = backend("web", "127.0.0.2:0").await;
    let v = view(
        1,
        vec![service("web", vec![endpoint(web.addr, "n1", true)])],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    let ing = start(Some(&v)).await;
    let r = send(
        ing.http(),
        request(
            "GET",
            "x.test:80",
            "/refuse/chat",
            &[("connection", "upgrade"), ("upgrade", "websocket")],
            "",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = r.json();
    assert_eq!(seen["backend"], "web");
    // The same forwarded headers as any request.
    assert_eq!(seen["xff"], "127.0.0.1");
    assert_eq!(seen["xfh"], "x.test:80");
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_stream_through_without_being_buffered() {
    let web = backend("web", "127.0.0.2:0").await;
    let v = view(
        1,
        vec![service("web", vec![endpoint(web.addr, "n1", true)])],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    let ing = start(Some(&v)).await;
    let tcp = tokio::net::TcpStream::connect(ing.http()).await.unwrap();
    let mut sender = http1(tcp).await;
    sender.ready().await.unwrap();
    let started = Instant::now();
    // Five lines, 400 ms apart: two seconds in all.
    let resp = sender
        .send_request(request("GET", "x.test", "/drip/5/400", &[], ""))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut lines = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            lines.push((
                started.elapsed(),
                String::from_utf8_lossy(data).into_owned(),
            ));
        }
    }
    let text: String = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(text, "line 0\nline 1\nline 2\nline 3\nline 4\n");
    // The first line arrives long before the last one is sent.
    assert!(lines[0].0 < Duration::from_millis(800), "{lines:?}");
    assert!(started.elapsed() >= Duration::from_millis(1600));
    ing.server.shutdown().await;
}

// ---- TLS ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_chosen_by_sni_and_plain_http_is_redirected() {
    let a = backend("a", "127.0.0.2:0").await;
    let b = backend("b", "127.0.0.3:0").await;
    let dir = tempfile::tempdir().unwrap();
    let (a_pem, a_der) = certificate(dir.path(), "a", &["a.test"]);
    let (b_pem, b_der) = certificate(dir.path(), "b", &["b.test"]);
    let mut site = ingress(
        "site",
        vec![
            rule(Some("a.test"), vec![prefix("/", "a")]),
            rule(Some("b.test"), vec![prefix("/", "b")]),
            rule(Some("plain.test"), vec![prefix("/", "a")]),
        ],
    );
    site.tls = vec![tls(&["a.test"], &a_pem), tls(&["b.test"], &b_pem)];
    let v = view(
        1,
        vec![
            service("a", vec![endpoint(a.addr, "n1", true)]),
            service("b", vec![endpoint(b.addr, "n1", true)]),
        ],
        vec![site],
    );
    let ing = start(Some(&v)).await;
    let client = tls_client(&[&a_der, &b_der], &[b"http/1.1"]);
    for (host, der, name) in [("a.test", &a_der, "a"), ("b.test", &b_der, "b")] {
        let (stream, presented) = tls_connect(&client, ing.https(), host)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(&presented, der, "{host}: the certificate for its name");
        let mut sender = http1(stream).await;
        let r = send_on(&mut sender, request("GET", host, "/x", &[], ""))
            .await
            .unwrap();
        assert_eq!(r.backend(), name);
        assert_eq!(r.json()["xfp"], "https");
        // Keep-alive over TLS.
        let r = send_on(&mut sender, request("GET", host, "/y", &[], ""))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    // No certificate for an unknown name (and no default): the handshake fails.
    assert!(tls_connect(&client, ing.https(), "c.test").await.is_err());

    // HTTP/2 by ALPN.
    let h2 = tls_client(&[&a_der, &b_der], &[b"h2"]);
    let (stream, _) = tls_connect(&h2, ing.https(), "b.test").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let r = h2_get(stream, "b.test", "/h2").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.backend(), "b");
    assert_eq!(r.json()["host"], "b.test");

    // Plain HTTP for a host with a certificate: 308 to the HTTPS listener, path and query kept.
    let r = get(ing.http(), "a.test:80", "/some/path?q=1").await;
    assert_eq!(r.status, 308);
    let port = ing.https().port();
    assert_eq!(
        r.header("location").map(str::to_owned),
        Some(format!("https://a.test:{port}/some/path?q=1"))
    );
    // The redirect never reached a backend.
    assert_eq!(a.hits(), 2);
    // A host without one is served over plain HTTP.
    assert_eq!(get(ing.http(), "plain.test", "/").await.backend(), "a");
    ing.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_after_the_view_names_its_new_version() {
    let a = backend("a", "127.0.0.2:0").await;
    let dir = tempfile::tempdir().unwrap();
    let (pem, first) = certificate(dir.path(), "a", &["a.test"]);
    let mut site = ingress("site", vec![rule(Some("a.test"), vec![prefix("/", "a")])]);
    site.tls = vec![tls(&["a.test"], &pem)];
    let mut v = view(
        1,
        vec![service("a", vec![endpoint(a.addr, "n1", true)])],
        vec![site],
    );
    let ing = start(Some(&v)).await;
    // podswarmd rewrites the file, then publishes a view with the Secret's new version.
    let (_, second) = certificate(dir.path(), "a", &["a.test"]);
    v.version = 2;
    v.ingresses[0].tls[0].secret_version = 2;
    ing.load(&v).await;
    let client = tls_client(&[&first, &second], &[]);
    let (_, presented) = tls_connect(&client, ing.https(), "a.test").await.unwrap();
    assert_eq!(presented, second);
    ing.server.shutdown().await;
}

// ---- reloads ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_appears_later_is_served() {
    let web = backend("web", "127.0.0.2:0").await;
    let ing = start(None).await;
    assert_eq!(get(ing.http(), "x.test", "/").await.status, 404);
    let v = view(
        1,
        vec![service("web", vec![endpoint(web.addr, "n1", true)])],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "web")])])],
    );
    ing.load(&v).await;
    assert_eq!(get(ing.http(), "x.test", "/").await.backend(), "web");
    // A broken file keeps the last good view (once the server has read it: waited for, not
    // slept on, so the check cannot pass before the file was seen).
    let read = Status::read_broken(
        &mut ing.server.view_status(),
        Duration::from_secs(5),
        || {
            std::fs::write(&ing.view_path, b"{broken").unwrap();
        },
    )
    .await;
    assert!(read, "the broken view was not read");
    assert_eq!(get(ing.http(), "x.test", "/").await.backend(), "web");
    ing.server.shutdown().await;
}

/// Clients hammer the ingress (on kept-alive connections and on new ones, GET and POST) while
/// the view is replaced many times, its route switching between two backends: no request fails
/// and no connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_during_load_drop_nothing() {
    let a = backend("a", "127.0.0.2:0").await;
    let b = backend("b", "127.0.0.3:0").await;
    let services = vec![
        service("svc-a", vec![endpoint(a.addr, "n1", true)]),
        service("svc-b", vec![endpoint(b.addr, "n1", true)]),
    ];
    let version = |n: u64| {
        let target = if n.is_multiple_of(2) {
            "svc-a"
        } else {
            "svc-b"
        };
        view(
            n,
            services.clone(),
            vec![ingress(
                "site",
                vec![rule(Some("r.test"), vec![prefix("/", target)])],
            )],
        )
    };
    let ing = start(Some(&version(0))).await;
    let addr = ing.http();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outcomes = Outcomes::default();
    let mut clients = Vec::new();
    for c in 0..4 {
        let (done, outcomes) = (done.clone(), outcomes.clone());
        clients.push(tokio::spawn(async move {
            let keep_alive = c % 2 == 0;
            let mut sender = None;
            let mut i = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let req = if i.is_multiple_of(3) {
                    request("POST", "r.test", "/post", &[], "payload")
                } else {
                    request("GET", "r.test", "/get", &[], "")
                };
                let result = if keep_alive {
                    if sender.is_none() {
                        match tokio::net::TcpStream::connect(addr).await {
                            Ok(tcp) => sender = Some(http1(tcp).await),
                            Err(e) => {
                                outcomes.push(Err(format!("connect: {e}")));
                                continue;
                            }
                        }
                    }
                    match sender.as_mut() {
                        Some(s) => send_on(s, req).await,
                        None => Err("no connection".to_owned()),
                    }
                } else {
                    try_send(addr, req).await
                };
                outcomes.push(match result {
                    Ok(r) if r.status == 200 => Ok(r.backend()),
                    Ok(r) => Err(format!("status {}: {}", r.status, r.body)),
                    Err(e) => Err(e),
                });
            }
        }));
    }
    for n in 1..=60 {
        ing.write(&version(n));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last version is in force.
    ing.load(&version(60)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let all = outcomes.all();
    let errors: Vec<&String> = all.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} errors, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let to_a = all.iter().filter(|r| r.as_deref() == Ok("a")).count();
    let to_b = all.iter().filter(|r| r.as_deref() == Ok("b")).count();
    eprintln!(
        "{} requests during 60 reloads: {to_a} to a, {to_b} to b",
        all.len()
    );
    assert!(all.len() > 200, "only {} requests", all.len());
    assert!(to_a > 0 && to_b > 0, "a: {to_a}, b: {to_b}");
    assert_eq!(get(addr, "r.test", "/").await.backend(), "a");
    ing.server.shutdown().await;
}

/// A backend that keeps a connection open for 100 ms after each answer, then closes it, as
/// nginx's `keepalive_timeout` and most servers do with idle keep-alive connections. Counts the
/// connections it accepted.
// A helper outside #[test] functions: a panic is the failure report here too.
#[allow(clippy::unwrap_used)]
async fn closing_backend(addr: &str) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            });
        }
    });
    (local, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_connection_closed_while_idle_is_not_reused() {
    let (addr, accepted) = closing_backend("127.0.0.2:0").await;
    let v = view(
        1,
        vec![service("idle", vec![endpoint(addr, "n1", true)])],
        vec![ingress(
            "idle",
            vec![rule(Some("idle.test"), vec![prefix("/", "idle")])],
        )],
    );
    let ing = start(Some(&v)).await;
    // One client connection, so every request goes through the same worker and its pool.
    let mut client = http1(tokio::net::TcpStream::connect(ing.http()).await.unwrap()).await;
    for round in 0..3 {
        let answer = send_on(&mut client, request("GET", "idle.test", "/", &[], ""))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "ok"),
            "round {round}"
        );
        // The backend closes the pooled connection meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each request had to open a new backend connection (a retry on a dead pooled connection
    // would also show up as one more).
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    ing.server.shutdown().await;
}

// ---- stopping ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_progress_finish_and_refuses_new_connections() {
    let slow = backend("slow", "127.0.0.2:0").await;
    let v = view(
        1,
        vec![service("slow", vec![endpoint(slow.addr, "n1", true)])],
        vec![ingress("site", vec![rule(None, vec![prefix("/", "slow")])])],
    );
    let ing = start(Some(&v)).await;
    let addr = ing.http();
    let in_flight = tokio::spawn(async move { get(addr, "x.test", "/sleep/500").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    ing.server.shutdown().await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
