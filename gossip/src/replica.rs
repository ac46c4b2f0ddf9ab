//! This node's copy of the replicated state: the store, the node's clock, persistence and change
//! notifications. Local writes get a fresh clock reading; remote entries advance the clock so that
//! a later local write orders after everything this node has seen.
//!
//! Persisted as `<state_dir>/replica.json` (0600, written atomically). A file from another
//! cluster is set aside rather than merged: a node that joined elsewhere must not carry objects
//! across.

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
    pub fn open(state_dir: &Path, cluster: u64, node_id: u64) -> Result<Replica, Error> {
        let path = state_dir.join("replica.json");
        let store = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Persisted>(&bytes) {
                Ok(p) if p.cluster == cluster => p.store,
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
                    Store::new()
                }
                Err(e) => {
                    return Err(Error::Damaged {
                        path,
                        message: e.to_string(),
                    });
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store::new(),
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
        })
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
