//! This node's place in a cluster: cluster id, node id, name, advertised address and the cluster
//! key. Kept in `<key_dir>/cluster.json` (0600, directory 0700); without it the node is in no
//! cluster and creates a one-node cluster of its own on start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use podswarm_cluster::ClusterKey;
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(with = "hex_u64")]
    pub cluster: u64,
    #[serde(with = "hex_u64")]
    pub node_id: u64,
    pub node_name: String,
    pub advertise: SocketAddr,
    key: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cluster", &format_args!("{:016x}", self.cluster))
            .field("node_id", &format_args!("{:016x}", self.node_id))
            .field("node_name", &self.node_name)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

pub(crate) mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// A random non-zero id.
pub fn random_id() -> u64 {
    u64::from_be_bytes(podswarm_cluster::random_bytes()).max(1)
}

impl Identity {
    /// A new one-node cluster.
    pub fn create(node_name: &str, advertise: SocketAddr) -> Identity {
        Identity {
            cluster: random_id(),
            node_id: random_id(),
            node_name: node_name.to_owned(),
            advertise,
            key: ClusterKey::generate().to_hex(),
        }
    }

    /// This node's identity in a cluster it was admitted to.
    pub fn joined(
        cluster: u64,
        node_id: u64,
        node_name: &str,
        advertise: SocketAddr,
        key: &ClusterKey,
    ) -> Identity {
        Identity {
            cluster,
            node_id,
            node_name: node_name.to_owned(),
            advertise,
            key: key.to_hex(),
        }
    }

    pub fn key(&self) -> Option<ClusterKey> {
        ClusterKey::from_hex(&self.key)
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join("cluster.json")
    }

    pub fn load(dir: &Path) -> Result<Option<Identity>, Error> {
        let path = Identity::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let identity: Identity = serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if identity.key().is_none() {
            return Err(Error::Damaged {
                path,
                message: "the cluster key is not 64 hex digits".to_owned(),
            });
        }
        Ok(Some(identity))
    }

    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        let path = Identity::path(dir);
        let write = |source| Error::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(write)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(write)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| write(std::io::Error::other(e)))?;
        podswarm_config::process::write_atomic(&path, &bytes, 0o600).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_identity_is_private_and_loads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        assert!(Identity::load(&keys).is_ok_and(|i| i.is_none()));
        let id = Identity::create("n1", "127.0.0.1:7946".parse().unwrap());
        id.save(&keys).unwrap();
        let back = Identity::load(&keys)
            .unwrap()
            .unwrap_or_else(|| panic!("missing"));
        assert_eq!((back.cluster, back.node_id), (id.cluster, id.node_id));
        assert_eq!(back.key(), id.key());
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        assert_eq!(mode(&keys), Some(0o700));
        assert_eq!(mode(&Identity::path(&keys)), Some(0o600));
        assert!(!format!("{id:?}").contains(&id.key), "Debug shows no key");
    }
}
