//! The reconciler: desired state → Quadlet files → systemd jobs → pod status.
//!
//! One task runs it, so writes, reloads and jobs are serialized by construction. A pass
//! ([`Reconciler::sync`]) reads as three functions:
//!
//! 1. **plan** (`plan.rs`, pure): render every pod placed here ([`Reconciler::desired`];
//!    addresses come from the state, so re-renders are byte-identical), read the files podswarm
//!    owns (a file is owned only if it carries the generator's marker; nothing else in the unit
//!    directory is ever touched) and the states of the wanted units, and decide what to write,
//!    remove, reload, start, restart and stop;
//! 2. **execute** (`execute.rs`): carry that out, with one `Reload` for the whole batch, the load
//!    state of every unit checked after it (a file Quadlet rejected yields no unit, which becomes
//!    an error on its pod with Quadlet's own message instead of vanishing), and stops in the
//!    background;
//! 3. **observe** (here, deciding in `status.rs`): read the units' states into the pod views the
//!    API serves; when a unit failed, ask podman why (its error line, whether the image is there).
//!
//! Adoption falls out of the plan: after a restart of podswarmd the rendered files equal the ones on
//! disk, nothing is written or reloaded, active units are left alone, and no workload restarts.
//!
//! Between passes, unit changes only re-read states ([`Reconciler::refresh`]); a stop that
//! finished wakes the loop for a pass, which removes the stopped pod's files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use podswarm_generator::{NodeContext, Objects, Options, is_owned, render_network, render_pod};
use podswarm_manifest::PodInstance;
use podswarm_units::{Systemd, UnitState};
use tokio::sync::watch;

pub use podswarm_config::process::error_chain;

use crate::plan::{self, Desired, DesiredPod, Hold, Memory, OnDisk, Runnable, Target, Units};
use crate::podman::Podman;
use crate::state::{State, StateError};
use crate::status::{self, Failure, Status};
pub use crate::status::{ContainerView, Phase, PodReason, PodView, PodViews};

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
    #[error("cannot render the pod network unit")]
    Network(#[source] podswarm_generator::escape::EscapeError),
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
    /// What earlier passes left for later ones: pods stopping and stopped, rejections.
    pub(crate) memory: Arc<Mutex<Memory>>,
    /// Wakes the run loop for a pass when a stop has finished.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// The images each unit runs, from the last pass (what a failed pull would have fetched).
    images: RwLock<BTreeMap<String, Vec<String>>>,
    /// What podman said about a unit's failed run, by unit, with the run's invocation id: a run
    /// is asked about once.
    failures: Mutex<BTreeMap<String, (String, Failure)>>,
    pub prober: Arc<crate::probe::Prober>,
    /// Decides which node runs each pod (the cluster's placement); none: every pod runs here.
    pub placer: Option<Placer>,
    /// The replicated facts rollouts decide from, at a given time; none: no revision records and
    /// no pod records (a Deployment then simply has its current template's pods).
    pub facts: Option<FactSource>,
    /// When (seconds since the epoch) the last pass's rollouts may change with time alone (0:
    /// never); the run loop passes again then.
    recheck: AtomicU64,
    /// Since when each pod of this node has been ready, by `ns/name`.
    ready_since: Mutex<BTreeMap<String, u64>>,
    /// Waits, for a pod on its way out, until every live node's routing view has dropped it
    /// (bounded by the drain timeout); none: stops go ahead at once.
    pub drain: Option<Drain>,
    /// Waits, for a pod placed on another node now (a drain, a node that no longer fits it),
    /// until that node's copy is ready and has taken over the pod's status record (bounded by
    /// the move timeout); this copy serves meanwhile. None: such a pod just goes.
    pub handoff: Option<Drain>,
    /// Where the last pass placed pods, by `ns/name`: `true` here, `false` on another node (a
    /// stop of such a pod is a hand-over, which ends early when that changes); pods placed
    /// nowhere are absent.
    pub(crate) placed: Arc<Mutex<BTreeMap<String, bool>>>,
    /// The pods last wanted here, by `ns/name`: a pod being stopped is no longer wanted, and its
    /// `preStop` hooks come from here.
    pub(crate) last_wanted: Mutex<BTreeMap<String, PodInstance>>,
}

/// Resolves once the pod (`ns/name`) is out of every live node's view, or the drain timeout has
/// passed.
pub type Drain = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

/// The rollout facts of the cluster at a time (seconds since the epoch).
pub type FactSource = Arc<dyn Fn(u64) -> crate::rollout::Facts + Send + Sync>;

/// Placement of pods (by `ns/name`) onto nodes.
pub type Placer = Arc<dyn Fn(&[&PodInstance]) -> Placed + Send + Sync>;

/// What a [`Placer`] decided.
#[derive(Debug, Default)]
pub struct Placed {
    /// The node of each pod (`ns/name`), or why none takes it.
    pub at: BTreeMap<String, crate::schedule::Placement>,
    /// Pods placed here that do not start yet, with how long they still wait: this node's claim
    /// on them has not stood long enough (see [`crate::link::Link::place_claimed`]). A pod that
    /// has files here already is not held back by it.
    pub claiming: BTreeMap<String, Duration>,
}

impl From<BTreeMap<String, crate::schedule::Placement>> for Placed {
    fn from(at: BTreeMap<String, crate::schedule::Placement>) -> Self {
        Placed {
            at,
            claiming: BTreeMap::new(),
        }
    }
}

fn read_owned(dir: &Path) -> Result<OnDisk, ReconcileError> {
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
            memory: Arc::default(),
            wake: Arc::default(),
            images: RwLock::default(),
            failures: Mutex::default(),
            placer: None,
            facts: None,
            recheck: AtomicU64::new(0),
            ready_since: Mutex::default(),
            drain: None,
            handoff: None,
            placed: Arc::default(),
            last_wanted: Mutex::default(),
        }
    }

    /// One pass: plan, execute, observe. Errors of single pods land on those pods; an `Err` means
    /// the pass itself failed.
    pub async fn sync(&self) -> Result<Pass, ReconcileError> {
        self.metrics.passes.fetch_add(1, Ordering::Relaxed);
        let on_disk = read_owned(&self.settings.unit_dir)?;
        let desired = self.desired(&on_disk)?;
        let units = self.unit_states(desired.services()).await?;
        let memory = self.memory.lock().map(|m| m.clone()).unwrap_or_default();
        let plan = plan::plan(&desired, &on_disk, &units, &memory);
        let done = self.execute(&desired, &plan).await?;
        let stopping = self
            .memory
            .lock()
            .map(|m| m.stopping.clone())
            .unwrap_or_default();
        if let Ok(mut last) = self.last_wanted.lock() {
            last.retain(|k, _| desired.pods.contains_key(k) || stopping.contains(k));
        }
        self.observe(&desired, &done.rejected).await;
        Ok(done.pass)
    }

    /// What this node wants: every pod of the state placed here, rendered (or held, with why), and
    /// the pods no node can take. Frees the addresses of pods that are no longer here.
    pub fn desired(&self, on_disk: &OnDisk) -> Result<Desired, ReconcileError> {
        let entries = self.state.entries();
        let mut index = Objects::default();
        for e in &entries {
            index.insert(&e.object);
        }
        let network =
            render_network(&self.settings.node.network).map_err(ReconcileError::Network)?;
        let now = crate::link::unix_now();
        let facts = self
            .facts
            .as_ref()
            .map(|f| f(now))
            .unwrap_or_else(|| crate::rollout::Facts {
                now,
                ..Default::default()
            });
        let expansion = crate::rollout::expand(&entries, &facts);
        let all = expansion.pods;
        let placements = self
            .placer
            .as_ref()
            .map(|placer| {
                let refs: Vec<&PodInstance> = all.iter().map(|(p, _)| p).collect();
                placer(&refs)
            })
            .unwrap_or_default();
        // A claim only holds back a pod that is not here yet: one with files here runs (or
        // stops) as the plan says.
        let here: BTreeSet<String> = on_disk
            .values()
            .filter_map(|contents| podswarm_generator::pod_of(contents))
            .map(|k| k.to_string())
            .collect();
        let me = &self.settings.node.node_name;
        let mut pods = BTreeMap::new();
        let mut placed = BTreeMap::new();
        let mut claim_left: Option<Duration> = None;
        for (pod, created) in all {
            let key = format!("{}/{}", pod.namespace, pod.name);
            let target = match placements.at.get(&key) {
                Some(crate::schedule::Placement::Node(node)) if node != me => {
                    placed.insert(key, false);
                    continue;
                }
                Some(crate::schedule::Placement::Pending(reason)) => {
                    Target::Unplaced(reason.clone())
                }
                _ => match placements.claiming.get(&key) {
                    Some(left) if !here.contains(&key) => {
                        claim_left = Some(claim_left.map_or(*left, |l| l.min(*left)));
                        Target::Hold(Hold::Claiming(*left))
                    }
                    _ => self.render(&key, &pod, &index)?,
                },
            };
            pods.insert(
                key,
                DesiredPod {
                    pod,
                    created,
                    target,
                },
            );
        }
        placed.extend(
            pods.iter()
                .filter(|(_, d)| !matches!(d.target, Target::Unplaced(_)))
                .map(|(k, _)| (k.clone(), true)),
        );
        if let Ok(mut m) = self.placed.lock() {
            *m = placed;
        }
        // Pass again when a rollout may move on with time alone, or when the first claim here
        // has stood long enough (nothing else may change meanwhile).
        let claim_at = claim_left.map(|left| now + left.as_secs() + 1);
        let recheck = [expansion.recheck, claim_at].into_iter().flatten().min();
        self.recheck.store(recheck.unwrap_or(0), Ordering::Relaxed);
        let desired = Desired {
            node_files: vec![network],
            pods,
        };
        if let Ok(mut last) = self.last_wanted.lock() {
            // Refreshed while a pod is wanted; kept while its stop runs (its hooks come from here),
            // see `sync`.
            last.extend(
                desired
                    .runnable()
                    .map(|(key, d, _)| (key.clone(), d.pod.clone())),
            );
        }
        // A copy still here (its stop not decided yet, or under way: handed over, draining)
        // keeps its address until it has stopped: a new pod here must not get it while it still
        // serves. The last views hold every pod that ran here.
        let me = &self.settings.node.node_name;
        let mut stopping = self
            .memory
            .lock()
            .map(|m| m.stopping.clone())
            .unwrap_or_default();
        if let Ok(views) = self.views.read() {
            stopping.extend(
                views
                    .iter()
                    .filter(|(_, v)| v.node == *me)
                    .map(|(k, _)| k.clone()),
            );
        }
        let keep: BTreeSet<String> = desired
            .pods
            .keys()
            .filter(|k| desired.keeps(k))
            .cloned()
            .chain(stopping)
            .collect();
        self.state.retain_pod_ips(&keep)?;
        Ok(desired)
    }

    /// A pod placed here, rendered with its address; held when it cannot run yet.
    fn render(
        &self,
        key: &str,
        pod: &PodInstance,
        index: &Objects,
    ) -> Result<Target, ReconcileError> {
        let ip = self.state.pod_ip(key, self.settings.node.network.subnet)?;
        let settings = &self.settings;
        Ok(
            match render_pod(pod, Some(ip), &settings.node, &settings.options, index) {
                Ok(r) if !r.missing.is_empty() => Target::Hold(Hold::Missing(r.missing)),
                Ok(rendered) => Target::Run(Box::new(Runnable { ip, rendered })),
                Err(err) => Target::Hold(Hold::Invalid(err.to_string())),
            },
        )
    }

    /// The states of units, read concurrently (bounded).
    pub(crate) async fn unit_states(
        &self,
        units: BTreeSet<String>,
    ) -> Result<Units, ReconcileError> {
        let mut out = BTreeMap::new();
        let mut stream = futures_util::stream::iter(units.into_iter().map(|u| async move {
            let state = self.systemd.unit_state(&u).await;
            (u, state)
        }))
        .buffer_unordered(self.settings.parallel_jobs);
        while let Some((u, state)) = stream.next().await {
            out.insert(u, state?);
        }
        Ok(out)
    }

    /// Builds the views the API serves: every pod that runs here from its units' states, the
    /// others from why they do not run.
    async fn observe(&self, desired: &Desired, rejected: &BTreeMap<String, String>) {
        let images: BTreeMap<String, Vec<String>> = desired
            .runnable()
            .flat_map(|(_, _, run)| plan::unit_images(&run.rendered))
            .collect();
        if let Ok(mut f) = self.failures.lock() {
            f.retain(|unit, _| images.contains_key(unit));
        }
        if let Ok(mut i) = self.images.write() {
            *i = images;
        }
        let mut views = BTreeMap::new();
        for (key, d) in &desired.pods {
            let mut view = self.view(d);
            match &d.target {
                Target::Run(_) => {
                    self.prober
                        .set(key, readiness_probes(&d.pod, &self.settings.options));
                    if let Some(message) = rejected.get(key) {
                        status::set(&mut view, Status::rejected(message), false);
                    } else if let Err(e) = self.observe_pod(key, &mut view).await {
                        // The view stays Pending; the next refresh reads it again.
                        tracing::warn!(pod = %key, error = %error_chain(&e), "cannot read the pod's unit states");
                    }
                }
                Target::Hold(hold) => status::set(&mut view, Status::held(hold), false),
                Target::Unplaced(reason) => {
                    status::set(&mut view, Status::unplaced(reason), false);
                }
            }
            views.insert(key.clone(), view);
        }
        // A pod whose stop is under way keeps its last view (marked by `mark_leaving`), also when
        // it is wanted again meanwhile (an undo, a scale back up): this copy is still on its way
        // out; the pass after its stop starts it afresh.
        let stopping = self
            .memory
            .lock()
            .map(|m| m.stopping.clone())
            .unwrap_or_default();
        if let Ok(previous) = self.views.read() {
            for key in stopping {
                // The copy that runs here, also when the pod is placed nowhere now (its new view
                // names no node, and would hide the copy that still stops here).
                let fresh = views.get(&key).is_some_and(|v| !v.node.is_empty());
                if let (false, Some(view)) = (fresh, previous.get(&key)) {
                    views.insert(key, view.clone());
                }
            }
        }
        // Probes go on for a pod that still serves while another node's copy gets ready.
        self.prober.retain(&views.keys().cloned().collect());
        self.stamp_ready(&mut views);
        if let Ok(mut v) = self.views.write() {
            self.mark_leaving(&mut views);
            *v = views;
        }
    }

    /// Marks the views of pods whose stop is under way, from the memory (read while the caller
    /// holds the views' lock, so that a stop task's change of phase is never written over): a pod
    /// being handed over still serves, `moving`; any other is terminating, so its status record
    /// takes it out of every node's DNS and ingress, and its stop waits for that.
    fn mark_leaving(&self, views: &mut BTreeMap<String, PodView>) {
        let Ok(m) = self.memory.lock() else { return };
        for key in &m.stopping {
            let Some(view) = views.get_mut(key) else {
                continue;
            };
            if m.handing_off.contains(key) {
                view.moving = true;
            } else {
                view.terminating = true;
                view.moving = false;
                view.ready = false;
                view.ready_since = None;
            }
        }
    }

    /// A pod's view before its units are read: what the object and its rendering say.
    fn view(&self, d: &DesiredPod) -> PodView {
        let pod = &d.pod;
        let mut view = PodView {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            node: self.settings.node.node_name.clone(),
            ip: None,
            phase: Phase::Pending,
            ready: false,
            restarts: 0,
            reason: None,
            message: None,
            owner: pod.owner.as_ref().map(|o| format!("{}/{}", o.kind, o.name)),
            labels: pod.labels.clone(),
            unit: String::new(),
            units: Vec::new(),
            containers: Vec::new(),
            created: d.created,
            warnings: Vec::new(),
            ready_since: None,
            terminating: false,
            moving: false,
            replaces: None,
        };
        match &d.target {
            Target::Run(run) => {
                let rendered = &run.rendered;
                view.ip = Some(run.ip.to_string());
                view.unit = rendered.service.clone();
                view.units = rendered.units.iter().filter_map(plan::service).collect();
                view.warnings = rendered.warnings.clone();
                view.containers = plan::container_units(pod, rendered)
                    .into_iter()
                    .map(|(name, unit)| ContainerView {
                        podman_name: podman_name(pod, &name, &self.settings.options),
                        image: pod
                            .spec
                            .containers
                            .iter()
                            .find(|c| c.name == name)
                            .and_then(|c| c.image.clone())
                            .unwrap_or_default(),
                        name,
                        unit,
                        state: String::new(),
                        restarts: 0,
                    })
                    .collect();
            }
            Target::Hold(_) => {}
            // Nothing of it runs anywhere yet.
            Target::Unplaced(_) => view.node = String::new(),
        }
        view
    }

    /// Stamps each view with since when its pod has been ready without a break (rollouts count a
    /// pod available `minReadySeconds` after that); a pod that is not ready loses its stamp.
    fn stamp_ready(&self, views: &mut BTreeMap<String, PodView>) {
        let now = crate::link::unix_now();
        if let Ok(mut since) = self.ready_since.lock() {
            since.retain(|k, _| views.get(k).is_some_and(|v| v.ready));
            for (k, v) in views.iter_mut() {
                v.ready_since = v.ready.then(|| *since.entry(k.clone()).or_insert(now));
            }
        }
    }

    /// How long the run loop may wait for a change before it must pass again anyway: `resync`,
    /// or less when a rollout moves on with time alone (a pod turns available, a deadline passes).
    fn until_recheck(&self, resync: Duration) -> Duration {
        match self.recheck.load(Ordering::Relaxed) {
            0 => resync,
            at => Duration::from_secs(at.saturating_sub(crate::link::unix_now())).min(resync),
        }
    }

    /// Re-reads the state of every pod's units into the views the API serves.
    pub async fn refresh(&self) -> Result<(), ReconcileError> {
        // The cheapest correct thing: a full pass computes nothing new when nothing changed, but it
        // would write; so re-read states only, of the pods whose status comes from their units.
        let views = self.views.read().map(|v| v.clone()).unwrap_or_default();
        let rejected = self
            .memory
            .lock()
            .map(|m| m.rejected.clone())
            .unwrap_or_default();
        let mut updated = BTreeMap::new();
        for (key, mut view) in views {
            if !view.unit.is_empty() && !rejected.contains_key(&key) && !view.terminating {
                self.observe_pod(&key, &mut view).await?;
            }
            updated.insert(key, view);
        }
        self.stamp_ready(&mut updated);
        if let Ok(mut v) = self.views.write() {
            self.mark_leaving(&mut updated);
            *v = updated;
        }
        Ok(())
    }

    /// Reads the states of a pod's units (its main unit, and each container's when it has its own)
    /// into its view, with podman's word on runs that failed.
    async fn observe_pod(
        &self,
        key: &str,
        view: &mut PodView,
    ) -> Result<(), podswarm_units::Error> {
        let main = self.systemd.unit_state(&view.unit).await?;
        let mut containers = Vec::with_capacity(view.containers.len());
        for c in &view.containers {
            containers.push(if c.unit == view.unit {
                main.clone()
            } else {
                self.systemd.unit_state(&c.unit).await?
            });
        }
        let mut failures = BTreeMap::new();
        for s in std::iter::once(&main).chain(&containers) {
            if status::may_be_podman(s) && !failures.contains_key(&s.name) {
                failures.insert(s.name.clone(), self.diagnose(s).await);
            }
        }
        status::apply_states(
            view,
            &main,
            &containers,
            &failures,
            self.prober.is_ready(key),
        );
        Ok(())
    }

    /// What podman says about a unit's failed run: its error line, and whether the unit's images
    /// are there. Asked once per run (invocation).
    async fn diagnose(&self, s: &UnitState) -> Failure {
        let known = self.failures.lock().ok().and_then(|f| {
            f.get(&s.name)
                .filter(|(run, _)| *run == s.invocation_id)
                .map(|(_, failure)| failure.clone())
        });
        if let Some(failure) = known {
            return failure;
        }
        let podman_error = self
            .podman
            .unit_error(&s.name, &s.invocation_id)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(unit = %s.name, error = %e, "cannot read podman's error from the journal");
                None
            });
        let images = self
            .images
            .read()
            .ok()
            .and_then(|i| i.get(&s.name).cloned())
            .unwrap_or_default();
        let mut image_missing = false;
        for image in &images {
            match self.podman.image_exists(image).await {
                Ok(there) => image_missing |= !there,
                Err(e) => {
                    tracing::debug!(unit = %s.name, image, error = %e, "cannot tell whether an image is there");
                }
            }
        }
        let failure = Failure {
            podman_error,
            image_missing,
        };
        if let Ok(mut f) = self.failures.lock() {
            f.insert(s.name.clone(), (s.invocation_id.clone(), failure.clone()));
        }
        failure
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
                        && !view.terminating
                        && view.reason.is_none()
                        && self.prober.is_ready(key);
                    if ready != view.ready {
                        tracing::info!(namespace = %view.namespace, pod = %view.name, ready, "pod readiness changed");
                        view.ready = ready;
                    }
                }
                self.stamp_ready(&mut views);
            }
        }
    }

    /// Runs passes until `shutdown` flips: on every state change, when a stop has finished, on
    /// unit changes (debounced, status only) and every `resync` as a safety net.
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
                _ = tokio::time::sleep(self.until_recheck(resync)) => { pending_full = true; }
            }
        }
    }
}

/// How long a pass waits after a change for more changes to batch with it.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The name podman gives a pod's container (for `podman exec` and the journal's CONTAINER_NAME=).
pub(crate) fn podman_name(pod: &PodInstance, container: &str, options: &Options) -> String {
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

/// A pod's readiness probes, with the podman names its containers get.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podman::FakePodman;
    use crate::state::system_clock;
    use ipnet::Ipv4Net;
    use podswarm_generator::{PodNetwork, service_of};
    use podswarm_manifest::{Limits, Policy};
    use podswarm_units::{Call, FakeSystemd, JobResult, ListedUnit};

    struct Env {
        _dir: tempfile::TempDir,
        unit_dir: PathBuf,
        state_dir: PathBuf,
        data_dir: PathBuf,
        systemd: Arc<FakeSystemd>,
        podman: Arc<FakePodman>,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
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
            self.reconciler_on(Arc::clone(&self.systemd))
        }

        /// The same, on another systemd (one that wraps this one).
        fn reconciler_on<S: Systemd>(&self, systemd: Arc<S>) -> Reconciler<S, FakePodman> {
            let state =
                Arc::new(State::open(&self.state_dir, &Policy::default(), system_clock()).unwrap());
            let subnet: Ipv4Net = "10.244.0.0/24".parse().unwrap();
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
            Reconciler::new(systemd, Arc::clone(&self.podman), state, settings)
        }
    }

    fn apply<S: Systemd>(r: &Reconciler<S, FakePodman>, yaml: &str) {
        let m =
            podswarm_manifest::parse(yaml, "t", &Limits::default(), &Policy::default()).unwrap();
        r.state
            .apply(m.objects.into_iter().map(|o| o.object).collect())
            .unwrap();
    }

    fn deployment(replicas: usize, image: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: {image}}}]\n"
        )
    }

    fn view_of<S: Systemd>(r: &Reconciler<S, FakePodman>, key: &str) -> PodView {
        r.views
            .read()
            .ok()
            .and_then(|v| v.get(key).cloned())
            .unwrap_or_else(|| panic!("no view of {key}"))
    }

    async fn sync<S: Systemd>(r: &Reconciler<S, FakePodman>) -> Pass {
        r.sync()
            .await
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)))
    }

    /// Waits until the stops running in the background have finished, as the run loop learns it:
    /// through the wake-up each of them sends.
    async fn stops_done<S: Systemd>(r: &Reconciler<S, FakePodman>) {
        let stopping = || {
            r.memory
                .lock()
                .map(|m| !m.stopping.is_empty())
                .unwrap_or(false)
        };
        while stopping() {
            tokio::time::timeout(Duration::from_secs(5), r.wake.notified())
                .await
                .unwrap_or_else(|_| panic!("a stop never finished"));
        }
    }

    fn pod_key(name: &str) -> crate::state::ObjectKey {
        crate::state::ObjectKey {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: localhost/busybox:1}]\n";

    fn files(env: &Env) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&env.unit_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// systemd as the fake runs it, except for units given a state of their own (a failed run,
    /// which the fake cannot produce), and stops that take a while (a container's grace period).
    struct Scripted {
        fake: Arc<FakeSystemd>,
        states: std::sync::Mutex<BTreeMap<String, UnitState>>,
        stop_takes: Duration,
    }

    impl Scripted {
        fn new(fake: &Arc<FakeSystemd>) -> Arc<Self> {
            Arc::new(Scripted {
                fake: Arc::clone(fake),
                states: std::sync::Mutex::default(),
                stop_takes: Duration::ZERO,
            })
        }

        fn set(&self, state: UnitState) {
            self.states
                .lock()
                .unwrap()
                .insert(state.name.clone(), state);
        }
    }

    impl Systemd for Scripted {
        async fn reload(&self) -> Result<(), podswarm_units::Error> {
            self.fake.reload().await
        }
        async fn unit_state(&self, unit: &str) -> Result<UnitState, podswarm_units::Error> {
            let real = self.fake.unit_state(unit).await?;
            Ok(match self.states.lock().unwrap().get(unit) {
                Some(s) => UnitState {
                    name: real.name,
                    load_state: real.load_state,
                    ..s.clone()
                },
                None => real,
            })
        }
        async fn start(&self, unit: &str) -> Result<JobResult, podswarm_units::Error> {
            self.fake.start(unit).await
        }
        async fn stop(&self, unit: &str) -> Result<JobResult, podswarm_units::Error> {
            tokio::time::sleep(self.stop_takes).await;
            self.fake.stop(unit).await
        }
        async fn restart(&self, unit: &str) -> Result<JobResult, podswarm_units::Error> {
            self.fake.restart(unit).await
        }
        async fn reset_failed(&self, unit: &str) -> Result<(), podswarm_units::Error> {
            self.fake.reset_failed(unit).await
        }
        async fn list_units(
            &self,
            patterns: &[&str],
        ) -> Result<Vec<ListedUnit>, podswarm_units::Error> {
            self.fake.list_units(patterns).await
        }
        fn changes(&self) -> tokio::sync::broadcast::Receiver<String> {
            self.fake.changes()
        }
        fn reload_count(&self) -> u64 {
            self.fake.reload_count()
        }
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
        r.state.delete(&key).unwrap();
        let pass = sync(&r).await;
        assert_eq!(pass.stopped.len(), 2);
        assert!(
            pass.removed.is_empty(),
            "unit files outlive their stop jobs"
        );
        // The stops run in the background; the pass after them removes the files, with one reload.
        let reloads = env.systemd.reload_count();
        stops_done(&r).await;
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
        r.state.delete(&key).unwrap();
        assert_eq!(sync(&r).await.stopped.len(), 1);
        stops_done(&r).await;
        // Back before the pass that would have removed its files: it is started again.
        apply(&r, pod);
        let pass = sync(&r).await;
        assert_eq!(pass.started.len(), 1, "{pass:?}");
        env.systemd.clear_calls();
        r.state.delete(&key).unwrap();
        let pass = sync(&r).await;
        assert_eq!(pass.stopped.len(), 1, "{pass:?}");
        assert!(
            pass.removed.is_empty(),
            "files went before a stop: {pass:?}"
        );
        stops_done(&r).await;
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
        std::fs::create_dir_all(&env.unit_dir).unwrap();
        std::fs::write(
            env.unit_dir.join("mine.container"),
            "[Container]\nImage=x\n",
        )
        .unwrap();
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
        assert_eq!(view.reason, Some(PodReason::CreateContainerConfigError));
        assert!(
            view.message
                .as_deref()
                .is_some_and(|r| r.contains("podswarm-default_p.container")),
            "{:?}",
            view.message
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
        assert_eq!(view.reason, Some(PodReason::ContainerCreating));
        assert!(
            view.message.as_deref().is_some_and(
                |r| r.contains("ConfigMap default/cm") && r.contains("Secret default/s")
            ),
            "{:?}",
            view.message
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

    /// A unit that ran and waits to be restarted after its run ended with `status`.
    fn restarting(unit: &str, status: i32, run: &str) -> UnitState {
        UnitState {
            name: unit.into(),
            active_state: "activating".into(),
            sub_state: "auto-restart".into(),
            result: "exit-code".into(),
            exec_main_status: status,
            main_started_us: 5,
            n_restarts: 2,
            invocation_id: run.into(),
            ..UnitState::default()
        }
    }

    /// Was a defect: a pod whose image cannot be pulled showed CrashLoopBackOff, like a container
    /// that keeps exiting.
    #[tokio::test]
    async fn a_pod_whose_image_cannot_be_pulled_shows_image_pull_back_off() {
        let env = env();
        let systemd = Scripted::new(&env.systemd);
        let r = env.reconciler_on(Arc::clone(&systemd));
        apply(
            &r,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: localhost/nope:1, imagePullPolicy: Never}]\n",
        );
        sync(&r).await;
        let unit = "podswarm-default_p.service";
        env.podman
            .missing_images
            .lock()
            .unwrap()
            .insert("localhost/nope:1".into());
        env.podman
            .unit_errors
            .lock()
            .unwrap()
            .insert(unit.into(), "localhost/nope:1: image not known".into());
        systemd.set(restarting(unit, 125, "run-1"));
        r.refresh().await.unwrap();
        let view = view_of(&r, "default/p");
        assert_eq!(view.reason, Some(PodReason::ImagePullBackOff), "{view:?}");
        assert!(
            view.message
                .as_deref()
                .is_some_and(|m| m.ends_with("localhost/nope:1: image not known")),
            "{view:?}"
        );
        assert!(!view.ready);

        // The same exit with the image there is not a pull; a crash of the container is a crash.
        env.podman.missing_images.lock().unwrap().clear();
        systemd.set(restarting(unit, 125, "run-2"));
        r.refresh().await.unwrap();
        assert_eq!(
            view_of(&r, "default/p").reason,
            Some(PodReason::CreateContainerError)
        );
        env.podman.unit_errors.lock().unwrap().clear();
        systemd.set(restarting(unit, 1, "run-3"));
        r.refresh().await.unwrap();
        assert_eq!(
            view_of(&r, "default/p").reason,
            Some(PodReason::CrashLoopBackOff)
        );
    }

    /// Was a defect: a failed unit's reason said only `failed: exit-code (exit status 0)`.
    #[tokio::test]
    async fn a_failed_pod_unit_carries_podmans_own_error_line() {
        let env = env();
        let systemd = Scripted::new(&env.systemd);
        let r = env.reconciler_on(Arc::clone(&systemd));
        apply(
            &r,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Never\n  containers: [{name: a, image: localhost/busybox:1}, {name: b, image: localhost/busybox:1}]\n",
        );
        sync(&r).await;
        // The `.pod` unit's ExecStartPre (`podman pod create`) failed: the main process never ran.
        let unit = "podswarm-default_p.service";
        let line = r#"building local pause image: finding pause binary: exec: "catatonit": executable file not found in $PATH"#;
        env.podman
            .unit_errors
            .lock()
            .unwrap()
            .insert(unit.into(), line.into());
        systemd.set(UnitState {
            name: unit.into(),
            active_state: "failed".into(),
            sub_state: "failed".into(),
            result: "exit-code".into(),
            invocation_id: "run-1".into(),
            ..UnitState::default()
        });
        r.refresh().await.unwrap();
        let view = view_of(&r, "default/p");
        assert_eq!(
            (view.phase, view.reason),
            (Phase::Failed, Some(PodReason::CreateContainerError))
        );
        assert_eq!(
            view.message.as_deref(),
            Some(format!("{unit} failed: {line}").as_str())
        );
    }

    /// The stop of a deleted pod wakes the run loop, and that pass removes its files: they do not
    /// wait for the 30 s resync.
    #[tokio::test]
    async fn a_deleted_pods_files_go_in_the_pass_after_its_stop() {
        let env = env();
        let systemd = Arc::new(Scripted {
            stop_takes: Duration::from_millis(300),
            ..Arc::into_inner(Scripted::new(&env.systemd)).unwrap()
        });
        let r = Arc::new(env.reconciler_on(Arc::clone(&systemd)));
        apply(&r, POD);
        apply(&r, &POD.replace("name: p}", "name: q}"));
        let (_stop, shutdown) = watch::channel(false);
        let (ready, first_pass) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(Arc::clone(&r).run(shutdown, ready));
        first_pass.await.unwrap();
        r.state.delete(&pod_key("p")).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        r.state.delete(&pod_key("q")).unwrap();
        let deleted = std::time::Instant::now();
        while files(&env).len() > 1 && deleted.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        assert_eq!(files(&env), ["podswarm.network"]);
        assert!(
            deleted.elapsed() < Duration::from_secs(5),
            "files went only after {:?}",
            deleted.elapsed()
        );
    }

    /// A pod on its way out is marked terminating (so its status record takes it out of every
    /// node's DNS and ingress), and no stop job runs until the drain says every view dropped it.
    #[tokio::test]
    async fn a_leaving_pod_is_terminating_and_stops_only_once_drained() {
        let env = env();
        let mut r = env.reconciler();
        let gate = Arc::new(tokio::sync::Notify::new());
        let asked = Arc::new(Mutex::new(Vec::<String>::new()));
        r.drain = Some(Arc::new({
            let (gate, asked) = (Arc::clone(&gate), Arc::clone(&asked));
            move |pod| {
                asked.lock().unwrap().push(pod);
                let gate = Arc::clone(&gate);
                Box::pin(async move { gate.notified().await })
            }
        }));
        apply(&r, POD);
        sync(&r).await;
        assert!(view_of(&r, "default/p").ready);
        env.systemd.clear_calls();
        r.state.delete(&pod_key("p")).unwrap();
        let pass = sync(&r).await;
        assert_eq!(pass.stopped.len(), 1, "{pass:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*asked.lock().unwrap(), ["default/p"]);
        let stops = || {
            env.systemd
                .calls()
                .iter()
                .filter(|c| matches!(c, Call::Stop(_)))
                .count()
        };
        assert_eq!(stops(), 0, "no stop job before the pod is drained");
        let view = view_of(&r, "default/p");
        assert!(view.terminating && !view.ready, "{view:?}");
        assert_eq!(view.status(), "Terminating");
        // Passes meanwhile neither stop it twice nor forget it.
        sync(&r).await;
        assert!(view_of(&r, "default/p").terminating);
        gate.notify_one();
        stops_done(&r).await;
        assert_eq!(stops(), 1);
        sync(&r).await;
        assert!(r.views.read().unwrap().get("default/p").is_none());
    }

    /// Places every pod on this node (n1), or on n2 while `elsewhere` is set.
    fn switched_placer(elsewhere: &Arc<std::sync::atomic::AtomicBool>) -> Placer {
        let elsewhere = Arc::clone(elsewhere);
        Arc::new(move |pods: &[&PodInstance]| {
            let node = if elsewhere.load(Ordering::SeqCst) {
                "n2"
            } else {
                "n1"
            };
            pods.iter()
                .map(|p| {
                    (
                        format!("{}/{}", p.namespace, p.name),
                        crate::schedule::Placement::Node(node.to_owned()),
                    )
                })
                .collect::<BTreeMap<_, _>>()
                .into()
        })
    }

    /// A pod placed on another node is handed over: it keeps serving here (ready, `moving`) until
    /// the hand-over says the new copy took over, and only then goes out of service, drains and
    /// stops.
    #[tokio::test]
    async fn a_moved_pod_serves_until_handed_over_then_drains_and_stops() {
        let env = env();
        let mut r = env.reconciler();
        let elsewhere = Arc::new(std::sync::atomic::AtomicBool::new(false));
        r.placer = Some(switched_placer(&elsewhere));
        let handed = Arc::new(tokio::sync::Notify::new());
        r.handoff = Some(Arc::new({
            let handed = Arc::clone(&handed);
            move |_pod| {
                let handed = Arc::clone(&handed);
                Box::pin(async move { handed.notified().await })
            }
        }));
        let drained = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
        r.drain = Some(Arc::new({
            let (drained, views) = (Arc::clone(&drained), Arc::clone(&r.views));
            move |pod| {
                // Out of service by the time the drain is asked for.
                let terminating = views
                    .read()
                    .unwrap()
                    .get(&pod)
                    .is_some_and(|v| v.terminating);
                drained.lock().unwrap().push((pod, terminating));
                Box::pin(async {})
            }
        }));
        apply(&r, POD);
        sync(&r).await;
        assert!(view_of(&r, "default/p").ready);
        env.systemd.clear_calls();
        elsewhere.store(true, Ordering::SeqCst);
        let pass = sync(&r).await;
        assert_eq!(pass.stopped.len(), 1, "{pass:?}");
        sync(&r).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let view = view_of(&r, "default/p");
        assert!(view.moving && view.ready && !view.terminating, "{view:?}");
        assert!(
            drained.lock().unwrap().is_empty(),
            "no drain before the hand-over"
        );
        assert!(
            !env.systemd
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Stop(_)))
        );
        handed.notify_one();
        stops_done(&r).await;
        assert_eq!(*drained.lock().unwrap(), [("default/p".to_owned(), true)]);
        assert!(
            env.systemd
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Stop(_)))
        );
    }

    /// A pod this node's claim holds back is Pending with the reason and gets nothing (no file, no
    /// job) until the claim has stood; one whose files are here already runs on whatever the
    /// claim says (a restart of podswarmd never takes a running pod out of service).
    #[tokio::test]
    async fn a_claimed_pod_starts_only_once_its_claim_stood() {
        let env = env();
        let mut r = env.reconciler();
        let claiming = Arc::new(std::sync::atomic::AtomicBool::new(true));
        r.placer = Some(Arc::new({
            let claiming = Arc::clone(&claiming);
            move |pods: &[&PodInstance]| {
                let at: BTreeMap<String, crate::schedule::Placement> = pods
                    .iter()
                    .map(|p| {
                        let key = format!("{}/{}", p.namespace, p.name);
                        (key, crate::schedule::Placement::Node("n1".to_owned()))
                    })
                    .collect();
                let held = if claiming.load(Ordering::SeqCst) {
                    at.keys()
                        .map(|k| (k.clone(), Duration::from_secs(2)))
                        .collect()
                } else {
                    BTreeMap::new()
                };
                Placed { at, claiming: held }
            }
        }));
        apply(&r, POD);
        let pass = sync(&r).await;
        assert!(pass.started.is_empty(), "{pass:?}");
        assert_eq!(pass.written, ["podswarm.network"], "no file of the pod");
        let view = view_of(&r, "default/p");
        assert_eq!(view.phase, Phase::Pending);
        assert_eq!(view.node, "n1", "the claim is published as this node's");
        assert!(view.message.unwrap().contains("claim"));

        claiming.store(false, Ordering::SeqCst);
        let pass = sync(&r).await;
        assert_eq!(pass.started.len(), 1, "{pass:?}");
        assert!(view_of(&r, "default/p").ready);

        // Claimed again (a restart forgot how long it stood): the running pod is left alone.
        claiming.store(true, Ordering::SeqCst);
        env.systemd.clear_calls();
        let pass = sync(&r).await;
        assert!(pass.is_noop(), "{pass:?}");
        assert!(view_of(&r, "default/p").ready);
        assert!(env.systemd.calls().is_empty(), "{:?}", env.systemd.calls());
    }

    /// A hand-over is called off when placement puts the pod back here (an uncordon mid-drain):
    /// the copy goes on serving and nothing stops.
    #[tokio::test]
    async fn a_hand_over_is_called_off_when_the_pod_is_placed_here_again() {
        let env = env();
        let mut r = env.reconciler();
        let elsewhere = Arc::new(std::sync::atomic::AtomicBool::new(false));
        r.placer = Some(switched_placer(&elsewhere));
        // No other node ever takes it over.
        r.handoff = Some(Arc::new(|_pod| Box::pin(std::future::pending())));
        r.drain = Some(Arc::new(|_pod| Box::pin(async {})));
        apply(&r, POD);
        sync(&r).await;
        env.systemd.clear_calls();
        elsewhere.store(true, Ordering::SeqCst);
        sync(&r).await;
        assert!(view_of(&r, "default/p").moving);
        elsewhere.store(false, Ordering::SeqCst);
        sync(&r).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        sync(&r).await;
        let view = view_of(&r, "default/p");
        assert!(!view.moving && !view.terminating && view.ready, "{view:?}");
        assert!(
            !env.systemd
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Stop(_))),
            "{:?}",
            env.systemd.calls()
        );
        assert!(r.memory.lock().unwrap().stopping.is_empty());
    }

    /// Was a defect: the network error kept only its text, not its cause.
    #[test]
    fn a_network_error_keeps_its_cause() {
        let cause = podswarm_generator::escape::raw("\"").unwrap_err();
        let e = ReconcileError::Network(cause);
        assert_eq!(e.to_string(), "cannot render the pod network unit");
        assert!(std::error::Error::source(&e).is_some());
    }
}
