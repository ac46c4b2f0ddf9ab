//! Whatever intake accepts, the generator renders or refuses; no value may add a line that is not
//! a section, a `Key=value` or a comment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podswarm_generator::{NodeContext, Options, PodNetwork, render_node};
use podswarm_manifest::{Limits, Policy, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(manifest) = parse(text, "fuzz", &Limits::default(), &Policy::default()) else { return };
    let network = PodNetwork { subnet: "10.244.0.0/24".parse().expect("valid subnet") };
    let node = NodeContext {
        node_name: "node1".to_owned(),
        node_ip: None,
        dns_server: Some(std::net::IpAddr::V4(network.gateway())),
        network,
        cluster_domain: "cluster.local".to_owned(),
    };
    let objects: Vec<_> = manifest.objects.into_iter().map(|o| o.object).collect();
    let Ok(rendered) = render_node(&objects, &node, &Options::default()) else { return };
    for unit in rendered.units.iter().filter(|u| !u.file_name.ends_with(".json")) {
        for line in unit.contents.lines() {
            let ok = line.is_empty()
                || line.starts_with('#')
                || (line.starts_with('[') && line.ends_with(']'))
                || line.split_once('=').is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!(ok, "unexpected line in {}: {line:?}", unit.file_name);
        }
    }
});
