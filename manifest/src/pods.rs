//! Which pods an object asks for. A Deployment's pods get deterministic names,
//! `<deployment>-<template hash>-<ordinal>`, so that every node computes the same pod set from the
//! same state without a leader handing out random suffixes, and so that a changed template yields
//! new names (old and new pods can coexist during a rolling update).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use sha2::{Digest, Sha256};

use crate::parse::Object;

/// What created a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: &'static str,
    pub name: String,
}

/// One pod to run: a bare Pod, or one replica of a Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInstance {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: PodSpec,
    pub owner: Option<Owner>,
}

/// Pod names stay DNS labels (at most 63) so they can serve as host names, as in Kubernetes.
const MAX_POD_NAME: usize = 63;

/// Kubernetes' alphabet for generated suffixes: no vowels (no words), no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A short, stable hash of a Deployment's pod template.
pub fn template_hash(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    // serde_json writes struct fields in declaration order and maps sorted, so equal templates give
    // equal bytes.
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest
        .iter()
        .take(8)
        .map(|b| SAFE_ALPHABET[usize::from(*b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The pods an object asks for; empty for kinds that run nothing.
pub fn pods_of(object: &Object) -> Vec<PodInstance> {
    match object {
        Object::Pod(pod) => {
            let Some(spec) = pod.spec.clone() else {
                return Vec::new();
            };
            vec![PodInstance {
                namespace: object.namespace().to_owned(),
                name: object.name().to_owned(),
                labels: pod.metadata.labels.clone().unwrap_or_default(),
                annotations: pod.metadata.annotations.clone().unwrap_or_default(),
                spec,
                owner: None,
            }]
        }
        Object::Deployment(d) => {
            let replicas = u32::try_from(d.spec.replicas.unwrap_or(1)).unwrap_or(0);
            replicas_of(
                object.namespace(),
                object.name(),
                &d.spec.template,
                0..replicas,
            )
        }
        _ => Vec::new(),
    }
}

/// Replicas `ordinals` of a Deployment named `name` with pod template `template` (the current
/// one, or an older revision's during a rolling update): `<name>-<template hash>-<ordinal>`.
pub fn replicas_of(
    namespace: &str,
    name: &str,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    ordinals: impl IntoIterator<Item = u32>,
) -> Vec<PodInstance> {
    let Some(spec) = template.spec.as_ref() else {
        return Vec::new();
    };
    let hash = template_hash(template);
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert("pod-template-hash".to_owned(), hash.clone());
    let annotations = template_meta.annotations.unwrap_or_default();
    ordinals
        .into_iter()
        .map(|i| {
            let suffix = format!("-{hash}-{i}");
            let keep = MAX_POD_NAME.saturating_sub(suffix.len()).min(name.len());
            let base = name[..keep].trim_end_matches(['-', '.']);
            PodInstance {
                namespace: namespace.to_owned(),
                name: format!("{base}{suffix}"),
                labels: labels.clone(),
                annotations: annotations.clone(),
                spec: spec.clone(),
                owner: Some(Owner {
                    kind: "Deployment",
                    name: name.to_owned(),
                }),
            }
        })
        .collect()
}

/// The template hash and ordinal of a Deployment's pod, from its name; `None` for other names.
pub fn replica_ordinal(pod: &str) -> Option<(&str, u32)> {
    let (rest, ordinal) = pod.rsplit_once('-')?;
    let (_, hash) = rest.rsplit_once('-')?;
    let ordinal = ordinal.parse().ok()?;
    (hash.len() == 8 && hash.bytes().all(|b| SAFE_ALPHABET.contains(&b))).then_some((hash, ordinal))
}
