//! The real thing: typed zbus proxies for the parts of `org.freedesktop.systemd1` podswarm uses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::{broadcast, oneshot};
use zbus::OwnedObjectPath;
use zbus::{Connection, MatchRule, MessageStream, proxy};

use crate::{Error, JobResult, ListedUnit, Systemd, UnitState, unit_name};

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    #[allow(clippy::type_complexity)]
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<
        Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    >;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property, name = "InvocationID")]
    fn invocation_id(&self) -> zbus::Result<Vec<u8>>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    #[zbus(property)]
    fn exec_main_start_timestamp(&self) -> zbus::Result<u64>;
}

/// Job results by job path. A result that arrives before anyone waits for it is parked in
/// `finished`; both maps sit behind one lock so registering and completing cannot interleave.
#[derive(Default)]
struct Jobs {
    pending: HashMap<String, oneshot::Sender<String>>,
    finished: HashMap<String, String>,
}

impl Jobs {
    fn complete(&mut self, job: String, result: String) {
        match self.pending.remove(&job) {
            Some(tx) => {
                let _ = tx.send(result);
            }
            None => {
                // Jobs podswarm did not queue also end here; keep the parking lot small.
                if self.finished.len() > 4096 {
                    self.finished.clear();
                }
                self.finished.insert(job, result);
            }
        }
    }
}

pub struct DbusSystemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
    jobs: Arc<Mutex<Jobs>>,
    changes: broadcast::Sender<String>,
    reloads: AtomicU64,
}

impl std::fmt::Debug for DbusSystemd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbusSystemd")
            .field("reloads", &self.reloads)
            .finish_non_exhaustive()
    }
}

fn call_err<'a>(call: &'static str, unit: &'a str) -> impl FnOnce(zbus::Error) -> Error + 'a {
    move |source| Error::Call {
        call,
        unit: unit.to_owned(),
        source,
    }
}

impl DbusSystemd {
    /// Connects to the system bus and subscribes to job and unit signals.
    pub async fn connect() -> Result<Self, Error> {
        let conn = Connection::system().await.map_err(Error::Connect)?;
        Self::with_connection(conn).await
    }

    pub async fn with_connection(conn: Connection) -> Result<Self, Error> {
        let manager = ManagerProxy::new(&conn)
            .await
            .map_err(call_err("Manager", "-"))?;
        // Without Subscribe systemd does not emit unit signals to this client.
        manager
            .subscribe()
            .await
            .map_err(call_err("Subscribe", "-"))?;
        let jobs: Arc<Mutex<Jobs>> = Arc::default();
        let mut removed = manager
            .receive_job_removed()
            .await
            .map_err(call_err("JobRemoved", "-"))?;
        let job_map = Arc::clone(&jobs);
        tokio::spawn(async move {
            while let Some(signal) = removed.next().await {
                if let Ok(args) = signal.args()
                    && let Ok(mut jobs) = job_map.lock()
                {
                    jobs.complete(args.job.to_string(), args.result.clone());
                }
            }
        });
        let (changes, _) = broadcast::channel(4096);
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.DBus.Properties")
            .member("PropertiesChanged")
            .path_namespace("/org/freedesktop/systemd1/unit")
            .build()
            .map_err(call_err("AddMatch", "-"))?;
        let mut stream = MessageStream::for_match_rule(rule, &conn, None)
            .await
            .map_err(call_err("AddMatch", "-"))?;
        let feed = changes.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let header = message.header();
                if let Some(name) = header.path().and_then(|p| unit_name(p.as_str())) {
                    // Nobody listening is fine: the state is re-read on demand anyway.
                    let _ = feed.send(name);
                }
            }
        });
        Ok(DbusSystemd {
            conn,
            manager,
            jobs,
            changes,
            reloads: AtomicU64::new(0),
        })
    }

    async fn wait_job(&self, unit: &str, job: OwnedObjectPath) -> Result<JobResult, Error> {
        let rx = {
            let mut jobs = self.jobs.lock().map_err(|_| Error::JobLost {
                unit: unit.to_owned(),
            })?;
            if let Some(result) = jobs.finished.remove(job.as_str()) {
                return Ok(JobResult::parse(&result));
            }
            let (tx, rx) = oneshot::channel();
            jobs.pending.insert(job.to_string(), tx);
            rx
        };
        let result = rx.await.map_err(|_| Error::JobLost {
            unit: unit.to_owned(),
        })?;
        Ok(JobResult::parse(&result))
    }
}

impl Systemd for DbusSystemd {
    async fn reload(&self) -> Result<(), Error> {
        self.manager
            .reload()
            .await
            .map_err(call_err("Reload", "-"))?;
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn unit_state(&self, unit: &str) -> Result<UnitState, Error> {
        let path = self
            .manager
            .load_unit(unit)
            .await
            .map_err(call_err("LoadUnit", unit))?;
        let u = UnitProxy::builder(&self.conn)
            .path(path.clone())
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(call_err("Unit", unit))?;
        let load_state = u.load_state().await.map_err(call_err("LoadState", unit))?;
        let active_state = u
            .active_state()
            .await
            .map_err(call_err("ActiveState", unit))?;
        let sub_state = u.sub_state().await.map_err(call_err("SubState", unit))?;
        let invocation_id = u
            .invocation_id()
            .await
            .map_err(call_err("InvocationID", unit))?;
        let mut state = UnitState {
            name: unit.to_owned(),
            load_state,
            active_state,
            sub_state,
            invocation_id: invocation_id.iter().map(|b| format!("{b:02x}")).collect(),
            ..UnitState::default()
        };
        if unit.ends_with(".service") && state.load_state == "loaded" {
            let s = ServiceProxy::builder(&self.conn)
                .path(path)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
                .map_err(call_err("Service", unit))?;
            state.n_restarts = s.n_restarts().await.map_err(call_err("NRestarts", unit))?;
            state.result = s.result().await.map_err(call_err("Result", unit))?;
            state.exec_main_status = s
                .exec_main_status()
                .await
                .map_err(call_err("ExecMainStatus", unit))?;
            state.main_started_us = s
                .exec_main_start_timestamp()
                .await
                .map_err(call_err("ExecMainStartTimestamp", unit))?;
        }
        Ok(state)
    }

    async fn start(&self, unit: &str) -> Result<JobResult, Error> {
        let job = self
            .manager
            .start_unit(unit, "replace")
            .await
            .map_err(call_err("StartUnit", unit))?;
        self.wait_job(unit, job).await
    }

    async fn stop(&self, unit: &str) -> Result<JobResult, Error> {
        let job = self
            .manager
            .stop_unit(unit, "replace")
            .await
            .map_err(call_err("StopUnit", unit))?;
        self.wait_job(unit, job).await
    }

    async fn restart(&self, unit: &str) -> Result<JobResult, Error> {
        let job = self
            .manager
            .restart_unit(unit, "replace")
            .await
            .map_err(call_err("RestartUnit", unit))?;
        self.wait_job(unit, job).await
    }

    async fn reset_failed(&self, unit: &str) -> Result<(), Error> {
        self.manager
            .reset_failed_unit(unit)
            .await
            .map_err(call_err("ResetFailedUnit", unit))
    }

    async fn list_units(&self, patterns: &[&str]) -> Result<Vec<ListedUnit>, Error> {
        let units = self
            .manager
            .list_units_by_patterns(&[], patterns)
            .await
            .map_err(call_err("ListUnitsByPatterns", "-"))?;
        Ok(units
            .into_iter()
            .map(
                |(name, _, load_state, active_state, sub_state, ..)| ListedUnit {
                    name,
                    load_state,
                    active_state,
                    sub_state,
                },
            )
            .collect())
    }

    fn changes(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    fn reload_count(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }
}
