//! `units`: systemd over D-Bus. The only crate that talks to PID 1.
//!
//! [`Systemd`] is the edge the daemon depends on; [`DbusSystemd`] implements it with zbus against
//! `org.freedesktop.systemd1`, [`FakeSystemd`] records calls for fast unit tests. Design points:
//!
//! - **Jobs are awaited through `JobRemoved`**, not by polling. The signal subscription exists before
//!   the first job is queued, and a result that arrives before its waiter registers is kept, so a
//!   fast job can never be missed.
//! - **State changes arrive as unit names** on a broadcast channel fed by `PropertiesChanged` on unit
//!   objects. Consumers re-read the state they care about; the feed only says where to look, which
//!   keeps it correct when messages are coalesced or a receiver lags.
//! - **Reloads are counted**, because a reload per pod instead of per batch is the classic way to make
//!   an orchestrator on systemd slow; the daemon exports the count.

mod dbus;
mod fake;

use std::future::Future;

pub use dbus::DbusSystemd;
pub use fake::{Call, FakeSystemd};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the system bus")]
    Connect(#[source] zbus::Error),
    #[error("systemd call {call} for {unit} failed")]
    Call {
        call: &'static str,
        unit: String,
        #[source]
        source: zbus::Error,
    },
    #[error("systemd dropped the job for {unit} without a result")]
    JobLost { unit: String },
}

/// What systemd says about one unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub name: String,
    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`.
    pub load_state: String,
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`.
    pub active_state: String,
    pub sub_state: String,
    /// Changes each time the unit starts: the proof that a workload was (not) restarted.
    pub invocation_id: String,
    /// Automatic restarts by `Restart=` since the unit was loaded.
    pub n_restarts: u32,
    /// The service's result: `success`, `exit-code`, `signal`, `timeout`, …
    pub result: String,
    /// Exit status of the main process, when it has exited.
    pub exec_main_status: i32,
    /// When the main process last started (µs since the epoch); 0 if it never ran this boot.
    pub main_started_us: u64,
}

/// A unit as `ListUnitsByPatterns` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUnit {
    pub name: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
}

/// How a job ended (`JobRemoved`'s `result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Canceled,
    Timeout,
    Failed,
    Dependency,
    Skipped,
    Other(String),
}

impl JobResult {
    pub fn parse(s: &str) -> Self {
        match s {
            "done" => JobResult::Done,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "failed" => JobResult::Failed,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            other => JobResult::Other(other.to_owned()),
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, JobResult::Done)
    }
}

impl std::fmt::Display for JobResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            JobResult::Done => "done",
            JobResult::Canceled => "canceled",
            JobResult::Timeout => "timeout",
            JobResult::Failed => "failed",
            JobResult::Dependency => "dependency",
            JobResult::Skipped => "skipped",
            JobResult::Other(s) => s,
        };
        f.write_str(s)
    }
}

/// The systemd operations podswarm needs.
pub trait Systemd: Send + Sync + 'static {
    /// `Manager.Reload`: re-run generators (Quadlet) and reload unit files. Returns when done.
    fn reload(&self) -> impl Future<Output = Result<(), Error>> + Send;
    /// Loads the unit if needed and reads its state.
    fn unit_state(&self, unit: &str) -> impl Future<Output = Result<UnitState, Error>> + Send;
    /// Queues a start job (mode `replace`) and waits for its result.
    fn start(&self, unit: &str) -> impl Future<Output = Result<JobResult, Error>> + Send;
    fn stop(&self, unit: &str) -> impl Future<Output = Result<JobResult, Error>> + Send;
    fn restart(&self, unit: &str) -> impl Future<Output = Result<JobResult, Error>> + Send;
    fn reset_failed(&self, unit: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Units loaded in systemd whose names match any of the glob patterns.
    fn list_units(
        &self,
        patterns: &[&str],
    ) -> impl Future<Output = Result<Vec<ListedUnit>, Error>> + Send;
    /// Names of units whose properties changed, from now on.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<String>;
    /// Reloads performed through this client.
    fn reload_count(&self) -> u64;
}

/// systemd's object path for a unit name: every byte but `[A-Za-z0-9]` becomes `_xx`.
pub fn unit_path(name: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() && !(i == 0 && b.is_ascii_digit()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The unit name of a systemd unit object path (the inverse of [`unit_path`]).
pub fn unit_name(path: &str) -> Option<String> {
    let escaped = path.strip_prefix("/org/freedesktop/systemd1/unit/")?;
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_round_trip() {
        let name = "podswarm-default_web-abc-0.service";
        let path = unit_path(name);
        assert_eq!(
            path,
            "/org/freedesktop/systemd1/unit/podswarm_2ddefault_5fweb_2dabc_2d0_2eservice"
        );
        assert_eq!(unit_name(&path).as_deref(), Some(name));
        assert_eq!(
            unit_name("/org/freedesktop/systemd1/unit/_31x_2eservice").as_deref(),
            Some("1x.service")
        );
        assert_eq!(unit_name("/elsewhere"), None);
    }
}
