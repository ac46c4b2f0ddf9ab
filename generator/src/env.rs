//! Container environment: `envFrom`, then `env` (which wins), with Kubernetes' `$(VAR)` expansion.
//!
//! Secret values never become `Environment=` lines: they go to podman secrets injected with
//! `Secret=…,type=env`. A `$(VAR)` that names a secret variable is left as written (and warned
//! about) because expanding it would copy the secret into the world-readable unit file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use podswarm_manifest::is_env_var_name;

use crate::{Ctx, PodmanSecret, names};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvItem {
    Plain {
        name: String,
        value: String,
    },
    /// `secret` is the per-key podman secret; `source`/`key` name the Secret key it came from.
    Secret {
        name: String,
        secret: String,
        source: String,
        key: String,
    },
}

impl EnvItem {
    fn name(&self) -> &str {
        match self {
            EnvItem::Plain { name, .. } | EnvItem::Secret { name, .. } => name,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Env {
    pub items: Vec<EnvItem>,
    pub secrets: Vec<PodmanSecret>,
}

/// Kubernetes' expansion: `$(NAME)` → the value of an earlier variable, `$$` → `$`; references to
/// unknown (or secret) variables stay as written.
pub(crate) fn expand(
    input: &str,
    vars: &BTreeMap<String, Option<String>>,
    secret_refs: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(Some(value)) => out.push_str(value),
                        Some(None) => {
                            secret_refs.push(name.to_owned());
                            out.push_str(&rest[pos..pos + 3 + end]);
                        }
                        None => out.push_str(&rest[pos..pos + 3 + end]),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[pos..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn resolve(ctx: &mut Ctx<'_>, c: &Container, field: &str) -> Env {
    let pod = ctx.pod;
    let ns = pod.namespace.as_str();
    let mut env = Env::default();
    let secret = |env: &mut Env, target: String, secret_name: &str, key: &str, data: Vec<u8>| {
        let name = names::secret(ns, secret_name, key, &data);
        env.secrets.push(PodmanSecret {
            name: name.clone(),
            data,
        });
        env.items.push(EnvItem::Secret {
            name: target,
            secret: name,
            source: secret_name.to_owned(),
            key: key.to_owned(),
        });
    };
    for (j, from) in c.env_from.iter().flatten().enumerate() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match ctx.objects.config_map(ns, &r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        let name = format!("{prefix}{k}");
                        if is_env_var_name(&name) {
                            env.items.push(EnvItem::Plain {
                                name,
                                value: v.clone(),
                            });
                        } else {
                            ctx.warn(format!("{field}.envFrom[{j}]: key {k:?} of ConfigMap {:?} is not a valid variable name; skipped", r.name));
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    ctx.missing.push(format!("ConfigMap {ns}/{}", r.name));
                    ctx.warn(format!("{field}.envFrom[{j}]: ConfigMap {:?} does not exist (yet); the pod waits for it", r.name));
                }
            }
        }
        if let Some(r) = &from.secret_ref {
            match ctx.objects.secret_data(ns, &r.name) {
                Some(data) => {
                    for (k, v) in data {
                        let name = format!("{prefix}{k}");
                        if is_env_var_name(&name) {
                            secret(&mut env, name, &r.name, &k, v);
                        } else {
                            ctx.warn(format!("{field}.envFrom[{j}]: key {k:?} of Secret {:?} is not a valid variable name; skipped", r.name));
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    ctx.missing.push(format!("Secret {ns}/{}", r.name));
                    ctx.warn(format!("{field}.envFrom[{j}]: Secret {:?} does not exist (yet); the pod waits for it", r.name));
                }
            }
        }
    }
    let mut vars: BTreeMap<String, Option<String>> = BTreeMap::new();
    for item in &env.items {
        match item {
            EnvItem::Plain { name, value } => vars.insert(name.clone(), Some(value.clone())),
            EnvItem::Secret { name, .. } => vars.insert(name.clone(), None),
        };
    }
    for (j, e) in c.env.iter().flatten().enumerate() {
        let ef = format!("{field}.env[{j}]");
        let Some(from) = &e.value_from else {
            let mut secret_refs = Vec::new();
            let value = expand(
                e.value.as_deref().unwrap_or_default(),
                &vars,
                &mut secret_refs,
            );
            for r in secret_refs {
                ctx.warn(format!("{ef}: $({r}) names a secret variable and is not expanded, to keep the secret out of the unit file"));
            }
            vars.insert(e.name.clone(), Some(value.clone()));
            env.items.push(EnvItem::Plain {
                name: e.name.clone(),
                value,
            });
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            match ctx
                .objects
                .config_map(ns, &r.name)
                .map(|cm| cm.data.as_ref().and_then(|d| d.get(&r.key)))
            {
                Some(Some(value)) => {
                    vars.insert(e.name.clone(), Some(value.clone()));
                    env.items.push(EnvItem::Plain {
                        name: e.name.clone(),
                        value: value.clone(),
                    });
                }
                _ if r.optional == Some(true) => {}
                found => {
                    ctx.missing.push(format!("ConfigMap {ns}/{}", r.name));
                    let what = if found.is_some() {
                        format!("has no key {:?}", r.key)
                    } else {
                        "does not exist (yet)".to_owned()
                    };
                    ctx.warn(format!(
                        "{ef}: ConfigMap {:?} {what}; the pod waits for it",
                        r.name
                    ));
                }
            }
        } else if let Some(r) = &from.secret_key_ref {
            match ctx
                .objects
                .secret_data(ns, &r.name)
                .map(|d| d.get(&r.key).cloned())
            {
                Some(Some(value)) => {
                    vars.insert(e.name.clone(), None);
                    secret(&mut env, e.name.clone(), &r.name, &r.key, value);
                }
                _ if r.optional == Some(true) => {}
                found => {
                    ctx.missing.push(format!("Secret {ns}/{}", r.name));
                    let what = if found.is_some() {
                        format!("has no key {:?}", r.key)
                    } else {
                        "does not exist (yet)".to_owned()
                    };
                    ctx.warn(format!(
                        "{ef}: Secret {:?} {what}; the pod waits for it",
                        r.name
                    ));
                }
            }
        } else if let Some(f) = &from.field_ref {
            let value = field_value(ctx, &f.field_path);
            match value {
                Some(value) => {
                    vars.insert(e.name.clone(), Some(value.clone()));
                    env.items.push(EnvItem::Plain {
                        name: e.name.clone(),
                        value,
                    });
                }
                None => ctx.warn(format!(
                    "{ef}: {} is not known on this node; the variable is not set",
                    f.field_path
                )),
            }
        }
    }
    // Later definitions win, as in Kubernetes; keep one line per variable.
    let mut seen = std::collections::BTreeSet::new();
    let mut items: Vec<EnvItem> = env
        .items
        .into_iter()
        .rev()
        .filter(|i| seen.insert(i.name().to_owned()))
        .collect();
    items.reverse();
    env.items = items;
    env
}

fn field_value(ctx: &Ctx<'_>, path: &str) -> Option<String> {
    let pod = ctx.pod;
    let lookup = |prefix: &str, map: &BTreeMap<String, String>| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(|k| map.get(k).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => Some(pod.name.clone()),
        "metadata.namespace" => Some(pod.namespace.clone()),
        "spec.nodeName" => Some(ctx.node.node_name.clone()),
        "status.podIP" => ctx.pod_ip.map(|ip| ip.to_string()),
        "status.hostIP" => ctx.node.node_ip.map(|ip| ip.to_string()),
        _ => lookup("metadata.labels['", &pod.labels)
            .or_else(|| lookup("metadata.annotations['", &pod.annotations)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_expansion_rules() {
        let mut vars = BTreeMap::new();
        vars.insert("HOST".to_owned(), Some("db".to_owned()));
        vars.insert("PASS".to_owned(), None);
        let mut secret_refs = Vec::new();
        assert_eq!(expand("$(HOST):5432", &vars, &mut secret_refs), "db:5432");
        assert_eq!(
            expand("$$(HOST) $(NOPE) $HOME $", &vars, &mut secret_refs),
            "$(HOST) $(NOPE) $HOME $"
        );
        assert_eq!(expand("$(PASS)", &vars, &mut secret_refs), "$(PASS)");
        assert_eq!(expand("$(HOST", &vars, &mut secret_refs), "$(HOST");
        assert_eq!(secret_refs, ["PASS"]);
    }
}
