//! One container → one `.container` unit; a multi-container pod's shared parts → one `.pod` unit.

use k8s_openapi::api::core::v1::Container;
use podswarm_manifest::{cpu_millis, memory_bytes};

use crate::env::{self, EnvItem};
use crate::escape::{generated, json_array, raw, word, words};
use crate::unit::UnitWriter;
use crate::volumes::{Source, Volumes};
use crate::{Ctx, Error, NETWORK_UNIT, PodKey, PodmanSecret, Role, UnitFile, names, probe};

pub(crate) struct RenderedContainer {
    pub unit: UnitFile,
    pub secrets: Vec<PodmanSecret>,
}

const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The pod's grace period: how long podman waits between SIGTERM and SIGKILL.
pub(crate) fn grace_seconds(ctx: &Ctx<'_>) -> i64 {
    ctx.pod
        .spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0)
}

/// The start every workload unit shares: description (systemd takes it verbatim, so it is a raw
/// value), no start limit, owner keys.
pub(crate) fn workload_unit(ctx: &Ctx<'_>, description: &str) -> Result<UnitWriter, Error> {
    let mut w = UnitWriter::default();
    w.set(
        "Unit",
        "Description",
        ctx.escape("description", raw(description))?,
    );
    // Kubernetes never stops restarting a container; neither does systemd with no start limit.
    w.set(
        "Unit",
        "StartLimitIntervalSec",
        ctx.escape("restart", generated("0"))?,
    );
    owner_keys(ctx, &mut w)?;
    Ok(w)
}

/// podman stops within the grace period; systemd must wait longer or it kills podman itself.
pub(crate) fn stop_timeout(ctx: &Ctx<'_>, w: &mut UnitWriter) -> Result<(), Error> {
    let limit = format!("{}s", grace_seconds(ctx) + 15);
    w.set(
        "Service",
        "TimeoutStopSec",
        ctx.escape("terminationGracePeriodSeconds", generated(limit))?,
    );
    Ok(())
}

pub(crate) fn owner_keys(ctx: &Ctx<'_>, w: &mut UnitWriter) -> Result<(), Error> {
    let pod = ctx.pod;
    w.set(
        "X-Podswarm",
        "Namespace",
        ctx.escape("metadata.namespace", generated(pod.namespace.as_str()))?,
    );
    w.set(
        "X-Podswarm",
        "Pod",
        ctx.escape("metadata.name", generated(pod.name.as_str()))?,
    );
    if let Some(owner) = &pod.owner {
        w.set(
            "X-Podswarm",
            "Owner",
            ctx.escape("owner", generated(format!("{}/{}", owner.kind, owner.name)))?,
        );
    }
    Ok(())
}

/// The pod's network identity: on the `.container` of a single-container pod, or on the `.pod`.
fn network_keys(ctx: &Ctx<'_>, w: &mut UnitWriter, section: &'static str) -> Result<(), Error> {
    let pod = ctx.pod;
    let node = ctx.node;
    w.set(
        section,
        "Network",
        ctx.escape("network", generated(NETWORK_UNIT))?,
    );
    if let Some(ip) = ctx.pod_ip {
        w.set(
            section,
            "IP",
            ctx.escape("status.podIP", generated(ip.to_string()))?,
        );
    }
    if let Some(dns) = node.dns_server {
        let domain = node.cluster_domain.trim_end_matches('.');
        w.set(
            section,
            "DNS",
            ctx.escape("dns", generated(dns.to_string()))?,
        );
        for search in [
            format!("{}.svc.{domain}", pod.namespace),
            format!("svc.{domain}"),
            domain.to_owned(),
        ] {
            w.set(
                section,
                "DNSSearch",
                ctx.escape("dnsSearch", generated(search))?,
            );
        }
        // As in Kubernetes: short names such as `hello` and `hello.other` try the search list first.
        w.set(
            section,
            "DNSOption",
            ctx.escape("dnsOptions", generated("ndots:5"))?,
        );
    }
    for (i, c) in pod.spec.containers.iter().enumerate() {
        for (j, p) in c.ports.iter().flatten().enumerate() {
            let Some(host_port) = p.host_port.filter(|hp| *hp > 0) else {
                continue;
            };
            let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
            let host_ip = match p.host_ip.as_deref().filter(|h| !h.is_empty()) {
                Some(ip) if ip.contains(':') => format!("[{ip}]:"),
                Some(ip) => format!("{ip}:"),
                None => String::new(),
            };
            let spec = format!("{host_ip}{host_port}:{}/{proto}", p.container_port);
            w.set(
                section,
                "PublishPort",
                ctx.escape(format!("spec.containers[{i}].ports[{j}]"), generated(spec))?,
            );
        }
    }
    Ok(())
}

/// Every pod gets a user namespace of its own (Kubernetes' `hostUsers: false`, made the default):
/// `UserNS=auto` takes a free range from the `containers` entries of `/etc/subuid` and
/// `/etc/subgid` (the package adds them), so container root is an unprivileged host UID and no
/// two pods share a range. 65,536 IDs per pod, so that any `runAsUser` a manifest may give (and
/// `nobody`, 65534) maps. `hostUsers: true`, which validation allows only where the node's
/// policy does, keeps the host's user namespace.
pub(crate) const USERNS: &str = "auto:size=65536";

pub(crate) fn userns_keys(
    ctx: &Ctx<'_>,
    w: &mut UnitWriter,
    section: &'static str,
) -> Result<(), Error> {
    if ctx.pod.spec.host_users != Some(true) {
        w.set(
            section,
            "UserNS",
            ctx.escape("hostUsers", generated(USERNS))?,
        );
    }
    Ok(())
}

pub(crate) fn hostname(ctx: &Ctx<'_>) -> String {
    let pod = ctx.pod;
    pod.spec.hostname.clone().unwrap_or_else(|| {
        // Kubernetes truncates the pod name to a 63-character label for the host name.
        let name: String = pod.name.chars().take(63).collect();
        name.trim_end_matches(['-', '.']).to_owned()
    })
}

pub(crate) fn render_pod_unit(ctx: &mut Ctx<'_>) -> Result<UnitFile, Error> {
    let pod = ctx.pod;
    let base = names::pod(&pod.namespace, &pod.name);
    let mut w = UnitWriter::default();
    w.set(
        "Unit",
        "Description",
        ctx.escape(
            "description",
            raw(&format!("podswarm pod {}/{}", pod.namespace, pod.name)),
        )?,
    );
    owner_keys(ctx, &mut w)?;
    w.set(
        "Pod",
        "PodName",
        ctx.escape("name", generated(base.clone()))?,
    );
    // Same service name as a single-container pod: the pod is always podswarm-NS_POD.service.
    w.set(
        "Pod",
        "ServiceName",
        ctx.escape("name", generated(base.clone()))?,
    );
    network_keys(ctx, &mut w, "Pod")?;
    userns_keys(ctx, &mut w, "Pod")?;
    // `.pod` has no HostName= key; the value is podswarm-made from a validated name.
    w.set(
        "Pod",
        "PodmanArgs",
        ctx.escape(
            "hostname",
            generated(format!("--hostname={}", hostname(ctx))),
        )?,
    );
    Ok(UnitFile {
        file_name: format!("{base}.pod"),
        contents: w.finish(&format!("pod {}/{}", pod.namespace, pod.name)),
        pod: Some(PodKey::of(pod)),
        role: Role::Pod,
    })
}

/// podman's pull policy for a container: `imagePullPolicy`, or Kubernetes' default of pulling
/// `latest` (explicit or implied) always and anything else only when missing.
pub(crate) fn pull_policy(policy: Option<&str>, image: &str) -> &'static str {
    match policy {
        Some("Always") => "always",
        Some("Never") => "never",
        Some(_) => "missing",
        None => {
            let last = image.rsplit('/').next().unwrap_or(image);
            if image.contains('@') || (last.contains(':') && !last.ends_with(":latest")) {
                "missing"
            } else {
                "always"
            }
        }
    }
}

/// Command and args with Kubernetes' `$(VAR)` expansion against the container's environment.
pub(crate) fn argv(
    ctx: &mut Ctx<'_>,
    c: &Container,
    env: &env::Env,
    field: &str,
) -> (Option<Vec<String>>, Vec<String>) {
    let mut vars = std::collections::BTreeMap::new();
    for item in &env.items {
        match item {
            EnvItem::Plain { name, value } => vars.insert(name.clone(), Some(value.clone())),
            EnvItem::Secret { name, .. } => vars.insert(name.clone(), None),
        };
    }
    let mut secret_refs = Vec::new();
    let mut expand_all = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|a| env::expand(a, &vars, &mut secret_refs))
            .collect()
    };
    let command = c.command.as_deref().map(&mut expand_all);
    let args = expand_all(c.args.as_deref().unwrap_or_default());
    for r in secret_refs {
        ctx.warn(format!(
            "{field}: $({r}) names a secret variable and is not expanded in command or args"
        ));
    }
    (command, args)
}

/// Kubernetes' reading of image names: `nginx` is `docker.io/library/nginx`, `me/app` is
/// `docker.io/me/app`. Podman would otherwise apply its own short-name rules (which may prompt or
/// pick another registry), so the same manifest could run different images.
pub(crate) fn normalize_image(image: &str) -> String {
    match image.split_once('/') {
        None => format!("docker.io/library/{image}"),
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => image.to_owned(),
        Some(_) => format!("docker.io/{image}"),
    }
}

fn format_cpus(millis: u64) -> String {
    let whole = millis / 1000;
    let frac = millis % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

pub(crate) fn render_container(
    ctx: &mut Ctx<'_>,
    c: &Container,
    volumes: &Volumes,
    in_pod: bool,
) -> Result<RenderedContainer, Error> {
    let pod = ctx.pod;
    let index = pod
        .spec
        .containers
        .iter()
        .position(|x| x.name == c.name)
        .unwrap_or(0);
    let field = format!("spec.containers[{index}]");
    let base = if in_pod {
        names::container(&pod.namespace, &pod.name, &c.name)
    } else {
        names::pod(&pod.namespace, &pod.name)
    };
    let description = format!(
        "podswarm pod {}/{} container {}",
        pod.namespace, pod.name, c.name
    );
    let mut w = workload_unit(ctx, &description)?;
    w.set(
        "X-Podswarm",
        "Container",
        ctx.escape(format!("{field}.name"), generated(c.name.as_str()))?,
    );
    if let Some(readiness) = &c.readiness_probe {
        let json = serde_json::to_string(readiness).unwrap_or_default();
        w.set(
            "X-Podswarm",
            "Readiness",
            ctx.escape(format!("{field}.readinessProbe"), word(&json))?,
        );
    }

    let image = normalize_image(c.image.as_deref().unwrap_or_default());
    let image = image.as_str();
    w.set(
        "Container",
        "ContainerName",
        ctx.escape("name", generated(base.clone()))?,
    );
    w.set(
        "Container",
        "Image",
        ctx.escape(format!("{field}.image"), raw(image))?,
    );
    let pull = pull_policy(c.image_pull_policy.as_deref(), image);
    w.set(
        "Container",
        "Pull",
        ctx.escape("imagePullPolicy", generated(pull))?,
    );
    if in_pod {
        w.set(
            "Container",
            "Pod",
            ctx.escape(
                "pod",
                generated(format!("{}.pod", names::pod(&pod.namespace, &pod.name))),
            )?,
        );
    } else {
        network_keys(ctx, &mut w, "Container")?;
        userns_keys(ctx, &mut w, "Container")?;
        w.set(
            "Container",
            "HostName",
            ctx.escape("hostname", generated(hostname(ctx)))?,
        );
    }
    for (key, value) in [
        ("io.podswarm.namespace", pod.namespace.as_str()),
        ("io.podswarm.pod", pod.name.as_str()),
        ("io.podswarm.container", c.name.as_str()),
    ]
    .into_iter()
    .chain(pod.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        w.set(
            "Container",
            "Label",
            ctx.escape("metadata.labels", word(&format!("{key}={value}")))?,
        );
    }

    let env = env::resolve(ctx, c, &field);
    let (command, args) = argv(ctx, c, &env, &field);
    match command {
        // With a command, podman ignores the image's CMD, so command and args together form the
        // entrypoint. JSON carries every string, including empty ones, which `Exec=` cannot.
        Some(mut argv) => {
            argv.extend(args);
            w.set(
                "Container",
                "Entrypoint",
                ctx.escape(format!("{field}.command"), json_array(&argv))?,
            );
        }
        None if !args.is_empty() => {
            // Quadlet's word splitter stops at an empty word and drops every argument after it.
            if args.iter().any(String::is_empty) {
                return Err(ctx.unsupported(
                    format!("{field}.args"),
                    "an empty argument cannot be passed without a command: set command too",
                ));
            }
            w.set(
                "Container",
                "Exec",
                ctx.escape(
                    format!("{field}.args"),
                    words(args.iter().map(String::as_str)),
                )?,
            );
        }
        None => {}
    }
    if let Some(wd) = &c.working_dir {
        w.set(
            "Container",
            "WorkingDir",
            ctx.escape(format!("{field}.workingDir"), raw(wd))?,
        );
    }
    for item in &env.items {
        match item {
            EnvItem::Plain { name, value } => {
                w.set(
                    "Container",
                    "Environment",
                    ctx.escape(
                        format!("{field}.env.{name}"),
                        word(&format!("{name}={value}")),
                    )?,
                );
            }
            EnvItem::Secret { name, secret, .. } => {
                w.set(
                    "Container",
                    "Secret",
                    ctx.escape(
                        format!("{field}.env.{name}"),
                        generated(format!("{secret},type=env,target={name}")),
                    )?,
                );
            }
        }
    }

    // In the pod's own user namespace, volumes the pod writes are idmapped mounts: their files
    // keep host IDs on disk (root is 0) and the pod sees them as its own, whatever range it gets
    // (`UserNS=auto` may give a restarted pod, or the next pod of a claim, another one).
    let idmap = pod.spec.host_users != Some(true);
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mf = format!("{field}.volumeMounts[{j}]");
        let Some(source) = volumes.by_name.get(&m.name) else {
            return Err(ctx.unsupported(
                format!("{mf}.name"),
                format!("no volume named {:?}", m.name),
            ));
        };
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        let ro = m.read_only == Some(true);
        match source {
            Source::Named { unit_file } => match sub {
                None => {
                    let opts: Vec<&str> = [(ro, "ro"), (idmap, "idmap")]
                        .into_iter()
                        .filter_map(|(on, o)| on.then_some(o))
                        .collect();
                    let spec = if opts.is_empty() {
                        format!("{unit_file}:{}", m.mount_path)
                    } else {
                        format!("{unit_file}:{}:{}", m.mount_path, opts.join(","))
                    };
                    w.set("Container", "Volume", ctx.escape(&mf, raw(&spec))?);
                }
                Some(sub) => {
                    let spec = format!(
                        "type=volume,source={unit_file},destination={},subpath={sub}{}{}",
                        m.mount_path,
                        if ro { ",ro" } else { "" },
                        if idmap { ",idmap" } else { "" }
                    );
                    w.set("Container", "Mount", ctx.escape(&mf, raw(&spec))?);
                }
            },
            Source::Dir {
                path,
                read_only,
                relabel,
            } => {
                let src = match sub {
                    Some(sub) => format!("{path}/{sub}"),
                    None => path.clone(),
                };
                let mut opts = Vec::new();
                if ro || *read_only {
                    opts.push("ro");
                }
                if *relabel {
                    opts.push("z");
                }
                // Host directories a pod may write (hostPath); ConfigMaps are read-only files
                // every ID may read.
                if idmap && !*read_only {
                    opts.push("idmap");
                }
                let spec = if opts.is_empty() {
                    format!("{src}:{}", m.mount_path)
                } else {
                    format!("{src}:{}:{}", m.mount_path, opts.join(","))
                };
                w.set("Container", "Volume", ctx.escape(&mf, raw(&spec))?);
            }
            Source::Secrets(files) => {
                let mount = m.mount_path.trim_end_matches('/');
                for (secret, path, mode) in files {
                    let target = match sub {
                        Some(sub) if sub == path => mount.to_owned(),
                        Some(_) => continue,
                        None => format!("{mount}/{path}"),
                    };
                    let spec = format!("{secret},type=mount,target={target},mode={mode:04o}");
                    w.set("Container", "Secret", ctx.escape(&mf, generated(spec))?);
                }
            }
        }
    }

    let pod_sc = pod.spec.security_context.as_ref();
    let sc = c.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root))
        == Some(true);
    if non_root && run_as_user == Some(0) {
        return Err(ctx.unsupported(
            format!("{field}.securityContext"),
            "runAsNonRoot is set but runAsUser is 0",
        ));
    }
    if non_root && run_as_user.is_none() {
        ctx.warn(format!("{field}: runAsNonRoot without runAsUser cannot be checked before the image runs; set runAsUser"));
    }
    if let Some(uid) = run_as_user {
        w.set(
            "Container",
            "User",
            ctx.escape("securityContext.runAsUser", generated(uid.to_string()))?,
        );
    }
    if let Some(gid) = run_as_group {
        w.set(
            "Container",
            "Group",
            ctx.escape("securityContext.runAsGroup", generated(gid.to_string()))?,
        );
    }
    if let Some(sc) = sc {
        if sc.read_only_root_filesystem == Some(true) {
            w.set(
                "Container",
                "ReadOnly",
                ctx.escape("securityContext", generated("true"))?,
            );
        }
        if sc.allow_privilege_escalation == Some(false) {
            w.set(
                "Container",
                "NoNewPrivileges",
                ctx.escape("securityContext", generated("true"))?,
            );
        }
        if let Some(caps) = &sc.capabilities {
            let norm = |cap: &String| {
                let upper = cap.to_ascii_uppercase();
                let bare = upper.strip_prefix("CAP_").unwrap_or(&upper).to_owned();
                if bare == "ALL" {
                    "all".to_owned()
                } else {
                    bare
                }
            };
            for cap in caps.drop.iter().flatten() {
                w.set(
                    "Container",
                    "DropCapability",
                    ctx.escape("capabilities.drop", generated(norm(cap)))?,
                );
            }
            for cap in caps.add.iter().flatten() {
                w.set(
                    "Container",
                    "AddCapability",
                    ctx.escape("capabilities.add", generated(norm(cap)))?,
                );
            }
        }
    }

    for (key, value) in probe::health_keys(ctx, c, &field)? {
        w.set("Container", key, value);
    }

    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    if let Some(limits) = limits {
        let mut args = Vec::new();
        if let Some(q) = limits.get("memory") {
            let bytes = memory_bytes(&q.0).map_err(|e| {
                ctx.unsupported(format!("{field}.resources.limits.memory"), e.to_string())
            })?;
            args.push(format!("--memory={bytes}"));
        }
        if let Some(q) = limits.get("cpu") {
            let millis = cpu_millis(&q.0).map_err(|e| {
                ctx.unsupported(format!("{field}.resources.limits.cpu"), e.to_string())
            })?;
            args.push(format!("--cpus={}", format_cpus(millis)));
        }
        if !args.is_empty() {
            if ctx.options.enforce_resources {
                // Quadlet (Podman 5.4) has no Memory=/CPU keys; these arguments are composed by
                // podswarm from parsed numbers, never from manifest text.
                for arg in args {
                    w.set(
                        "Container",
                        "PodmanArgs",
                        ctx.escape("resources", generated(arg))?,
                    );
                }
            } else {
                ctx.warn(format!(
                    "{field}: resource limits are not enforced on this node (no cgroup controllers)"
                ));
            }
        }
    }

    let grace = grace_seconds(ctx);
    w.set(
        "Container",
        "StopTimeout",
        ctx.escape(
            "terminationGracePeriodSeconds",
            generated(grace.to_string()),
        )?,
    );
    let restart = match pod.spec.restart_policy.as_deref() {
        Some("Never") => "no",
        Some("OnFailure") => "on-failure",
        _ => "always",
    };
    w.set(
        "Service",
        "Restart",
        ctx.escape("restartPolicy", generated(restart))?,
    );
    // Back off like the kubelet's CrashLoopBackOff: 1 s doubling up to 5 min.
    w.set(
        "Service",
        "RestartSec",
        ctx.escape("restartPolicy", generated("1s"))?,
    );
    w.set(
        "Service",
        "RestartSteps",
        ctx.escape("restartPolicy", generated("9"))?,
    );
    w.set(
        "Service",
        "RestartMaxDelaySec",
        ctx.escape("restartPolicy", generated("300s"))?,
    );
    stop_timeout(ctx, &mut w)?;

    Ok(RenderedContainer {
        unit: UnitFile {
            file_name: format!("{base}.container"),
            contents: w.finish(&description),
            pod: Some(PodKey::of(pod)),
            role: Role::Container {
                name: c.name.clone(),
                image: image.to_owned(),
            },
        },
        secrets: env.secrets,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn images_are_read_as_kubernetes_reads_them() {
        use super::normalize_image as n;
        assert_eq!(n("nginx"), "docker.io/library/nginx");
        assert_eq!(n("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(n("me/app:v1"), "docker.io/me/app:v1");
        assert_eq!(n("ghcr.io/a/b:1"), "ghcr.io/a/b:1");
        assert_eq!(n("localhost/busybox:latest"), "localhost/busybox:latest");
        assert_eq!(n("registry:5000/x"), "registry:5000/x");
    }

    #[test]
    fn cpus() {
        assert_eq!(super::format_cpus(500), "0.5");
        assert_eq!(super::format_cpus(2000), "2");
        assert_eq!(super::format_cpus(1250), "1.25");
        assert_eq!(super::format_cpus(1), "0.001");
    }
}
