//! The field subset podswarm acts on, per kind. Everything else Kubernetes knows is reported as a
//! warning so that no field is ever dropped without the user hearing about it.
//!
//! Patterns are dotted paths where `[]` stands for any array element; a pattern covers its whole
//! subtree (so `metadata.labels` covers every label). Fields that Kubernetes itself fills in or
//! ignores on create (`status`, `metadata.uid`, …) are not reported: they carry no intent.

use serde_json::Value;

const COMMON: &[&str] = &[
    "apiVersion",
    "kind",
    "status",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.uid",
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.creationTimestamp",
    "metadata.managedFields",
    "metadata.selfLink",
];

const CONTAINER: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "env",
    "envFrom",
    "ports[].name",
    "ports[].containerPort",
    "ports[].hostPort",
    "ports[].hostIP",
    "ports[].protocol",
    "volumeMounts[].name",
    "volumeMounts[].mountPath",
    "volumeMounts[].readOnly",
    "volumeMounts[].subPath",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    // podswarmd runs preStop hooks before it stops a pod (daemon/src/lifecycle.rs); postStart,
    // stopSignal and httpGet.protocol stay unsupported.
    "lifecycle.preStop.exec",
    "lifecycle.preStop.httpGet.host",
    "lifecycle.preStop.httpGet.path",
    "lifecycle.preStop.httpGet.port",
    "lifecycle.preStop.httpGet.scheme",
    "lifecycle.preStop.httpGet.httpHeaders",
    "lifecycle.preStop.sleep",
    // Accepted as Kubernetes accepts it, and never run, as in Kubernetes: validate.rs says so
    // (one precise warning instead of this file's generic one).
    "lifecycle.preStop.tcpSocket",
    "resources.limits",
    "resources.requests",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.runAsNonRoot",
    "securityContext.readOnlyRootFilesystem",
    "securityContext.allowPrivilegeEscalation",
    "securityContext.privileged",
    "securityContext.capabilities",
    "terminationMessagePath",
    "terminationMessagePolicy",
];

const POD_SPEC: &[&str] = &[
    "containers",
    "initContainers",
    "volumes[].name",
    "volumes[].emptyDir",
    "volumes[].configMap",
    "volumes[].secret",
    "volumes[].persistentVolumeClaim",
    "volumes[].hostPath",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "nodeSelector",
    "hostname",
    "subdomain",
    "dnsPolicy",
    "hostNetwork",
    "hostUsers",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.runAsNonRoot",
];

fn patterns(kind: &str) -> Vec<String> {
    let mut out: Vec<String> = COMMON.iter().map(|s| (*s).to_owned()).collect();
    let pod = |prefix: &str, out: &mut Vec<String>| {
        out.extend(
            POD_SPEC
                .iter()
                .filter(|p| **p != "containers")
                .map(|p| format!("{prefix}{p}")),
        );
        out.extend(
            CONTAINER
                .iter()
                .map(|p| format!("{prefix}containers[].{p}")),
        );
    };
    match kind {
        "Pod" => pod("spec.", &mut out),
        "Deployment" => {
            out.extend(
                [
                    "spec.replicas",
                    "spec.selector",
                    "spec.strategy",
                    "spec.minReadySeconds",
                    "spec.revisionHistoryLimit",
                    "spec.progressDeadlineSeconds",
                    "spec.paused",
                    "spec.template.metadata.labels",
                    "spec.template.metadata.annotations",
                    "spec.template.metadata.name",
                    "spec.template.metadata.creationTimestamp",
                ]
                .map(String::from),
            );
            pod("spec.template.spec.", &mut out);
        }
        "Service" => out.extend(
            [
                "spec.selector",
                "spec.ports[].name",
                "spec.ports[].port",
                "spec.ports[].targetPort",
                "spec.ports[].protocol",
                "spec.ports[].nodePort",
                "spec.type",
                "spec.clusterIP",
            ]
            .map(String::from),
        ),
        "Ingress" => out.extend(
            [
                "spec.ingressClassName",
                "spec.defaultBackend.service",
                "spec.rules[].host",
                "spec.rules[].http.paths[].path",
                "spec.rules[].http.paths[].pathType",
                "spec.rules[].http.paths[].backend.service",
                "spec.tls",
            ]
            .map(String::from),
        ),
        "ConfigMap" => out.extend(["data", "binaryData", "immutable"].map(String::from)),
        "Secret" => out.extend(["data", "stringData", "type", "immutable"].map(String::from)),
        _ => {}
    }
    out
}

/// Paths (with real indices) of fields that are present and not covered by the supported subset.
pub(crate) fn unsupported_fields(kind: &str, raw: &Value) -> Vec<String> {
    let patterns: Vec<Vec<String>> = patterns(kind)
        .iter()
        .map(|p| {
            p.split('.')
                .map(|seg| seg.trim_end_matches("[]").to_owned())
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    walk(raw, &mut Vec::new(), "", &patterns, &mut out);
    out
}

/// `generic` holds the path without array indices; `real` the printable path.
fn walk(
    value: &Value,
    generic: &mut Vec<String>,
    real: &str,
    patterns: &[Vec<String>],
    out: &mut Vec<String>,
) {
    let Value::Object(map) = value else { return };
    for (key, child) in map {
        if child.is_null() {
            continue;
        }
        let real_child = if real.is_empty() {
            key.clone()
        } else {
            format!("{real}.{key}")
        };
        visit(child, generic, key, &real_child, patterns, out);
    }
}

fn visit(
    value: &Value,
    generic: &mut Vec<String>,
    key: &str,
    real: &str,
    patterns: &[Vec<String>],
    out: &mut Vec<String>,
) {
    // Array indices are transparent: `ports[].name` matches `ports[3].name`.
    generic.push(key.to_owned());
    // Covered: some pattern is a prefix of this path. Partly covered: this path is a prefix of some
    // pattern, so look deeper. Neither: report here and do not descend.
    let covered = patterns
        .iter()
        .any(|p| p.len() <= generic.len() && generic[..p.len()] == p[..]);
    let partly = patterns
        .iter()
        .any(|p| p.len() > generic.len() && p[..generic.len()] == generic[..]);
    if !covered {
        if !partly {
            out.push(real.to_owned());
        } else if let Value::Array(items) = value {
            for (i, item) in items.iter().enumerate() {
                walk(item, generic, &format!("{real}[{i}]"), patterns, out);
            }
        } else {
            walk(value, generic, real, patterns, out);
        }
    }
    generic.pop();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_highest_unsupported_node() {
        let raw = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {
                "containers": [{"name": "c", "image": "i", "lifecycle": {"postStart": {}},
                                "ports": [{"containerPort": 80}]}],
                "affinity": {"nodeAffinity": {}},
                "restartPolicy": "Always"
            }
        });
        assert_eq!(
            unsupported_fields("Pod", &raw),
            vec!["spec.affinity", "spec.containers[0].lifecycle.postStart"]
        );
    }

    #[test]
    fn pre_stop_is_supported_post_start_and_stop_signal_are_not() {
        let lifecycle = serde_json::json!({
            "preStop": {"httpGet": {"path": "/stop", "port": 80, "host": "a", "scheme": "HTTP",
                                    "httpHeaders": [{"name": "X", "value": "y"}],
                                    "protocol": "HTTP2"}},
            "postStart": {"exec": {"command": ["x"]}},
            "stopSignal": "SIGQUIT"
        });
        let raw = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "i", "lifecycle": lifecycle},
                {"name": "b", "image": "i", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}},
                {"name": "c", "image": "i", "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}},
                {"name": "d", "image": "i", "lifecycle": {"preStop": {"tcpSocket": {"port": 80}}}}
            ]}}}
        });
        let prefix = "spec.template.spec.containers[0].lifecycle";
        assert_eq!(
            unsupported_fields("Deployment", &raw),
            vec![
                format!("{prefix}.postStart"),
                format!("{prefix}.preStop.httpGet.protocol"),
                format!("{prefix}.stopSignal"),
            ]
        );
        let ephemeral = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "spec": {"containers": [], "ephemeralContainers": [
                {"name": "e", "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}]}
        });
        assert_eq!(
            unsupported_fields("Pod", &ephemeral),
            vec!["spec.ephemeralContainers"]
        );
    }
}
