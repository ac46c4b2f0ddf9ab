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
            let Some(spec) = d.spec.template.spec.clone() else {
                return Vec::new();
            };
            let hash = template_hash(&d.spec.template);
            let template_meta = d.spec.template.metadata.clone().unwrap_or_default();
            let mut labels = template_meta.labels.unwrap_or_default();
            labels.insert("pod-template-hash".to_owned(), hash.clone());
            let replicas = usize::try_from(d.spec.replicas.unwrap_or(1)).unwrap_or(0);
            let name = object.name();
            (0..replicas)
                .map(|i| {
                    let suffix = format!("-{hash}-{i}");
                    let keep = MAX_POD_NAME.saturating_sub(suffix.len()).min(name.len());
                    let base = name[..keep].trim_end_matches(['-', '.']);
                    PodInstance {
                        namespace: object.namespace().to_owned(),
                        name: format!("{base}{suffix}"),
                        labels: labels.clone(),
                        annotations: template_meta.annotations.clone().unwrap_or_default(),
                        spec: spec.clone(),
                        owner: Some(Owner {
                            kind: "Deployment",
                            name: name.to_owned(),
                        }),
                    }
                })
                .collect()
        }
        _ => Vec::new(),
    }
}
