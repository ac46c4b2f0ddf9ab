//! The current routing view, and keeping it current: the shared watcher of
//! [`podswarm_view::watch`] (file events plus a slow periodic check, last good view kept on a
//! bad or missing file), with what podswarm-dns adds: the configured cluster domain while the
//! view names none, and a log line for each new version.

use std::path::Path;
use std::sync::Arc;

use podswarm_view::View;
pub use podswarm_view::watch::{Reloader, watch};

/// Holds the view queries are answered from.
pub type ViewStore = podswarm_view::watch::Current<View>;

/// A reloader that swaps each new view into `store`, with `fallback_domain` as the cluster
/// domain of a view that names none.
pub fn reloader(path: &Path, store: Arc<ViewStore>, fallback_domain: &str) -> Reloader {
    let fallback_domain = fallback_domain.to_owned();
    Reloader::new(path, move |mut view: View| {
        if view.cluster_domain.trim_matches('.').is_empty() {
            view.cluster_domain.clone_from(&fallback_domain);
        }
        // In name order, so a query finds its service by binary search (`cluster::service`);
        // podswarmd already writes them so, which makes this a check.
        view.services
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let current = store.get();
        if *current != view {
            tracing::info!(
                version = view.version,
                previous = current.version,
                services = view.services.len(),
                pods = view.pods.len(),
                "routing view loaded"
            );
            store.set(Arc::new(view));
        }
    })
    .when_missing(
        "no routing view yet: cluster names are NXDOMAIN and only loopback may recurse until it appears",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, view: &View) {
        let text = serde_json::to_vec(view).unwrap();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn the_fallback_domain_fills_in_a_view_that_names_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.json");
        let store = Arc::new(ViewStore::new(View::default()));
        let mut r = reloader(&path, store.clone(), "cluster.local");
        r.check();
        assert_eq!(store.get().version, 0);
        assert!(r.problem().is_some_and(|p| p.contains("NXDOMAIN")));

        write(
            &path,
            &View {
                version: 3,
                ..View::default()
            },
        );
        r.check();
        assert_eq!(store.get().version, 3);
        assert_eq!(store.get().cluster_domain, "cluster.local");

        std::fs::write(&path, b"{not json").unwrap();
        r.check();
        assert_eq!(store.get().version, 3);

        write(
            &path,
            &View {
                version: 4,
                cluster_domain: "swarm.example".into(),
                ..View::default()
            },
        );
        r.check();
        assert_eq!(store.get().version, 4);
        assert_eq!(store.get().cluster_domain, "swarm.example");
        assert!(r.problem().is_none());
    }
}
