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

/// Writes a file atomically: a temp file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
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
