//! Any bytes as a DNS request from a pod, against a view with services, pods and a whitelist:
//! podswarm-dns must answer or drop, never panic or hang (DESIGN: malformed packets never crash
//! or stall the server). Forwarded names stop at the plan; the forwarder is hickory's.
//!
//! The UDP loop's fast path is held to the slow path's bytes: whatever the packet, if the packet
//! cache takes it and keeps the slow path's answer, the answer it then serves for the same bytes
//! is the slow path's, byte for byte.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use podswarm_view::View;

fn view() -> &'static View {
    static VIEW: OnceLock<View> = OnceLock::new();
    VIEW.get_or_init(|| {
        serde_json::from_str(
            r#"{
              "version": 1, "clusterDomain": "cluster.local",
              "services": [{"namespace": "default", "name": "web",
                "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                "endpoints": [
                  {"ip": "10.244.1.5", "pod": "web-1", "node": "a", "ready": true, "hostname": "web-1",
                   "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]},
                  {"ip": "fd00::5", "pod": "web-2", "node": "b", "ready": true,
                   "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]},
                  {"ip": "10.244.2.9", "pod": "web-3", "node": "b", "ready": false, "ports": []}]}],
              "pods": [{"namespace": "default", "name": "web-1", "ip": "10.244.1.5",
                        "hostname": "web-1", "subdomain": "web", "node": "a"}],
              "recursionClients": ["10.244.0.0/16"],
              "whitelist": {"enabled": true, "hosts": ["example.com"]}
            }"#,
        )
        .expect("the fuzz view parses")
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the source: a pod (may recurse) or a stranger (may not).
    let Some((&who, packet)) = data.split_first() else {
        return;
    };
    let src = if who & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(10, 244, 1, 7))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
    };
    let slow = podswarm_dns::answer_bytes(view(), packet, src);
    let Some(query) = podswarm_dns::fast::Query::parse(packet) else {
        return;
    };
    let mut cache = podswarm_dns::fast::PacketCache::default();
    if let Some(response) = &slow {
        cache.fill(1, packet, &query, response, |p| {
            podswarm_dns::answer_bytes(view(), p, src)
        });
    }
    let mut served = Vec::new();
    if cache.answer(1, packet, &query, &mut served) {
        assert_eq!(Some(served), slow, "the packet cache's answer is not the slow path's");
    }
    // The same question in other letters' case is the same key: its hit must be its own slow
    // path's answer too (the ID, flags and question's case are the query's).
    let mut other = packet.to_vec();
    for b in other.iter_mut().skip(12) {
        if b.is_ascii_alphabetic() {
            *b ^= 0x20;
        }
    }
    if let Some(query) = podswarm_dns::fast::Query::parse(&other) {
        let mut served = Vec::new();
        if cache.answer(1, &other, &query, &mut served) {
            assert_eq!(
                Some(served),
                podswarm_dns::answer_bytes(view(), &other, src),
                "the packet cache's answer to another case is not the slow path's"
            );
        }
    }
});
