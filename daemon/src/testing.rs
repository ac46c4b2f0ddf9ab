//! Fixtures the unit tests of several modules share, so that each builds a node the same way.

use std::path::Path;
use std::sync::Arc;

use podswarm_manifest::{Limits, Object, Policy};

use crate::link::{Link, NodeView};
use crate::reconcile::PodViews;
use crate::state::{Entry, State};

/// Deployment `shop/web`: two replicas, no pods of it anywhere yet.
pub const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x}]}
"#;

/// The objects of a manifest, which must be valid.
pub fn objects(yaml: &str) -> Vec<Object> {
    podswarm_manifest::parse(yaml, "t", &Limits::default(), &Policy::default())
        .unwrap()
        .objects
        .into_iter()
        .map(|p| p.object)
        .collect()
}

/// The objects of a manifest as stored entries, all at `version`.
pub fn entries(yaml: &str, version: u64) -> Vec<Entry> {
    objects(yaml)
        .into_iter()
        .map(|object| Entry {
            object,
            version,
            created: 0,
            updated: 0,
        })
        .collect()
}

/// Node `me`'s state in `dir`, a link to a podswarm-gossip that is not there (reads work, writes
/// fail) and no pod views.
pub fn offline(dir: &Path) -> (Arc<State>, Arc<Link>, PodViews) {
    let state =
        Arc::new(State::open(dir, &Policy::default(), crate::state::system_clock()).unwrap());
    let link = Link::new(
        dir.join("no-gossip.sock"),
        "me".into(),
        Arc::clone(&state),
        Policy::default(),
    );
    (state, link, PodViews::default())
}

/// A member `name` as the link reports it: live when `ready`, neither cordoned nor draining.
pub fn node_view(name: &str, ready: bool) -> NodeView {
    NodeView {
        name: name.into(),
        node_id: String::new(),
        address: String::new(),
        labels: std::collections::BTreeMap::new(),
        subnet: None,
        ready,
        cordoned: false,
        draining: false,
        stopping: Vec::new(),
    }
}
