//! Any bytes as a body of the Kubernetes API's writes: a protobuf body (`kubectl create`'s typed
//! clients), and JSON as a server-side apply's configuration and as a client's `managedFields`,
//! applied to a live object with field managers. Each must give a value or an error, never panic
//! or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podswarm_api::kube::{fields, protobuf};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let _ = protobuf::decode(data);
    let Ok(applied) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = fields::FieldSet::from_fields_v1(&applied);
    let writer = |manager| fields::Writer {
        manager,
        api_version: "apps/v1".into(),
        now: None,
        subresource: None,
    };
    let live = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx",
                    "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}]}}}
    });
    let Ok(live) = fields::apply("Deployment", None, &live, &writer("first"), false) else {
        return;
    };
    for force in [false, true] {
        if let Ok(out) = fields::apply("Deployment", Some(&live), &applied, &writer("second"), force) {
            let _ = fields::apply("Deployment", Some(&out), &applied, &writer("first"), force);
        }
    }
    let mut sent = live.clone();
    sent["metadata"]["managedFields"] = applied.clone();
    let _ = fields::update("Deployment", Some(&live), &mut sent, &writer("third"));
    let mut updated = applied;
    let _ = fields::update("Deployment", Some(&live), &mut updated, &writer("third"));
    // The same through the scale subresource, as `kubectl scale` writes.
    let scale = fields::Writer {
        subresource: Some("scale"),
        ..writer("fourth")
    };
    let _ = fields::update("Deployment", Some(&live), &mut updated, &scale);
});
