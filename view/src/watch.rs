//! Keeping a reader's copy of the routing view current (podswarm-dns and podswarm-ingress).
//!
//! Readers hold what they serve from in a [`Current`], which takes a lock only long enough to
//! clone an `Arc`; a reload parses the new file completely first, hands it to the reader's
//! `apply` function (which builds whatever the reader serves from and swaps it in), so a request
//! always sees one whole view, old or new, and a reload never makes one wait for parsing or fail.
//!
//! podswarmd replaces the file by renaming a temporary file over it, so the file's own inode is
//! never modified: we watch the directory (with `notify`, inotify on Linux) and react to events
//! that name the file. A slow periodic check backs the watch up, for what inotify cannot report
//! (the directory itself created or replaced after we started, a full event queue), and for the
//! case where the watch cannot be set up at all. Each check compares the file's identity (device,
//! inode, size, modification time) with the last one read, so unchanged files are not parsed
//! again.
//!
//! A file that cannot be read or parsed leaves the current view in place: readers keep serving
//! their last good view (DESIGN.md: siblings keep serving while podswarmd is down). Each distinct
//! problem is logged once, not on every check.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::Watcher;

use crate::{View, ViewError};

/// The value requests are served from, replaced whole.
#[derive(Debug)]
pub struct Current<T> {
    current: RwLock<Arc<T>>,
    /// Bumped after each swap, so a reader that keeps something derived from the value (the
    /// DNS packet cache) can tell with one atomic load, without the lock, that it is out of date.
    generation: AtomicU64,
}

impl<T> Current<T> {
    pub fn new(value: T) -> Current<T> {
        Current {
            current: RwLock::new(Arc::new(value)),
            generation: AtomicU64::new(0),
        }
    }

    /// How many times the value was replaced. A reader that reads this before [`Current::get`]
    /// and keys what it derives by it never keeps an old value's derivations under a newer
    /// generation: [`Current::set`] swaps the value first and bumps this after, before anyone
    /// can [`Current::get`] the new value.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current value. Cheap: an `Arc` clone under a read lock.
    pub fn get(&self) -> Arc<T> {
        // A writer cannot panic while holding the lock (it only assigns an Arc), but a poisoned
        // lock still holds a whole value: use it rather than fail requests.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, value: Arc<T>) {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = value;
        // Under the lock: whoever has seen the new value through `get` sees the new generation.
        self.generation.fetch_add(1, Ordering::Release);
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

type Apply = Box<dyn FnMut(View) + Send>;

/// What the reloader has done so far, for those who must know that a file was read, not guess
/// (a test that writes a bad file and checks the old view is kept must first know it was read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Versions of the file read so far, whether they parsed or not.
    pub reads: u64,
    /// The problem with the file right now, if any.
    pub problem: Option<String>,
}

impl Status {
    /// Runs `breaks`, which must leave a view file that cannot be loaded, and waits until the
    /// reloader has read a file since and found a problem: a reader's test that checks the last
    /// good view is kept must know the broken file was seen, or it passes before the file is read.
    /// False if that did not happen within `within`.
    pub async fn read_broken(
        status: &mut tokio::sync::watch::Receiver<Status>,
        within: Duration,
        breaks: impl FnOnce(),
    ) -> bool {
        let reads = status.borrow().reads;
        breaks();
        let read = status.wait_for(|st| st.reads > reads && st.problem.is_some());
        matches!(tokio::time::timeout(within, read).await, Ok(Ok(_)))
    }
}

/// Loads the view file and hands each new version to the reader, remembering what it has seen
/// and said.
pub struct Reloader {
    path: PathBuf,
    apply: Apply,
    /// Logged (at info) while there has never been a file.
    missing: String,
    last: Option<Fingerprint>,
    /// The last problem logged, so that each is logged once.
    last_problem: Option<String>,
    status: tokio::sync::watch::Sender<Status>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("last", &self.last)
            .field("last_problem", &self.last_problem)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// `apply` gets every view that parses and differs from the last file read (by file
    /// identity; the content may still be equal). It runs on a blocking thread.
    pub fn new(path: &Path, apply: impl FnMut(View) + Send + 'static) -> Reloader {
        Reloader {
            path: path.to_owned(),
            apply: Box::new(apply),
            missing: "no routing view yet: serving an empty one until it appears".to_owned(),
            last: None,
            last_problem: None,
            status: tokio::sync::watch::channel(Status::default()).0,
        }
    }

    /// Follows what the reloader does (reads, the current problem), wherever it runs.
    pub fn status(&self) -> tokio::sync::watch::Receiver<Status> {
        self.status.subscribe()
    }

    fn publish(&self, read: bool) {
        let problem = self.last_problem.clone();
        self.status.send_modify(|s| {
            s.reads += u64::from(read);
            s.problem = problem;
        });
    }

    /// What to log while no view has ever been read (what the reader does without one).
    pub fn when_missing(mut self, message: &str) -> Reloader {
        message.clone_into(&mut self.missing);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The problem with the file right now, if any (logged once).
    pub fn problem(&self) -> Option<&str> {
        self.last_problem.as_deref()
    }

    fn report(&mut self, message: String, missing: bool) {
        if self.last_problem.as_deref() != Some(message.as_str()) {
            if missing {
                tracing::info!(path = %self.path.display(), "{message}");
            } else {
                tracing::warn!(path = %self.path.display(), "{message}");
            }
            self.last_problem = Some(message);
        }
    }

    /// Reads the file if it changed since the last check and applies it when it parses.
    /// Blocking (file I/O and parsing): run it off the async threads.
    pub fn check(&mut self) {
        let metadata = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let message = if self.last.is_none() {
                    self.missing.clone()
                } else {
                    "the routing view is gone: keeping the last one".to_owned()
                };
                self.report(message, true);
                self.publish(false);
                return;
            }
            Err(e) => {
                self.report(format!("cannot read the routing view: {e}"), false);
                self.publish(false);
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
            Ok(view) => {
                self.last_problem = None;
                (self.apply)(view);
                self.publish(true);
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
                self.report(format!("{detail}; keeping the current view"), false);
                self.publish(true);
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
            // If `apply` ever panicked, the reader still holds a whole view, but the reloader is
            // gone: stop watching rather than spin.
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
    use std::sync::Mutex;

    fn write(path: &Path, view: &View) {
        let text = serde_json::to_vec(view).unwrap();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn versions(applied: &Mutex<Vec<u64>>) -> Vec<u64> {
        applied.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    #[test]
    fn a_bad_or_missing_file_keeps_the_last_good_view() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.json");
        let applied = Arc::new(Mutex::new(Vec::new()));
        let log = applied.clone();
        let mut r = Reloader::new(&path, move |v| {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(v.version);
        })
        .when_missing("nothing yet");
        r.check();
        assert_eq!(r.problem(), Some("nothing yet"));
        assert!(versions(&applied).is_empty());

        write(
            &path,
            &View {
                version: 3,
                ..View::default()
            },
        );
        r.check();
        // Unchanged file: not read again.
        r.check();
        assert_eq!(versions(&applied), [3]);
        assert!(r.problem().is_none());

        std::fs::write(&path, b"{not json").unwrap();
        r.check();
        assert_eq!(versions(&applied), [3]);
        assert!(r.problem().is_some_and(|p| p.contains("not valid")));

        std::fs::remove_file(&path).unwrap();
        r.check();
        assert_eq!(
            r.problem(),
            Some("the routing view is gone: keeping the last one")
        );

        write(
            &path,
            &View {
                version: 4,
                ..View::default()
            },
        );
        r.check();
        assert_eq!(versions(&applied), [3, 4]);
        assert!(r.problem().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watch_applies_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.json");
        let current = Arc::new(Current::new(0u64));
        let target = current.clone();
        let r = Reloader::new(&path, move |v| target.set(Arc::new(v.version)));
        let task = tokio::spawn(watch(r, Duration::from_secs(60)));
        for version in 1..=3 {
            write(
                &path,
                &View {
                    version,
                    ..View::default()
                },
            );
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while *current.get() != version {
                assert!(tokio::time::Instant::now() < deadline, "version {version}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        task.abort();
    }
}
