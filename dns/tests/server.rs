//! The real server on 127.0.0.1, asked by real clients (hickory's UDP and TCP clients, raw
//! sockets for malformed input, and `dig` where it is installed), with the view in a file that is
//! replaced the way podswarmd replaces it, and a fake upstream for forwarding.

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use podswarm_view::watch::Status;
use podswarm_view::{View, Whitelist};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEB: &str = "web.default.svc.cluster.local.";

// ---- cluster names ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_a_records_in_both_name_forms_over_udp_and_tcp() {
    let s = start(Some(&cluster_view()), vec![], true).await;
    for n in [
        WEB,
        "web.default.cluster.local.",
        "Web.Default.SVC.cluster.local.",
    ] {
        for m in [
            udp(s.addr(), n, RecordType::A).await,
            tcp(s.addr(), n, RecordType::A).await,
        ] {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{n}");
            assert!(m.metadata.authoritative, "{n}: AA");
            let mut got = addresses(&m);
            got.sort();
            assert_eq!(got, vec![ip("10.244.1.5"), ip("10.244.2.7")], "{n}");
            assert!(m.answers.iter().all(|r| r.ttl == 5));
        }
    }
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_carry_the_target_port_pod_names_and_additional_addresses() {
    let s = start(Some(&cluster_view()), vec![], true).await;
    let m = udp(
        s.addr(),
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let mut srvs: Vec<(u16, u16, u16, String)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.priority, s.weight, s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    srvs.sort();
    assert_eq!(
        srvs,
        vec![
            (
                0,
                50,
                8080,
                "10-244-1-5.default.pod.cluster.local.".to_owned()
            ),
            (
                0,
                50,
                8080,
                "10-244-2-7.default.pod.cluster.local.".to_owned()
            ),
        ]
    );
    let mut extra: Vec<(String, RData)> = m
        .additionals
        .iter()
        .map(|r| (r.name.to_ascii(), r.data.clone()))
        .collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(extra.len(), 2);
    assert_eq!(extra[0].0, "10-244-1-5.default.pod.cluster.local.");
    assert_eq!(
        extra[0].1,
        RData::A(hickory_proto::rr::rdata::A::new(10, 244, 1, 5))
    );
    assert_eq!(extra[1].0, "10-244-2-7.default.pod.cluster.local.");

    // The SRV target resolves.
    let m = udp(
        s.addr(),
        "10-244-2-7.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(addresses(&m), vec![ip("10.244.2.7")]);
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_records_by_address_and_hostname() {
    let s = start(Some(&cluster_view()), vec![], true).await;
    let m = tcp(
        s.addr(),
        "10-244-1-5.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(addresses(&m), vec![ip("10.244.1.5")]);
    let m = udp(
        s.addr(),
        "web-0.web.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(addresses(&m), vec![ip("10.244.1.5")]);
    // No pod has this address.
    let m = udp(
        s.addr(),
        "10-244-1-6.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_nxdomain_and_known_names_of_other_types_nodata() {
    let s = start(Some(&cluster_view()), vec![], true).await;
    for n in [
        "nope.default.svc.cluster.local.",
        "web.elsewhere.svc.cluster.local.",
        "www.google.com.default.svc.cluster.local.",
    ] {
        let m = udp(s.addr(), n, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{n}");
        assert!(m.metadata.authoritative, "{n}");
        assert!(m.answers.is_empty());
        assert!(
            m.authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA),
            "{n}: SOA in authority"
        );
    }
    for (n, t) in [
        (WEB, RecordType::AAAA),
        (WEB, RecordType::MX),
        (WEB, RecordType::TXT),
        // A service whose endpoints are all unready still exists.
        ("idle.default.svc.cluster.local.", RecordType::A),
        ("idle.default.cluster.local.", RecordType::A),
    ] {
        for m in [udp(s.addr(), n, t).await, tcp(s.addr(), n, t).await] {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{n} {t}");
            assert!(m.answers.is_empty(), "{n} {t}");
            assert!(m.metadata.authoritative);
        }
    }
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_agrees() {
    let dig = std::path::Path::new("/usr/bin/dig");
    if !dig.exists() {
        eprintln!("skipped: no /usr/bin/dig");
        return;
    }
    let s = start(Some(&cluster_view()), vec![], true).await;
    let port = s.addr().port().to_string();
    for transport in ["+notcp", "+tcp"] {
        let out = tokio::process::Command::new(dig)
            .args(["@127.0.0.1", "-p", &port, transport, "+time=3", "+tries=1"])
            .args(["_http._tcp.web.default.svc.cluster.local", "SRV"])
            .output()
            .await
            .unwrap_or_else(|e| panic!("dig: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("status: NOERROR"), "{transport}: {text}");
        assert!(text.contains(" aa "), "{transport}: AA: {text}");
        assert!(
            text.contains("0 50 8080 10-244-1-5.default.pod.cluster.local."),
            "{transport}: {text}"
        );
        assert!(
            text.contains("ADDITIONAL: 2") || text.contains("ADDITIONAL: 3"),
            "{text}"
        );
    }
    let out = tokio::process::Command::new(dig)
        .args(["@127.0.0.1", "-p", &port, "+time=3", "+tries=1"])
        .args(["nope.default.svc.cluster.local", "A"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("dig: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status: NXDOMAIN"), "{text}");
    s.dns.shutdown().await.unwrap();
}

// ---- the view file ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_view_serves_nxdomain_until_the_file_appears() {
    let s = start(None, vec![], true).await;
    let m = udp(s.addr(), WEB, RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    write_view(&s.view_path, &cluster_view());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = udp(s.addr(), WEB, RecordType::A).await;
        if m.metadata.response_code == ResponseCode::NoError {
            assert_eq!(addresses(&m).len(), 2);
            break;
        }
        assert!(Instant::now() < deadline, "the view was not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A broken replacement keeps the good view (once the server has read it: waited for, not
    // slept on, so the check cannot pass before the file was seen).
    let read = Status::read_broken(&mut s.dns.view_status(), Duration::from_secs(5), || {
        let tmp = s.dir.path().join("broken.tmp");
        std::fs::write(&tmp, b"{\"version\": ").unwrap();
        std::fs::rename(&tmp, &s.view_path).unwrap();
    })
    .await;
    assert!(read, "the broken view was not read");
    let m = udp(s.addr(), WEB, RecordType::A).await;
    assert_eq!(addresses(&m).len(), 2);
    assert_eq!(s.dns.view().version, 1);
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_query_and_show_the_new_endpoint() {
    let s = start(Some(&cluster_view()), vec![], true).await;
    let addr = s.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for over_tcp in [false, true] {
        let (stop, ok) = (stop.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut client = if over_tcp {
                tcp_client(addr).await
            } else {
                udp_client(addr)
            };
            let started = Instant::now();
            // Bounded in time whatever happens.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let result = tokio::time::timeout(
                    Duration::from_secs(3),
                    hickory_resolver::net::client::ClientHandle::query(
                        &mut client,
                        name(WEB),
                        hickory_proto::rr::DNSClass::IN,
                        RecordType::A,
                    ),
                )
                .await;
                match result {
                    Ok(Ok(r))
                        if r.metadata.response_code == ResponseCode::NoError
                            && !r.answers.is_empty() =>
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(r)) => failures.push(format!(
                        "{}: {} with {} answers",
                        if over_tcp { "tcp" } else { "udp" },
                        r.metadata.response_code,
                        r.answers.len()
                    )),
                    Ok(Err(e)) => failures.push(format!("error: {e}")),
                    Err(_) => failures.push("timeout".to_owned()),
                }
            }
            failures
        }));
    }
    let mut view = cluster_view();
    for i in 2..=51u8 {
        view.version = u64::from(i);
        // A stable endpoint plus one that changes with every version.
        view.services[0].endpoints = vec![
            endpoint("10.244.0.1", true, 8080),
            endpoint(&format!("10.244.9.{i}"), true, 8080),
        ];
        write_view(&s.view_path, &view);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last endpoint becomes visible.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = udp(addr, WEB, RecordType::A).await;
        if addresses(&m).contains(&ip("10.244.9.51")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last view never showed: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    assert!(failures.is_empty(), "failed queries: {failures:?}");
    let answered = ok.load(Ordering::Relaxed);
    eprintln!("{answered} queries answered while the view was replaced 50 times");
    assert!(answered >= 50, "only {answered} queries answered");
    assert_eq!(s.dns.view().version, 51);
    s.dns.shutdown().await.unwrap();
}

/// A service too big for a 512-byte datagram: UDP without EDNS gets what fits with TC set (the
/// client then asks over TCP, which gets everything), and responses never go to a response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_too_big_for_udp_are_truncated_and_whole_over_tcp() {
    let mut view = cluster_view();
    view.services[0].endpoints = (1..=60u8)
        .map(|i| endpoint(&format!("10.244.3.{i}"), true, 8080))
        .collect();
    let s = start(Some(&view), vec![], true).await;
    let sock = udp_socket().await;
    sock.send_to(&raw_query(9, WEB, RecordType::A), s.addr())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no UDP answer"))
        .unwrap();
    assert!(len <= 512, "{len} bytes over UDP without EDNS");
    let m = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(m.metadata.id, 9);
    assert!(m.metadata.truncation, "TC must be set");
    assert!(addresses(&m).len() < 60);

    let m = tcp(s.addr(), WEB, RecordType::A).await;
    assert_eq!(addresses(&m).len(), 60);
    assert!(!m.metadata.truncation);

    // A datagram that is itself a response is never answered (no reflection loops).
    let mut response = Message::from_vec(&raw_query(10, WEB, RecordType::A)).unwrap();
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    sock.send_to(&response.to_vec().unwrap(), s.addr())
        .await
        .unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf)).await;
    assert!(silent.is_err(), "a response was answered");
    s.dns.shutdown().await.unwrap();
}

// ---- robustness ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_over_udp_and_tcp_do_not_stop_the_server() {
    let s = start(Some(&cluster_view()), vec![], true).await;
    let addr = s.addr();
    let sock = udp_socket().await;
    let valid = raw_query(7, WEB, RecordType::A);
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        valid[..5].to_vec(),
        // A whole header claiming a question that is not there.
        valid[..12].to_vec(),
        valid[..valid.len() - 3].to_vec(),
        // A label length pointing past the end, and a compression loop.
        vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a', 0, 0, 1, 0, 1],
        vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
    ];
    for seed in 1..=50u64 {
        junk.push(noise(seed, usize::try_from(seed * 7 % 300).unwrap_or(1)));
    }
    for j in &junk {
        let _ = sock.send_to(j, addr).await;
    }
    for j in &junk {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let len = u16::try_from(j.len()).unwrap_or(0);
        let _ = conn.write_u16(len).await;
        let _ = conn.write_all(j).await;
        let _ = conn.flush().await;
        drop(conn);
    }
    // A frame that announces more than it sends, left hanging open.
    let mut hanging = tokio::net::TcpStream::connect(addr).await.unwrap();
    hanging.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();

    // The next queries are answered, over both transports.
    let m = udp(addr, WEB, RecordType::A).await;
    assert_eq!(addresses(&m).len(), 2);
    let m = tcp(addr, WEB, RecordType::A).await;
    assert_eq!(addresses(&m).len(), 2);
    // And on the raw socket too (after possibly FORMERR replies to the junk).
    sock.send_to(&valid, addr).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (len, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer to the valid query"))
            .unwrap();
        if let Ok(m) = Message::from_vec(&buf[..len])
            && m.metadata.id == 7
            && m.metadata.response_code == ResponseCode::NoError
        {
            assert_eq!(addresses(&m).len(), 2);
            break;
        }
        assert!(Instant::now() < deadline, "no answer to the valid query");
    }
    // A TCP connection that sent garbage first still gets its next valid frame answered or is
    // closed, never leaves the server stuck: a fresh connection works.
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_u16(u16::try_from(valid.len()).unwrap_or(0))
        .await
        .unwrap();
    conn.write_all(&valid).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(3), conn.read_u16())
        .await
        .unwrap_or_else(|_| panic!("tcp timeout"))
        .unwrap();
    let mut reply = vec![0u8; usize::from(len)];
    conn.read_exact(&mut reply).await.unwrap();
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.id, 7);
    assert_eq!(addresses(&m).len(), 2);
    drop(hanging);
    s.dns.shutdown().await.unwrap();
}

// ---- forwarding ----

/// A view that lets 127.0.0.0/8 recurse by listing it (the server under test does not trust
/// loopback by itself), optionally with a whitelist.
fn forwarding_view(whitelist: Option<&[&str]>) -> View {
    let mut v = cluster_view();
    v.recursion_clients = vec!["127.0.0.0/8".parse().unwrap()];
    if let Some(hosts) = whitelist {
        v.whitelist = Whitelist {
            enabled: true,
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        };
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_names_are_refused_to_sources_not_in_recursion_clients() {
    let up = upstream().await;
    let mut v = cluster_view();
    v.recursion_clients = vec!["10.0.0.0/8".parse().unwrap()];
    let s = start(Some(&v), vec![up.addr], false).await;
    for m in [
        udp(s.addr(), "www.example.com.", RecordType::A).await,
        tcp(s.addr(), "www.example.com.", RecordType::A).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
        assert!(!m.metadata.recursion_available);
    }
    assert!(
        up.asked().is_empty(),
        "the upstream was asked: {:?}",
        up.asked()
    );
    // Cluster names are still answered to the same client.
    let m = udp(s.addr(), WEB, RecordType::A).await;
    assert_eq!(addresses(&m).len(), 2);
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_answers_nxdomain_and_nodata_pass_through() {
    let up = upstream().await;
    let s = start(Some(&forwarding_view(None)), vec![up.addr], false).await;

    for m in [
        udp(s.addr(), "www.example.com.", RecordType::A).await,
        tcp(s.addr(), "www.example.com.", RecordType::A).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.recursion_available, "RA");
        assert!(!m.metadata.authoritative);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_ascii(), "www.example.com.");
        assert_eq!(addresses(&m), vec![ip("192.0.2.10")]);
    }

    let m = udp(s.addr(), "nx.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.recursion_available);
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
    );

    let m = udp(s.addr(), "nodata.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());

    let m = udp(s.addr(), "fail.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upstream_answer_is_fetched_again_over_tcp() {
    let up = upstream().await;
    let s = start(Some(&forwarding_view(None)), vec![up.addr], false).await;
    let m = udp(s.addr(), "big.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), vec![ip("192.0.2.20")]);
    let asked = up.asked();
    assert!(
        asked.contains(&("big.example.com.".to_owned(), false))
            && asked.contains(&("big.example.com.".to_owned(), true)),
        "{asked:?}"
    );
    s.dns.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whitelist_refuses_names_and_cname_chains_that_leave_it() {
    let up = upstream().await;
    let s = start(
        Some(&forwarding_view(Some(&["example.com"]))),
        vec![up.addr],
        false,
    )
    .await;

    let m = udp(s.addr(), "www.example.com.", RecordType::A).await;
    assert_eq!(addresses(&m), vec![ip("192.0.2.10")]);

    let m = udp(s.addr(), "www.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(
        !up.was_asked("www.example.org."),
        "forwarded a refused name"
    );

    // alias.example.com is allowed, but its CNAME points to elsewhere.net.
    let m = udp(s.addr(), "alias.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());

    // Once elsewhere.net is allowed too (a view reload), the chain passes.
    write_view(&s.view_path, &{
        let mut v = forwarding_view(Some(&["example.com", "elsewhere.net"]));
        v.version = 2;
        v
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.dns.view().version != 2 {
        assert!(Instant::now() < deadline, "view not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = udp(s.addr(), "alias.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.answers
            .iter()
            .any(|r| r.record_type() == RecordType::CNAME)
    );
    assert_eq!(addresses(&m), vec![ip("192.0.2.30")]);
    s.dns.shutdown().await.unwrap();
}

/// The UDP loops' packet caches under load: clients keep each loop's cache hot with the current
/// answer while the view is replaced 20 times; once a reload is in, every answer (from new
/// clients, on either loop, in any case) is the new view's. Not one stale answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cached_answer_outlives_its_view_under_load() {
    let s = start(Some(&cluster_view()), vec![], true).await;
    let addr = s.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for client in 0..4 {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut c = udp_client(addr);
            let n = if client % 2 == 0 {
                WEB
            } else {
                "WEB.Default.SVC.cluster.local."
            };
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), query(&mut c, n, RecordType::A))
                        .await;
            }
        }));
    }
    let mut view = cluster_view();
    let mut stale = Vec::new();
    let mut checked = 0;
    for i in 2..=21u8 {
        view.version = u64::from(i);
        let fresh = ip(&format!("10.244.9.{i}"));
        view.services[0].endpoints = vec![endpoint(&fresh.to_string(), true, 8080)];
        write_view(&s.view_path, &view);
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.dns.view().version != u64::from(i) {
            assert!(Instant::now() < deadline, "version {i} was never loaded");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for n in [
            WEB,
            "Web.DEFAULT.svc.Cluster.Local.",
            WEB,
            "web.default.SVC.cluster.local.",
        ] {
            for _ in 0..5 {
                let m = udp(addr, n, RecordType::A).await;
                if addresses(&m) != vec![fresh] {
                    stale.push(format!("version {i}, {n}: {:?}", addresses(&m)));
                }
                checked += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert!(
        stale.is_empty(),
        "{} stale answers after a reload, the first: {:?}",
        stale.len(),
        &stale[..stale.len().min(3)]
    );
    assert_eq!(checked, 20 * 20);
    s.dns.shutdown().await.unwrap();
}
