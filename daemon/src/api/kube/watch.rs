//! `?watch=true`: a stream of `ADDED`/`MODIFIED`/`DELETED` events (one JSON object per line),
//! as `kubectl get -w`, `kubectl rollout status`, `kubectl delete --wait` and client-go's
//! informers read it.
//!
//! Events are differences between snapshots of the read model, which every change of the
//! replicated state or of the pod records publishes: a write on any node reaches this node's
//! state, and its watchers, as soon as gossip brings it. The objects of each snapshot are made
//! once for every watch (`cache`); each watch keeps pointers to the ones it last sent and
//! compares the next snapshot's with them, pointer first, so a burst of changes between two
//! snapshots is one event per object, with its latest content (as an apiserver's watch cache may
//! also coalesce), and a watch costs little more than its own selection.
//!
//! Where it starts: without `resourceVersion` (or with `"0"`), from nothing, so every current
//! object comes first as `ADDED` (Kubernetes' "get state and start at most recent"); with a
//! version a list answered, from the snapshot of that version the model still holds
//! (`Model::at`), so nothing that changed between the list and the watch is missed (a pod's
//! status may be sent again); older than every held snapshot, 410 Gone and the client lists
//! again. `sendInitialEvents=true` (client-go's watch-list) sends the current objects and then
//! the `k8s.io/initial-events-end` bookmark. `allowWatchBookmarks` adds a bookmark a minute.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::IntoResponse;
use podswarm_api::kube::discovery::Resource;
use podswarm_api::kube::status::Reason;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{KubeError, KubeResult, ListParams, Selectors, Shared, cache, table};
use crate::model::Snapshot;

/// How long a watch lasts without `timeoutSeconds` (Kubernetes: 30 to 60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// The longest a client may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// The objects as last sent, for the next comparison.
type Seen = BTreeMap<(String, String), Arc<cache::Object>>;

struct Watcher {
    api: Shared,
    r: &'static Resource,
    ns: Option<String>,
    selectors: Selectors,
    table: bool,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The snapshot `seen` was taken from, for the rows of objects that go.
    last: Arc<Snapshot>,
    seen: Seen,
    /// The objects `seen` was selected from: when a snapshot has the same, nothing changed.
    objects: Option<Arc<cache::Objects>>,
    pending: VecDeque<Bytes>,
    deadline: Instant,
    bookmarks: Option<Instant>,
}

pub(super) fn start(
    api: &Shared,
    r: &'static Resource,
    ns: Option<&str>,
    q: &ListParams,
    selectors: Selectors,
    table: bool,
) -> KubeResult {
    let timeout = q
        .timeout_seconds
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
        .min(MAX_TIMEOUT);
    let send_initial = q.send_initial_events == Some(true);
    if send_initial && q.allow_watch_bookmarks != Some(true) {
        return Err(KubeError::new(
            Reason::Invalid,
            "sendInitialEvents requires allowWatchBookmarks=true",
        ));
    }
    // Subscribed before the first snapshot is read, so no change falls between the two.
    let snapshots = api.model.subscribe();
    let current = api.model.current();
    let version = q.resource_version.as_deref().unwrap_or_default();
    let from = match version {
        "" | "0" => None,
        _ if send_initial => None,
        v => {
            let v: u64 = v.parse().map_err(|_| {
                KubeError::new(
                    Reason::BadRequest,
                    format!("resourceVersion {v:?} is not one podswarm gave"),
                )
            })?;
            if v >= current.stamp.state {
                Some(Arc::clone(&current))
            } else {
                Some(api.model.at(v).ok_or_else(|| {
                    KubeError::new(
                        Reason::Gone,
                        format!(
                            "too old resource version: {v} ({}): list again",
                            current.stamp.state
                        ),
                    )
                })?)
            }
        }
    };
    let mut watcher = Watcher {
        api: Arc::clone(api),
        r,
        ns: ns.map(str::to_owned),
        selectors,
        table,
        snapshots,
        last: Arc::new(Snapshot::default()),
        seen: Seen::new(),
        objects: None,
        pending: VecDeque::new(),
        deadline: Instant::now() + timeout,
        bookmarks: (q.allow_watch_bookmarks == Some(true)).then(|| Instant::now() + BOOKMARK_EVERY),
    };
    if let Some(from) = from {
        watcher.seen = watcher.items(&from);
        watcher.last = from;
    }
    // The events from where the client stands to now.
    watcher.changes(&current);
    if send_initial {
        watcher.bookmark(&current, true);
    }
    let stream = futures_util::stream::unfold(watcher, |mut w| async move {
        w.next()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), w))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

impl Watcher {
    /// The objects of `snapshot` this watch selects.
    fn items(&self, snapshot: &Arc<Snapshot>) -> Seen {
        self.api
            .kube_objects
            .objects(snapshot, self.r)
            .iter()
            .filter(|((ns, name), o)| self.selects(ns, name, o))
            .map(|(k, o)| (k.clone(), Arc::clone(o)))
            .collect()
    }

    fn selects(&self, ns: &str, name: &str, object: &cache::Object) -> bool {
        self.selectors.selects(self.ns.as_deref(), ns, name, object)
    }

    /// Queues the events that take the client from `seen` to `snapshot`.
    fn changes(&mut self, snapshot: &Arc<Snapshot>) {
        let objects = self.api.kube_objects.objects(snapshot, self.r);
        if self
            .objects
            .as_ref()
            .is_some_and(|o| Arc::ptr_eq(o, &objects))
        {
            // None of the resource's objects changed.
            self.last = Arc::clone(snapshot);
            return;
        }
        let selected =
            |key: &(String, String)| objects.get(key).filter(|o| self.selects(&key.0, &key.1, o));
        let gone: BTreeSet<(String, String)> = self
            .seen
            .keys()
            .filter(|k| selected(k).is_none())
            .cloned()
            .collect();
        let mut events: Vec<(&str, (String, String), Arc<cache::Object>)> = Vec::new();
        for key in &gone {
            if let Some(old) = self.seen.remove(key) {
                events.push(("DELETED", key.clone(), old));
            }
        }
        let (only, selectors) = (self.ns.as_deref(), &self.selectors);
        for (key, object) in objects
            .iter()
            .filter(|((ns, name), o)| selectors.selects(only, ns, name, o))
        {
            let kind = match self.seen.get(key) {
                None => "ADDED",
                Some(old) if !Arc::ptr_eq(old, object) && **old != **object => "MODIFIED",
                Some(_) => continue,
            };
            self.seen.insert(key.clone(), Arc::clone(object));
            events.push((kind, key.clone(), Arc::clone(object)));
        }
        self.objects = Some(Arc::clone(&objects));
        if events.is_empty() {
            self.last = Arc::clone(snapshot);
            return;
        }
        // Each event's table row comes from its object as the cache made it; an applied
        // object's from the snapshot it was last in (the last one for those that went).
        let last = Arc::clone(&self.last);
        for (kind, key, object) in events {
            let at = if kind == "DELETED" {
                &*last
            } else {
                &**snapshot
            };
            let row = super::Row {
                namespace: &key.0,
                name: &key.1,
                typed: &object.typed,
            };
            let object = self.object(at, &row, object.value.clone());
            self.push(kind, object);
        }
        self.last = Arc::clone(snapshot);
    }

    /// An event's object: the object, or the one-row `Table` of `row` when the client asked
    /// for tables, with a version the client may resume from (pods and nodes are records, not
    /// writes: they carry the snapshot's).
    fn object(&self, snapshot: &Snapshot, row: &super::Row<'_>, mut value: Value) -> Value {
        if value["metadata"]["resourceVersion"].is_null() {
            value["metadata"]["resourceVersion"] = json!(snapshot.stamp.state.to_string());
        }
        if !self.table {
            return value;
        }
        let mut rows = table(
            snapshot,
            self.r,
            std::slice::from_ref(row),
            self.api.state.now(),
        );
        rows.metadata.resource_version = value["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned);
        serde_json::to_value(rows).unwrap_or(value)
    }

    fn push(&mut self, kind: &str, object: Value) {
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.pending.push_back(Bytes::from(line));
    }

    /// A bookmark: the version the client has seen everything up to.
    fn bookmark(&mut self, snapshot: &Snapshot, initial_events_end: bool) {
        let mut metadata = json!({"resourceVersion": snapshot.stamp.state.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.r.kind,
            "apiVersion": self.r.group_version(),
            "metadata": metadata,
        });
        self.push("BOOKMARK", object);
    }

    /// The next line to send; `None` when the watch is over (its time is up, or the model is
    /// gone because the daemon is stopping).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            let bookmark = self.bookmarks;
            tokio::select! {
                changed = self.snapshots.changed() => {
                    changed.ok()?;
                    let snapshot = Arc::clone(&self.snapshots.borrow_and_update());
                    self.changes(&snapshot);
                }
                () = tokio::time::sleep_until(self.deadline) => return None,
                () = tokio::time::sleep_until(bookmark.unwrap_or(self.deadline)), if bookmark.is_some() => {
                    self.bookmarks = Some(Instant::now() + BOOKMARK_EVERY);
                    let last = Arc::clone(&self.last);
                    self.bookmark(&last, false);
                }
            }
        }
    }
}
