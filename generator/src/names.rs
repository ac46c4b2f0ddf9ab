//! Unit and podman object names.
//!
//! Every name is `podswarm-` followed by namespace, pod and part joined with `_`. Kubernetes names
//! never contain `_`, so the pieces cannot run into each other: pod `a` in namespace `b-c` and pod
//! `c-a` in namespace `b` get different names, which a `-` separator could not promise. Parts use
//! distinct shapes so no two units of any pod can collide, whatever the Quadlet suffix:
//!
//! | unit | file | systemd service |
//! |---|---|---|
//! | the pod (single container, `.pod`, `.kube`) | `podswarm-NS_POD.{container,pod,kube}` | `podswarm-NS_POD.service` |
//! | a container of a multi-container pod | `podswarm-NS_POD_CTR.container` | `podswarm-NS_POD_CTR.service` |
//! | an emptyDir | `podswarm-NS_POD__VOL.volume` | `podswarm-NS_POD__VOL-volume.service` |
//! | a persistentVolumeClaim | `podswarm-NS__CLAIM.volume` | `podswarm-NS__CLAIM-volume.service` |
//! | the pod network | `podswarm.network` | `podswarm-network.service` |
//!
//! systemd allows 255 characters in a unit name; with the longest suffix Quadlet adds
//! (`-volume.service`) a base may use 240. Longer bases keep a readable prefix and end in a hash of
//! the full name, so they stay unique.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "podswarm-";
const MAX_BASE: usize = 240;

fn fit(full: String) -> String {
    if full.len() <= MAX_BASE {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    // Bases are ASCII (validated names), so any byte index is a char boundary.
    let keep = MAX_BASE - hash.len() - 1;
    format!("{}-{hash}", &full[..keep])
}

pub fn pod(namespace: &str, pod: &str) -> String {
    fit(format!("{PREFIX}{namespace}_{pod}"))
}

pub fn container(namespace: &str, pod: &str, container: &str) -> String {
    fit(format!("{PREFIX}{namespace}_{pod}_{container}"))
}

pub fn empty_dir(namespace: &str, pod: &str, volume: &str) -> String {
    fit(format!("{PREFIX}{namespace}_{pod}__{volume}"))
}

pub fn claim(namespace: &str, claim: &str) -> String {
    fit(format!("{PREFIX}{namespace}__{claim}"))
}

/// Podman secret holding one key of one Secret. The name carries a hash of the content, so a
/// changed Secret changes the unit that uses it and the pod restarts with the new value.
pub fn secret(namespace: &str, secret: &str, key: &str, data: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(data);
    let hash: String = hasher
        .finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    fit(format!("{PREFIX}{namespace}_{secret}_{key}_{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_keep_names_apart() {
        assert_ne!(pod("b-c", "a"), pod("b", "c-a"));
        assert_ne!(container("ns", "x", "pod"), pod("ns", "x-pod"));
        assert_ne!(empty_dir("ns", "p", "v"), container("ns", "p", "v"));
    }

    #[test]
    fn long_names_fit_and_stay_unique() {
        let long = "a".repeat(253);
        let a = container(&"n".repeat(63), &long, "c1");
        let b = container(&"n".repeat(63), &long, "c2");
        assert!(a.len() <= MAX_BASE && b.len() <= MAX_BASE);
        assert_ne!(a, b);
        assert!(format!("{a}-volume.service").len() <= 255);
    }
}
