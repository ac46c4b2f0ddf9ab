//! This node's copy of the replicated state: the store, the node's clock, persistence and change
//! notifications. Local writes get a fresh clock reading; remote entries advance the clock so that
//! a later local write orders after everything this node has seen.
//!
//! Persisted as `<state_dir>/replica.json` (0600, written atomically). A file from another
//! cluster is set aside rather than merged: a node that joined elsewhere must not carry objects
//! across.
//!
//! # A damaged file
//!
//! A file that does not parse (truncated, overwritten, bit rot) is kept for inspection as
//! `replica.json.corrupt-<unix seconds>`, logged once at error level with both names, and
//! replaced by an empty replica: the process starts, rather than fail the same way on every
//! restart. Nothing else lives in this file: the node's identity, its cluster id and the cluster
//! key are in the key directory (`identity`), so the node is still the same member of the same
//! cluster and its peers still know it (they hold its node record and contact it, see
//! `node`'s reconnect loop).
//!
//! Starting empty loses nothing the other members hold, because of how the store merges
//! (`podswarm_cluster::store`): an entry only ever replaces one with a lower version, a delete is
//! a tombstone (an entry of its own, with a version), and the absence of a key is never sent, so
//! an empty store cannot delete anything anywhere; merging with any member brings back every
//! live entry and every tombstone that member holds (`newer_than` of an empty digest is the whole
//! store). Its garbage-collection horizon starts at zero, as a newly joined node's does.
//!
//! Empty is still not the cluster's state, and this node's readers must not take it for one:
//! podswarmd mirrors the objects it is served and would stop every pod the empty store does not
//! name. So a replica opened for a cluster this node was already in ([`Lineage::Member`]) starts
//! *recovering* (marked in the file, so a restart keeps it so): the control socket answers reads,
//! writes and subscriptions with a `recovering` error (podswarmd then keeps running on its last
//! copy, and the API answers writes with 503 and the reason) until a member that is not
//! recovering itself has exchanged its whole state with this node. A node whose cluster has no
//! other member has nobody to refill it: docs/RELIABILITY.md gives the operator's way out.

use std::path::{Path, PathBuf};

use podswarm_cluster::hlc::wall_millis;
use podswarm_cluster::{Applied, Clock, Entry, Hlc, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::Error;

/// One key changed (a tombstone has `entry.value == None`).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub key: String,
    pub entry: Entry,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    #[serde(with = "crate::identity::hex_u64")]
    cluster: u64,
    store: Store,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recovering: Option<Recovery>,
}

/// Whether the cluster a replica is opened for is one this node was in before this start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lineage {
    /// Its state is on disk here, or (when that file is damaged) with the other members.
    Member,
    /// Created or joined just now: no file here holds its state.
    New,
}

/// An empty replica standing in for a damaged one until a peer has refilled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Where the damaged file was kept.
    pub set_aside: PathBuf,
    /// Since when (seconds since the epoch).
    pub since: u64,
}

#[derive(Debug)]
pub struct Replica {
    cluster: u64,
    node_id: u64,
    store: Store,
    clock: Clock,
    path: PathBuf,
    dirty: bool,
    /// Changes so far (local writes, merges, collections): what a flush makes durable.
    written: u64,
    /// The change count of the state on disk, held while writing: writes are serialised and
    /// never replace a newer file with an older state.
    on_disk: std::sync::Arc<std::sync::Mutex<u64>>,
    changes: broadcast::Sender<Change>,
    recovery: Option<Recovery>,
}

/// The state as it was when taken, to be written outside the lock.
#[derive(Debug)]
pub struct Pending {
    /// Every change up to this one is in `bytes`.
    pub written: u64,
    path: PathBuf,
    bytes: Vec<u8>,
    on_disk: std::sync::Arc<std::sync::Mutex<u64>>,
}

impl Pending {
    /// Replaces the state file atomically (temp, fsync, rename, fsync), unless a newer state is
    /// already there. Blocking.
    pub fn write(&self) -> Result<u64, Error> {
        let mut on_disk = self.on_disk.lock().unwrap_or_else(|p| p.into_inner());
        if *on_disk >= self.written && self.written > 0 {
            return Ok(*on_disk);
        }
        podswarm_config::process::write_atomic(&self.path, &self.bytes, 0o600).map_err(
            |source| Error::Write {
                path: self.path.clone(),
                source,
            },
        )?;
        *on_disk = self.written;
        Ok(self.written)
    }
}

impl Replica {
    /// The replica of a cluster this node was already in ([`Lineage::Member`]).
    pub fn open(state_dir: &Path, cluster: u64, node_id: u64) -> Result<Replica, Error> {
        Replica::open_as(state_dir, cluster, node_id, Lineage::Member)
    }

    pub fn open_as(
        state_dir: &Path,
        cluster: u64,
        node_id: u64,
        lineage: Lineage,
    ) -> Result<Replica, Error> {
        let path = state_dir.join("replica.json");
        let (store, recovery) = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Persisted>(&bytes) {
                Ok(p) if p.cluster == cluster => (p.store, p.recovering),
                Ok(p) => {
                    let aside = state_dir.join(format!("replica.{:016x}.json", p.cluster));
                    tracing::warn!(
                        old = %aside.display(),
                        "the saved state belongs to another cluster; set aside"
                    );
                    std::fs::rename(&path, &aside).map_err(|source| Error::Write {
                        path: aside.clone(),
                        source,
                    })?;
                    (Store::new(), None)
                }
                Err(e) => (Store::new(), replace_damaged(&path, cluster, lineage, &e)?),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Store::new(), None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let mut clock = Clock::new(node_id);
        clock.observe(store.max_version(), wall_millis());
        let (changes, _) = broadcast::channel(4096);
        Ok(Replica {
            cluster,
            node_id,
            store,
            clock,
            path,
            dirty: false,
            written: 0,
            on_disk: std::sync::Arc::default(),
            changes,
            recovery,
        })
    }

    /// The damaged replica this one stands in for, while no peer has refilled it.
    pub fn recovering(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// A peer that is not recovering itself has handed over its whole state: this replica is
    /// the cluster's again. Returns the recovery that ended, if one had not already.
    pub fn recovered(&mut self) -> Option<Recovery> {
        let recovery = self.recovery.take()?;
        self.dirty = true;
        self.written += 1;
        Some(recovery)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// A local write (`None` deletes). Returns the entry to disseminate.
    pub fn write(&mut self, key: &str, value: Option<serde_json::Value>) -> Entry {
        let entry = Entry {
            version: self.clock.tick(wall_millis()),
            value,
        };
        self.store.apply(key, entry.clone());
        self.changed(key, &entry);
        entry
    }

    /// An entry from a peer.
    pub fn merge(&mut self, key: &str, entry: Entry) -> Applied {
        self.clock.observe(entry.version, wall_millis());
        let applied = self.store.apply(key, entry.clone());
        if applied == Applied::Newer {
            self.changed(key, &entry);
        }
        applied
    }

    /// The version held for a key, if any.
    pub fn version(&self, key: &str) -> Option<Hlc> {
        self.store.entry(key).map(|e| e.version)
    }

    /// The other nodes this state names (their records under `nodes/`): name and gossip
    /// address. A node that left deleted its record, so it is not here.
    pub fn peers_on_record(&self) -> Vec<(String, std::net::SocketAddr)> {
        let me = format!("{:016x}", self.node_id);
        self.store
            .live("nodes/")
            .filter(|(_, v)| v.get("nodeId").and_then(|n| n.as_str()) != Some(me.as_str()))
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("nodes/").unwrap_or(k).to_owned();
                Some((name, v.get("gossip")?.as_str()?.parse().ok()?))
            })
            .collect()
    }

    /// The name a node record gives the node with this id (for logs).
    pub fn node_name(&self, node_id: u64) -> Option<String> {
        let id = format!("{node_id:016x}");
        self.store
            .live("nodes/")
            .find(|(_, v)| v.get("nodeId").and_then(|n| n.as_str()) == Some(id.as_str()))
            .and_then(|(_, v)| v.get("name")?.as_str().map(str::to_owned))
    }

    /// How many changes this replica has taken so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn changed(&mut self, key: &str, entry: &Entry) {
        self.dirty = true;
        self.written += 1;
        // No subscriber is fine.
        let _ = self.changes.send(Change {
            key: key.to_owned(),
            entry: entry.clone(),
        });
    }

    pub fn collect_garbage(&mut self, ttl_millis: u64) -> usize {
        let n = self.store.collect_garbage(wall_millis(), ttl_millis);
        if n > 0 {
            self.dirty = true;
            self.written += 1;
        }
        n
    }

    /// The state to write, if anything changed since the last one was taken. Serialised under
    /// the lock, written outside it ([`Pending::write`]); after a failed write call
    /// [`Replica::unflushed`] so the next round tries again.
    pub fn pending(&mut self) -> Option<Pending> {
        if !self.dirty {
            return None;
        }
        let persisted = Persisted {
            cluster: self.cluster,
            store: self.store.clone(),
            recovering: self.recovery.clone(),
        };
        // A store of JSON values always serialises; were it ever not to, it stays dirty.
        let bytes = serde_json::to_vec(&persisted).ok()?;
        self.dirty = false;
        Some(Pending {
            written: self.written,
            path: self.path.clone(),
            bytes,
            on_disk: self.on_disk.clone(),
        })
    }

    /// The last state taken was not written: take it again next time.
    pub fn unflushed(&mut self) {
        self.dirty = true;
    }

    /// Writes the file now if anything changed since the last flush (at stop).
    pub fn flush(&mut self) -> Result<(), Error> {
        if let Some(p) = self.pending()
            && let Err(e) = p.write()
        {
            self.unflushed();
            return Err(e);
        }
        Ok(())
    }
}

/// Keeps the damaged file at `path` for inspection and puts an empty replica in its place, at
/// once: a crash before the first flush must not leave no file (which reads as "new") or the
/// damaged one again. The empty replica is recovering when the node was already a member.
fn replace_damaged(
    path: &Path,
    cluster: u64,
    lineage: Lineage,
    damage: &serde_json::Error,
) -> Result<Option<Recovery>, Error> {
    let aside = podswarm_config::process::set_aside(path).map_err(|source| Error::SetAside {
        path: path.to_owned(),
        source,
    })?;
    let recovery = (lineage == Lineage::Member).then(|| Recovery {
        set_aside: aside.clone(),
        since: wall_millis() / 1000,
    });
    let empty = Persisted {
        cluster,
        store: Store::new(),
        recovering: recovery.clone(),
    };
    let written = serde_json::to_vec(&empty)
        .map_err(std::io::Error::other)
        .and_then(|bytes| podswarm_config::process::write_atomic(path, &bytes, 0o600));
    if let Err(source) = written {
        // The damaged file is still in place; the next start sets it aside again.
        let _ = std::fs::remove_file(&aside);
        return Err(Error::Write {
            path: path.to_owned(),
            source,
        });
    }
    match lineage {
        Lineage::Member => tracing::error!(
            file = %path.display(),
            set_aside = %aside.display(),
            error = %damage,
            "the replicated state file is damaged: it was set aside and this node starts empty; it refills from the other members and serves no reads or writes of the state until one has answered"
        ),
        Lineage::New => tracing::error!(
            file = %path.display(),
            set_aside = %aside.display(),
            error = %damage,
            "the replicated state file is damaged: it was set aside; the new cluster starts empty"
        ),
    }
    Ok(recovery)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_survives_a_restart_and_the_clock_resumes_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path(), 7, 1).unwrap();
        let first = r.write("objects/a", Some(json!({"x": 1})));
        r.flush().unwrap();
        let mut again = Replica::open(dir.path(), 7, 1).unwrap();
        assert_eq!(again.store().value("objects/a"), Some(&json!({"x": 1})));
        let second = again.write("objects/b", None);
        assert!(second.version > first.version);
    }

    #[test]
    fn state_of_another_cluster_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path(), 7, 1).unwrap();
        r.write("objects/a", Some(json!(1)));
        r.flush().unwrap();
        let other = Replica::open(dir.path(), 8, 1).unwrap();
        assert!(other.store().is_empty());
        assert!(dir.path().join("replica.0000000000000007.json").exists());
    }

    /// The names in `dir` that start with `prefix`.
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

    #[test]
    fn a_damaged_file_is_set_aside_and_the_node_recovers_until_a_peer_refills_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path(), 7, 1).unwrap();
        r.write("objects/a", Some(json!({"x": 1})));
        r.flush().unwrap();
        let path = dir.path().join("replica.json");
        let whole = std::fs::read(&path).unwrap();
        let truncated = &whole[..whole.len() / 2];
        std::fs::write(&path, truncated).unwrap();

        let mut reset = Replica::open(dir.path(), 7, 1).unwrap();
        assert!(reset.store().is_empty());
        let aside = named(dir.path(), "replica.json.corrupt-");
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), truncated);
        assert_eq!(
            reset.recovering().map(|r| r.set_aside.clone()),
            Some(aside[0].clone())
        );
        // The empty stand-in is on disk at once, marked: a restart before any peer answered
        // still knows it is not the cluster's state.
        let again = Replica::open(dir.path(), 7, 1).unwrap();
        assert_eq!(again.recovering(), reset.recovering());
        assert_eq!(named(dir.path(), "replica.json.corrupt-").len(), 1);

        assert!(reset.recovered().is_some());
        assert!(reset.recovered().is_none());
        reset.flush().unwrap();
        let served = Replica::open(dir.path(), 7, 1).unwrap();
        assert!(served.recovering().is_none());
    }

    #[test]
    fn a_damaged_file_under_a_new_cluster_is_set_aside_without_recovery() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("replica.json"), b"").unwrap();
        let r = Replica::open_as(dir.path(), 9, 1, Lineage::New).unwrap();
        assert!(r.store().is_empty());
        assert!(r.recovering().is_none());
        assert_eq!(named(dir.path(), "replica.json.corrupt-").len(), 1);
        // What took its place is a valid empty replica of the new cluster.
        let again = Replica::open(dir.path(), 9, 1).unwrap();
        assert!(again.recovering().is_none());
        assert_eq!(named(dir.path(), "replica.json.corrupt-").len(), 1);
    }

    #[test]
    fn subscribers_see_newer_merges_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path(), 7, 1).unwrap();
        let mut rx = r.subscribe();
        let e = Entry {
            version: Hlc {
                millis: 5,
                counter: 0,
                node: 2,
            },
            value: Some(json!(1)),
        };
        assert_eq!(r.merge("k", e.clone()), Applied::Newer);
        assert_eq!(r.merge("k", e), Applied::Stale);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }
}
