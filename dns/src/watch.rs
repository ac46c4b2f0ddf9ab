//! The current routing view, and keeping it current.
//!
//! Queries read the view through [`ViewStore::get`], which holds a lock only long enough to
//! clone an `Arc`; a reload parses the new file completely first and then swaps the `Arc` in. A
//! query therefore always sees one whole view, old or new, and a reload never makes one wait for
//! parsing or fail.
//!
//! podswarmd replaces the file by renaming a temporary file over it, so the file's own inode is
//! never modified: we watch the directory (with `notify`, inotify on Linux) and react to events
//! that name the file. A slow periodic check backs the watch up, for what inotify cannot report
//! (the directory itself created or replaced after we started, a full event queue), and for the
//! case where the watch cannot be set up at all. Each check compares the file's identity (device,
//! inode, size, modification time) with the last one read, so unchanged files are not parsed
//! again.
//!
//! A file that cannot be read or parsed leaves the current view in place: podswarm-dns keeps
//! serving its last good view (DESIGN.md: siblings keep serving while podswarmd is down). Each
//! distinct problem is logged once, not on every check.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::Watcher;
use podswarm_view::{View, ViewError};

/// Holds the view queries are answered from.
#[derive(Debug)]
pub struct ViewStore {
    current: RwLock<Arc<View>>,
}

impl ViewStore {
    pub fn new(view: View) -> ViewStore {
        ViewStore {
            current: RwLock::new(Arc::new(view)),
        }
    }

    /// The current view. Cheap: an `Arc` clone under a read lock.
    pub fn get(&self) -> Arc<View> {
        // A writer cannot panic while holding the lock (it only assigns an Arc), but a poisoned
        // lock still holds a whole view: use it rather than fail queries.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, view: Arc<View>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = view;
    }
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Fingerprint {
    fn of(m: &std::fs::Metadata) -> Fingerprint {
        Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

/// Loads the view file into a store, remembering what it has seen and said.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    store: Arc<ViewStore>,
    /// The cluster domain used while the view names none.
    fallback_domain: String,
    last: Option<Fingerprint>,
    /// The last problem logged, so that each is logged once.
    last_problem: Option<String>,
}

impl Reloader {
    pub fn new(path: &Path, store: Arc<ViewStore>, fallback_domain: &str) -> Reloader {
        Reloader {
            path: path.to_owned(),
            store,
            fallback_domain: fallback_domain.to_owned(),
            last: None,
            last_problem: None,
        }
    }

    fn problem(&mut self, message: String, missing: bool) {
        if self.last_problem.as_deref() != Some(message.as_str()) {
            if missing {
                tracing::info!(path = %self.path.display(), "{message}");
            } else {
                tracing::warn!(path = %self.path.display(), "{message}");
            }
            self.last_problem = Some(message);
        }
    }

    /// Reads the file if it changed since the last check and swaps it in when it parses. Blocking
    /// (file I/O and parsing): run it off the async threads.
    pub fn check(&mut self) {
        let metadata = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let message = if self.last.is_none() {
                    "no routing view yet: cluster names are NXDOMAIN and only loopback may recurse until it appears"
                } else {
                    "the routing view is gone: keeping the last one"
                };
                self.problem(message.to_owned(), true);
                return;
            }
            Err(e) => {
                self.problem(format!("cannot read the routing view: {e}"), false);
                return;
            }
        };
        let fingerprint = Fingerprint::of(&metadata);
        if self.last == Some(fingerprint) {
            return;
        }
        // Recorded before reading: if the file is replaced meanwhile, the next check sees a new
        // fingerprint and reads it again, so no version is missed.
        self.last = Some(fingerprint);
        match View::load(&self.path) {
            Ok(mut view) => {
                if view.cluster_domain.trim_matches('.').is_empty() {
                    view.cluster_domain.clone_from(&self.fallback_domain);
                }
                self.last_problem = None;
                let current = self.store.get();
                if *current != view {
                    tracing::info!(
                        version = view.version,
                        previous = current.version,
                        services = view.services.len(),
                        pods = view.pods.len(),
                        "routing view loaded"
                    );
                    self.store.set(Arc::new(view));
                }
            }
            Err(ViewError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                // Removed between the two calls: the next event or check settles it.
                self.last = None;
            }
            Err(e) => {
                let detail = match &e {
                    ViewError::Read { source, .. } => format!("{e}: {source}"),
                    ViewError::Invalid { .. } => e.to_string(),
                };
                self.problem(format!("{detail}; keeping the current view"), false);
            }
        }
    }
}

/// Watches the view file and reloads it until the task is aborted.
pub async fn watch(mut reloader: Reloader, poll: Duration) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let path = reloader.path.clone();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name: Option<OsString> = path.file_name().map(ToOwned::to_owned);
    let waker = wake.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            // Events for the temporary file podswarmd writes first are not interesting; the
            // rename onto our name is.
            Ok(e) => {
                e.need_rescan()
                    || e.paths.is_empty()
                    || e.paths
                        .iter()
                        .any(|p| p.file_name() == file_name.as_deref())
            }
            Err(_) => true,
        };
        if relevant {
            // A stored permit: bursts of events wake the task once.
            waker.notify_one();
        }
    });
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(error) => {
            tracing::warn!(%error, poll_secs = poll.as_secs(), "cannot watch the routing view; checking it periodically instead");
            None
        }
    };
    let mut watching = false;
    let mut said_unwatched = false;
    loop {
        if !watching && let Some(w) = watcher.as_mut() {
            match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watching = true;
                    tracing::debug!(dir = %dir.display(), "watching the routing view's directory");
                }
                Err(error) if !said_unwatched => {
                    said_unwatched = true;
                    tracing::info!(dir = %dir.display(), %error, "cannot watch the routing view's directory yet; checking periodically");
                }
                Err(_) => {}
            }
        }
        reloader = match tokio::task::spawn_blocking(move || {
            reloader.check();
            reloader
        })
        .await
        {
            Ok(r) => r,
            // The closure does not panic; if it ever did, the store still holds a whole view,
            // but the reloader is gone: stop watching rather than spin.
            Err(error) => {
                tracing::error!(%error, "routing view reload task failed; serving the current view from now on");
                return;
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(poll) => {
                // The directory may have been replaced (its watch is then gone): set it up again.
                if watching && !dir.exists() {
                    watching = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, view: &View) {
        let text = serde_json::to_vec(view).unwrap_or_else(|e| panic!("{e}"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_bad_or_missing_file_keeps_the_last_good_view() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("view.json");
        let store = Arc::new(ViewStore::new(View::default()));
        let mut r = Reloader::new(&path, store.clone(), "cluster.local");
        r.check();
        assert_eq!(store.get().version, 0);

        let v = View {
            version: 3,
            ..View::default()
        };
        write(&path, &v);
        r.check();
        assert_eq!(store.get().version, 3);
        // The fallback domain fills in a view that names none.
        assert_eq!(store.get().cluster_domain, "cluster.local");

        std::fs::write(&path, b"{not json").unwrap_or_else(|e| panic!("{e}"));
        r.check();
        assert_eq!(store.get().version, 3);
        assert!(r.last_problem.is_some());

        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
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
        assert!(r.last_problem.is_none());
    }
}
