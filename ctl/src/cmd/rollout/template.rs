//! A pod template as `kubectl rollout history --revision N` prints it (kubectl's
//! `describe.DescribePodTemplate`, written straight out, so its tabs stay tabs): labels,
//! annotations, containers with their image, ports, command, resources, probes, environment and
//! mounts, then volumes, node selector and tolerations.
//!
//! Kubernetes fills defaults in before kubectl reads a template (a port's protocol, a probe's
//! period); podswarm keeps objects as applied, so the same defaults are filled in here, and a
//! template reads as kubectl would show it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, Probe, Toleration, Volume};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// kubectl shortens annotation values longer than this.
const MAX_ANNOTATION_LEN: usize = 140;

/// kubectl never shows this annotation (it holds the whole object).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kubectl's `PrefixWriter`: two spaces of indent per level.
#[derive(Debug, Default)]
struct Out(String);

impl Out {
    fn write(&mut self, level: usize, text: &str) {
        self.0.push_str(&"  ".repeat(level));
        self.0.push_str(text);
    }
}

pub fn describe(template: &PodTemplateSpec) -> String {
    let mut w = Out::default();
    w.write(0, "Pod Template:\n");
    let meta = template.metadata.clone().unwrap_or_default();
    labels(&mut w, "  Labels", meta.labels.as_ref());
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        annotations(&mut w, "  Annotations", meta.annotations.as_ref());
    }
    let spec = template.spec.clone().unwrap_or_default();
    if let Some(account) = spec
        .service_account_name
        .as_deref()
        .filter(|a| !a.is_empty())
    {
        w.write(1, &format!("Service Account:\t{account}\n"));
    }
    if let Some(init) = spec.init_containers.as_deref().filter(|c| !c.is_empty()) {
        containers(&mut w, "Init Containers", init);
    }
    containers(&mut w, "Containers", &spec.containers);
    volumes(&mut w, spec.volumes.as_deref().unwrap_or_default());
    if let Some(class) = spec
        .priority_class_name
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        w.write(1, &format!("Priority Class Name:\t{class}\n"));
    }
    labels(&mut w, "  Node-Selectors", spec.node_selector.as_ref());
    tolerations(&mut w, "  Tolerations", spec.tolerations.as_deref());
    w.0
}

/// `key=value` lines, sorted, the first beside the title.
fn labels(w: &mut Out, title: &str, labels: Option<&BTreeMap<String, String>>) {
    w.write(0, &format!("{title}:\t"));
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        w.write(0, "<none>\n");
        return;
    };
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        w.write(0, &format!("{k}={v}\n"));
    }
}

/// `key: value` lines, sorted; long or multi-line values on lines of their own, shortened.
fn annotations(w: &mut Out, title: &str, annotations: Option<&BTreeMap<String, String>>) {
    w.write(0, &format!("{title}:\t"));
    let keys: Vec<(&String, &String)> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != LAST_APPLIED)
        .collect();
    if keys.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    for (i, (k, v)) in keys.into_iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        let value = v.strip_suffix('\n').unwrap_or(v);
        if value.len() + k.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.write(0, &format!("{k}:\n"));
            for line in value.split('\n') {
                w.write(
                    0,
                    &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                );
            }
        } else {
            w.write(0, &format!("{k}: {value}\n"));
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_owned(),
    }
}

fn containers(w: &mut Out, label: &str, containers: &[Container]) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    w.write(0, &format!("  {label}:{none}\n"));
    for c in containers {
        w.write(1, &format!(" {}:\n", c.name));
        w.write(
            2,
            &format!("Image:\t{}\n", c.image.as_deref().unwrap_or_default()),
        );
        let ports = c.ports.as_deref().unwrap_or_default();
        let protocol = |p: &k8s_openapi::api::core::v1::ContainerPort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())
        };
        let own: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.container_port, protocol(p)))
            .collect();
        let host: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.host_port.unwrap_or(0), protocol(p)))
            .collect();
        for (one, many, list) in [("Port", "Ports", own), ("Host Port", "Host Ports", host)] {
            let text = list.join(", ");
            if list.len() > 1 {
                w.write(2, &format!("{many}:\t{text}\n"));
            } else {
                w.write(2, &format!("{one}:\t{}\n", or_none(&text)));
            }
        }
        for (title, words) in [("Command", &c.command), ("Args", &c.args)] {
            if let Some(words) = words.as_deref().filter(|w| !w.is_empty()) {
                w.write(2, &format!("{title}:\n"));
                for word in words {
                    for line in word.split('\n') {
                        w.write(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(resources) = &c.resources {
            for (title, list) in [
                ("Limits", &resources.limits),
                ("Requests", &resources.requests),
            ] {
                if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
                    w.write(2, &format!("{title}:\n"));
                    for (name, quantity) in list {
                        w.write(3, &format!("{name}:\t{}\n", quantity.0));
                    }
                }
            }
        }
        for (title, probe) in [
            ("Liveness", &c.liveness_probe),
            ("Readiness", &c.readiness_probe),
            ("Startup", &c.startup_probe),
        ] {
            if let Some(probe) = probe {
                w.write(2, &format!("{title}:\t{}\n", describe_probe(probe)));
            }
        }
        env(w, c);
        mounts(w, c);
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn env(w: &mut Out, c: &Container) {
    if let Some(from) = c.env_from.as_deref().filter(|f| !f.is_empty()) {
        w.write(2, "Environment Variables from:\n");
        for e in from {
            let (kind, name, optional) = match (&e.config_map_ref, &e.secret_ref) {
                (Some(r), _) => ("ConfigMap", r.name.as_str(), r.optional),
                (None, Some(r)) => ("Secret", r.name.as_str(), r.optional),
                (None, None) => ("", "", None),
            };
            let optional = optional.unwrap_or(false);
            match e.prefix.as_deref().filter(|p| !p.is_empty()) {
                None => w.write(3, &format!("{name}\t{kind}\tOptional: {optional}\n")),
                Some(prefix) => w.write(
                    3,
                    &format!("{name}\t{kind} with prefix '{prefix}'\tOptional: {optional}\n"),
                ),
            }
        }
    }
    let vars = c.env.as_deref().unwrap_or_default();
    let none = if vars.is_empty() { "\t<none>" } else { "" };
    w.write(2, &format!("Environment:{none}\n"));
    for e in vars {
        let Some(from) = &e.value_from else {
            let value = e.value.as_deref().unwrap_or_default();
            for (i, line) in value.split('\n').enumerate() {
                if i == 0 {
                    w.write(3, &format!("{}:\t{line}\n", e.name));
                } else {
                    w.write(3, &format!("\t{line}\n"));
                }
            }
            continue;
        };
        if let Some(r) = &from.field_ref {
            let version = r.api_version.as_deref().unwrap_or("v1");
            w.write(3, &format!("{}:\t ({version}:{})\n", e.name, r.field_path));
        } else if let Some(r) = &from.resource_field_ref {
            w.write(3, &format!("{}:\t ({})\n", e.name, r.resource));
        } else if let Some(r) = &from.secret_key_ref {
            w.write(
                3,
                &format!(
                    "{}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    e.name,
                    r.key,
                    r.name,
                    r.optional.unwrap_or(false)
                ),
            );
        } else if let Some(r) = &from.config_map_key_ref {
            w.write(
                3,
                &format!(
                    "{}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    e.name,
                    r.key,
                    r.name,
                    r.optional.unwrap_or(false)
                ),
            );
        }
    }
}

fn mounts(w: &mut Out, c: &Container) {
    let mut mounts: Vec<_> = c.volume_mounts.clone().unwrap_or_default();
    let none = if mounts.is_empty() { "\t<none>" } else { "" };
    w.write(2, &format!("Mounts:{none}\n"));
    mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
    for m in mounts {
        let mut flags = vec![
            if m.read_only.unwrap_or(false) {
                "ro"
            } else {
                "rw"
            }
            .to_owned(),
        ];
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            flags.push(format!("path={sub:?}"));
        }
        w.write(
            3,
            &format!("{} from {} ({})\n", m.mount_path, m.name, flags.join(",")),
        );
    }
}

/// kubectl's `DescribeProbe`, with the API server's defaults for fields left out.
fn describe_probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    );
    let port = |p: &IntOrString| match p {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    if let Some(exec) = &p.exec {
        // Go prints a []string as [a b c].
        let command = exec.command.as_deref().unwrap_or_default().join(" ");
        format!("exec [{command}] {attrs}")
    } else if let Some(get) = &p.http_get {
        let scheme = get.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let host = get.host.as_deref().unwrap_or_default();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let path = get.path.as_deref().unwrap_or_default();
        format!(
            "http-get {scheme}://{host}:{}{path} {attrs}",
            port(&get.port)
        )
    } else if let Some(tcp) = &p.tcp_socket {
        format!(
            "tcp-socket {}:{} {attrs}",
            tcp.host.as_deref().unwrap_or_default(),
            port(&tcp.port)
        )
    } else if let Some(grpc) = &p.grpc {
        format!(
            "grpc <pod>:{} {} {attrs}",
            grpc.port,
            grpc.service.as_deref().unwrap_or_default()
        )
    } else {
        format!("unknown {attrs}")
    }
}

fn volumes(w: &mut Out, volumes: &[Volume]) {
    if volumes.is_empty() {
        w.write(0, "  Volumes:\t<none>\n");
        return;
    }
    w.write(0, "  Volumes:\n");
    for v in volumes {
        w.write(1, &format!(" {}:\n", v.name));
        let mut text = String::new();
        if let Some(h) = &v.host_path {
            let _ = write!(
                text,
                "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n",
                h.path,
                h.type_.as_deref().unwrap_or("<none>")
            );
        } else if let Some(e) = &v.empty_dir {
            let size = e
                .size_limit
                .as_ref()
                .map(|q| q.0.clone())
                .filter(|q| !q.is_empty() && q != "0")
                .unwrap_or_else(|| "<unset>".to_owned());
            let _ = write!(
                text,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}\n",
                e.medium.as_deref().unwrap_or_default()
            );
        } else if let Some(s) = &v.secret {
            let _ = write!(
                text,
                "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                s.secret_name.as_deref().unwrap_or_default(),
                s.optional.unwrap_or(false)
            );
        } else if let Some(c) = &v.config_map {
            let _ = write!(
                text,
                "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                c.name,
                c.optional.unwrap_or(false)
            );
        } else if let Some(c) = &v.persistent_volume_claim {
            let _ = write!(
                text,
                "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                c.claim_name,
                c.read_only.unwrap_or(false)
            );
        }
        if text.is_empty() {
            w.write(1, "<unknown>\n");
        } else {
            w.write(2, &text);
        }
    }
}

fn tolerations(w: &mut Out, title: &str, tolerations: Option<&[Toleration]>) {
    w.write(0, &format!("{title}:\t"));
    let Some(list) = tolerations.filter(|t| !t.is_empty()) else {
        w.write(0, "<none>\n");
        return;
    };
    for (i, t) in list.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        let mut line = t.key.clone().unwrap_or_default();
        if let Some(value) = t.value.as_deref().filter(|v| !v.is_empty()) {
            let _ = write!(line, "={value}");
        }
        if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
            let _ = write!(line, ":{effect}");
        }
        // `operator: Exists` alone tolerates everything.
        if t.operator.as_deref() == Some("Exists") && t.value.as_deref().unwrap_or("").is_empty() {
            if !t.key.as_deref().unwrap_or("").is_empty()
                || !t.effect.as_deref().unwrap_or("").is_empty()
            {
                line.push_str(" op=Exists");
            } else {
                line.push_str("op=Exists");
            }
        }
        if let Some(seconds) = t.toleration_seconds {
            let _ = write!(line, " for {seconds}s");
        }
        w.write(0, &format!("{line}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str) -> PodTemplateSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn a_template_reads_like_kubectls_pod_template() {
        let t = template(
            "metadata:\n  labels: {app: web, tier: front}\n  annotations: {kubernetes.io/change-cause: v2}\nspec:\n  containers:\n  - name: app\n    image: nginx:1.27\n    args: [--port, '8080']\n    ports: [{containerPort: 8080}]\n    readinessProbe: {httpGet: {path: /healthz, port: 8080}}\n    env: [{name: MODE, value: prod}, {name: PASS, valueFrom: {secretKeyRef: {name: db, key: password}}}]\n    volumeMounts: [{name: data, mountPath: /data}]\n  volumes: [{name: data, emptyDir: {}}]\n",
        );
        assert_eq!(
            describe(&t),
            "Pod Template:\n  Labels:\tapp=web\n\ttier=front\n  Annotations:\tkubernetes.io/change-cause: v2\n  Containers:\n   app:\n    Image:\tnginx:1.27\n    Port:\t8080/TCP\n    Host Port:\t0/TCP\n    Args:\n      --port\n      8080\n    Readiness:\thttp-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3\n    Environment:\n      MODE:\tprod\n      PASS:\t<set to the key 'password' in secret 'db'>\tOptional: false\n    Mounts:\n      /data from data (rw)\n  Volumes:\n   data:\n    Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t\n    SizeLimit:\t<unset>\n  Node-Selectors:\t<none>\n  Tolerations:\t<none>\n"
        );
    }

    #[test]
    fn empty_parts_say_none() {
        let t = template("spec:\n  containers: [{name: c, image: x}]\n");
        assert_eq!(
            describe(&t),
            "Pod Template:\n  Labels:\t<none>\n  Containers:\n   c:\n    Image:\tx\n    Port:\t<none>\n    Host Port:\t<none>\n    Environment:\t<none>\n    Mounts:\t<none>\n  Volumes:\t<none>\n  Node-Selectors:\t<none>\n  Tolerations:\t<none>\n"
        );
    }
}
