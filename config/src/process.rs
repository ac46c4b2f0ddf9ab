//! What every podswarm daemon does the same way: logging, readiness, atomic files.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `init_logging` installed the journald layer (so stderr would say everything twice).
static TO_JOURNAL: AtomicBool = AtomicBool::new(false);

/// journald under systemd (structured fields), a terminal otherwise. `PODSWARM_LOG` takes an
/// `EnvFilter` directive (default `info`).
pub fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PODSWARM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let under_systemd =
        std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some();
    if under_systemd {
        // Without a journal socket the layer cannot be built: fall back to stderr.
        if let Ok(layer) = tracing_journald::layer() {
            // Unprefixed fields (POD=, NAMESPACE=, UNIT=) so `journalctl POD=web-…` works as users
            // expect; the library's default would be F_POD=.
            let layer = layer.with_field_prefix(None);
            tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .init();
            TO_JOURNAL.store(true, Ordering::Relaxed);
            return;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr),
        )
        .init();
}

/// The exit status of a daemon's run, reporting a failure once with its whole chain (`{:#}`):
/// to the journal as a structured error under systemd, to stderr on a terminal.
pub fn exit_code<E: std::fmt::Display>(
    program: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if TO_JOURNAL.load(Ordering::Relaxed) {
                tracing::error!(error = %format!("{e:#}"), "{program} failed");
            } else {
                eprintln!("{program}: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, and says what it got.
///
/// Every connection a daemon holds is a descriptor, and systemd starts services with a soft limit
/// of 1,024 (kept low for `select()` users; podswarm uses epoll) under a much higher hard limit
/// (524,288 by default). At 1,024 a thousand idle or slow clients lock every other client out of
/// the ingress, the API or DNS over TCP. Raising it in the unit (`LimitNOFILE=`) would fail to
/// start the unit wherever the host's hard limit is lower (some containers), so a daemon is to take
/// what its hard limit allows instead. No daemon calls this yet: the calls were taken out while a
/// CI failure beside them was unexplained (docs/RELIABILITY.md); tests/slowloris.rs uses it for
/// its own slow clients.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => {
                tracing::warn!(limit = soft, error = %e, "could not raise the open-file limit")
            }
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open-file limit"),
    }
}

/// Tells systemd about readiness, stopping and watchdog pings.
pub fn notify(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd there is no socket; that is fine.
    let _ = sd_notify::notify(state);
}

/// The host name, for a node name nobody configured.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Writes a file atomically: a temp file beside it, fsync, rename, fsync of the directory. A
/// write that fails (a full disk) leaves the file as it was and removes its temp file, so the
/// failed attempt holds no space and the next one starts clean.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, bytes, mode, None)
}

/// [`write_atomic`], and the file it replaces stays beside it as `previous`: the fallback for a
/// reader that finds `path` damaged. `previous` is a second name of the replaced file (a hard
/// link), so keeping it writes no data. Best effort: where the link cannot be made, `previous`
/// stays one generation older, which is still a valid file, and the write itself goes on.
pub fn write_atomic_keeping(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    previous: &Path,
) -> std::io::Result<()> {
    replace(path, bytes, mode, Some(previous))
}

/// Distinguishes the temp files of concurrent writes of one path by one process.
static TEMP_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn replace(path: &Path, bytes: &[u8], mode: u32, previous: Option<&Path>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sequence = TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp{}.{sequence}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if let Some(previous) = previous {
            keep_previous(path, previous);
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Nothing of the attempt may stay behind: a partial temp file on a full disk holds the
        // very space the next attempt needs.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Makes `previous` another name of the current `path` (if there is one), replacing the older
/// `previous` atomically.
fn keep_previous(path: &Path, previous: &Path) {
    let staging = previous.with_file_name(format!(
        ".{}.link{}",
        previous
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&staging);
    // A failure (no current file, a filesystem without hard links, no room for the name) keeps
    // the older `previous`: it is a fallback, and the write it would hold up matters more.
    if std::fs::hard_link(path, &staging).is_ok() && std::fs::rename(&staging, previous).is_err() {
        let _ = std::fs::remove_file(&staging);
    }
}

/// Keeps a damaged file for inspection under `<name>.corrupt-<unix seconds>` beside it (a hard
/// link, a copy where links are not possible) and returns that path. The file itself stays where
/// it is until the caller has written its replacement, so no crash in between can leave the
/// place empty (and a missing file means "new" to every reader here).
pub fn set_aside(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u32;
    loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let aside = path.with_file_name(format!("{name}.corrupt-{now}{suffix}"));
        match std::fs::hard_link(path, &aside) {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) => {
                // No hard links here (or not across this directory): a copy keeps it as well.
                // `create_new` rather than `copy`'s truncate: never over another set-aside file.
                let mut from = std::fs::File::open(path)?;
                let mut to = match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&aside)
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => {
                        n += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if let Err(e) = std::io::copy(&mut from, &mut to).and_then(|_| to.sync_all()) {
                    let _ = std::fs::remove_file(&aside);
                    return Err(e);
                }
                return Ok(aside);
            }
        }
    }
}

/// An error and its causes on one line, for logging an error once with its whole chain (every
/// crate logs through this one).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            let sequence = TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "podswarm-config-{test}-{}-{sequence}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_replacement_leaves_the_old_file_and_no_temp_file() {
        let dir = TempDir::new("failed");
        let path = dir.0.join("state.json");
        write_atomic(&path, b"old", 0o600).unwrap();
        // The last step cannot be done (a directory is in the way of the rename) after the temp
        // file was fully written: the same path a full disk takes, minus the disk.
        let blocked = dir.0.join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomic(&blocked, b"new", 0o600).is_err());
        assert_eq!(names(&dir.0), ["blocked", "state.json"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn the_replaced_generation_is_kept_beside_the_file() {
        let dir = TempDir::new("keeping");
        let path = dir.0.join("state.json");
        let previous = dir.0.join("state.json.prev");
        write_atomic_keeping(&path, b"one", 0o600, &previous).unwrap();
        assert!(!previous.exists(), "nothing was replaced yet");
        write_atomic_keeping(&path, b"two", 0o600, &previous).unwrap();
        write_atomic_keeping(&path, b"three", 0o600, &previous).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(std::fs::read(&previous).unwrap(), b"two");
        assert_eq!(names(&dir.0), ["state.json", "state.json.prev"]);
    }

    #[test]
    fn a_damaged_file_is_set_aside_under_a_new_name_each_time() {
        let dir = TempDir::new("aside");
        let path = dir.0.join("replica.json");
        std::fs::write(&path, b"{\"trunc").unwrap();
        let first = set_aside(&path).unwrap();
        let second = set_aside(&path).unwrap();
        assert_ne!(first, second);
        for aside in [&first, &second] {
            let name = aside.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("replica.json.corrupt-"), "{name}");
            assert_eq!(std::fs::read(aside).unwrap(), b"{\"trunc");
        }
        // The file itself stays until its replacement is written.
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"trunc");
        assert!(set_aside(&dir.0.join("missing")).is_err());
    }
}
