//! Multi-container pods for Podman 4.x, which has no `.pod` units: one `.kube` unit that plays a
//! pod definition podswarm writes beside it (`podswarm-NS_POD.kube.json`).
//!
//! The definition is not the user's manifest: podswarm resolves everything it can itself, so that
//! `podman kube play` sees only what it handles the same way on every version:
//!
//! - env from ConfigMaps and the downward API is inlined; `$(VAR)` is expanded as for `.container`;
//! - each Secret the pod uses becomes one podman secret holding the Secret object, the form
//!   `kube play` reads for `secretKeyRef` and secret volumes; values never enter the file;
//! - ConfigMap volumes are `hostPath`s to podswarm's data directory; claims name podman volumes;
//! - DNS, host name and image names are set as for `.container` units.
//!
//! It is written as JSON, which is YAML too: `kube play` reads it with a YAML 1.1 parser that would
//! turn unquoted scalars such as `yes` or `0755` into other types, and JSON has no such scalars.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, HostPathVolumeSource, PersistentVolumeClaimVolumeSource, Pod,
    PodDNSConfig, PodDNSConfigOption, PodSpec, SecretKeySelector, SecretVolumeSource, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::container::{argv, hostname, normalize_image, pull_policy, stop_timeout, workload_unit};
use crate::env::{self, EnvItem};
use crate::escape::{generated, raw};
use crate::volumes::{Source, Volumes};
use crate::{Ctx, Error, NETWORK_UNIT, PodKey, PodmanSecret, Role, UnitFile, names};

pub(crate) struct RenderedKube {
    pub units: Vec<UnitFile>,
    pub secrets: Vec<PodmanSecret>,
}

/// One podman secret per Secret, in `kube play`'s JSON format, named after its content.
#[derive(Default)]
struct KubeSecrets {
    by_source: BTreeMap<String, String>,
    secrets: Vec<PodmanSecret>,
}

impl KubeSecrets {
    fn name(&mut self, ctx: &Ctx<'_>, source: &str) -> String {
        if let Some(name) = self.by_source.get(source) {
            return name.clone();
        }
        let ns = &ctx.pod.namespace;
        let name = match ctx.objects.secret_data(ns, source) {
            Some(data) => {
                // A whole Secret object: `kube play` reads secret volumes only in this form (a bare
                // key map mounts nothing, silently), and env lookups fall back to it too.
                let encoded: BTreeMap<String, ByteString> =
                    data.into_iter().map(|(k, v)| (k, ByteString(v))).collect();
                let secret = k8s_openapi::api::core::v1::Secret {
                    metadata: ObjectMeta {
                        name: Some(source.to_owned()),
                        ..ObjectMeta::default()
                    },
                    data: Some(encoded),
                    ..k8s_openapi::api::core::v1::Secret::default()
                };
                let json = serde_json::to_vec(&secret).unwrap_or_default();
                let name = names::secret(ns, source, "kube", &json);
                self.secrets.push(PodmanSecret {
                    name: name.clone(),
                    data: json,
                });
                name
            }
            // Missing Secrets are already reported (the pod waits); the name shows what is wanted.
            None => names::secret(ns, source, "kube", b""),
        };
        self.by_source.insert(source.to_owned(), name.clone());
        name
    }
}

pub(crate) fn render(ctx: &mut Ctx<'_>, volumes: &Volumes) -> Result<RenderedKube, Error> {
    let pod = ctx.pod;
    let base = names::pod(&pod.namespace, &pod.name);
    let mut secrets = KubeSecrets::default();

    let mut containers = Vec::new();
    let mut images = Vec::new();
    for (i, c) in pod.spec.containers.iter().enumerate() {
        let field = format!("spec.containers[{i}]");
        let env = env::resolve(ctx, c, &field);
        let (command, args) = argv(ctx, c, &env, &field);
        let env_vars: Vec<EnvVar> = env
            .items
            .iter()
            .map(|item| match item {
                EnvItem::Plain { name, value } => EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                },
                EnvItem::Secret {
                    name, source, key, ..
                } => EnvVar {
                    name: name.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secrets.name(ctx, source),
                            key: key.clone(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                },
            })
            .collect();
        let image = normalize_image(c.image.as_deref().unwrap_or_default());
        ctx.escape(format!("{field}.image"), raw(&image))?;
        let pull = match pull_policy(c.image_pull_policy.as_deref(), &image) {
            "always" => "Always",
            "never" => "Never",
            _ => "IfNotPresent",
        };
        let mut resources = c.resources.clone();
        if !ctx.options.enforce_resources && resources.as_ref().is_some_and(|r| r.limits.is_some())
        {
            ctx.warn(format!(
                "{field}: resource limits are not enforced on this node (no cgroup controllers)"
            ));
            if let Some(r) = resources.as_mut() {
                r.limits = None;
            }
        }
        let has_args = command.is_some() || !args.is_empty();
        images.push((c.name.clone(), image.clone()));
        containers.push(Container {
            name: c.name.clone(),
            image: Some(image),
            image_pull_policy: Some(pull.to_owned()),
            command,
            args: has_args.then_some(args),
            working_dir: c.working_dir.clone(),
            env: (!env_vars.is_empty()).then_some(env_vars),
            ports: c.ports.clone(),
            volume_mounts: c.volume_mounts.clone(),
            liveness_probe: c.liveness_probe.clone(),
            readiness_probe: c.readiness_probe.clone(),
            startup_probe: c.startup_probe.clone(),
            resources,
            security_context: c.security_context.clone(),
            ..Container::default()
        });
    }

    let mut pod_volumes = Vec::new();
    let mut needs = Vec::new();
    for v in pod.spec.volumes.iter().flatten() {
        let mut out = Volume {
            name: v.name.clone(),
            ..Volume::default()
        };
        match volumes.by_name.get(&v.name) {
            // emptyDirs and claims are the named volumes of their `.volume` units (which carry the
            // tmpfs and size options); `kube play` mounts a named volume through a claim.
            Some(Source::Named { unit_file }) => {
                let volume = unit_file.trim_end_matches(".volume");
                needs.push(format!("{volume}-volume.service"));
                out.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: volume.to_owned(),
                    read_only: v.persistent_volume_claim.as_ref().and_then(|c| c.read_only),
                });
            }
            Some(Source::Dir { path, .. }) => {
                let type_ = if v.config_map.is_some() {
                    Some("Directory".to_owned())
                } else {
                    v.host_path.as_ref().and_then(|h| h.type_.clone())
                };
                out.host_path = Some(HostPathVolumeSource {
                    path: path.clone(),
                    type_,
                });
            }
            Some(Source::Secrets(_)) => {
                let s = v.secret.clone().unwrap_or_default();
                let source = s.secret_name.clone().unwrap_or_default();
                out.secret = Some(SecretVolumeSource {
                    secret_name: Some(secrets.name(ctx, &source)),
                    ..s
                });
            }
            None => {
                return Err(ctx.unsupported(
                    "spec.volumes",
                    format!("volume {:?} was not resolved", v.name),
                ));
            }
        }
        pod_volumes.push(out);
    }

    let mut labels = pod.labels.clone();
    labels.insert("io.podswarm.namespace".to_owned(), pod.namespace.clone());
    labels.insert("io.podswarm.pod".to_owned(), pod.name.clone());
    let dns_config = ctx.node.dns_server.map(|dns| {
        let domain = ctx.node.cluster_domain.trim_end_matches('.');
        PodDNSConfig {
            nameservers: Some(vec![dns.to_string()]),
            searches: Some(vec![
                format!("{}.svc.{domain}", pod.namespace),
                format!("svc.{domain}"),
                domain.to_owned(),
            ]),
            options: Some(vec![PodDNSConfigOption {
                name: Some("ndots".to_owned()),
                value: Some("5".to_owned()),
            }]),
        }
    });
    let definition = Pod {
        metadata: ObjectMeta {
            name: Some(base.clone()),
            labels: Some(labels),
            annotations: Some(
                [(
                    crate::KUBE_MARKER_ANNOTATION.to_owned(),
                    crate::MARKER.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            volumes: (!pod_volumes.is_empty()).then_some(pod_volumes),
            hostname: Some(hostname(ctx)),
            restart_policy: pod.spec.restart_policy.clone(),
            termination_grace_period_seconds: pod.spec.termination_grace_period_seconds,
            security_context: pod.spec.security_context.clone(),
            dns_config,
            ..PodSpec::default()
        }),
        status: None,
    };
    let json = serde_json::to_string_pretty(&definition).unwrap_or_default() + "\n";
    let definition_file = format!("{base}.kube.json");

    let description = format!("podswarm pod {}/{}", pod.namespace, pod.name);
    let mut w = workload_unit(ctx, &description)?;
    // Quadlet links `.container` units to the `.volume`s they name, but not `.kube` units.
    for service in &needs {
        w.set(
            "Unit",
            "Requires",
            ctx.escape("volumes", generated(service.clone()))?,
        );
        w.set(
            "Unit",
            "After",
            ctx.escape("volumes", generated(service.clone()))?,
        );
    }
    // Relative to this unit's directory, where podswarm writes the definition.
    w.set(
        "Kube",
        "Yaml",
        ctx.escape("definition", generated(definition_file.clone()))?,
    );
    w.set(
        "Kube",
        "Network",
        ctx.escape("network", generated(NETWORK_UNIT))?,
    );
    crate::container::userns_keys(ctx, &mut w, "Kube")?;
    if let Some(ip) = ctx.pod_ip {
        w.set(
            "Kube",
            "PodmanArgs",
            ctx.escape("status.podIP", generated(format!("--ip={ip}")))?,
        );
    }
    stop_timeout(ctx, &mut w)?;

    Ok(RenderedKube {
        units: vec![
            UnitFile {
                file_name: format!("{base}.kube"),
                contents: w.finish(&description),
                pod: Some(PodKey::of(pod)),
                role: Role::Kube { containers: images },
            },
            UnitFile {
                file_name: definition_file,
                contents: json,
                pod: Some(PodKey::of(pod)),
                role: Role::Definition,
            },
        ],
        secrets: secrets.secrets,
    })
}
