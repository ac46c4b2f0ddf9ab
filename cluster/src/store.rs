//! The replicated map: string keys (`objects/<ns>/<kind>/<name>`, `nodes/<name>`, …) to JSON
//! values, each with the hybrid-logical-clock version of the write that produced it.
//!
//! Merging is last-writer-wins on the version, so any two nodes that have seen the same writes
//! hold the same map whatever order the writes came in (commutative, idempotent). A delete is a
//! write of a tombstone, so a delete and a stale write meet like any two writes and the newer one
//! wins. Tombstones are dropped after a time-to-live; the store then remembers the horizon it
//! collected up to and refuses any write at or below it for a key it does not hold, which is
//! exactly the write that could bring a deleted object back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hlc::Hlc;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: Hlc,
    /// `None` is a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl Entry {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The entry replaced what the store held (or filled a gap): pass it on.
    Newer,
    /// The store already held this write or a newer one: drop it.
    Stale,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    entries: BTreeMap<String, Entry>,
    /// Tombstones at or below this version have been collected.
    #[serde(default)]
    horizon: Hlc,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    pub fn apply(&mut self, key: &str, entry: Entry) -> Applied {
        match self.entries.get_mut(key) {
            Some(held) if held.version >= entry.version => Applied::Stale,
            Some(held) => {
                *held = entry;
                Applied::Newer
            }
            None if entry.version <= self.horizon => Applied::Stale,
            None => {
                self.entries.insert(key.to_owned(), entry);
                Applied::Newer
            }
        }
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The live value of a key (tombstones read as absent).
    pub fn value(&self, key: &str) -> Option<&serde_json::Value> {
        self.entries.get(key).and_then(|e| e.value.as_ref())
    }

    /// Every entry (tombstones included) whose key starts with `prefix`, in key order.
    pub fn range<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        self.entries
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.as_str(), e))
    }

    /// Live values under `prefix`.
    pub fn live<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a serde_json::Value)> + 'a {
        self.range(prefix)
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn horizon(&self) -> Hlc {
        self.horizon
    }

    /// The highest version held, so a restarted clock never issues a version below its own writes.
    pub fn max_version(&self) -> Hlc {
        self.entries
            .values()
            .map(|e| e.version)
            .max()
            .unwrap_or_default()
            .max(self.horizon)
    }

    /// Key and version of every entry: what a peer needs to tell what it has that we lack.
    pub fn digest(&self) -> Vec<(String, Hlc)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.version))
            .collect()
    }

    /// A fingerprint of the digest: two stores with the same fingerprint hold the same writes.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for (key, entry) in &self.entries {
            hash.update((key.len() as u64).to_le_bytes());
            hash.update(key.as_bytes());
            hash.update(entry.version.millis.to_le_bytes());
            hash.update(entry.version.counter.to_le_bytes());
            hash.update(entry.version.node.to_le_bytes());
        }
        hash.finalize().into()
    }

    /// The entries a peer with `digest` lacks or holds in an older version.
    pub fn newer_than(&self, digest: &[(String, Hlc)]) -> Vec<(String, Entry)> {
        let theirs: BTreeMap<&str, Hlc> = digest.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.entries
            .iter()
            .filter(|(k, e)| theirs.get(k.as_str()).is_none_or(|v| *v < e.version))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Drops tombstones written before `now_millis - ttl_millis` and raises the horizon to that
    /// time. Returns how many were dropped.
    pub fn collect_garbage(&mut self, now_millis: u64, ttl_millis: u64) -> usize {
        let cutoff = Hlc {
            millis: now_millis.saturating_sub(ttl_millis),
            counter: 0,
            node: 0,
        };
        if cutoff <= self.horizon {
            return 0;
        }
        let before = self.entries.len();
        self.entries
            .retain(|_, e| !(e.is_tombstone() && e.version < cutoff));
        self.horizon = cutoff;
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn v(millis: u64, node: u64) -> Hlc {
        Hlc {
            millis,
            counter: 0,
            node,
        }
    }

    fn put(version: Hlc, value: serde_json::Value) -> Entry {
        Entry {
            version,
            value: Some(value),
        }
    }

    fn tombstone(version: Hlc) -> Entry {
        Entry {
            version,
            value: None,
        }
    }

    #[test]
    fn newer_write_wins_and_stale_one_is_dropped() {
        let mut store = Store::new();
        assert_eq!(store.apply("k", put(v(2, 1), json!(2))), Applied::Newer);
        assert_eq!(store.apply("k", put(v(1, 1), json!(1))), Applied::Stale);
        assert_eq!(store.value("k"), Some(&json!(2)));
        assert_eq!(store.apply("k", put(v(2, 1), json!(2))), Applied::Stale);
    }

    #[test]
    fn a_tombstone_beats_an_older_write_that_arrives_after_it() {
        let mut store = Store::new();
        store.apply("k", tombstone(v(5, 1)));
        assert_eq!(store.apply("k", put(v(4, 2), json!("old"))), Applied::Stale);
        assert_eq!(store.value("k"), None);
    }

    #[test]
    fn collected_tombstones_still_keep_stale_writes_out() {
        let mut store = Store::new();
        store.apply("k", put(v(1_000, 1), json!(1)));
        store.apply("k", tombstone(v(2_000, 1)));
        assert_eq!(store.collect_garbage(100_000, 10_000), 1);
        assert!(store.entry("k").is_none());
        assert_eq!(store.apply("k", put(v(1_000, 1), json!(1))), Applied::Stale);
        assert_eq!(store.value("k"), None);
        assert_eq!(
            store.apply("k", put(v(95_000, 2), json!(2))),
            Applied::Newer
        );
    }

    #[test]
    fn newer_than_lists_what_the_peer_lacks() {
        let mut a = Store::new();
        a.apply("x", put(v(2, 1), json!(1)));
        a.apply("y", put(v(1, 1), json!(1)));
        let mut b = Store::new();
        b.apply("x", put(v(1, 1), json!(0)));
        b.apply("y", put(v(1, 1), json!(1)));
        let missing = a.newer_than(&b.digest());
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].0, "x");
        for (k, e) in missing {
            b.apply(&k, e);
        }
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn range_stays_inside_the_prefix() {
        let mut store = Store::new();
        for key in ["nodes/a", "nodes/b", "nodesx", "objects/a"] {
            store.apply(key, put(v(1, 1), json!(key)));
        }
        let keys: Vec<&str> = store.range("nodes/").map(|(k, _)| k).collect();
        assert_eq!(keys, ["nodes/a", "nodes/b"]);
    }

    /// Versions start above zero: the zero version is the empty store's horizon (below every write
    /// a clock can issue, since clocks start at the wall time), so no real write carries it.
    fn write() -> impl Strategy<Value = (String, Entry)> {
        (
            prop::sample::select(vec!["a", "b", "c"]),
            1u64..20,
            0u32..3,
            0u64..3,
            prop::option::of(0i64..100),
        )
            .prop_map(|(k, millis, counter, node, value)| {
                (
                    k.to_owned(),
                    Entry {
                        version: Hlc {
                            millis,
                            counter,
                            node,
                        },
                        value: value.map(|v| json!(v)),
                    },
                )
            })
    }

    /// Writes as a real cluster makes them: one version is one write.
    fn writes() -> impl Strategy<Value = Vec<(String, Entry)>> {
        prop::collection::vec(write(), 0..40).prop_map(|mut ws| {
            let mut seen = std::collections::BTreeSet::new();
            ws.retain(|(_, e)| seen.insert(e.version));
            ws
        })
    }

    proptest! {
        #[test]
        fn merge_is_order_independent_and_idempotent(
            ws in writes(),
            order in any::<prop::sample::Index>(),
        ) {
            let mut forward = Store::new();
            for (k, e) in &ws {
                forward.apply(k, e.clone());
            }
            let mut shuffled = ws.clone();
            let n = shuffled.len().max(1);
            shuffled.rotate_left(order.index(n) % n);
            shuffled.reverse();
            let mut other = Store::new();
            for (k, e) in shuffled.iter().chain(ws.iter()) {
                other.apply(k, e.clone());
            }
            prop_assert_eq!(&forward, &other);
            prop_assert_eq!(forward.fingerprint(), other.fingerprint());
        }

        #[test]
        fn the_newest_write_of_a_key_decides_it(ws in writes()) {
            let mut store = Store::new();
            for (k, e) in &ws {
                store.apply(k, e.clone());
            }
            for key in ["a", "b", "c"] {
                let newest = ws.iter().filter(|(k, _)| k == key).map(|(_, e)| e).max_by_key(|e| e.version);
                prop_assert_eq!(store.entry(key), newest);
            }
        }

        #[test]
        fn exchanging_newer_entries_converges(a_ws in writes(), b_ws in writes()) {
            let mut a = Store::new();
            for (k, e) in &a_ws { a.apply(k, e.clone()); }
            let mut b = Store::new();
            for (k, e) in &b_ws { b.apply(k, e.clone()); }
            let to_b = a.newer_than(&b.digest());
            let to_a = b.newer_than(&a.digest());
            for (k, e) in to_b { b.apply(&k, e); }
            for (k, e) in to_a { a.apply(&k, e); }
            prop_assert_eq!(a.fingerprint(), b.fingerprint());
        }

        #[test]
        fn garbage_collection_never_resurrects(ws in writes(), ttl in 0u64..20) {
            let mut store = Store::new();
            for (k, e) in &ws { store.apply(k, e.clone()); }
            let deleted: Vec<String> = ["a", "b", "c"].iter()
                .filter(|k| store.entry(k).is_some_and(Entry::is_tombstone))
                .map(|k| (*k).to_owned()).collect();
            store.collect_garbage(20, ttl);
            for (k, e) in &ws { store.apply(k, e.clone()); }
            for key in deleted {
                prop_assert!(store.value(&key).is_none(), "{} came back", key);
            }
        }
    }
}
