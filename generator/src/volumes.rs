//! Pod volumes → `.volume` units, bind mounts of podswarm-owned directories, and podman secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::KeyToPath;
use podswarm_manifest::{host_path_allowed, memory_bytes};

use crate::escape::{generated, raw};
use crate::unit::UnitWriter;
use crate::{Ctx, DataFile, Error, PodKey, PodmanSecret, Role, UnitFile, names};

/// What a volume name in the pod stands for.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A podman volume from a `.volume` unit (emptyDir, persistentVolumeClaim).
    Named { unit_file: String },
    /// A host directory: podswarm's ConfigMap directory or an allowed hostPath.
    Dir {
        path: String,
        read_only: bool,
        relabel: bool,
    },
    /// Secret keys as podman secrets: (podman secret, path inside the volume, mode).
    Secrets(Vec<(String, String, u32)>),
}

#[derive(Debug, Default)]
pub(crate) struct Volumes {
    pub by_name: BTreeMap<String, Source>,
    pub units: Vec<UnitFile>,
    pub data_files: Vec<DataFile>,
    pub directories: Vec<String>,
    pub secrets: Vec<PodmanSecret>,
    pub missing: Vec<String>,
}

/// Which keys a ConfigMap or Secret volume projects, and where: `items` if given (each key must
/// exist unless the volume is optional), else every key under its own name.
fn project<'a>(
    ctx: &mut Ctx<'_>,
    what: &str,
    keys: impl Iterator<Item = &'a String>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
) -> Vec<(String, String, u32)> {
    let keys: Vec<&String> = keys.collect();
    let default_mode = default_mode.map_or(0o644, |m| m as u32 & 0o777);
    match items {
        Some(items) => items
            .iter()
            .filter_map(|item| {
                if keys.iter().any(|k| **k == item.key) {
                    Some((
                        item.key.clone(),
                        item.path.clone(),
                        item.mode.map_or(default_mode, |m| m as u32 & 0o777),
                    ))
                } else {
                    ctx.warn(format!(
                        "{what} has no key {:?}; it is not mounted",
                        item.key
                    ));
                    None
                }
            })
            .collect(),
        None => keys
            .into_iter()
            .map(|k| (k.clone(), k.clone(), default_mode))
            .collect(),
    }
}

/// The start of a `.volume` unit: description, owner (`Pod=` for an emptyDir, `Claim=` for a
/// claim's volume, which the daemon uses to tell them apart) and the podman volume name.
fn volume_unit(
    ctx: &Ctx<'_>,
    field: &str,
    description: &str,
    owner: (&'static str, &str),
    base: &str,
) -> Result<UnitWriter, Error> {
    let mut w = UnitWriter::default();
    w.set("Unit", "Description", ctx.escape(field, raw(description))?);
    w.set(
        "X-Podswarm",
        "Namespace",
        ctx.escape(field, generated(ctx.pod.namespace.as_str()))?,
    );
    w.set(
        "X-Podswarm",
        owner.0,
        ctx.escape(field, generated(owner.1))?,
    );
    w.set("Volume", "VolumeName", ctx.escape(field, generated(base))?);
    Ok(w)
}

pub(crate) fn resolve(ctx: &mut Ctx<'_>) -> Result<Volumes, Error> {
    let mut out = Volumes::default();
    let pod = ctx.pod;
    let (ns, pod_name) = (pod.namespace.as_str(), pod.name.as_str());
    for (i, v) in pod.spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let source = if let Some(ed) = &v.empty_dir {
            let base = names::empty_dir(ns, pod_name, &v.name);
            let description = format!("podswarm emptyDir {} of pod {ns}/{pod_name}", v.name);
            let mut w = volume_unit(ctx, &field, &description, ("Pod", pod_name), &base)?;
            let size = match &ed.size_limit {
                Some(q) => Some(memory_bytes(&q.0).map_err(|e| {
                    ctx.unsupported(format!("{field}.emptyDir.sizeLimit"), e.to_string())
                })?),
                None => None,
            };
            if ed.medium.as_deref() == Some("Memory") {
                w.set("Volume", "Type", ctx.escape(&field, generated("tmpfs"))?);
                w.set("Volume", "Device", ctx.escape(&field, generated("tmpfs"))?);
                if let Some(size) = size {
                    w.set(
                        "Volume",
                        "Options",
                        ctx.escape(&field, generated(format!("size={size}")))?,
                    );
                }
            } else if size.is_some() {
                ctx.warn(format!(
                    "emptyDir {:?}: sizeLimit is enforced only for medium Memory",
                    v.name
                ));
            }
            let unit_file = format!("{base}.volume");
            out.units.push(UnitFile {
                file_name: unit_file.clone(),
                contents: w.finish(&format!("emptyDir {} of pod {ns}/{pod_name}", v.name)),
                pod: Some(PodKey::of(pod)),
                role: Role::Volume { name: base },
            });
            Source::Named { unit_file }
        } else if let Some(pvc) = &v.persistent_volume_claim {
            // One podman volume per claim and namespace, shared by every pod that names it; it
            // outlives pods, as a claim does.
            let base = names::claim(ns, &pvc.claim_name);
            let description = format!("podswarm volume for claim {ns}/{}", pvc.claim_name);
            let w = volume_unit(
                ctx,
                &field,
                &description,
                ("Claim", pvc.claim_name.as_str()),
                &base,
            )?;
            let unit_file = format!("{base}.volume");
            out.units.push(UnitFile {
                file_name: unit_file.clone(),
                contents: w.finish(&format!("persistentVolumeClaim {ns}/{}", pvc.claim_name)),
                // Shared by every pod that names the claim, and outlives them.
                pod: None,
                role: Role::Volume { name: base },
            });
            if pvc.read_only == Some(true) {
                ctx.warn(format!("volume {:?}: persistentVolumeClaim.readOnly is applied per mount; set readOnly on the volumeMounts", v.name));
            }
            Source::Named { unit_file }
        } else if let Some(cm) = &v.config_map {
            let dir = format!(
                "{}/{ns}_{pod_name}/{}",
                ctx.options.data_dir.trim_end_matches('/'),
                v.name
            );
            ctx.escape(&field, raw(&dir))?;
            out.directories.push(dir.clone());
            match ctx.objects.config_map(ns, &cm.name) {
                Some(found) => {
                    let data = found.data.clone().unwrap_or_default();
                    let binary = found.binary_data.clone().unwrap_or_default();
                    let what = format!("ConfigMap {ns}/{}", cm.name);
                    let keys = data.keys().chain(binary.keys());
                    for (key, path, mode) in
                        project(ctx, &what, keys, cm.items.as_ref(), cm.default_mode)
                    {
                        let contents = match data.get(&key) {
                            Some(text) => text.clone().into_bytes(),
                            None => binary.get(&key).map(|b| b.0.clone()).unwrap_or_default(),
                        };
                        out.data_files.push(DataFile {
                            path: format!("{dir}/{path}"),
                            contents,
                            mode,
                        });
                    }
                }
                None if cm.optional == Some(true) => {}
                None => {
                    out.missing.push(format!("ConfigMap {ns}/{}", cm.name));
                    ctx.warn(format!(
                        "volume {:?}: ConfigMap {:?} does not exist (yet); the pod waits for it",
                        v.name, cm.name
                    ));
                }
            }
            Source::Dir {
                path: dir,
                read_only: true,
                relabel: true,
            }
        } else if let Some(s) = &v.secret {
            let secret_name = s.secret_name.clone().unwrap_or_default();
            match ctx.objects.secret_data(ns, &secret_name) {
                Some(data) => {
                    let what = format!("Secret {ns}/{secret_name}");
                    let files = project(ctx, &what, data.keys(), s.items.as_ref(), s.default_mode);
                    let mut mounted = Vec::new();
                    for (key, path, mode) in files {
                        let bytes = data.get(&key).cloned().unwrap_or_default();
                        let name = names::secret(ns, &secret_name, &key, &bytes);
                        out.secrets.push(PodmanSecret {
                            name: name.clone(),
                            data: bytes,
                        });
                        mounted.push((name, path, mode));
                    }
                    Source::Secrets(mounted)
                }
                None => {
                    if s.optional != Some(true) {
                        out.missing.push(format!("Secret {ns}/{secret_name}"));
                        ctx.warn(format!("volume {:?}: Secret {secret_name:?} does not exist (yet); the pod waits for it", v.name));
                    }
                    Source::Secrets(Vec::new())
                }
            }
        } else if let Some(hp) = &v.host_path {
            if !host_path_allowed(&hp.path, &ctx.options.host_path_allow) {
                return Err(ctx.unsupported(
                    format!("{field}.hostPath.path"),
                    format!("hostPath {:?} is not under an allowed prefix", hp.path),
                ));
            }
            ctx.escape(format!("{field}.hostPath.path"), raw(&hp.path))?;
            // No SELinux relabel: relabeling would change the labels of host files podswarm does
            // not own.
            Source::Dir {
                path: hp.path.clone(),
                read_only: false,
                relabel: false,
            }
        } else {
            return Err(ctx.unsupported(field, "volume source not supported"));
        };
        out.by_name.insert(v.name.clone(), source);
    }
    Ok(out)
}
