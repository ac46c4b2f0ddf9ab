//! Any bytes as a DNS request from a pod, against a view with services, pods and a whitelist:
//! podswarm-dns must answer or drop, never panic or hang (DESIGN: malformed packets never crash
//! or stall the server). Forwarded names stop at the plan; the forwarder is hickory's.
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
    let _ = podswarm_dns::answer_bytes(view(), packet, src);
});
