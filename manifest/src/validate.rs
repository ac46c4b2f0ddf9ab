use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, PodSpec, Probe, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names::*;
use crate::parse::Object;
use crate::quantity::{cpu_millis, memory_bytes};

/// Node-side policy that decides what a manifest may ask for.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Absolute host paths under which `hostPath` volumes are allowed. Empty: none are.
    pub host_path_allow: Vec<String>,
    /// Whether a pod may ask for the host's user namespace (`hostUsers: true`); by default every
    /// pod gets one of its own.
    pub allow_host_users: bool,
}

/// Whether `path` lies under one of `allow` (component-wise: `/srv` allows `/srv/x`, not `/srvx`).
/// The path must already be absolute and free of `.`/`..` components.
pub fn host_path_allowed(path: &str, allow: &[String]) -> bool {
    allow.iter().any(|prefix| {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty() && path.starts_with('/')
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
}

impl Report {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push((path.into(), message.into()));
    }
    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push((path.into(), message.into()));
    }
}

pub(crate) fn validate(object: &Object, policy: &Policy) -> Report {
    let mut r = Report::default();
    let meta = object.metadata();
    match object {
        Object::Namespace(_) => {
            name(
                &mut r,
                meta,
                is_dns1123_label,
                "a DNS-1123 label (lowercase letters, digits and '-', at most 63)",
            );
            if meta.namespace.is_some() {
                r.warn(
                    "metadata.namespace",
                    "a Namespace is not namespaced; this field is ignored",
                );
            }
        }
        Object::Service(svc) => {
            name(
                &mut r,
                meta,
                is_dns1035_label,
                "a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63)",
            );
            if let Some(spec) = &svc.spec {
                service(&mut r, spec);
            } else {
                r.err("spec", "required field is missing");
            }
        }
        Object::Pod(pod) => {
            subdomain_name(&mut r, meta);
            match &pod.spec {
                Some(spec) => pod_spec(&mut r, "spec", spec, policy),
                None => r.err("spec", "required field is missing"),
            }
        }
        Object::Deployment(d) => {
            subdomain_name(&mut r, meta);
            deployment(&mut r, d, policy);
        }
        Object::Ingress(ing) => {
            subdomain_name(&mut r, meta);
            match &ing.spec {
                Some(spec) => ingress(&mut r, spec),
                None => r.err("spec", "required field is missing"),
            }
        }
        Object::ConfigMap(cm) => {
            subdomain_name(&mut r, meta);
            let keys = cm.data.iter().flat_map(|d| d.keys().map(|k| ("data", k)));
            let bin = cm
                .binary_data
                .iter()
                .flat_map(|d| d.keys().map(|k| ("binaryData", k)));
            config_keys(&mut r, keys.chain(bin));
            let size: usize = cm
                .data
                .iter()
                .flatten()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
                + cm.binary_data
                    .iter()
                    .flatten()
                    .map(|(k, v)| k.len() + v.0.len())
                    .sum::<usize>();
            if size > 1 << 20 {
                r.err(
                    "data",
                    format!("a ConfigMap holds at most 1 MiB, this one holds {size} bytes"),
                );
            }
        }
        Object::Secret(s) => {
            subdomain_name(&mut r, meta);
            let keys = s.data.iter().flat_map(|d| d.keys().map(|k| ("data", k)));
            let string = s
                .string_data
                .iter()
                .flat_map(|d| d.keys().map(|k| ("stringData", k)));
            config_keys(&mut r, keys.chain(string));
            if s.type_.as_deref() == Some("kubernetes.io/tls") {
                for key in ["tls.crt", "tls.key"] {
                    let present = s.data.as_ref().is_some_and(|d| d.contains_key(key))
                        || s.string_data.as_ref().is_some_and(|d| d.contains_key(key));
                    if !present {
                        r.err(
                            format!("data.{key}"),
                            "a kubernetes.io/tls Secret needs this key",
                        );
                    }
                }
            }
        }
    }
    if !matches!(object, Object::Namespace(_))
        && let Some(ns) = &meta.namespace
        && !is_dns1123_label(ns)
    {
        r.err(
            "metadata.namespace",
            format!("{ns:?} is not a valid namespace: it must be a DNS-1123 label"),
        );
    }
    labels(&mut r, "metadata.labels", meta.labels.as_ref());
    if let Some(annotations) = &meta.annotations {
        for key in annotations.keys() {
            if !is_qualified_name(key) {
                r.err(
                    format!("metadata.annotations.{key}"),
                    "not a valid annotation key",
                );
            }
        }
    }
    r
}

fn name(r: &mut Report, meta: &ObjectMeta, ok: fn(&str) -> bool, rule: &str) {
    match meta.name.as_deref() {
        None | Some("") => r.err("metadata.name", "required field is missing"),
        Some(n) if !ok(n) => r.err(
            "metadata.name",
            format!("{n:?} is not a valid name: it must be {rule}"),
        ),
        Some(_) => {}
    }
}

fn subdomain_name(r: &mut Report, meta: &ObjectMeta) {
    name(
        r,
        meta,
        is_dns1123_subdomain,
        "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)",
    );
}

fn labels(r: &mut Report, path: &str, labels: Option<&BTreeMap<String, String>>) {
    for (key, value) in labels.into_iter().flatten() {
        if !is_qualified_name(key) {
            r.err(format!("{path}.{key}"), "not a valid label key");
        } else if !is_label_value(value) {
            r.err(format!("{path}.{key}"), format!("{value:?} is not a valid label value (at most 63 of letters, digits, '-', '_', '.')"));
        }
    }
}

fn config_keys<'a>(r: &mut Report, keys: impl Iterator<Item = (&'static str, &'a String)>) {
    for (field, key) in keys {
        if !is_config_key(key) {
            r.err(
                format!("{field}.{key}"),
                format!("{key:?} is not a valid key: use letters, digits, '-', '_' and '.'"),
            );
        }
    }
}

fn deployment(r: &mut Report, d: &k8s_openapi::api::apps::v1::Deployment, policy: &Policy) {
    let spec = &d.spec;
    // podswarm's own annotation: read by the same function the daemon acts on, so a value intake
    // accepts is one the daemon understands.
    if let Err(e) = crate::rollout::auto_rollback(&d.metadata) {
        r.err(e.field, e.kind.to_string());
    }
    if let Some(replicas) = spec.replicas {
        if replicas < 0 {
            r.err(
                "spec.replicas",
                format!("must be 0 or more, got {replicas}"),
            );
        } else if replicas > 1000 {
            r.err(
                "spec.replicas",
                format!("must be at most 1000, got {replicas}"),
            );
        }
    }
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    if spec
        .selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        r.err(
            "spec.selector.matchExpressions",
            "not supported by podswarm yet: use matchLabels",
        );
    }
    if selector.is_empty() {
        r.err(
            "spec.selector.matchLabels",
            "required: a Deployment must select its pods by label",
        );
    }
    labels(r, "spec.selector.matchLabels", Some(&selector));
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels(r, "spec.template.metadata.labels", Some(&template_labels));
    if selector
        .iter()
        .any(|(k, v)| template_labels.get(k) != Some(v))
    {
        r.err(
            "spec.template.metadata.labels",
            "must contain every label of spec.selector.matchLabels",
        );
    }
    match &spec.template.spec {
        Some(pod) => {
            if let Some(policy) = pod.restart_policy.as_deref()
                && policy != "Always"
            {
                r.err(
                    "spec.template.spec.restartPolicy",
                    format!("a Deployment's pods must use Always, got {policy:?}"),
                );
            }
            pod_spec(r, "spec.template.spec", pod, policy);
        }
        None => r.err("spec.template.spec", "required field is missing"),
    }
    // The rollout settings are checked where they are read, so the planner can never refuse a
    // Deployment that intake accepted.
    for e in crate::rollout::problems(spec) {
        r.err(e.field, e.kind.to_string());
    }
}

/// Characters that may never reach a unit file inside a value, escaped or not: NUL cannot be
/// passed in argv or environment at all.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Container image references: registry, path, tag and digest characters only.
fn is_image_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 4096
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Paths inside the container (mountPath, workingDir): absolute, no `..`, and none of the
/// characters podman's `-v src:dst:opts` syntax or the unit grammar give meaning to.
fn container_path_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        Some("must be an absolute path")
    } else if p.split('/').any(|c| c == "..") {
        Some("must not contain '..'")
    } else if p
        .chars()
        .any(|c| c.is_control() || matches!(c, ':' | ',' | '"' | '\'' | '\\'))
    {
        Some("must not contain control characters, ':', ',', quotes or backslashes")
    } else {
        None
    }
}

/// Relative file paths inside a volume (items[].path, subPath).
fn relative_path_problem(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        Some("must not be empty")
    } else if p.starts_with('/') {
        Some("must be a relative path")
    } else if p.split('/').any(|c| c == ".." || c.is_empty()) {
        Some("must not contain '..' or empty components")
    } else if p
        .chars()
        .any(|c| c.is_control() || matches!(c, ':' | ',' | '"' | '\'' | '\\'))
    {
        Some("must not contain control characters, ':', ',', quotes or backslashes")
    } else {
        None
    }
}

pub(crate) fn pod_spec(r: &mut Report, path: &str, spec: &PodSpec, policy: &Policy) {
    if spec.containers.is_empty() {
        r.err(
            format!("{path}.containers"),
            "a pod needs at least one container",
        );
    }
    if let Some(policy) = spec.restart_policy.as_deref()
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        r.err(
            format!("{path}.restartPolicy"),
            format!("must be Always, OnFailure or Never, got {policy:?}"),
        );
    }
    if let Some(grace) = spec.termination_grace_period_seconds
        && !(0..=3600).contains(&grace)
    {
        r.err(
            format!("{path}.terminationGracePeriodSeconds"),
            format!("must be between 0 and 3600, got {grace}"),
        );
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value
            && !is_dns1123_label(v)
        {
            r.err(
                format!("{path}.{field}"),
                format!("{v:?} must be a DNS-1123 label"),
            );
        }
    }
    labels(
        r,
        &format!("{path}.nodeSelector"),
        spec.node_selector.as_ref(),
    );
    if let Some(dns) = spec.dns_policy.as_deref()
        && dns != "ClusterFirst"
    {
        r.warn(
            format!("{path}.dnsPolicy"),
            format!("podswarm always uses cluster DNS (ClusterFirst); {dns} is not supported"),
        );
    }
    if spec.host_users == Some(true) && !policy.allow_host_users {
        r.err(
            format!("{path}.hostUsers"),
            "true is refused: it runs the pod in the host's user namespace, where container root is root on the node; every pod gets its own unless the node allows it (allow_host_users = true in [workloads] of podswarm.toml)",
        );
    }
    if spec.host_network == Some(true) {
        r.err(
            format!("{path}.hostNetwork"),
            "not supported: pods always get their own address on the pod network",
        );
    }
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mut volume_names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        if !is_dns1123_label(&v.name) {
            r.err(
                format!("{vp}.name"),
                format!("{:?} must be a DNS-1123 label", v.name),
            );
        }
        if !volume_names.insert(v.name.as_str()) {
            r.err(
                format!("{vp}.name"),
                format!("duplicate volume name {:?}", v.name),
            );
        }
        volume(r, &vp, v, policy);
    }
    let mut container_names = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        if !container_names.insert(c.name.as_str()) {
            r.err(
                format!("{cp}.name"),
                format!("duplicate container name {:?}", c.name),
            );
        }
        container(r, &cp, c, &volume_names);
        lifecycle(
            r,
            &cp,
            c,
            spec.termination_grace_period_seconds
                .unwrap_or(DEFAULT_GRACE_SECONDS),
        );
        for (j, port) in c.ports.iter().flatten().enumerate() {
            if let Some(n) = &port.name
                && !port_names.insert(n.clone())
            {
                r.err(
                    format!("{cp}.ports[{j}].name"),
                    format!("duplicate port name {n:?} in the pod"),
                );
            }
            if let Some(hp) = port.host_port.filter(|p| *p != 0) {
                let proto = port.protocol.clone().unwrap_or_else(|| "TCP".into());
                if !host_ports.insert((hp, proto.clone())) {
                    r.err(
                        format!("{cp}.ports[{j}].hostPort"),
                        format!("host port {hp}/{proto} is used twice in the pod"),
                    );
                }
            }
        }
    }
    if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        r.err(
            format!("{path}.initContainers"),
            "init containers are not supported by podswarm yet",
        );
    }
}

fn volume(r: &mut Report, vp: &str, v: &Volume, policy: &Policy) {
    let sources = [
        v.empty_dir.is_some(),
        v.config_map.is_some(),
        v.secret.is_some(),
        v.persistent_volume_claim.is_some(),
        v.host_path.is_some(),
    ];
    let supported = sources.iter().filter(|s| **s).count();
    let raw = serde_json::to_value(v).unwrap_or_default();
    let all = raw
        .as_object()
        .map(|m| m.len().saturating_sub(1))
        .unwrap_or(0);
    if all > supported || supported == 0 {
        let kinds: Vec<String> = raw
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .filter(|k| {
                !matches!(
                    k.as_str(),
                    "name"
                        | "emptyDir"
                        | "configMap"
                        | "secret"
                        | "persistentVolumeClaim"
                        | "hostPath"
                )
            })
            .collect();
        if supported == 0 && kinds.is_empty() {
            r.err(vp, "a volume needs a source (emptyDir, configMap, secret, persistentVolumeClaim or hostPath)");
        } else if !kinds.is_empty() {
            r.err(vp, format!("volume source {} is not supported by podswarm; use emptyDir, configMap, secret, persistentVolumeClaim or hostPath", kinds.join(", ")));
        }
    }
    if supported > 1 {
        r.err(vp, "a volume must have exactly one source");
    }
    let items = |r: &mut Report,
                 field: &str,
                 items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
                 default_mode: Option<i32>| {
        for (j, item) in items.into_iter().flatten().enumerate() {
            if !is_config_key(&item.key) {
                r.err(
                    format!("{vp}.{field}.items[{j}].key"),
                    format!("{:?} is not a valid key", item.key),
                );
            }
            if let Some(problem) = relative_path_problem(&item.path) {
                r.err(
                    format!("{vp}.{field}.items[{j}].path"),
                    format!("{:?} {problem}", item.path),
                );
            }
            if let Some(mode) = item.mode
                && !(0..=0o777).contains(&mode)
            {
                r.err(
                    format!("{vp}.{field}.items[{j}].mode"),
                    format!("must be between 0 and 0777 (511), got {mode}"),
                );
            }
        }
        if let Some(mode) = default_mode
            && !(0..=0o777).contains(&mode)
        {
            r.err(
                format!("{vp}.{field}.defaultMode"),
                format!("must be between 0 and 0777 (511), got {mode}"),
            );
        }
    };
    if let Some(cm) = &v.config_map {
        if !is_dns1123_subdomain(&cm.name) {
            r.err(
                format!("{vp}.configMap.name"),
                format!("{:?} is not a valid ConfigMap name", cm.name),
            );
        }
        items(r, "configMap", cm.items.as_ref(), cm.default_mode);
    }
    if let Some(s) = &v.secret {
        match s.secret_name.as_deref() {
            Some(n) if is_dns1123_subdomain(n) => {}
            Some(n) => r.err(
                format!("{vp}.secret.secretName"),
                format!("{n:?} is not a valid Secret name"),
            ),
            None => r.err(
                format!("{vp}.secret.secretName"),
                "required field is missing",
            ),
        }
        items(r, "secret", s.items.as_ref(), s.default_mode);
    }
    if let Some(pvc) = &v.persistent_volume_claim
        && !is_dns1123_subdomain(&pvc.claim_name)
    {
        r.err(
            format!("{vp}.persistentVolumeClaim.claimName"),
            format!("{:?} is not a valid claim name", pvc.claim_name),
        );
    }
    if let Some(ed) = &v.empty_dir {
        if let Some(medium) = ed.medium.as_deref().filter(|m| !m.is_empty())
            && medium != "Memory"
        {
            r.err(
                format!("{vp}.emptyDir.medium"),
                format!("must be \"\" or Memory, got {medium:?}"),
            );
        }
        if let Some(limit) = &ed.size_limit
            && let Err(e) = memory_bytes(&limit.0)
        {
            r.err(format!("{vp}.emptyDir.sizeLimit"), e.to_string());
        }
    }
    if let Some(hp) = &v.host_path {
        let p = &hp.path;
        let hpp = format!("{vp}.hostPath.path");
        if !p.starts_with('/') || p.split('/').any(|c| c == ".." || c == ".") || has_control(p) {
            r.err(
                hpp,
                format!("{p:?} must be an absolute path without '.', '..' or control characters"),
            );
        } else if p
            .chars()
            .any(|c| matches!(c, ':' | ',' | '"' | '\'' | '\\'))
        {
            r.err(
                hpp,
                format!("{p:?} must not contain ':', ',', quotes or backslashes"),
            );
        } else if !host_path_allowed(p, &policy.host_path_allow) {
            let allowed = if policy.host_path_allow.is_empty() {
                "none are allowed on this cluster".to_owned()
            } else {
                format!("allowed prefixes: {}", policy.host_path_allow.join(", "))
            };
            r.err(
                hpp,
                format!("hostPath {p:?} is refused: {allowed} (configure host_path_allow)"),
            );
        }
    }
}

fn container(r: &mut Report, cp: &str, c: &Container, volumes: &BTreeSet<&str>) {
    if !is_dns1123_label(&c.name) {
        r.err(
            format!("{cp}.name"),
            format!("{:?} must be a DNS-1123 label", c.name),
        );
    }
    match c.image.as_deref() {
        None | Some("") => r.err(format!("{cp}.image"), "required field is missing"),
        Some(image) if !is_image_ref(image) => r.err(
            format!("{cp}.image"),
            format!(
                "{image:?} is not a valid image reference (letters, digits and . _ - / : @ only)"
            ),
        ),
        Some(_) => {}
    }
    if let Some(policy) = c.image_pull_policy.as_deref()
        && !matches!(policy, "Always" | "IfNotPresent" | "Never")
    {
        r.err(
            format!("{cp}.imagePullPolicy"),
            format!("must be Always, IfNotPresent or Never, got {policy:?}"),
        );
    }
    for (field, list) in [("command", &c.command), ("args", &c.args)] {
        for (j, arg) in list.iter().flatten().enumerate() {
            if has_nul(arg) {
                r.err(
                    format!("{cp}.{field}[{j}]"),
                    "must not contain a NUL character",
                );
            }
        }
    }
    if c.command.is_none()
        && let Some(j) = c.args.iter().flatten().position(String::is_empty)
    {
        r.err(
                format!("{cp}.args[{j}]"),
                "an empty argument needs an explicit command: podman's unit generator drops it and every argument after it",
            );
    }
    if let Some(wd) = &c.working_dir
        && let Some(problem) = container_path_problem(wd)
    {
        r.err(format!("{cp}.workingDir"), format!("{wd:?} {problem}"));
    }
    let port_names: BTreeSet<&str> = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.as_deref())
        .collect();
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{cp}.ports[{j}]");
        if !(1..=65535).contains(&port.container_port) {
            r.err(
                format!("{pp}.containerPort"),
                format!("must be between 1 and 65535, got {}", port.container_port),
            );
        }
        if let Some(hp) = port.host_port
            && !(0..=65535).contains(&hp)
        {
            r.err(
                format!("{pp}.hostPort"),
                format!("must be between 1 and 65535, got {hp}"),
            );
        }
        if let Some(n) = &port.name
            && !is_iana_svc_name(n)
        {
            r.err(format!("{pp}.name"), format!("{n:?} is not a valid port name (at most 15 lowercase letters, digits and '-', with a letter)"));
        }
        if let Some(proto) = port.protocol.as_deref()
            && !matches!(proto, "TCP" | "UDP" | "SCTP")
        {
            r.err(
                format!("{pp}.protocol"),
                format!("must be TCP, UDP or SCTP, got {proto:?}"),
            );
        }
        if let Some(ip) = port.host_ip.as_deref()
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            r.err(
                format!("{pp}.hostIP"),
                format!("{ip:?} is not an IP address"),
            );
        }
    }
    for (j, env) in c.env.iter().flatten().enumerate() {
        let ep = format!("{cp}.env[{j}]");
        if !is_env_var_name(&env.name) {
            r.err(format!("{ep}.name"), format!("{:?} is not a valid environment variable name (letters, digits, '_', '-', '.', not starting with a digit)", env.name));
        }
        if env.value.as_deref().is_some_and(has_nul) {
            r.err(format!("{ep}.value"), "must not contain a NUL character");
        }
        if let Some(from) = &env.value_from {
            if env.value.as_deref().is_some_and(|v| !v.is_empty()) {
                r.err(
                    format!("{ep}.valueFrom"),
                    "may not be set together with value",
                );
            }
            let count = [
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if count != 1 {
                r.err(format!("{ep}.valueFrom"), "must have exactly one of configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef");
            }
            if let Some(k) = &from.config_map_key_ref {
                key_ref(
                    r,
                    &format!("{ep}.valueFrom.configMapKeyRef"),
                    &k.name,
                    &k.key,
                );
            }
            if let Some(k) = &from.secret_key_ref {
                key_ref(r, &format!("{ep}.valueFrom.secretKeyRef"), &k.name, &k.key);
            }
            if let Some(f) = &from.field_ref
                && !is_supported_field_path(&f.field_path)
            {
                r.err(format!("{ep}.valueFrom.fieldRef.fieldPath"), format!("{:?} is not supported; use metadata.name, metadata.namespace, metadata.labels['…'], spec.nodeName, status.podIP or status.hostIP", f.field_path));
            }
            if from.resource_field_ref.is_some() {
                r.err(
                    format!("{ep}.valueFrom.resourceFieldRef"),
                    "not supported by podswarm yet",
                );
            }
        }
    }
    for (j, from) in c.env_from.iter().flatten().enumerate() {
        let fp = format!("{cp}.envFrom[{j}]");
        if let Some(prefix) = from.prefix.as_deref().filter(|p| !p.is_empty())
            && !is_env_var_name(prefix)
        {
            r.err(
                format!("{fp}.prefix"),
                format!("{prefix:?} is not a valid environment variable prefix"),
            );
        }
        if from.config_map_ref.is_some() == from.secret_ref.is_some() {
            r.err(fp, "must have exactly one of configMapRef and secretRef");
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{cp}.volumeMounts[{j}]");
        if !volumes.contains(m.name.as_str()) {
            r.err(
                format!("{mp}.name"),
                format!("no volume named {:?} in the pod", m.name),
            );
        }
        if let Some(problem) = container_path_problem(&m.mount_path) {
            r.err(
                format!("{mp}.mountPath"),
                format!("{:?} {problem}", m.mount_path),
            );
        }
        if !mount_paths.insert(m.mount_path.as_str()) {
            r.err(
                format!("{mp}.mountPath"),
                format!("{:?} is mounted twice", m.mount_path),
            );
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty())
            && let Some(problem) = relative_path_problem(sub)
        {
            r.err(format!("{mp}.subPath"), format!("{sub:?} {problem}"));
        }
    }
    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            self::probe(r, &format!("{cp}.{field}"), p, &port_names);
        }
    }
    if c.startup_probe.is_some() && c.liveness_probe.is_none() {
        r.err(format!("{cp}.startupProbe"), "podman runs a startup check only before a regular health check: add a livenessProbe too");
    }
    if let Some(res) = &c.resources {
        for (field, map) in [("limits", &res.limits), ("requests", &res.requests)] {
            for (key, q) in map.iter().flatten() {
                let qp = format!("{cp}.resources.{field}.{key}");
                let parsed = match key.as_str() {
                    "memory" | "ephemeral-storage" => memory_bytes(&q.0).map(|_| ()),
                    "cpu" => cpu_millis(&q.0).map(|_| ()),
                    other => {
                        r.warn(
                            qp,
                            format!("resource {other:?} is not enforced by podswarm"),
                        );
                        continue;
                    }
                };
                if let Err(e) = parsed {
                    r.err(qp, e.to_string());
                }
            }
        }
    }
    if let Some(sc) = &c.security_context {
        for (field, id) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
        ] {
            if let Some(id) = id
                && !(0..=i64::from(u32::MAX - 1)).contains(&id)
            {
                r.err(
                    format!("{cp}.securityContext.{field}"),
                    format!("must be between 0 and 4294967294, got {id}"),
                );
            }
        }
        if sc.privileged == Some(true) {
            r.err(
                format!("{cp}.securityContext.privileged"),
                "privileged containers are not allowed by podswarm",
            );
        }
        if let Some(caps) = &sc.capabilities {
            for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
                for (j, cap) in list.iter().flatten().enumerate() {
                    let ok = !cap.is_empty()
                        && cap.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok {
                        r.err(
                            format!("{cp}.securityContext.capabilities.{field}[{j}]"),
                            format!("{cap:?} is not a capability name"),
                        );
                    }
                }
            }
        }
    }
}

fn key_ref(r: &mut Report, path: &str, name: &str, key: &str) {
    if !is_dns1123_subdomain(name) {
        r.err(
            format!("{path}.name"),
            format!("{name:?} is not a valid object name"),
        );
    }
    if !is_config_key(key) {
        r.err(format!("{path}.key"), format!("{key:?} is not a valid key"));
    }
}

/// The downward-API fields podswarm can fill in at render time.
pub(crate) fn is_supported_field_path(path: &str) -> bool {
    matches!(
        path,
        "metadata.name" | "metadata.namespace" | "spec.nodeName" | "status.podIP" | "status.hostIP"
    ) || path
        .strip_prefix("metadata.labels['")
        .or_else(|| path.strip_prefix("metadata.annotations['"))
        .and_then(|rest| rest.strip_suffix("']"))
        .is_some_and(is_qualified_name)
}

fn probe(r: &mut Report, pp: &str, p: &Probe, port_names: &BTreeSet<&str>) {
    let handlers = [
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.grpc.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() != 1 {
        r.err(pp, "a probe needs exactly one of exec, httpGet, tcpSocket");
    }
    if p.grpc.is_some() {
        r.err(
            format!("{pp}.grpc"),
            "gRPC probes are not supported by podswarm yet",
        );
    }
    if let Some(exec) = &p.exec {
        exec_action(r, &format!("{pp}.exec"), exec);
    }
    if let Some(h) = &p.http_get {
        http_get_action(r, &format!("{pp}.httpGet"), h, port_names);
    }
    if let Some(t) = &p.tcp_socket {
        port_ref(r, format!("{pp}.tcpSocket.port"), &t.port, port_names);
        if let Some(host) = &t.host {
            host_field(r, format!("{pp}.tcpSocket.host"), host);
        }
    }
    for (field, value, min) in [
        ("initialDelaySeconds", p.initial_delay_seconds, 0),
        ("periodSeconds", p.period_seconds, 1),
        ("timeoutSeconds", p.timeout_seconds, 1),
        ("failureThreshold", p.failure_threshold, 1),
        ("successThreshold", p.success_threshold, 1),
    ] {
        if let Some(v) = value
            && v < min
        {
            r.err(
                format!("{pp}.{field}"),
                format!("must be {min} or more, got {v}"),
            );
        }
    }
}

/// A probe's or handler's port: a number, or the name of one of the container's ports.
fn port_ref(r: &mut Report, path: String, port: &IntOrString, port_names: &BTreeSet<&str>) {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            r.err(path, format!("must be between 1 and 65535, got {n}"))
        }
        IntOrString::String(name) if !port_names.contains(name.as_str()) => {
            r.err(path, format!("no container port is named {name:?}"))
        }
        _ => {}
    }
}

/// An `exec` action (probe or lifecycle handler) at `ep`.
fn exec_action(r: &mut Report, ep: &str, exec: &ExecAction) {
    let cmd = exec.command.as_deref().unwrap_or_default();
    if cmd.is_empty() {
        r.err(format!("{ep}.command"), "must not be empty");
    }
    if cmd.iter().any(|a| has_nul(a)) {
        r.err(format!("{ep}.command"), "must not contain a NUL character");
    }
}

/// An `httpGet` action (probe or lifecycle handler) at `hp`.
fn http_get_action(r: &mut Report, hp: &str, h: &HTTPGetAction, port_names: &BTreeSet<&str>) {
    port_ref(r, format!("{hp}.port"), &h.port, port_names);
    if let Some(path) = &h.path
        && (!path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        r.err(
            format!("{hp}.path"),
            format!("{path:?} must start with '/' and contain no spaces or control characters"),
        );
    }
    if let Some(scheme) = h.scheme.as_deref()
        && scheme != "HTTP"
        && scheme != "HTTPS"
    {
        r.err(
            format!("{hp}.scheme"),
            format!("must be HTTP or HTTPS, got {scheme:?}"),
        );
    }
    if let Some(host) = &h.host {
        host_field(r, format!("{hp}.host"), host);
    }
}

/// A probe's or hook's `host`: an address or a DNS name.
fn host_field(r: &mut Report, path: String, host: &str) {
    if host.parse::<std::net::IpAddr>().is_err() && !is_dns1123_subdomain(host) {
        r.err(path, format!("{host:?} is not a host name or address"));
    }
}

/// Kubernetes' `terminationGracePeriodSeconds` when a pod does not set it.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// A container's `lifecycle.preStop`, which podswarmd runs before it stops the pod, checked as
/// Kubernetes' `validateLifecycle` does: one handler, its action valid, a `sleep` within the grace
/// period. `tcpSocket` passes Kubernetes' validation but is deprecated and never run (the kubelet
/// fails it), so it is accepted with a warning. `postStart` and `stopSignal` are not supported
/// (`support.rs` warns), so they are not checked.
fn lifecycle(r: &mut Report, cp: &str, c: &Container, grace: i64) {
    let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return;
    };
    let hp = format!("{cp}.lifecycle.preStop");
    let handlers = [
        hook.exec.is_some(),
        hook.http_get.is_some(),
        hook.sleep.is_some(),
        hook.tcp_socket.is_some(),
    ];
    match handlers.iter().filter(|h| **h).count() {
        0 => r.err(&hp, "must specify a handler type: exec, httpGet or sleep"),
        1 => {}
        _ => r.err(&hp, "may not specify more than 1 handler type"),
    }
    let port_names: BTreeSet<&str> = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.as_deref())
        .collect();
    if let Some(exec) = &hook.exec {
        exec_action(r, &format!("{hp}.exec"), exec);
    }
    if let Some(h) = &hook.http_get {
        let hgp = format!("{hp}.httpGet");
        http_get_action(r, &hgp, h, &port_names);
        for (i, header) in h.http_headers.iter().flatten().enumerate() {
            if !is_http_token(&header.name) {
                r.err(
                    format!("{hgp}.httpHeaders[{i}].name"),
                    format!("{:?} is not a valid HTTP header name", header.name),
                );
            }
            // What an HTTP/1.1 field value may hold: no line breaks or other control characters.
            if header.value.chars().any(|c| c.is_control() && c != '\t') {
                r.err(
                    format!("{hgp}.httpHeaders[{i}].value"),
                    "must not contain control characters",
                );
            }
        }
        if h.scheme.as_deref() == Some("HTTPS") {
            r.warn(
                format!("{hgp}.scheme"),
                "podswarm speaks no TLS to hooks yet: an HTTPS preStop hook only connects, sends \
                 no request and is logged as failed; the pod is stopped all the same",
            );
        }
    }
    if let Some(sleep) = &hook.sleep
        && !(0..=grace).contains(&sleep.seconds)
    {
        r.err(
            format!("{hp}.sleep.seconds"),
            format!(
                "must be non-negative and at most terminationGracePeriodSeconds ({grace}), got {}",
                sleep.seconds
            ),
        );
    }
    if hook.tcp_socket.is_some() {
        r.warn(
            format!("{hp}.tcpSocket"),
            "deprecated: Kubernetes accepts tcpSocket in a lifecycle handler but never runs it (the \
             hook fails), and podswarm does the same; use exec, httpGet or sleep",
        );
    }
}

/// An HTTP token (RFC 9110, section 5.6.2), what a header name is.
fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn service(r: &mut Report, spec: &k8s_openapi::api::core::v1::ServiceSpec) {
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if !(1..=65535).contains(&p.port) {
            r.err(
                format!("{pp}.port"),
                format!("must be between 1 and 65535, got {}", p.port),
            );
        }
        match &p.name {
            Some(n) if !is_dns1123_label(n) => r.err(
                format!("{pp}.name"),
                format!("{n:?} must be a DNS-1123 label"),
            ),
            Some(n) if !names.insert(n.as_str()) => {
                r.err(format!("{pp}.name"), format!("duplicate port name {n:?}"))
            }
            None if ports.len() > 1 => r.err(
                format!("{pp}.name"),
                "required when a Service has more than one port",
            ),
            _ => {}
        }
        match &p.target_port {
            Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => r.err(
                format!("{pp}.targetPort"),
                format!("must be between 1 and 65535, got {n}"),
            ),
            Some(IntOrString::String(n)) if !is_iana_svc_name(n) => r.err(
                format!("{pp}.targetPort"),
                format!("{n:?} is not a valid port name"),
            ),
            _ => {}
        }
        if let Some(proto) = p.protocol.as_deref()
            && !matches!(proto, "TCP" | "UDP" | "SCTP")
        {
            r.err(
                format!("{pp}.protocol"),
                format!("must be TCP, UDP or SCTP, got {proto:?}"),
            );
        }
        if p.node_port.is_some() {
            r.warn(format!("{pp}.nodePort"), "podswarm opens no node ports; reach the service through DNS, pod IPs, hostPort or an Ingress");
        }
    }
    labels(r, "spec.selector", spec.selector.as_ref());
    match spec.type_.as_deref() {
        None | Some("ClusterIP") => {}
        Some(t @ ("NodePort" | "LoadBalancer")) => r.warn(
            "spec.type",
            format!("{t} is served like ClusterIP: podswarm gives services DNS names over ready pod IPs, not node ports or load balancers"),
        ),
        Some("ExternalName") => r.err("spec.type", "ExternalName Services are not supported by podswarm yet"),
        Some(other) => r.err("spec.type", format!("unknown Service type {other:?}")),
    }
    if let Some(ip) = spec.cluster_ip.as_deref()
        && ip != "None"
        && !ip.is_empty()
    {
        r.warn(
            "spec.clusterIP",
            "podswarm has no virtual service IPs; the Service resolves to its pods' IPs",
        );
    }
}

fn ingress(r: &mut Report, spec: &k8s_openapi::api::networking::v1::IngressSpec) {
    let backend =
        |r: &mut Report, path: String, b: &k8s_openapi::api::networking::v1::IngressBackend| {
            match &b.service {
                Some(s) => {
                    if !is_dns1035_label(&s.name) {
                        r.err(
                            format!("{path}.service.name"),
                            format!("{:?} is not a valid Service name", s.name),
                        );
                    }
                    match &s.port {
                        Some(p) => match (p.number, p.name.as_deref()) {
                            (Some(n), None) if (1..=65535).contains(&n) => {}
                            (None, Some(name)) if is_dns1123_label(name) => {}
                            _ => r.err(
                                format!("{path}.service.port"),
                                "needs exactly one of a number (1-65535) or a port name",
                            ),
                        },
                        None => r.err(format!("{path}.service.port"), "required field is missing"),
                    }
                }
                None => r.err(path, "only Service backends are supported"),
            }
        };
    if let Some(b) = &spec.default_backend {
        backend(r, "spec.defaultBackend".into(), b);
    }
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(host) = &rule.host {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if !is_dns1123_subdomain(bare) {
                r.err(
                    format!("{rp}.host"),
                    format!(
                        "{host:?} is not a valid host (a DNS name, optionally starting with '*.')"
                    ),
                );
            }
        }
        for (j, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
            let pp = format!("{rp}.http.paths[{j}]");
            match p.path_type.as_str() {
                "Exact" | "Prefix" => {}
                "ImplementationSpecific" => r.warn(
                    format!("{pp}.pathType"),
                    "ImplementationSpecific is treated as Prefix",
                ),
                other => r.err(
                    format!("{pp}.pathType"),
                    format!("must be Exact, Prefix or ImplementationSpecific, got {other:?}"),
                ),
            }
            if let Some(path) = &p.path
                && (!path.starts_with('/')
                    || path.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                r.err(
                    format!("{pp}.path"),
                    format!(
                        "{path:?} must start with '/' and contain no spaces or control characters"
                    ),
                );
            }
            backend(r, format!("{pp}.backend"), &p.backend);
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        if let Some(name) = &tls.secret_name
            && !is_dns1123_subdomain(name)
        {
            r.err(
                format!("spec.tls[{i}].secretName"),
                format!("{name:?} is not a valid Secret name"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_prefixes_are_component_wise() {
        let allow = vec!["/srv/data".to_owned()];
        assert!(host_path_allowed("/srv/data", &allow));
        assert!(host_path_allowed("/srv/data/x", &allow));
        assert!(!host_path_allowed("/srv/database", &allow));
        assert!(!host_path_allowed("/", &allow));
        assert!(!host_path_allowed("/srv/x", &[]));
        assert!(host_path_allowed("/anything", &["/".to_owned()]));
    }

    /// `hostUsers: true` is refused, naming the setting, unless the policy allows it; `false`
    /// (what every pod gets anyway) is accepted without a word, in a Deployment's template too.
    #[test]
    fn host_users_is_refused_unless_the_policy_allows_it() {
        let asks = |v: bool| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      hostUsers: {v}\n      containers: [{{name: app, image: x}}]\n"
            )
        };
        let refused = intake(&asks(true)).unwrap_err();
        assert!(
            refused.contains("spec.template.spec.hostUsers")
                && refused.contains("allow_host_users"),
            "{refused}"
        );
        assert_eq!(intake(&asks(false)), Ok(vec![]));
        let allowed = Policy {
            allow_host_users: true,
            ..Policy::default()
        };
        assert!(crate::parse(&asks(true), "t", &crate::Limits::default(), &allowed).is_ok());
    }

    /// Intake of `yaml` as a user meets it: accepted objects' warnings, or the refusal.
    fn intake(yaml: &str) -> Result<Vec<String>, String> {
        crate::parse(yaml, "t", &crate::Limits::default(), &Policy::default())
            .map(|m| m.warnings.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    /// A Pod whose one container has `lifecycle` (YAML flow) and, if given, a grace period.
    fn pod(lifecycle: &str, grace: Option<i64>) -> String {
        let grace = grace.map_or(String::new(), |g| {
            format!("  terminationGracePeriodSeconds: {g}\n")
        });
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{grace}  containers:\n  \
             - name: app\n    image: x\n    ports: [{{name: admin, containerPort: 9000}}]\n    \
             lifecycle: {lifecycle}\n"
        )
    }

    #[test]
    fn pre_stop_hooks_are_accepted_without_warning() {
        for hook in [
            "{preStop: {exec: {command: [/bin/drain, --now]}}}",
            "{preStop: {httpGet: {path: /drain, port: admin, httpHeaders: [{name: X-Why, value: stop}]}}}",
            "{preStop: {httpGet: {port: 9000, host: 10.0.0.1, scheme: HTTP}}}",
            "{preStop: {sleep: {seconds: 30}}}",
            "{preStop: {sleep: {seconds: 0}}}",
        ] {
            assert_eq!(intake(&pod(hook, None)), Ok(vec![]), "{hook}");
        }
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  \
            selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    \
            spec:\n      terminationGracePeriodSeconds: 60\n      containers:\n      - name: app\n        \
            image: x\n        lifecycle: {preStop: {sleep: {seconds: 45}}}\n";
        assert_eq!(intake(deployment), Ok(vec![]));
    }

    #[test]
    fn post_start_and_stop_signal_are_warned() {
        let w = intake(&pod(
            "{postStart: {exec: {command: [x]}}, preStop: {sleep: {seconds: 1}}, stopSignal: SIGQUIT}",
            None,
        ))
        .unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("spec.containers[0].lifecycle.postStart: podswarm does not support"),
            "{w:?}"
        );
        assert!(
            w[1].contains("spec.containers[0].lifecycle.stopSignal: podswarm does not support"),
            "{w:?}"
        );
    }

    #[test]
    fn tcp_socket_in_a_lifecycle_handler_is_accepted_with_a_warning_as_in_kubernetes() {
        // Kubernetes' validateHandler counts tcpSocket as a handler; the kubelet fails it at run
        // time ("invalid handler"). Refusing it would refuse manifests Kubernetes accepts.
        let w = intake(&pod("{preStop: {tcpSocket: {port: 9000}}}", None)).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("spec.containers[0].lifecycle.preStop.tcpSocket: deprecated"),
            "{w:?}"
        );
        let w = intake(&pod(
            "{preStop: {httpGet: {port: 9000, scheme: HTTPS}}}",
            None,
        ))
        .unwrap();
        assert!(
            w.len() == 1 && w[0].contains("preStop.httpGet.scheme: podswarm speaks no TLS"),
            "{w:?}"
        );
    }

    #[test]
    fn bad_pre_stop_hooks_are_refused_with_their_path() {
        let p = "spec.containers[0].lifecycle.preStop";
        for (hook, grace, wanted) in [
            (
                "{preStop: {}}",
                None,
                format!("{p}: must specify a handler type"),
            ),
            (
                "{preStop: {exec: {command: [x]}, sleep: {seconds: 1}}}",
                None,
                format!("{p}: may not specify more than 1 handler type"),
            ),
            (
                "{preStop: {sleep: {seconds: 31}}}",
                None,
                format!(
                    "{p}.sleep.seconds: must be non-negative and at most terminationGracePeriodSeconds (30)"
                ),
            ),
            (
                "{preStop: {sleep: {seconds: 10}}}",
                Some(5),
                format!(
                    "{p}.sleep.seconds: must be non-negative and at most terminationGracePeriodSeconds (5)"
                ),
            ),
            (
                "{preStop: {sleep: {seconds: -1}}}",
                None,
                format!("{p}.sleep.seconds: must be non-negative"),
            ),
            (
                "{preStop: {exec: {command: []}}}",
                None,
                format!("{p}.exec.command: must not be empty"),
            ),
            (
                "{preStop: {httpGet: {port: metrics}}}",
                None,
                format!("{p}.httpGet.port: no container port is named \"metrics\""),
            ),
            (
                "{preStop: {httpGet: {port: 9000, path: drain}}}",
                None,
                format!("{p}.httpGet.path: \"drain\" must start with '/'"),
            ),
            (
                "{preStop: {httpGet: {port: 9000, httpHeaders: [{name: 'X Why', value: a}]}}}",
                None,
                format!(
                    "{p}.httpGet.httpHeaders[0].name: \"X Why\" is not a valid HTTP header name"
                ),
            ),
            (
                "{preStop: {httpGet: {port: 9000, httpHeaders: [{name: X, value: \"a\\nb\"}]}}}",
                None,
                format!("{p}.httpGet.httpHeaders[0].value: must not contain control characters"),
            ),
        ] {
            let e = intake(&pod(hook, grace)).unwrap_err();
            assert!(e.contains(&wanted), "{hook}: {e}");
        }
    }

    /// The automatic rollback annotation is acted on, so it draws no warning; a value that is
    /// neither "true" nor "false" is refused with the field named, never read as off.
    #[test]
    fn the_auto_rollback_annotation_must_be_true_or_false() {
        let yaml = |value: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations: {{podswarm.io/auto-rollback: {value}}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: x}}]}}\n"
            )
        };
        assert_eq!(intake(&yaml("'true'")), Ok(Vec::new()));
        assert_eq!(intake(&yaml("'false'")), Ok(Vec::new()));
        let e = intake(&yaml("'yes'")).unwrap_err();
        assert!(
            e.contains(
                "metadata.annotations[podswarm.io/auto-rollback]: must be \"true\" or \"false\", got \"yes\""
            ),
            "{e}"
        );
    }

    #[test]
    fn field_paths() {
        assert!(is_supported_field_path("status.podIP"));
        assert!(is_supported_field_path(
            "metadata.labels['app.kubernetes.io/name']"
        ));
        assert!(!is_supported_field_path("metadata.labels['x"));
        assert!(!is_supported_field_path("spec.serviceAccountName"));
    }
}
