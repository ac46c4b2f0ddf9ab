//! The reconciler: desired state → Quadlet files → systemd jobs → pod status.
//!
//! One task runs it, so writes, reloads and jobs are serialized by construction. A pass:
//!
//! 1. renders every desired pod (addresses from the state, so re-renders are byte-identical);
//! 2. diffs against the files podswarm owns in the unit directory (a file is owned only if it
//!    carries the generator's marker; nothing else in that directory is ever touched);
//! 3. stops the units of pods that are going away, *then* removes their files;
//! 4. creates podman secrets and ConfigMap files the pods need;
//! 5. writes changed files atomically and calls `Reload` **once** for the whole batch;
//! 6. checks every unit's `LoadState`: a file Quadlet rejected yields no unit, which becomes an error
//!    on the pod with Quadlet's own message instead of vanishing;
//! 7. starts new pods and restarts changed ones, many at a time, each awaited through its job.
//!
//! Adoption falls out of the diff: after a restart of podswarmd the rendered files equal the ones on
//! disk, nothing is written or reloaded, active units are left alone, and no workload restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use podswarm_generator::{
    NodeContext, Objects, Options, RenderedPod, UnitFile, is_owned, render_network, render_pod,
    service_of,
};
use podswarm_manifest::{PodInstance, pods_of};
use podswarm_units::{JobResult, Systemd, UnitState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::podman::Podman;
use crate::state::{State, StateError, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot read the unit directory {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("systemd")]
    Systemd(#[from] podswarm_units::Error),
    #[error("cannot render the pod network unit: {0}")]
    Network(String),
}

/// What the reconciler needs to know about this node.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: NodeContext,
    pub options: Options,
    pub unit_dir: PathBuf,
    pub data_dir: PathBuf,
    pub parallel_jobs: usize,
    pub quadlet_generator: PathBuf,
    pub podman: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    pub name: String,
    /// The container's name in podman (and the journal's CONTAINER_NAME=).
    pub podman_name: String,
    pub image: String,
    pub unit: String,
    pub state: String,
    pub restarts: u32,
}

/// A pod as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: Option<String>,
    pub phase: Phase,
    pub ready: bool,
    pub restarts: u32,
    pub reason: Option<String>,
    pub owner: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The service that stands for the pod.
    pub unit: String,
    /// Every systemd unit of the pod (for logs).
    pub units: Vec<String>,
    pub containers: Vec<ContainerView>,
    pub created: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub passes: AtomicU64,
    pub errors: AtomicU64,
    pub files_written: AtomicU64,
    pub files_removed: AtomicU64,
    pub starts: AtomicU64,
    pub restarts: AtomicU64,
    pub stops: AtomicU64,
}

pub type PodViews = Arc<RwLock<BTreeMap<String, PodView>>>;

struct DesiredPod {
    pod: PodInstance,
    ip: String,
    rendered: RenderedPod,
    /// (container name, service) for status; every container of a `.kube` pod maps to its service.
    containers: Vec<(String, String)>,
    created: u64,
}

/// A pass's outcome, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub written: Vec<String>,
    pub removed: Vec<String>,
    pub reloaded: bool,
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
}

impl Pass {
    pub fn is_noop(&self) -> bool {
        *self == Pass::default()
    }
}

pub struct Reconciler<S: Systemd, P: Podman> {
    pub systemd: Arc<S>,
    pub podman: Arc<P>,
    pub state: Arc<State>,
    pub settings: Settings,
    pub views: PodViews,
    pub metrics: Arc<Metrics>,
    /// Pods whose files Quadlet rejected, with its message, until their files change.
    rejected: RwLock<BTreeMap<String, String>>,
    /// Deleted pods on their way out: stopping (a task runs their stop jobs), then stopped (the
    /// next pass removes their files). Unit files must outlive the stop: a reload that finds a
    /// stopping unit's file gone turns it into `not-found` and drops its remaining stop commands.
    removals: Arc<std::sync::Mutex<Removals>>,
    /// Wakes the run loop when a removal has stopped its pod.
    wake: Arc<tokio::sync::Notify>,
    pub prober: Arc<crate::probe::Prober>,
    /// Decides which node runs each pod (the cluster's placement); none: every pod runs here.
    pub placer: Option<Placer>,
}

/// Placement of pods (by `ns/name`) onto nodes.
pub type Placer =
    Arc<dyn Fn(&[&PodInstance]) -> BTreeMap<String, crate::schedule::Placement> + Send + Sync>;

/// `Namespace=`/`Pod=` of a unit podswarm wrote (or the labels of a pod definition): the pod key.
fn pod_of_file(contents: &str) -> Option<String> {
    // Units: `Namespace=`/`Pod=` at the start of a line. Pod definitions (JSON): the labels, at
    // whatever depth the pretty-printer put them.
    let find = |key: &str| {
        contents
            .lines()
            .find_map(|l| {
                l.strip_prefix(key).or_else(|| {
                    l.trim_start()
                        .strip_prefix(key)
                        .filter(|_| key.starts_with('"'))
                })
            })
            .map(|v| v.trim().trim_matches(['"', ',']).to_owned())
    };
    match (find("Namespace="), find("Pod=")) {
        (Some(ns), Some(pod)) => Some(format!("{ns}/{pod}")),
        _ => match (
            find("\"io.podswarm.namespace\": "),
            find("\"io.podswarm.pod\": "),
        ) {
            (Some(ns), Some(pod)) => Some(format!("{ns}/{pod}")),
            _ => None,
        },
    }
}

fn read_owned(dir: &Path) -> Result<BTreeMap<String, String>, ReconcileError> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(ReconcileError::ReadDir {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        if let Ok(contents) = std::fs::read_to_string(entry.path())
            && is_owned(&contents)
        {
            out.insert(name, contents);
        }
    }
    Ok(out)
}

impl<S: Systemd, P: Podman> std::fmt::Debug for Reconciler<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: Systemd, P: Podman> Reconciler<S, P> {
    pub fn new(systemd: Arc<S>, podman: Arc<P>, state: Arc<State>, settings: Settings) -> Self {
        let prober = Arc::new(crate::probe::Prober::new(settings.podman.clone()));
        Reconciler {
            prober,
            systemd,
            podman,
            state,
            settings,
            views: PodViews::default(),
            metrics: Arc::default(),
            rejected: RwLock::default(),
            removals: Arc::default(),
            wake: Arc::default(),
            placer: None,
        }
    }

    /// One pass. Errors of single pods land on those pods; an `Err` means the pass itself failed.
    pub async fn sync(&self) -> Result<Pass, ReconcileError> {
        self.metrics.passes.fetch_add(1, Ordering::Relaxed);
        let mut pass = Pass::default();
        let entries = self.state.entries();
        let mut index = Objects::default();
        for e in &entries {
            index.insert(&e.object);
        }
        let subnet = self.settings.node.network.subnet;
        let network = render_network(&self.settings.node.network)
            .map_err(|e| ReconcileError::Network(e.to_string()))?;
        let mut files: BTreeMap<String, String> =
            BTreeMap::from([(network.file_name.clone(), network.contents.clone())]);
        let mut desired: BTreeMap<String, DesiredPod> = BTreeMap::new();
        // Pods that cannot be rendered now: (pod, created, reason). Their running units are kept.
        let mut held: BTreeMap<String, (PodInstance, u64, String)> = BTreeMap::new();
        // Pods no node can take now: (pod, created, reason). Nothing of theirs runs here.
        let mut unplaced: BTreeMap<String, (PodInstance, u64, String)> = BTreeMap::new();
        let all: Vec<(PodInstance, u64)> = entries
            .iter()
            .flat_map(|e| pods_of(&e.object).into_iter().map(|p| (p, e.created)))
            .collect();
        let placements = self.placer.as_ref().map(|placer| {
            let refs: Vec<&PodInstance> = all.iter().map(|(p, _)| p).collect();
            placer(&refs)
        });
        let me = &self.settings.node.node_name;
        for (pod, created) in all {
            let key = format!("{}/{}", pod.namespace, pod.name);
            match placements.as_ref().and_then(|p| p.get(&key)) {
                None => {}
                Some(crate::schedule::Placement::Node(node)) if node == me => {}
                Some(crate::schedule::Placement::Node(_)) => continue,
                Some(crate::schedule::Placement::Pending(reason)) => {
                    unplaced.insert(key, (pod, created, reason.clone()));
                    continue;
                }
            }
            let ip = self.state.pod_ip(&key, subnet)?;
            match render_pod(
                &pod,
                Some(ip),
                &self.settings.node,
                &self.settings.options,
                &index,
            ) {
                Ok(r) if !r.missing.is_empty() => {
                    let reason = format!("waiting for {}", r.missing.join(", "));
                    held.insert(key, (pod, created, reason));
                }
                Ok(rendered) => {
                    for u in &rendered.units {
                        files.insert(u.file_name.clone(), u.contents.clone());
                    }
                    let containers = container_services(&pod, &rendered);
                    desired.insert(
                        key,
                        DesiredPod {
                            pod,
                            ip: ip.to_string(),
                            rendered,
                            containers,
                            created,
                        },
                    );
                }
                Err(err) => {
                    held.insert(key, (pod, created, err.to_string()));
                }
            }
        }
        let keep: BTreeSet<String> = desired.keys().chain(held.keys()).cloned().collect();
        self.state.retain_pod_ips(&keep)?;

        let current = read_owned(&self.settings.unit_dir)?;
        for (name, contents) in &current {
            if pod_of_file(contents).is_some_and(|k| held.contains_key(&k)) {
                files
                    .entry(name.clone())
                    .or_insert_with(|| contents.clone());
            }
        }
        let to_write: Vec<(&String, &String)> = files
            .iter()
            .filter(|(n, c)| current.get(*n) != Some(*c))
            .collect();
        // A pod wanted here again (placement moved it away and back while its stop ran, as it
        // does while a healed partition settles) is no longer on its way out: a stale `stopped`
        // mark would later remove its files without stopping it, leaving its unit running as
        // `not-found` where nothing ever stops it.
        let (stopping, stopped) = self
            .removals
            .lock()
            .map(|mut r| {
                r.stopped.retain(|k| !keep.contains(k));
                (r.stopping.clone(), r.stopped.clone())
            })
            .unwrap_or_default();
        // Files no pod wants: those of stopped pods go now; those of stopping pods wait; a newly
        // deleted pod starts stopping (in the background: a container may take its whole grace
        // period, and other pods must not wait for that). Files of no pod (claims) go now.
        let mut to_remove: Vec<&String> = Vec::new();
        let mut removals: BTreeMap<String, Removal> = BTreeMap::new();
        for name in current.keys().filter(|n| !files.contains_key(*n)) {
            let contents = &current[name];
            match pod_of_file(contents) {
                Some(key) if stopped.contains(&key) => to_remove.push(name),
                Some(key) if stopping.contains(&key) => {}
                Some(key) => {
                    let Some(service) = service_of(name, contents) else {
                        continue;
                    };
                    let removal = removals.entry(key).or_default();
                    if name.ends_with(".volume") {
                        // Pod-scoped volumes (emptyDir) go with their pods.
                        let volume = contents
                            .lines()
                            .find_map(|l| l.strip_prefix("VolumeName="))
                            .map(str::to_owned);
                        removal.volumes.push((service, volume));
                    } else {
                        removal.services.push(service);
                    }
                }
                None => {
                    // A claim's volume unit: the data stays, only the unit goes.
                    if let Some(service) =
                        service_of(name, contents).filter(|_| name.ends_with(".volume"))
                    {
                        let _ = self.systemd.stop(&service).await;
                        let _ = self.systemd.reset_failed(&service).await;
                    }
                    to_remove.push(name);
                }
            }
        }
        for (key, removal) in removals {
            pass.stopped.extend(removal.services.iter().cloned());
            self.metrics
                .stops
                .fetch_add(removal.services.len() as u64, Ordering::Relaxed);
            let systemd = Arc::clone(&self.systemd);
            let podman = Arc::clone(&self.podman);
            let removals = Arc::clone(&self.removals);
            let wake = Arc::clone(&self.wake);
            if let Ok(mut r) = removals.lock() {
                r.stopping.insert(key.clone());
            }
            tokio::spawn(async move {
                removal.run(&key, systemd.as_ref(), podman.as_ref()).await;
                if let Ok(mut r) = removals.lock() {
                    r.stopping.remove(&key);
                    r.stopped.insert(key);
                }
                wake.notify_one();
            });
        }

        // Secrets and ConfigMap files before units that use them start.
        let wanted: BTreeMap<&str, &[u8]> = desired
            .values()
            .flat_map(|d| {
                d.rendered
                    .secrets
                    .iter()
                    .map(|s| (s.name.as_str(), s.data.as_slice()))
            })
            .collect();
        let existing = self.podman.secrets().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot list podman secrets");
            BTreeSet::new()
        });
        for (name, data) in &wanted {
            if !existing.contains(*name)
                && let Err(e) = self.podman.create_secret(name, data).await
            {
                tracing::error!(error = %e, secret = name, "cannot create a podman secret");
            }
        }
        self.write_data(&desired, &keep)?;

        for (name, contents) in &to_write {
            let path = self.settings.unit_dir.join(name);
            write_atomic(&path, contents.as_bytes(), 0o644)
                .map_err(|source| ReconcileError::Write { path, source })?;
            pass.written.push((*name).clone());
        }
        if let Ok(mut r) = self.removals.lock() {
            for key in to_remove.iter().filter_map(|n| pod_of_file(&current[*n])) {
                r.stopped.remove(&key);
            }
        }
        for name in &to_remove {
            let path = self.settings.unit_dir.join(name);
            if let Err(source) = std::fs::remove_file(&path)
                && source.kind() != std::io::ErrorKind::NotFound
            {
                return Err(ReconcileError::Write { path, source });
            }
            pass.removed.push((*name).clone());
        }
        self.metrics
            .files_written
            .fetch_add(pass.written.len() as u64, Ordering::Relaxed);
        self.metrics
            .files_removed
            .fetch_add(pass.removed.len() as u64, Ordering::Relaxed);
        if !to_write.is_empty() || !to_remove.is_empty() {
            self.systemd.reload().await?;
            pass.reloaded = true;
            // Files changed: earlier rejections may be fixed.
            if let Ok(mut r) = self.rejected.write() {
                r.retain(|pod, _| {
                    !pass
                        .written
                        .iter()
                        .any(|f| pod_of_file(&files[f]).as_deref() == Some(pod))
                });
            }
        }

        for name in existing.iter().filter(|n| !wanted.contains_key(n.as_str())) {
            if let Err(e) = self.podman.remove_secret(name).await {
                tracing::warn!(error = %e, secret = %name, "cannot remove an unused podman secret");
            }
        }

        // LoadState: a file Quadlet rejected has no unit.
        let mut states = self.load_states(&desired).await?;
        if !pass.reloaded && states.values().any(|s| s.load_state == "not-found") {
            // Files on disk but never loaded (e.g. a crash between write and reload).
            self.systemd.reload().await?;
            pass.reloaded = true;
            states = self.load_states(&desired).await?;
        }
        let mut rejected_now = BTreeMap::new();
        for (key, d) in &desired {
            let bad: Vec<&UnitFile> = d
                .rendered
                .units
                .iter()
                .filter(|u| {
                    service_of(&u.file_name, &u.contents)
                        .and_then(|s| states.get(&s))
                        .is_some_and(|st| st.load_state != "loaded")
                })
                .collect();
            if !bad.is_empty() {
                let files: Vec<&str> = bad.iter().map(|u| u.file_name.as_str()).collect();
                let message = self.quadlet_message(&files).await;
                rejected_now.insert(
                    key.clone(),
                    format!(
                        "systemd has no unit for {} after a reload: {message}",
                        files.join(", ")
                    ),
                );
            }
        }
        if let Ok(mut r) = self.rejected.write() {
            r.extend(rejected_now);
        }
        let rejected = self.rejected.read().map(|r| r.clone()).unwrap_or_default();

        // Start and restart.
        let changed: BTreeSet<String> = to_write
            .iter()
            .filter(|(n, _)| current.contains_key(*n))
            .filter_map(|(_, c)| pod_of_file(c))
            .collect();
        let mut jobs = Vec::new();
        for (key, d) in &desired {
            if rejected.contains_key(key) {
                continue;
            }
            let service = &d.rendered.service;
            let Some(state) = states.get(service) else {
                continue;
            };
            if changed.contains(key) && state.main_started_us != 0 {
                jobs.push((service.clone(), Job::Restart));
            } else if needs_start(state, d.pod.spec.restart_policy.as_deref()) {
                jobs.push((service.clone(), Job::Start));
            }
        }
        let owners: BTreeMap<&str, &PodInstance> = desired
            .values()
            .map(|d| (d.rendered.service.as_str(), &d.pod))
            .collect();
        for (service, (job, result)) in self.jobs(jobs).await {
            let (namespace, pod) = owners
                .get(service.as_str())
                .map(|p| (p.namespace.as_str(), p.name.as_str()))
                .unwrap_or_default();
            match &result {
                // Fields become journal fields (NAMESPACE=, POD=, UNIT=): `journalctl POD=web-…`.
                Ok(()) => {
                    tracing::info!(namespace, pod, unit = %service, job = ?job, "pod unit {}", if job == Job::Restart { "restarted" } else { "started" })
                }
                Err(e) => {
                    tracing::error!(namespace, pod, unit = %service, job = ?job, error = %e, "pod unit job failed")
                }
            }
            match job {
                Job::Restart => pass.restarted.push(service),
                _ => pass.started.push(service),
            }
        }
        self.update_views(&desired, &held, &unplaced, &rejected)
            .await;
        Ok(pass)
    }

    async fn load_states(
        &self,
        desired: &BTreeMap<String, DesiredPod>,
    ) -> Result<BTreeMap<String, UnitState>, ReconcileError> {
        let services: BTreeSet<String> = desired
            .values()
            .flat_map(|d| {
                d.rendered
                    .units
                    .iter()
                    .filter_map(|u| service_of(&u.file_name, &u.contents))
            })
            .collect();
        let mut out = BTreeMap::new();
        let mut stream = futures_util::stream::iter(services.into_iter().map(|s| async move {
            let state = self.systemd.unit_state(&s).await;
            (s, state)
        }))
        .buffer_unordered(self.settings.parallel_jobs);
        while let Some((s, state)) = stream.next().await {
            out.insert(s, state?);
        }
        Ok(out)
    }

    /// Runs jobs concurrently (bounded), each awaited to its result.
    async fn jobs(&self, jobs: Vec<(String, Job)>) -> Vec<(String, (Job, Result<(), String>))> {
        let systemd = &self.systemd;
        let metrics = &self.metrics;
        futures_util::stream::iter(jobs.into_iter().map(|(unit, job)| async move {
            let result = match job {
                Job::Start => {
                    metrics.starts.fetch_add(1, Ordering::Relaxed);
                    let _ = systemd.reset_failed(&unit).await;
                    systemd.start(&unit).await
                }
                Job::Restart => {
                    metrics.restarts.fetch_add(1, Ordering::Relaxed);
                    systemd.restart(&unit).await
                }
            };
            let result = match result {
                Ok(JobResult::Done) => Ok(()),
                Ok(other) => Err(format!("job {other}")),
                Err(e) => Err(e.to_string()),
            };
            (unit, (job, result))
        }))
        .buffer_unordered(self.settings.parallel_jobs)
        .collect()
        .await
    }

    /// Quadlet's own complaint about files, from its dry run over the unit directory.
    async fn quadlet_message(&self, files: &[&str]) -> String {
        let out = tokio::process::Command::new(&self.settings.quadlet_generator)
            .arg("--dryrun")
            .env("QUADLET_UNIT_DIRS", &self.settings.unit_dir)
            .output()
            .await;
        let Ok(out) = out else {
            return "Quadlet's generator could not be run".to_owned();
        };
        let text = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                files.iter().any(|f| l.contains(f)) && !l.contains("Loading source unit file")
            })
            .collect();
        if lines.is_empty() {
            "Quadlet gave no reason".to_owned()
        } else {
            lines.join("; ")
        }
    }

    fn write_data(
        &self,
        desired: &BTreeMap<String, DesiredPod>,
        keep: &BTreeSet<String>,
    ) -> Result<(), ReconcileError> {
        for d in desired.values() {
            for dir in &d.rendered.directories {
                std::fs::create_dir_all(dir).map_err(|source| ReconcileError::Write {
                    path: dir.into(),
                    source,
                })?;
            }
            for f in &d.rendered.data_files {
                let path = PathBuf::from(&f.path);
                if std::fs::read(&path).ok().as_deref() != Some(f.contents.as_slice()) {
                    write_atomic(&path, &f.contents, f.mode)
                        .map_err(|source| ReconcileError::Write { path, source })?;
                }
            }
        }
        // Data of pods that are gone (`<ns>_<pod>` directories).
        let keep_dirs: BTreeSet<String> = keep.iter().map(|k| k.replacen('/', "_", 1)).collect();
        if let Ok(entries) = std::fs::read_dir(&self.settings.data_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains('_') && !keep_dirs.contains(&name) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Re-reads the state of every pod's units into the views the API serves.
    pub async fn refresh(&self) -> Result<(), ReconcileError> {
        // The cheapest correct thing: a full pass computes nothing new when nothing changed, but it
        // would write; so re-read states only.
        let views = self.views.read().map(|v| v.clone()).unwrap_or_default();
        let mut updated = BTreeMap::new();
        for (key, mut view) in views {
            if view.unit.is_empty()
                || view.reason.as_deref().is_some_and(|r| {
                    r.starts_with("waiting for")
                        || r.starts_with("systemd has no unit")
                        || r.starts_with("pod ")
                })
            {
                updated.insert(key, view);
                continue;
            }
            self.observe(&key, &mut view).await?;
            updated.insert(key, view);
        }
        if let Ok(mut v) = self.views.write() {
            *v = updated;
        }
        Ok(())
    }

    /// Reads the states of a pod's units (its main unit, and each container's when it has its own)
    /// into its view.
    async fn observe(&self, key: &str, view: &mut PodView) -> Result<(), podswarm_units::Error> {
        let main = self.systemd.unit_state(&view.unit).await?;
        let mut containers = Vec::with_capacity(view.containers.len());
        for c in &view.containers {
            containers.push(if c.unit == view.unit {
                main.clone()
            } else {
                self.systemd.unit_state(&c.unit).await?
            });
        }
        apply_states(view, &main, &containers, self.prober.is_ready(key));
        Ok(())
    }

    async fn update_views(
        &self,
        desired: &BTreeMap<String, DesiredPod>,
        held: &BTreeMap<String, (PodInstance, u64, String)>,
        unplaced: &BTreeMap<String, (PodInstance, u64, String)>,
        rejected: &BTreeMap<String, String>,
    ) {
        let node = self.settings.node.node_name.clone();
        let mut views = BTreeMap::new();
        for (key, d) in desired {
            let pod = &d.pod;
            self.prober
                .set(key, readiness_probes(pod, &self.settings.options));
            let units: Vec<String> = d
                .rendered
                .units
                .iter()
                .filter_map(|u| service_of(&u.file_name, &u.contents))
                .collect();
            let mut view = PodView {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                node: node.clone(),
                ip: Some(d.ip.clone()),
                phase: Phase::Pending,
                ready: false,
                restarts: 0,
                reason: None,
                owner: pod.owner.as_ref().map(|o| format!("{}/{}", o.kind, o.name)),
                labels: pod.labels.clone(),
                unit: d.rendered.service.clone(),
                units,
                containers: d
                    .containers
                    .iter()
                    .map(|(name, unit)| ContainerView {
                        podman_name: podman_name(pod, name, &self.settings.options),
                        name: name.clone(),
                        image: pod
                            .spec
                            .containers
                            .iter()
                            .find(|c| &c.name == name)
                            .and_then(|c| c.image.clone())
                            .unwrap_or_default(),
                        unit: unit.clone(),
                        state: String::new(),
                        restarts: 0,
                    })
                    .collect(),
                created: d.created,
                warnings: d.rendered.warnings.clone(),
            };
            if let Some(reason) = rejected.get(key) {
                view.phase = Phase::Failed;
                view.reason = Some(reason.clone());
            } else if let Err(e) = self.observe(key, &mut view).await {
                // The view stays Pending; the next refresh reads it again.
                tracing::warn!(pod = %key, error = %error_chain(&e), "cannot read the pod's unit states");
            }
            views.insert(key.clone(), view);
        }
        let waiting = held
            .iter()
            .map(|(k, v)| (k, v, node.clone()))
            .chain(unplaced.iter().map(|(k, v)| (k, v, String::new())));
        for (key, (pod, created, reason), node) in waiting {
            views.insert(
                key.clone(),
                PodView {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    node: node.clone(),
                    ip: None,
                    phase: if reason.starts_with("waiting for") || node.is_empty() {
                        Phase::Pending
                    } else {
                        Phase::Failed
                    },
                    ready: false,
                    restarts: 0,
                    reason: Some(reason.clone()),
                    owner: pod.owner.as_ref().map(|o| format!("{}/{}", o.kind, o.name)),
                    labels: pod.labels.clone(),
                    unit: String::new(),
                    units: Vec::new(),
                    containers: Vec::new(),
                    created: *created,
                    warnings: Vec::new(),
                },
            );
        }
        self.prober.retain(&views.keys().cloned().collect());
        if let Ok(mut v) = self.views.write() {
            *v = views;
        }
    }

    /// Runs readiness probes every second and flips `ready` on the pods whose result changed.
    pub async fn run_probes(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let running: BTreeMap<String, String> = self
                .views
                .read()
                .map(|v| {
                    v.iter()
                        .filter(|(_, p)| p.phase == Phase::Running)
                        .filter_map(|(k, p)| p.ip.clone().map(|ip| (k.clone(), ip)))
                        .collect()
                })
                .unwrap_or_default();
            if self.prober.tick(&running).await
                && let Ok(mut views) = self.views.write()
            {
                for (key, view) in views.iter_mut() {
                    let ready = view.phase == Phase::Running
                        && view.reason.is_none()
                        && self.prober.is_ready(key);
                    if ready != view.ready {
                        tracing::info!(namespace = %view.namespace, pod = %view.name, ready, "pod readiness changed");
                        view.ready = ready;
                    }
                }
            }
        }
    }

    /// Runs passes until `shutdown` flips: on every state change, on unit changes (debounced,
    /// status only) and every `resync` as a safety net.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        ready: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut versions = self.state.subscribe();
        let mut changes = self.systemd.changes();
        let mut ready = Some(ready);
        let resync = Duration::from_secs(30);
        let mut pending_full = true;
        loop {
            if pending_full {
                pending_full = false;
                // Debounce: requests that arrive together (`apply -f dir/`, `delete -f`, one per
                // object) become one pass, so one batch and one reload.
                tokio::time::sleep(DEBOUNCE).await;
                versions.borrow_and_update();
                match self.sync().await {
                    Ok(pass) if !pass.is_noop() => tracing::info!(
                        written = pass.written.len(),
                        removed = pass.removed.len(),
                        reloaded = pass.reloaded,
                        started = pass.started.len(),
                        restarted = pass.restarted.len(),
                        stopped = pass.stopped.len(),
                        "reconciled"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %error_chain(&e), "reconcile pass failed");
                    }
                }
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                Ok(()) = versions.changed() => { pending_full = true; }
                event = changes.recv() => {
                    let relevant = match event {
                        Ok(unit) => unit.starts_with(podswarm_generator::names::PREFIX),
                        Err(_) => true, // lagged: re-read everything
                    };
                    if relevant {
                        // Coalesce a burst of property changes into one refresh.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while changes.try_recv().is_ok() {}
                        if let Err(e) = self.refresh().await {
                            tracing::warn!(error = %error_chain(&e), "cannot refresh pod status");
                        }
                    }
                }
                _ = self.wake.notified() => { pending_full = true; }
                _ = tokio::time::sleep(resync) => { pending_full = true; }
            }
        }
    }
}

/// What goes when a pod goes: its units, then its pod-scoped volumes.
#[derive(Debug, Default)]
struct Removal {
    services: Vec<String>,
    /// (the `.volume` unit's service, the podman volume to delete if pod-scoped)
    volumes: Vec<(String, Option<String>)>,
}

#[derive(Debug, Default)]
struct Removals {
    stopping: BTreeSet<String>,
    stopped: BTreeSet<String>,
}

impl Removal {
    async fn run<S: Systemd, P: Podman>(self, key: &str, systemd: &S, podman: &P) {
        let (namespace, pod) = key.split_once('/').unwrap_or_default();
        let stops =
            futures_util::future::join_all(self.services.iter().map(|s| systemd.stop(s))).await;
        for (service, result) in self.services.iter().zip(stops) {
            match result {
                Ok(JobResult::Done) => {
                    tracing::info!(namespace, pod, unit = %service, "pod unit stopped")
                }
                Ok(other) => {
                    tracing::warn!(namespace, pod, unit = %service, job = %other, "stopping a pod unit did not finish cleanly")
                }
                Err(e) => {
                    tracing::warn!(namespace, pod, unit = %service, error = %error_chain(&e), "stopping a pod unit failed")
                }
            }
            // A container stopped by SIGTERM exits 143, which systemd records as a failure; without
            // a reset the deleted pod would linger in `systemctl list-units` as "not-found failed".
            let _ = systemd.reset_failed(service).await;
        }
        for (service, volume) in self.volumes {
            let _ = systemd.stop(&service).await;
            let _ = systemd.reset_failed(&service).await;
            if let Some(volume) = volume
                && let Err(e) = podman.remove_volume(&volume).await
            {
                tracing::warn!(namespace, pod, volume, error = %e, "cannot remove the volume of a deleted pod");
            }
        }
    }
}

/// How long a pass waits after a change for more changes to batch with it.
const DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Start,
    Restart,
}

/// A pod's readiness probes, with the podman names its containers get.
/// The name podman gives a pod's container (for `podman exec` and the journal's CONTAINER_NAME=).
fn podman_name(pod: &PodInstance, container: &str, options: &Options) -> String {
    let base = podswarm_generator::names::pod(&pod.namespace, &pod.name);
    match (pod.spec.containers.len() > 1, options.multi_container) {
        (false, _) => base,
        (true, podswarm_generator::MultiContainer::Pod) => {
            podswarm_generator::names::container(&pod.namespace, &pod.name, container)
        }
        // `podman kube play` names containers `<pod>-<container>`.
        (true, podswarm_generator::MultiContainer::Kube) => format!("{base}-{container}"),
    }
}

fn readiness_probes(pod: &PodInstance, options: &Options) -> Vec<crate::probe::ReadinessProbe> {
    pod.spec
        .containers
        .iter()
        .filter_map(|c| {
            let probe = c.readiness_probe.clone()?;
            let podman_name = podman_name(pod, &c.name, options);
            let port = crate::probe::probe_port(&probe, c);
            Some(crate::probe::ReadinessProbe {
                container: c.name.clone(),
                podman_name,
                probe,
                port,
            })
        })
        .collect()
}

/// Whether a desired pod's main unit should be started now.
fn needs_start(state: &UnitState, restart_policy: Option<&str>) -> bool {
    if !matches!(state.active_state.as_str(), "inactive" | "failed") {
        return false;
    }
    let never_ran = state.main_started_us == 0;
    match restart_policy {
        Some("Never") => never_ran,
        Some("OnFailure") => never_ran || state.active_state == "failed",
        _ => true,
    }
}

fn container_services(pod: &PodInstance, rendered: &RenderedPod) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in &pod.spec.containers {
        let unit = rendered
            .units
            .iter()
            .filter(|u| u.file_name.ends_with(".container"))
            .find(|u| {
                u.contents
                    .lines()
                    .any(|l| l == format!("Container={}", c.name))
            })
            .and_then(|u| service_of(&u.file_name, &u.contents))
            .unwrap_or_else(|| rendered.service.clone());
        out.push((c.name.clone(), unit));
    }
    out
}

/// Pod phase, readiness and restarts from its units' states.
fn apply_states(
    view: &mut PodView,
    main: &UnitState,
    containers: &[UnitState],
    probes_ready: bool,
) {
    view.restarts = containers.iter().map(|s| s.n_restarts).sum();
    for (c, s) in view.containers.iter_mut().zip(containers) {
        c.state = format!("{}/{}", s.active_state, s.sub_state);
        c.restarts = s.n_restarts;
    }
    let all = std::iter::once(main).chain(containers);
    let failed = all.clone().find(|s| s.active_state == "failed");
    let crashing = containers
        .iter()
        .zip(&view.containers)
        .find(|(s, _)| s.active_state == "activating" && s.sub_state == "auto-restart");
    let all_active = all.clone().all(|s| s.active_state == "active");
    let (phase, reason) = if let Some(f) = failed {
        (
            Phase::Failed,
            Some(format!(
                "{} failed: {} (exit status {})",
                f.name, f.result, f.exec_main_status
            )),
        )
    } else if let Some((s, c)) = crashing {
        (
            Phase::Running,
            Some(format!(
                "container {} is restarting after exiting with status {} ({} restarts)",
                c.name, s.exec_main_status, s.n_restarts
            )),
        )
    } else if all_active {
        (Phase::Running, None)
    } else if main.active_state == "inactive"
        && main.main_started_us != 0
        && main.result == "success"
    {
        (Phase::Succeeded, None)
    } else if main.active_state == "activating" {
        (Phase::Pending, Some("starting".to_owned()))
    } else {
        (
            Phase::Pending,
            Some(format!(
                "{} is {}/{}",
                main.name, main.active_state, main.sub_state
            )),
        )
    };
    view.phase = phase;
    view.reason = reason;
    view.ready = phase == Phase::Running && view.reason.is_none() && probes_ready;
}

/// An error and its causes on one line, for logging an error once with its chain.
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
    use crate::podman::FakePodman;
    use crate::state::system_clock;
    use ipnet::Ipv4Net;
    use podswarm_generator::PodNetwork;
    use podswarm_manifest::{Limits, Policy};
    use podswarm_units::{Call, FakeSystemd};

    struct Env {
        _dir: tempfile::TempDir,
        unit_dir: PathBuf,
        state_dir: PathBuf,
        data_dir: PathBuf,
        systemd: Arc<FakeSystemd>,
        podman: Arc<FakePodman>,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let unit_dir = dir.path().join("units");
        let state_dir = dir.path().join("state");
        let data_dir = dir.path().join("data");
        let systemd = Arc::new(FakeSystemd::default());
        let scan = unit_dir.clone();
        systemd.on_reload(move || {
            std::fs::read_dir(&scan)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let contents = std::fs::read_to_string(e.path()).unwrap_or_default();
                    service_of(&name, &contents)
                })
                .collect()
        });
        Env {
            _dir: dir,
            unit_dir,
            state_dir,
            data_dir,
            systemd,
            podman: Arc::new(FakePodman::default()),
        }
    }

    impl Env {
        /// A reconciler as a freshly started podswarmd would build it (same dirs, same state).
        fn reconciler(&self) -> Reconciler<FakeSystemd, FakePodman> {
            let state = Arc::new(
                State::open(&self.state_dir, &Policy::default(), system_clock())
                    .unwrap_or_else(|e| panic!("{e}")),
            );
            let subnet: Ipv4Net = "10.244.0.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
            let settings = Settings {
                node: NodeContext {
                    node_name: "n1".into(),
                    node_ip: None,
                    network: PodNetwork { subnet },
                    dns_server: None,
                    cluster_domain: "cluster.local".into(),
                },
                options: Options {
                    data_dir: self.data_dir.to_string_lossy().into_owned(),
                    ..Options::default()
                },
                unit_dir: self.unit_dir.clone(),
                data_dir: self.data_dir.clone(),
                parallel_jobs: 4,
                quadlet_generator: PathBuf::from("/nonexistent"),
                podman: PathBuf::from("podman"),
            };
            Reconciler::new(
                Arc::clone(&self.systemd),
                Arc::clone(&self.podman),
                state,
                settings,
            )
        }
    }

    fn apply(r: &Reconciler<FakeSystemd, FakePodman>, yaml: &str) {
        let m = podswarm_manifest::parse(yaml, "t", &Limits::default(), &Policy::default())
            .unwrap_or_else(|e| panic!("{e}"));
        r.state
            .apply(m.objects.into_iter().map(|o| o.object).collect())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn deployment(replicas: usize, image: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: {image}}}]\n"
        )
    }

    fn view_of(r: &Reconciler<FakeSystemd, FakePodman>, key: &str) -> PodView {
        r.views
            .read()
            .ok()
            .and_then(|v| v.get(key).cloned())
            .unwrap_or_else(|| panic!("no view of {key}"))
    }

    async fn sync(r: &Reconciler<FakeSystemd, FakePodman>) -> Pass {
        r.sync()
            .await
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)))
    }

    #[tokio::test]
    async fn a_batch_costs_one_reload_and_starts_every_pod() {
        let env = env();
        let r = env.reconciler();
        apply(&r, &deployment(50, "localhost/busybox:1"));
        let pass = sync(&r).await;
        assert_eq!(env.systemd.reload_count(), 1, "one reload per batch");
        assert_eq!(pass.started.len(), 50);
        let views = r.views.read().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(views.len(), 50);
        assert!(
            views.values().all(|v| v.phase == Phase::Running && v.ready),
            "{:?}",
            views.values().next()
        );
    }

    #[tokio::test]
    async fn a_restarted_daemon_adopts_and_restarts_nothing() {
        let env = env();
        let first = env.reconciler();
        apply(&first, &deployment(3, "localhost/busybox:1"));
        sync(&first).await;
        env.systemd.clear_calls();
        drop(first);
        let second = env.reconciler();
        let pass = sync(&second).await;
        assert!(pass.is_noop(), "{pass:?}");
        assert!(env.systemd.calls().is_empty(), "{:?}", env.systemd.calls());
        assert_eq!(second.views.read().map(|v| v.len()).unwrap_or(0), 3);
    }

    #[tokio::test]
    async fn a_changed_template_replaces_pods_and_a_delete_stops_them() {
        let env = env();
        let r = env.reconciler();
        apply(&r, &deployment(2, "localhost/busybox:1"));
        sync(&r).await;
        env.systemd.clear_calls();
        apply(&r, &deployment(2, "localhost/busybox:2"));
        let pass = sync(&r).await;
        // New template, new pod names: two stops, two starts, one reload.
        assert_eq!(
            (pass.stopped.len(), pass.started.len(), pass.restarted.len()),
            (2, 2, 0),
            "{pass:?}"
        );
        assert_eq!(
            env.systemd
                .calls()
                .iter()
                .filter(|c| **c == Call::Reload)
                .count(),
            1
        );
        let key = crate::state::ObjectKey {
            kind: "Deployment".into(),
            namespace: "default".into(),
            name: "web".into(),
        };
        r.state.delete(&key).unwrap_or_else(|e| panic!("{e}"));
        let pass = sync(&r).await;
        assert_eq!(pass.stopped.len(), 2);
        assert!(
            pass.removed.is_empty(),
            "unit files outlive their stop jobs"
        );
        // The stops run in the background; the pass after them removes the files, with one reload.
        let reloads = env.systemd.reload_count();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pass = sync(&r).await;
        assert!(
            pass.reloaded && env.systemd.reload_count() == reloads + 1,
            "{pass:?}"
        );
        let left: Vec<String> = std::fs::read_dir(&env.unit_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["podswarm.network"], "only the network unit remains");
    }

    #[tokio::test]
    async fn a_pod_wanted_again_after_its_stop_is_stopped_again_when_deleted() {
        let env = env();
        let r = env.reconciler();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: localhost/busybox:1}]\n";
        let key = crate::state::ObjectKey {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "p".into(),
        };
        apply(&r, pod);
        sync(&r).await;
        r.state.delete(&key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sync(&r).await.stopped.len(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Back before the pass that would have removed its files: it is started again.
        apply(&r, pod);
        let pass = sync(&r).await;
        assert_eq!(pass.started.len(), 1, "{pass:?}");
        env.systemd.clear_calls();
        r.state.delete(&key).unwrap_or_else(|e| panic!("{e}"));
        let pass = sync(&r).await;
        assert_eq!(pass.stopped.len(), 1, "{pass:?}");
        assert!(
            pass.removed.is_empty(),
            "files went before a stop: {pass:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            env.systemd
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Stop(s) if s.contains("default_p"))),
            "{:?}",
            env.systemd.calls()
        );
    }

    #[tokio::test]
    async fn a_changed_pod_is_restarted_in_place() {
        let env = env();
        let r = env.reconciler();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: localhost/busybox:1, env: [{name: A, value: '1'}]}]\n";
        apply(&r, pod);
        sync(&r).await;
        apply(&r, &pod.replace("value: '1'", "value: '2'"));
        let pass = sync(&r).await;
        assert_eq!(pass.restarted, ["podswarm-default_p.service"]);
        assert!(pass.started.is_empty());
    }

    #[tokio::test]
    async fn files_podswarm_did_not_write_are_never_touched() {
        let env = env();
        std::fs::create_dir_all(&env.unit_dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            env.unit_dir.join("mine.container"),
            "[Container]\nImage=x\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = env.reconciler();
        sync(&r).await;
        assert!(env.unit_dir.join("mine.container").exists());
    }

    #[tokio::test]
    async fn a_rejected_unit_fails_its_pod_with_a_reason() {
        let env = env();
        env.systemd.reject("podswarm-default_p.service");
        let r = env.reconciler();
        apply(
            &r,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: localhost/busybox:1}]\n",
        );
        let pass = sync(&r).await;
        assert!(pass.started.is_empty(), "a rejected unit is not started");
        let view = view_of(&r, "default/p");
        assert_eq!(view.phase, Phase::Failed);
        assert!(
            view.reason
                .as_deref()
                .is_some_and(|r| r.contains("podswarm-default_p.container")),
            "{:?}",
            view.reason
        );
    }

    #[tokio::test]
    async fn a_pod_waits_for_its_configmap_and_secrets_go_to_podman() {
        let env = env();
        let r = env.reconciler();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:1\n    env: [{name: P, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n    volumeMounts: [{name: v, mountPath: /cfg}]\n  volumes: [{name: v, configMap: {name: cm}}]\n";
        apply(&r, pod);
        let pass = sync(&r).await;
        assert!(pass.started.is_empty());
        let view = view_of(&r, "default/p");
        assert_eq!(view.phase, Phase::Pending);
        assert!(
            view.reason.as_deref().is_some_and(
                |r| r.contains("ConfigMap default/cm") && r.contains("Secret default/s")
            ),
            "{:?}",
            view.reason
        );
        apply(
            &r,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {f: hello}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n",
        );
        let pass = sync(&r).await;
        assert_eq!(pass.started, ["podswarm-default_p.service"]);
        assert_eq!(
            std::fs::read_to_string(env.data_dir.join("default_p/v/f"))
                .ok()
                .as_deref(),
            Some("hello")
        );
        assert_eq!(env.podman.secrets.lock().map(|s| s.len()).unwrap_or(0), 1);
        apply(
            &r,
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v2}\n",
        );
        let pass = sync(&r).await;
        assert_eq!(
            pass.restarted,
            ["podswarm-default_p.service"],
            "a new secret value restarts the pod"
        );
        assert_eq!(
            env.podman.secrets.lock().map(|s| s.len()).unwrap_or(0),
            1,
            "the old secret is removed"
        );
    }

    #[test]
    fn files_name_their_pod() {
        assert_eq!(
            pod_of_file("[X-Podswarm]\nNamespace=shop\nPod=web-0\n").as_deref(),
            Some("shop/web-0")
        );
        let definition = "{\n  \"metadata\": {\n    \"labels\": {\n      \"io.podswarm.namespace\": \"shop\",\n      \"io.podswarm.pod\": \"web-0\"\n    }\n  }\n}\n";
        assert_eq!(pod_of_file(definition).as_deref(), Some("shop/web-0"));
        assert_eq!(pod_of_file("[Network]\nNetworkName=podswarm\n"), None);
    }

    #[tokio::test]
    async fn restart_policies_decide_what_is_started_again() {
        let running = UnitState {
            active_state: "active".into(),
            main_started_us: 5,
            ..UnitState::default()
        };
        let never_ran = UnitState {
            active_state: "inactive".into(),
            ..UnitState::default()
        };
        let finished = UnitState {
            active_state: "inactive".into(),
            result: "success".into(),
            main_started_us: 5,
            ..UnitState::default()
        };
        let failed = UnitState {
            active_state: "failed".into(),
            main_started_us: 5,
            ..UnitState::default()
        };
        assert!(!needs_start(&running, None));
        assert!(needs_start(&never_ran, Some("Never")));
        assert!(!needs_start(&finished, Some("Never")));
        assert!(!needs_start(&finished, Some("OnFailure")));
        assert!(needs_start(&failed, Some("OnFailure")));
        assert!(!needs_start(&failed, Some("Never")));
        assert!(needs_start(&finished, Some("Always")));
    }
}
