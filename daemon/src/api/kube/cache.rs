//! The Kubernetes form of a snapshot's objects, made once per snapshot and resource and shared by
//! every watch and list that reads that snapshot.
//!
//! Without it each watch made every object of the resource into its Kubernetes form at every
//! change and kept its own copy of all of them: with 1,000 pods, 100 watchers cost ~10 MiB and
//! ~160 ms of CPU each per change (docs/BENCHMARKS.md). Now the first reader of a new snapshot
//! makes its objects (others wait for it, then share the result), and an object whose form did
//! not change keeps the allocation it had in the previous snapshot's map (the whole map too, when
//! none changed), so a watch tells what changed by pointer and keeps only pointers. A `Table`
//! (what `kubectl get` asks for) is made from the same objects: each keeps what its row is made
//! from, typed, so a table of 1,000 pods costs its rows and no conversion.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use podswarm_api::kube::discovery::Resource;
use serde_json::Value;

use crate::model::Snapshot;

/// One object in its Kubernetes form, with what selectors read and what its table row is made
/// from.
#[derive(Debug, PartialEq)]
pub(super) struct Object {
    pub value: Value,
    pub labels: BTreeMap<String, String>,
    pub typed: super::Typed,
}

/// A resource's objects by (namespace, name); cluster-scoped ones have namespace `""`.
pub(super) type Objects = BTreeMap<(String, String), Arc<Object>>;

/// Per resource, the objects of the snapshot last asked for.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<(&'static str, &'static str), Latest>>);

struct Latest {
    snapshot: Arc<Snapshot>,
    objects: Arc<Objects>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

impl Cache {
    /// `r`'s objects in `snapshot`, in every namespace.
    pub(super) fn objects(&self, snapshot: &Arc<Snapshot>, r: &'static Resource) -> Arc<Objects> {
        // Held while the objects are made: the watchers a change wakes all ask at once, and one
        // makes them while the rest wait for the result.
        let mut latest = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (r.group, r.plural);
        let previous = latest.get(&key);
        if let Some(p) = previous
            && Arc::ptr_eq(&p.snapshot, snapshot)
        {
            return Arc::clone(&p.objects);
        }
        let objects: Objects = super::items(snapshot, r, None, &super::all)
            .into_iter()
            .map(|i| {
                let key = (i.namespace, i.name);
                let made = Object {
                    value: i.value,
                    labels: i.labels,
                    typed: i.typed,
                };
                let shared = match previous.and_then(|p| p.objects.get(&key)) {
                    Some(old) if **old == made => Arc::clone(old),
                    _ => Arc::new(made),
                };
                (key, shared)
            })
            .collect();
        // Nothing of this resource changed: the same map, which a watch sees at a glance.
        let objects = match previous {
            Some(p)
                if p.objects.len() == objects.len()
                    && p.objects
                        .iter()
                        .zip(&objects)
                        .all(|((k, a), (l, b))| k == l && Arc::ptr_eq(a, b)) =>
            {
                Arc::clone(&p.objects)
            }
            _ => Arc::new(objects),
        };
        latest.insert(
            key,
            Latest {
                snapshot: Arc::clone(snapshot),
                objects: Arc::clone(&objects),
            },
        );
        objects
    }
}
