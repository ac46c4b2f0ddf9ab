//! Desired state of this node: the applied objects, pod addresses and API token hashes, persisted
//! as one JSON file written atomically (temp file, fsync, rename, fsync of the directory), so a
//! crash leaves either the old state or the new one, never a torn file.
//!
//! Every change bumps a global version that only goes up and is stamped on the changed object;
//! watchers (the reconciler) wake on each new version. The cluster issue replaces this single-node
//! store with the replicated one behind the same interface.
//!
//! # A damaged file
//!
//! Each write keeps the file it replaces as `state.json.prev` (a second name of the old file, so
//! no extra data is written). A `state.json` that does not parse is kept for inspection as
//! `state.json.corrupt-<unix seconds>`, logged once at error level with both names, and replaced
//! by that previous generation, so podswarmd starts instead of failing the same way on every
//! restart. The previous generation is at most one change behind, and what it may lack is either
//! the cluster's (the objects: the link replaces them with the cluster's own as soon as
//! podswarm-gossip answers, deleting nothing the cluster holds) or handed out again the same way
//! (a pod address given in that last change: the lowest free one, as before). Pod addresses and
//! the pod subnet, which nothing else on the node records, are kept, so no running pod is
//! re-addressed or restarted.
//!
//! Without a usable previous generation the state starts empty, which costs more and is said so
//! in the log: the objects still come back from the cluster (a state that records no cluster
//! adopts none of its own into it, and mirrors whatever the cluster holds), but the pod subnet is
//! claimed again (the node's standing claim when its name leads there, else a free one), pod
//! addresses are handed out again (pods may restart once on new ones), API tokens made before the
//! node was in a cluster are gone, and with `network.node_subnet` configured the first pass may
//! run before the cluster answered and stop pods until their objects are back.
//!
//! # A full disk
//!
//! A write that fails leaves the file as it was (no temp file stays behind). The cluster's copies
//! ([`State::sync_objects`], and the addresses [`State::retain_pod_ips`] frees) are taken in
//! memory even then, so the reconciler follows the cluster while the file is behind: the file is
//! only the copy podswarmd runs on while podswarm-gossip is down. The next write catches the file
//! up, and so does [`State::touch`] (at most every [`CATCH_UP_SECS`] seconds). An address a pod
//! is given ([`State::pod_ip`]) is on disk before any unit uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnet::Ipv4Net;
use podswarm_manifest::{Limits, Object, Policy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write the state file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set aside the damaged state file {path}")]
    SetAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the pod subnet {subnet} has no free address for pod {pod}")]
    SubnetFull { subnet: Ipv4Net, pod: String },
    #[error("no randomness available for a token")]
    Random,
}

// What an apply did to an object is part of the API's answer, so the contract defines it.
pub use podswarm_api::Action;

/// Identifies an object: kind, namespace (empty for Namespaces) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of(o: &Object) -> ObjectKey {
        ObjectKey {
            kind: o.kind().to_owned(),
            namespace: o.namespace().to_owned(),
            name: o.name().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredObject {
    version: u64,
    created: u64,
    updated: u64,
    object: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    /// Hex SHA-256 of the whole token; the token itself is never stored.
    pub hash: String,
    pub description: String,
    pub created: u64,
    pub expires: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    version: u64,
    objects: Vec<StoredObject>,
    pod_ips: BTreeMap<String, Ipv4Addr>,
    tokens: Vec<TokenRecord>,
    /// The cluster the objects mirror (absent before the node ever reached podswarm-gossip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    /// This node's pod subnet as last claimed, so a restart without gossip keeps pod addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subnet: Option<Ipv4Net>,
    /// This node's own API token (the cluster holds only its hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node_token: Option<String>,
}

/// An object with its bookkeeping.
#[derive(Debug, Clone)]
pub struct Entry {
    pub object: Object,
    pub version: u64,
    pub created: u64,
    pub updated: u64,
}

impl Entry {
    /// The object's uid ([`object_uid`]).
    pub fn uid(&self) -> String {
        object_uid(
            self.object.kind(),
            self.object.namespace(),
            self.object.name(),
            self.created,
        )
    }
}

/// A stable UUID-shaped id per object and creation: the same on every node, another for an
/// object of the same name made anew.
pub fn object_uid(kind: &str, namespace: &str, name: &str, created: u64) -> String {
    uuid_of(&format!("{kind}/{namespace}/{name}/{created}"))
}

/// A UUID-shaped digest of `key`.
pub fn uuid_of(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[derive(Debug, Default)]
struct Data {
    version: u64,
    objects: BTreeMap<ObjectKey, Entry>,
    /// Stored objects today's policy refuses: kept (not applied) so nothing is lost.
    refused: Vec<StoredObject>,
    pod_ips: BTreeMap<String, Ipv4Addr>,
    tokens: Vec<TokenRecord>,
    cluster: Option<String>,
    subnet: Option<Ipv4Net>,
    node_token: Option<String>,
    /// The file is behind this data (a write failed): the next write or catch-up brings it level.
    unsaved: bool,
    /// When a catch-up may try again (clock seconds).
    retry_at: u64,
}

/// How often [`State::touch`] tries again to write a file that is behind.
pub const CATCH_UP_SECS: u64 = 10;

pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

pub struct State {
    path: PathBuf,
    /// The generation `path` replaced last (see the module docs).
    previous: PathBuf,
    data: Mutex<Data>,
    changed: watch::Sender<u64>,
    clock: Clock,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A new API token and its record (which holds only the hash). `id` defaults to a random one.
pub fn new_token(
    id: Option<String>,
    description: &str,
    ttl_seconds: Option<u64>,
    now: u64,
) -> Result<(TokenRecord, String), StateError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|_| StateError::Random)?;
    let id = match id {
        Some(id) => id,
        None => {
            let mut raw = [0u8; 6];
            getrandom::fill(&mut raw).map_err(|_| StateError::Random)?;
            raw.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let token = format!(
        "psw_{id}_{}",
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let record = TokenRecord {
        id,
        hash: hash_hex(token.as_bytes()),
        description: description.to_owned(),
        created: now,
        expires: ttl_seconds.map(|t| now + t),
    };
    Ok((record, token))
}

/// Whether `token` hashes to one of `records` that has not expired at `now`.
pub fn token_matches(records: &[TokenRecord], token: &str, now: u64) -> bool {
    token_holder(records, token, now).is_some()
}

/// The record of a valid `token` (unexpired), which names who holds it.
pub fn token_holder<'a>(
    records: &'a [TokenRecord],
    token: &str,
    now: u64,
) -> Option<&'a TokenRecord> {
    let hash = hash_hex(token.as_bytes());
    records
        .iter()
        .find(|t| t.hash == hash && t.expires.is_none_or(|e| now < e))
}

fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl State {
    /// Opens (or starts) the state in `dir/state.json`. Objects are re-validated with `policy`;
    /// the ones it refuses are logged and kept aside.
    pub fn open(dir: &Path, policy: &Policy, clock: Clock) -> Result<State, StateError> {
        let path = dir.join("state.json");
        let previous = dir.join("state.json.prev");
        let persisted: Persisted = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(p) => p,
                Err(e) => replace_damaged(&path, &previous, &e)?,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let mut data = Data {
            version: persisted.version,
            pod_ips: persisted.pod_ips,
            tokens: persisted.tokens,
            cluster: persisted.cluster,
            subnet: persisted.subnet,
            node_token: persisted.node_token,
            ..Data::default()
        };
        for stored in persisted.objects {
            let text = stored.object.to_string();
            match podswarm_manifest::parse(&text, "state", &Limits::default(), policy) {
                Ok(m) if m.objects.len() == 1 => {
                    let object = m.objects.into_iter().next().map(|p| p.object);
                    if let Some(object) = object {
                        data.objects.insert(
                            ObjectKey::of(&object),
                            Entry {
                                object,
                                version: stored.version,
                                created: stored.created,
                                updated: stored.updated,
                            },
                        );
                    }
                }
                Ok(_) => data.refused.push(stored),
                Err(e) => {
                    tracing::error!(error = %e, "a stored object is refused by the current configuration; it is kept but not applied");
                    data.refused.push(stored);
                }
            }
        }
        let (changed, _) = watch::channel(data.version);
        Ok(State {
            path,
            previous,
            data: Mutex::new(data),
            changed,
            clock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn persist(&self, data: &Data) -> Result<(), StateError> {
        let mut objects: Vec<StoredObject> = data
            .objects
            .values()
            .map(|e| StoredObject {
                version: e.version,
                created: e.created,
                updated: e.updated,
                object: e.object.to_value(),
            })
            .collect();
        objects.extend(data.refused.iter().cloned());
        let persisted = Persisted {
            version: data.version,
            objects,
            pod_ips: data.pod_ips.clone(),
            tokens: data.tokens.clone(),
            cluster: data.cluster.clone(),
            subnet: data.subnet,
            node_token: data.node_token.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&persisted).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomic_keeping(&self.path, &bytes, 0o600, &self.previous).map_err(|source| {
            StateError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// Writes `next` and makes it the data; on a failed write nothing changes.
    fn commit(&self, data: &mut Data, next: Data) -> Result<(), StateError> {
        self.persist(&next)?;
        *data = next;
        data.unsaved = false;
        Ok(())
    }

    /// Makes `next` (the cluster's copy) the data whether or not it could be written: a file
    /// left behind is caught up later (see the module docs). Errors say the file is behind.
    fn take(&self, data: &mut Data, next: Data) -> Result<(), StateError> {
        let written = self.persist(&next);
        *data = next;
        data.unsaved = written.is_err();
        if data.unsaved {
            data.retry_at = (self.clock)().saturating_add(CATCH_UP_SECS);
        }
        written
    }

    /// The version after the last change.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Applies objects as one change: all are stored, or (on a write error) none.
    pub fn apply(&self, objects: Vec<Object>) -> Result<Vec<(ObjectKey, Action)>, StateError> {
        let now = (self.clock)();
        let mut data = self.lock();
        let mut next = data.clone_shallow();
        let mut result = Vec::new();
        let version = data.version + 1;
        for object in objects {
            let key = ObjectKey::of(&object);
            let action = match next.objects.get(&key) {
                Some(existing) if existing.object.to_value() == object.to_value() => {
                    Action::Unchanged
                }
                Some(existing) => {
                    let created = existing.created;
                    next.objects.insert(
                        key.clone(),
                        Entry {
                            object,
                            version,
                            created,
                            updated: now,
                        },
                    );
                    Action::Configured
                }
                None => {
                    next.objects.insert(
                        key.clone(),
                        Entry {
                            object,
                            version,
                            created: now,
                            updated: now,
                        },
                    );
                    Action::Created
                }
            };
            result.push((key, action));
        }
        if result.iter().any(|(_, a)| *a != Action::Unchanged) {
            next.version = version;
            self.commit(&mut data, next)?;
            let _ = self.changed.send(version);
        }
        Ok(result)
    }

    /// Makes the stored objects exactly `objects` (the replicated state's, as one change).
    /// Returns whether anything changed.
    pub fn sync_objects(&self, objects: Vec<Object>) -> Result<bool, StateError> {
        let now = (self.clock)();
        let mut data = self.lock();
        let version = data.version + 1;
        let mut wanted: BTreeMap<ObjectKey, Entry> = BTreeMap::new();
        let mut changed = false;
        for object in objects {
            let key = ObjectKey::of(&object);
            let entry = match data.objects.get(&key) {
                Some(e) if e.object.to_value() == object.to_value() => e.clone(),
                Some(e) => {
                    changed = true;
                    Entry {
                        object,
                        version,
                        created: e.created,
                        updated: now,
                    }
                }
                None => {
                    changed = true;
                    Entry {
                        object,
                        version,
                        created: now,
                        updated: now,
                    }
                }
            };
            wanted.insert(key, entry);
        }
        changed |= data.objects.keys().any(|k| !wanted.contains_key(k));
        if !changed {
            return Ok(false);
        }
        let mut next = data.clone_shallow();
        next.objects = wanted;
        next.version = version;
        let taken = self.take(&mut data, next);
        let _ = self.changed.send(version);
        taken.map(|()| true)
    }

    /// Wakes watchers without a change of objects (membership changed: placement may differ).
    /// Also catches up a file left behind by a failed write, once its retry time has come.
    pub fn touch(&self) {
        let mut data = self.lock();
        data.version += 1;
        let now = (self.clock)();
        if data.unsaved && now >= data.retry_at {
            match self.persist(&data) {
                Ok(()) => {
                    data.unsaved = false;
                    tracing::info!(file = %self.path.display(), "the state file is written again");
                }
                // The failure that left the file behind was reported where it happened.
                Err(_) => data.retry_at = now.saturating_add(CATCH_UP_SECS),
            }
        }
        let _ = self.changed.send(data.version);
    }

    pub fn cluster(&self) -> Option<String> {
        self.lock().cluster.clone()
    }

    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.lock().subnet
    }

    /// Records the cluster the objects now mirror and this node's subnet in it.
    pub fn set_membership(
        &self,
        cluster: Option<String>,
        subnet: Option<Ipv4Net>,
    ) -> Result<(), StateError> {
        let mut data = self.lock();
        if data.cluster == cluster && data.subnet == subnet {
            return Ok(());
        }
        let mut next = data.clone_shallow();
        next.cluster = cluster;
        next.subnet = subnet;
        self.commit(&mut data, next)?;
        Ok(())
    }

    /// Deletes an object; `false` if there was none.
    pub fn delete(&self, key: &ObjectKey) -> Result<bool, StateError> {
        let mut data = self.lock();
        if !data.objects.contains_key(key) {
            return Ok(false);
        }
        let mut next = data.clone_shallow();
        next.objects.remove(key);
        next.version += 1;
        self.commit(&mut data, next)?;
        let _ = self.changed.send(data.version);
        Ok(true)
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Entry> {
        self.lock().objects.get(key).cloned()
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.lock().objects.values().cloned().collect()
    }

    /// The pod's address: kept for its whole life, the lowest free one for a new pod (`.1` is the
    /// node). Persisted, so a restarted daemon renders the same `IP=` and restarts nothing.
    pub fn pod_ip(&self, pod: &str, subnet: Ipv4Net) -> Result<Ipv4Addr, StateError> {
        let mut data = self.lock();
        if let Some(ip) = data.pod_ips.get(pod).filter(|ip| subnet.contains(*ip)) {
            return Ok(*ip);
        }
        let used: BTreeSet<Ipv4Addr> = data.pod_ips.values().copied().collect();
        let first = u32::from(subnet.network()) + 2;
        let last = u32::from(subnet.broadcast());
        let ip = (first..last)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| StateError::SubnetFull {
                subnet,
                pod: pod.to_owned(),
            })?;
        let mut next = data.clone_shallow();
        next.pod_ips.insert(pod.to_owned(), ip);
        self.commit(&mut data, next)?;
        Ok(ip)
    }

    /// Frees the addresses of pods that no longer exist.
    pub fn retain_pod_ips(&self, pods: &BTreeSet<String>) -> Result<(), StateError> {
        let mut data = self.lock();
        if data.pod_ips.keys().all(|k| pods.contains(k)) {
            return Ok(());
        }
        let mut next = data.clone_shallow();
        next.pod_ips.retain(|k, _| pods.contains(k));
        self.take(&mut data, next)
    }

    /// Creates an API token; returns its id and the token, which is shown once and never stored.
    pub fn create_token(
        &self,
        description: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<(TokenRecord, String), StateError> {
        let (record, token) = new_token(None, description, ttl_seconds, (self.clock)())?;
        let mut data = self.lock();
        let mut next = data.clone_shallow();
        next.tokens.push(record.clone());
        self.commit(&mut data, next)?;
        Ok((record, token))
    }

    pub fn tokens(&self) -> Vec<TokenRecord> {
        self.lock().tokens.clone()
    }

    pub fn revoke_token(&self, id: &str) -> Result<bool, StateError> {
        let mut data = self.lock();
        if !data.tokens.iter().any(|t| t.id == id) {
            return Ok(false);
        }
        let mut next = data.clone_shallow();
        next.tokens.retain(|t| t.id != id);
        self.commit(&mut data, next)?;
        Ok(true)
    }

    /// Whether `token` is a current, unexpired API token.
    pub fn verify_token(&self, token: &str) -> bool {
        self.token_id(token).is_some()
    }

    /// The id of this node's record of a valid `token`.
    pub fn token_id(&self, token: &str) -> Option<String> {
        token_holder(&self.lock().tokens, token, (self.clock)()).map(|t| t.id.clone())
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// This node's own API token, for its requests to other nodes (a pod's logs), made once;
    /// the cluster holds its record (hash only) under the id `node-<name>`.
    pub fn node_token(&self, node: &str) -> Result<(TokenRecord, String), StateError> {
        let now = (self.clock)();
        let id = format!("node-{node}");
        let mut data = self.lock();
        let token = match &data.node_token {
            Some(t) => t.clone(),
            None => {
                let (_, token) = new_token(Some(id.clone()), "", None, now)?;
                let mut next = data.clone_shallow();
                next.node_token = Some(token.clone());
                self.commit(&mut data, next)?;
                token
            }
        };
        let record = TokenRecord {
            id,
            hash: hash_hex(token.as_bytes()),
            description: format!("podswarmd on {node}: node-to-node requests"),
            created: now,
            expires: None,
        };
        Ok((record, token))
    }
}

impl Data {
    /// A copy to modify and persist before it replaces the current data.
    fn clone_shallow(&self) -> Data {
        Data {
            version: self.version,
            objects: self.objects.clone(),
            refused: self.refused.clone(),
            pod_ips: self.pod_ips.clone(),
            tokens: self.tokens.clone(),
            cluster: self.cluster.clone(),
            subnet: self.subnet,
            node_token: self.node_token.clone(),
            unsaved: self.unsaved,
            retry_at: self.retry_at,
        }
    }
}

/// Keeps a damaged state file for inspection and puts the previous generation in its place (an
/// empty state when there is none that parses), written at once so that the damaged file is
/// never read again.
fn replace_damaged(
    path: &Path,
    previous: &Path,
    damage: &serde_json::Error,
) -> Result<Persisted, StateError> {
    let aside =
        podswarm_config::process::set_aside(path).map_err(|source| StateError::SetAside {
            path: path.to_owned(),
            source,
        })?;
    let restored: Option<Persisted> = std::fs::read(previous)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let from_previous = restored.is_some();
    let persisted = restored.unwrap_or_default();
    // A plain write: `previous` is the good copy, and keeping would make it the damaged one.
    let written = serde_json::to_vec_pretty(&persisted)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_atomic(path, &bytes, 0o600));
    if let Err(source) = written {
        // The damaged file is still in place; the next start sets it aside again.
        let _ = std::fs::remove_file(&aside);
        return Err(StateError::Write {
            path: path.to_owned(),
            source,
        });
    }
    if from_previous {
        tracing::error!(
            file = %path.display(),
            set_aside = %aside.display(),
            restored_from = %previous.display(),
            error = %damage,
            "the state file is damaged: it was set aside and replaced by its previous generation; the objects follow from the cluster"
        );
    } else {
        tracing::error!(
            file = %path.display(),
            set_aside = %aside.display(),
            error = %damage,
            "the state file is damaged and has no usable previous generation: it was set aside and podswarmd starts empty; the objects and the pod subnet follow from the cluster, and pods may restart once on new addresses"
        );
    }
    Ok(persisted)
}

pub use podswarm_config::process::{write_atomic, write_atomic_keeping};

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::objects;

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n";

    #[test]
    fn versions_only_go_up_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        let first = state.apply(objects(CM)).unwrap();
        assert_eq!(first[0].1, Action::Created);
        assert_eq!(state.version(), 1);
        let again = state.apply(objects(CM)).unwrap();
        assert_eq!(again[0].1, Action::Unchanged);
        assert_eq!(state.version(), 1, "an unchanged apply is not a change");
        state.apply(objects(&CM.replace("a: b", "a: c"))).unwrap();
        assert_eq!(state.version(), 2);
        let key = ObjectKey {
            kind: "ConfigMap".into(),
            namespace: "default".into(),
            name: "c".into(),
        };
        assert!(state.delete(&key).unwrap_or(false));
        assert_eq!(state.version(), 3);
        state.apply(objects(CM)).unwrap();
        drop(state);
        let reopened = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        assert_eq!(reopened.version(), 4);
        assert_eq!(reopened.get(&key).map(|e| e.version), Some(4));
    }

    #[test]
    fn pod_addresses_are_stable_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        let subnet: Ipv4Net = "10.244.3.0/29".parse().unwrap();
        let a = state.pod_ip("ns/a", subnet).unwrap();
        let b = state.pod_ip("ns/b", subnet).unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(10, 244, 3, 2), Ipv4Addr::new(10, 244, 3, 3))
        );
        assert_eq!(state.pod_ip("ns/a", subnet).ok(), Some(a));
        state.retain_pod_ips(&["ns/b".to_owned()].into()).unwrap();
        assert_eq!(
            state.pod_ip("ns/c", subnet).ok(),
            Some(a),
            "a freed address is reused"
        );
        for p in ["d", "e", "f"] {
            let _ = state.pod_ip(&format!("ns/{p}"), subnet);
        }
        assert!(matches!(
            state.pod_ip("ns/g", subnet),
            Err(StateError::SubnetFull { .. })
        ));
    }

    #[test]
    fn tokens_are_stored_as_hashes_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(std::sync::atomic::AtomicU64::new(1000));
        let clock_now = Arc::clone(&now);
        let clock: Clock = Arc::new(move || clock_now.load(std::sync::atomic::Ordering::Relaxed));
        let state = State::open(dir.path(), &Policy::default(), clock).unwrap();
        let (record, token) = state.create_token("ci", Some(60)).unwrap();
        assert!(state.verify_token(&token));
        assert!(!state.verify_token("psw_nope"));
        let file = std::fs::read_to_string(dir.path().join("state.json")).unwrap_or_default();
        assert!(
            !file.contains(&token),
            "the token itself must never be stored"
        );
        now.store(1061, std::sync::atomic::Ordering::Relaxed);
        assert!(!state.verify_token(&token), "expired");
        assert!(state.revoke_token(&record.id).unwrap_or(false));
        assert!(state.tokens().is_empty());
    }

    /// A clock the test moves.
    fn manual_clock(start: u64) -> (Clock, Arc<std::sync::atomic::AtomicU64>) {
        let now = Arc::new(std::sync::atomic::AtomicU64::new(start));
        let read = Arc::clone(&now);
        let clock: Clock = Arc::new(move || read.load(std::sync::atomic::Ordering::Relaxed));
        (clock, now)
    }

    fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        found.sort();
        found
    }

    fn truncate_half(path: &Path) -> Vec<u8> {
        let whole = std::fs::read(path).unwrap();
        let half = whole[..whole.len() / 2].to_vec();
        std::fs::write(path, &half).unwrap();
        half
    }

    const CM2: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: {a: b}\n";

    #[test]
    fn a_damaged_file_is_set_aside_and_the_previous_generation_keeps_pod_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let subnet: Ipv4Net = "10.244.3.0/24".parse().unwrap();
        let state = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        state
            .set_membership(Some("c1".to_owned()), Some(subnet))
            .unwrap();
        state.sync_objects(objects(CM)).unwrap();
        let _ = state.pod_ip("ns/first", subnet).unwrap();
        let kept = state.pod_ip("ns/kept", subnet).unwrap();
        state
            .retain_pod_ips(&["ns/kept".to_owned()].into())
            .unwrap();
        state
            .sync_objects(objects(&format!("{CM}---\n{CM2}")))
            .unwrap();
        drop(state);
        let damaged = truncate_half(&dir.path().join("state.json"));

        let state = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        let aside = named(dir.path(), "state.json.corrupt-");
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), damaged);
        // One change behind: the objects follow from the cluster; what nothing else records on
        // the node is there, so no pod gets a new address.
        assert_eq!(state.subnet(), Some(subnet));
        assert_eq!(state.cluster().as_deref(), Some("c1"));
        assert_eq!(state.pod_ip("ns/kept", subnet).unwrap(), kept);
        assert_eq!(state.entries().len(), 1);
        // What replaced the damaged file is whole: the next start reads it as it is.
        drop(state);
        let state = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        assert_eq!(named(dir.path(), "state.json.corrupt-").len(), 1);
        assert_eq!(state.subnet(), Some(subnet));
    }

    #[test]
    fn a_damaged_file_without_a_usable_previous_generation_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        state.sync_objects(objects(CM)).unwrap();
        state.sync_objects(objects(CM2)).unwrap();
        drop(state);
        truncate_half(&dir.path().join("state.json"));
        truncate_half(&dir.path().join("state.json.prev"));
        let state = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        assert!(state.entries().is_empty());
        assert_eq!(state.subnet(), None);
        assert_eq!(named(dir.path(), "state.json.corrupt-").len(), 1);
        // An empty state mirrors what the cluster holds.
        assert!(state.sync_objects(objects(CM2)).unwrap());
        assert_eq!(state.entries().len(), 1);
    }

    #[test]
    fn the_clusters_objects_are_taken_when_the_file_cannot_be_written_and_caught_up_later() {
        let dir = tempfile::tempdir().unwrap();
        let (clock, now) = manual_clock(1000);
        let state = State::open(dir.path(), &Policy::default(), clock).unwrap();
        state.sync_objects(objects(CM)).unwrap();
        let path = dir.path().join("state.json");
        let before = std::fs::read(&path).unwrap();
        // The file cannot be replaced (a directory is in its way): the path a full disk takes.
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        std::fs::create_dir_all(path.join("in-the-way")).unwrap();
        let e = state
            .sync_objects(objects(&format!("{CM}---\n{CM2}")))
            .unwrap_err();
        assert!(
            matches!(&e, StateError::Write { path: p, .. } if *p == path),
            "{e}"
        );
        assert_eq!(
            state.entries().len(),
            2,
            "the reconciler follows the cluster"
        );
        assert!(
            named(dir.path(), ".state.json.tmp").is_empty(),
            "no temp file"
        );
        assert_eq!(std::fs::read(dir.path().join("moved")).unwrap(), before);

        std::fs::remove_dir_all(&path).unwrap();
        state.touch();
        assert!(!path.exists(), "no retry before its time");
        now.fetch_add(CATCH_UP_SECS, std::sync::atomic::Ordering::Relaxed);
        state.touch();
        drop(state);
        let reopened = State::open(dir.path(), &Policy::default(), system_clock()).unwrap();
        assert_eq!(reopened.entries().len(), 2, "the file caught up");
    }
}
