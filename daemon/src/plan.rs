//! The reconciler's decisions as a pure function, like `schedule.rs`: what this node wants
//! ([`Desired`]), the files podswarm owns on disk, the states of the wanted units and what earlier
//! passes left behind ([`Memory`]) go in; a [`Plan`] comes out. No I/O and no clock, so every rule is
//! a row in a table test, without fakes.
//!
//! # The shape of a plan
//!
//! A plan is a list of [`Step`]s that `execute.rs` carries out in order; the actions of one step run
//! together. The order, and why:
//!
//! 1. [`Step::Stop`] the pods that are going away, in the background: a container may take its
//!    whole grace period, and other pods must not wait for it. Their files stay: a reload that finds
//!    a stopping unit's file gone turns the unit `not-found` and drops its remaining stop commands
//!    (`.kube` units would lose `podman kube down`). The first pass after the stop finished plans
//!    their [`Step::Remove`].
//! 2. [`Step::Retire`] units that no pod owns and whose files go now (a claim's volume unit: the
//!    data stays, only the unit goes).
//! 3. [`Step::Write`] new and changed files and [`Step::Remove`] those of stopped pods, then one
//!    [`Step::Reload`] for all of them, never one per pod.
//! 4. [`Step::Jobs`]: start new pods, restart changed ones in place, many at a time.
//!
//! Adoption needs no rule of its own: after a restart of podswarmd the rendered files equal the
//! ones on disk and the units are active, so the plan is empty.
//!
//! # Adding a step
//!
//! Rollouts will need "start the new pod, wait until it is ready, then stop the old one". That is
//! an addition, not a rewrite: a variant (say `AwaitReady(pods)`), the rule in [`plan`] that emits
//! it after the [`Step::Jobs`] that start the new pods and puts the old pods' [`Step::Stop`] after
//! it (steps are a list, so a stop may come last as well as first), and one arm in the executor's
//! `match`. The rules that make the other steps do not change.
//!
//! # What a plan cannot know
//!
//! Quadlet rejects a file by generating no unit, which systemd shows only after the reload that
//! should have loaded it. When a plan reloads, the unit states it was given predate that reload;
//! so the plan judges load states only when it reloads nothing ([`rejected_files`]), and otherwise
//! the executor judges them on the states it reads right after its [`Step::Reload`]
//! ([`unloaded_files`]) and drops the jobs of the pods it rejects. Whether to start or restart
//! does not depend on the reload (it changes load states, not active ones), so the plan decides
//! that either way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use podswarm_generator::{RenderedPod, Role, UnitFile, pod_of, service_of, volume_of};
use podswarm_manifest::PodInstance;
use podswarm_units::UnitState;

/// Everything this node wants, rendered: computed from the replicated objects and placement.
#[derive(Debug, Default)]
pub struct Desired {
    /// Files of the node itself (the pod network).
    pub node_files: Vec<UnitFile>,
    /// Every pod this node knows about that is placed here or nowhere, by `ns/name`.
    pub pods: BTreeMap<String, DesiredPod>,
}

#[derive(Debug)]
pub struct DesiredPod {
    pub pod: PodInstance,
    /// When its object was created (for `AGE`).
    pub created: u64,
    pub target: Target,
}

/// What should become of a pod on this node.
#[derive(Debug)]
pub enum Target {
    /// It runs here.
    Run(Box<Runnable>),
    /// It is placed here but cannot run yet; whatever of it runs is kept.
    Hold(Hold),
    /// No node can take it (placement's reason); nothing of it runs here.
    Unplaced(String),
}

#[derive(Debug)]
pub struct Runnable {
    pub ip: Ipv4Addr,
    pub rendered: RenderedPod,
}

/// Why a pod placed here cannot run yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// ConfigMaps and Secrets it needs do not exist yet (`ConfigMap ns/name`).
    Missing(Vec<String>),
    /// It cannot be rendered (the generator's error).
    Invalid(String),
    /// This node's claim on it has not stood long enough yet (how long it still must): another
    /// node may have placed it on itself at the same time (see `Link::place_claimed`).
    Claiming(std::time::Duration),
}

impl Desired {
    pub fn runnable(&self) -> impl Iterator<Item = (&String, &DesiredPod, &Runnable)> {
        self.pods.iter().filter_map(|(k, d)| match &d.target {
            Target::Run(r) => Some((k, d, r.as_ref())),
            _ => None,
        })
    }

    /// Whether the pod's units belong on this node (running or held), so nothing of it is stopped.
    pub fn keeps(&self, pod: &str) -> bool {
        self.pods
            .get(pod)
            .is_some_and(|d| !matches!(d.target, Target::Unplaced(_)))
    }

    /// The services of every unit of the pods that run here: the states [`plan`] needs.
    pub fn services(&self) -> BTreeSet<String> {
        self.runnable()
            .flat_map(|(_, _, r)| r.rendered.units.iter().filter_map(service))
            .collect()
    }
}

/// The systemd service a rendered file becomes, if it is a unit.
pub fn service(u: &UnitFile) -> Option<String> {
    service_of(&u.file_name, &u.contents)
}

/// Files podswarm owns in the unit directory: name → contents.
pub type OnDisk = BTreeMap<String, String>;

/// Unit states by unit name.
pub type Units = BTreeMap<String, UnitState>;

/// What earlier passes left that the files and units do not show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Pods whose stop runs in the background now.
    pub stopping: BTreeSet<String>,
    /// Pods whose stop finished: their files go in the next pass.
    pub stopped: BTreeSet<String>,
    /// Pods with files Quadlet rejected, with its message (asked once per change of files).
    pub rejected: BTreeMap<String, String>,
    /// Stopping pods that still serve while another node's copy gets ready to take over.
    pub handing_off: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Pods that run here but have files Quadlet rejected, seen in the unit states the plan was
    /// given when it reloads nothing: they are not started, and fail with Quadlet's message.
    pub rejected: BTreeMap<String, Vec<String>>,
}

/// One step of a plan; see the module documentation for their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stop pods in the background; a pass after each has stopped removes its files.
    Stop(Vec<Stop>),
    /// Stop these units (awaited), then reset them; their files go in this pass.
    Retire(Vec<String>),
    Write(Vec<Write>),
    Remove(Vec<Remove>),
    /// `Manager.Reload`, then the load state of every unit of the pods that run here.
    Reload,
    /// Start and restart jobs, run concurrently and each awaited.
    Jobs(Vec<Job>),
}

/// What goes when a pod goes: its services, then its volume units and pod-scoped podman volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stop {
    pub pod: String,
    pub services: Vec<String>,
    pub volumes: Vec<StopVolume>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopVolume {
    /// The `.volume` unit's service.
    pub service: String,
    /// The podman volume to delete with it.
    pub volume: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: String,
    pub contents: String,
    /// The pod the file belongs to, if any.
    pub pod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remove {
    pub file: String,
    /// The pod the file belonged to, if any.
    pub pod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub pod: String,
    pub unit: String,
    pub kind: JobKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Start,
    Restart,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.rejected.is_empty()
    }

    pub fn reloads(&self) -> usize {
        self.steps.iter().filter(|s| **s == Step::Reload).count()
    }

    pub fn stops(&self) -> impl Iterator<Item = &Stop> {
        self.actions(|s| match s {
            Step::Stop(stops) => Some(stops),
            _ => None,
        })
    }

    pub fn writes(&self) -> impl Iterator<Item = &Write> {
        self.actions(|s| match s {
            Step::Write(w) => Some(w),
            _ => None,
        })
    }

    pub fn removes(&self) -> impl Iterator<Item = &Remove> {
        self.actions(|s| match s {
            Step::Remove(r) => Some(r),
            _ => None,
        })
    }

    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.actions(|s| match s {
            Step::Jobs(j) => Some(j),
            _ => None,
        })
    }

    /// The actions of every step of one kind, across steps.
    fn actions<'a, T: 'a>(
        &'a self,
        of: impl Fn(&'a Step) -> Option<&'a Vec<T>>,
    ) -> impl Iterator<Item = &'a T> {
        self.steps.iter().filter_map(of).flatten()
    }
}

/// The plan that takes this node from `on_disk` and `units` to `desired`.
pub fn plan(desired: &Desired, on_disk: &OnDisk, units: &Units, memory: &Memory) -> Plan {
    let files = wanted_files(desired, on_disk);
    let writes: Vec<Write> = files
        .iter()
        .filter(|(name, contents)| on_disk.get(**name).map(String::as_str) != Some(**contents))
        .map(|(name, contents)| Write {
            file: (*name).to_owned(),
            contents: (*contents).to_owned(),
            pod: pod_of(contents).map(|k| k.to_string()),
        })
        .collect();
    // A pod with a file that changed restarts; one with only new files starts if it is not running.
    let changed: BTreeSet<&String> = writes
        .iter()
        .filter(|w| on_disk.contains_key(&w.file))
        .filter_map(|w| w.pod.as_ref())
        .collect();

    let leaving = leaving(desired, &files, on_disk, memory);
    let any_not_found = units.values().any(|s| s.load_state == "not-found");
    // Files on disk but never loaded (a crash between write and reload) need a reload too.
    let reload = !writes.is_empty() || !leaving.remove.is_empty() || any_not_found;

    let mut rejected = BTreeMap::new();
    let mut jobs = Vec::new();
    for (key, d, run) in desired.runnable() {
        // Load states are judged after the last reload: these when the plan reloads nothing,
        // else those the executor reads after its reload (which may load what failed before).
        if !reload {
            let bad = rejected_files(&run.rendered, units);
            if !bad.is_empty() {
                rejected.insert(key.clone(), bad);
                continue;
            }
        }
        let service = &run.rendered.service;
        let Some(state) = units.get(service) else {
            continue;
        };
        let kind = if changed.contains(key) && state.main_started_us != 0 {
            JobKind::Restart
        } else if needs_start(state, d.pod.spec.restart_policy.as_deref()) {
            JobKind::Start
        } else {
            continue;
        };
        jobs.push(Job {
            pod: key.clone(),
            unit: service.clone(),
            kind,
        });
    }

    let mut steps = Vec::new();
    if !leaving.stop.is_empty() {
        steps.push(Step::Stop(leaving.stop));
    }
    if !leaving.retire.is_empty() {
        steps.push(Step::Retire(leaving.retire));
    }
    if !writes.is_empty() {
        steps.push(Step::Write(writes));
    }
    if !leaving.remove.is_empty() {
        steps.push(Step::Remove(leaving.remove));
    }
    if reload {
        steps.push(Step::Reload);
    }
    if !jobs.is_empty() {
        steps.push(Step::Jobs(jobs));
    }
    Plan { steps, rejected }
}

/// Every file the node wants, name → contents: the node's own, those of the pods that run, and
/// the files on disk of held pods (their running units are kept as they are).
fn wanted_files<'a>(desired: &'a Desired, on_disk: &'a OnDisk) -> BTreeMap<&'a str, &'a str> {
    let mut files: BTreeMap<&str, &str> = desired
        .node_files
        .iter()
        .chain(desired.runnable().flat_map(|(_, _, r)| &r.rendered.units))
        .map(|u| (u.file_name.as_str(), u.contents.as_str()))
        .collect();
    for (name, contents) in on_disk {
        let held = pod_of(contents).is_some_and(|k| {
            desired
                .pods
                .get(&k.to_string())
                .is_some_and(|d| matches!(d.target, Target::Hold(_)))
        });
        if held {
            files.entry(name).or_insert(contents);
        }
    }
    files
}

#[derive(Debug, Default)]
struct Leaving {
    stop: Vec<Stop>,
    retire: Vec<String>,
    remove: Vec<Remove>,
}

/// Files on disk that no one wants: those of stopped pods go now, those of stopping pods wait, a
/// pod newly gone starts stopping; files of no pod (a claim's volume) go now.
fn leaving(
    desired: &Desired,
    files: &BTreeMap<&str, &str>,
    on_disk: &OnDisk,
    memory: &Memory,
) -> Leaving {
    let mut out = Leaving::default();
    let mut stops: BTreeMap<String, Stop> = BTreeMap::new();
    for (name, contents) in on_disk
        .iter()
        .filter(|(n, _)| !files.contains_key(n.as_str()))
    {
        let service = service_of(name, contents);
        match pod_of(contents).map(|k| k.to_string()) {
            // A pod wanted here again is not on its way out, whatever an earlier pass marked: a
            // stale `stopped` mark would remove its files without stopping it, leaving its unit
            // running as `not-found` where nothing ever stops it.
            Some(key) if memory.stopped.contains(&key) && !desired.keeps(&key) => {
                out.remove.push(Remove {
                    file: name.clone(),
                    pod: Some(key),
                });
            }
            Some(key) if memory.stopping.contains(&key) => {}
            Some(key) => {
                // A file of no unit (a pod definition) goes with its pod's units.
                let Some(service) = service else {
                    continue;
                };
                let stop = stops.entry(key.clone()).or_insert_with(|| Stop {
                    pod: key,
                    ..Stop::default()
                });
                if name.ends_with(".volume") {
                    // Pod-scoped volumes (emptyDir) go with their pods.
                    stop.volumes.push(StopVolume {
                        service,
                        volume: volume_of(name, contents),
                    });
                } else {
                    stop.services.push(service);
                }
            }
            None => {
                // A claim's volume unit: the data stays, only the unit goes.
                if let Some(service) = service.filter(|_| name.ends_with(".volume")) {
                    out.retire.push(service);
                }
                out.remove.push(Remove {
                    file: name.clone(),
                    pod: None,
                });
            }
        }
    }
    out.stop = stops.into_values().collect();
    out
}

/// The files of a pod whose units systemd does not have loaded although it knows them: Quadlet
/// rejected them. (`not-found` is a unit that no reload has loaded yet, not a rejection.)
pub fn rejected_files(rendered: &RenderedPod, units: &Units) -> Vec<String> {
    files_loaded(rendered, units, |load| {
        load != "loaded" && load != "not-found"
    })
}

/// The files of a pod whose units are not loaded after a reload, which loads every file there is.
pub fn unloaded_files(rendered: &RenderedPod, units: &Units) -> Vec<String> {
    files_loaded(rendered, units, |load| load != "loaded")
}

/// The files of a pod whose units systemd knows, with a load state that `bad` refuses.
fn files_loaded(rendered: &RenderedPod, units: &Units, bad: impl Fn(&str) -> bool) -> Vec<String> {
    rendered
        .units
        .iter()
        .filter(|u| {
            service(u)
                .and_then(|s| units.get(&s))
                .is_some_and(|st| bad(&st.load_state))
        })
        .map(|u| u.file_name.clone())
        .collect()
}

/// Whether a pod's main unit should be started now.
pub fn needs_start(state: &UnitState, restart_policy: Option<&str>) -> bool {
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

/// The unit of each container of a pod, in spec order: its own `.container` unit's service in a
/// `.pod`, else the service that stands for the pod (a single container, or a `.kube` pod's).
pub fn container_units(pod: &PodInstance, rendered: &RenderedPod) -> Vec<(String, String)> {
    pod.spec
        .containers
        .iter()
        .map(|c| {
            let unit = rendered
                .units
                .iter()
                .find(|u| matches!(&u.role, Role::Container { name, .. } if *name == c.name))
                .and_then(service)
                .unwrap_or_else(|| rendered.service.clone());
            (c.name.clone(), unit)
        })
        .collect()
}

/// The images each unit of a pod runs (what a failed pull would have fetched), by service.
pub fn unit_images(rendered: &RenderedPod) -> BTreeMap<String, Vec<String>> {
    rendered
        .units
        .iter()
        .filter_map(|u| {
            let images = match &u.role {
                Role::Container { image, .. } => vec![image.clone()],
                Role::Kube { containers } => containers.iter().map(|(_, i)| i.clone()).collect(),
                _ => return None,
            };
            Some((service(u)?, images))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_generator::{NodeContext, Objects, Options, PodNetwork, render_network};
    use podswarm_manifest::{Limits, Policy, parse, pods_of};

    fn node() -> NodeContext {
        NodeContext {
            node_name: "n1".into(),
            node_ip: None,
            network: PodNetwork {
                subnet: "10.244.0.0/24".parse().unwrap(),
            },
            dns_server: None,
            cluster_domain: "cluster.local".into(),
        }
    }

    fn pod_yaml(name: &str, image: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, image: {image}}}]\n"
        )
    }

    fn pods(yaml: &str) -> Vec<PodInstance> {
        parse(yaml, "t", &Limits::default(), &Policy::default())
            .unwrap()
            .objects
            .iter()
            .flat_map(|o| pods_of(&o.object))
            .collect()
    }

    fn run(pod: PodInstance, ip: u8) -> (String, DesiredPod) {
        let ip = Ipv4Addr::new(10, 244, 0, ip);
        let rendered = podswarm_generator::render_pod(
            &pod,
            Some(ip),
            &node(),
            &Options::default(),
            &Objects::default(),
        )
        .unwrap();
        let key = format!("{}/{}", pod.namespace, pod.name);
        let target = Target::Run(Box::new(Runnable { ip, rendered }));
        (
            key,
            DesiredPod {
                pod,
                created: 0,
                target,
            },
        )
    }

    fn desired(pods: impl IntoIterator<Item = (String, DesiredPod)>) -> Desired {
        Desired {
            node_files: vec![render_network(&node().network).unwrap()],
            pods: pods.into_iter().collect(),
        }
    }

    /// The files of `desired`, as a pass that wrote them left them.
    fn written(desired: &Desired) -> OnDisk {
        desired
            .node_files
            .iter()
            .chain(desired.runnable().flat_map(|(_, _, r)| &r.rendered.units))
            .map(|u| (u.file_name.clone(), u.contents.clone()))
            .collect()
    }

    fn state(name: &str, load: &str, active: &str, started: u64) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: load.into(),
            active_state: active.into(),
            sub_state: if active == "active" {
                "running"
            } else {
                "dead"
            }
            .into(),
            main_started_us: started,
            ..UnitState::default()
        }
    }

    /// The states of every unit of `desired`, all loaded and running (or not-found: never loaded).
    fn units(desired: &Desired, load: &str, active: &str) -> Units {
        desired
            .services()
            .into_iter()
            .map(|s| {
                let started = u64::from(active == "active");
                (s.clone(), state(&s, load, active, started))
            })
            .collect()
    }

    fn network_only() -> OnDisk {
        written(&desired([]))
    }

    fn jobs(plan: &Plan) -> Vec<(&str, JobKind)> {
        plan.jobs().map(|j| (j.unit.as_str(), j.kind)).collect()
    }

    const P: &str = "podswarm-default_p.service";

    #[test]
    fn adopting_running_pods_plans_nothing() {
        let want = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let plan = plan(
            &want,
            &written(&want),
            &units(&want, "loaded", "active"),
            &Memory::default(),
        );
        assert_eq!(plan, Plan::default(), "no write, no reload, no job");
    }

    #[test]
    fn a_new_pod_is_written_loaded_once_and_started() {
        let want = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let plan = plan(
            &want,
            &network_only(),
            &units(&want, "not-found", "inactive"),
            &Memory::default(),
        );
        assert_eq!(
            plan.writes().map(|w| w.file.as_str()).collect::<Vec<_>>(),
            ["podswarm-default_p.container"]
        );
        assert_eq!(plan.reloads(), 1);
        assert_eq!(jobs(&plan), [(P, JobKind::Start)]);
        let order: Vec<&str> = plan
            .steps
            .iter()
            .map(|s| match s {
                Step::Write(_) => "write",
                Step::Reload => "reload",
                Step::Jobs(_) => "jobs",
                _ => "other",
            })
            .collect();
        assert_eq!(order, ["write", "reload", "jobs"]);
    }

    #[test]
    fn a_changed_pod_is_restarted_in_place() {
        let before = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let after = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:2")).remove(0),
            2,
        )]);
        let plan = plan(
            &after,
            &written(&before),
            &units(&before, "loaded", "active"),
            &Memory::default(),
        );
        assert_eq!(plan.writes().count(), 1);
        assert_eq!(plan.reloads(), 1);
        assert_eq!(jobs(&plan), [(P, JobKind::Restart)]);
        assert_eq!(plan.stops().count(), 0, "restarted in place, not stopped");
    }

    #[test]
    fn a_deleted_pod_is_stopped_first_and_its_files_go_after_the_stop() {
        let before = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let on_disk = written(&before);
        let want = desired([]);
        let none = Units::new();

        // The pass that sees it gone: stop it, keep its files, no reload.
        let first = plan(&want, &on_disk, &none, &Memory::default());
        assert_eq!(
            first.steps,
            [Step::Stop(vec![Stop {
                pod: "default/p".into(),
                services: vec![P.into()],
                volumes: vec![],
            }])]
        );
        // While the stop runs: nothing, the files outlive the stop job.
        let stopping = Memory {
            stopping: ["default/p".to_owned()].into(),
            ..Memory::default()
        };
        assert_eq!(plan(&want, &on_disk, &none, &stopping), Plan::default());
        // After it: the files go, with one reload.
        let stopped = Memory {
            stopped: ["default/p".to_owned()].into(),
            ..Memory::default()
        };
        let last = plan(&want, &on_disk, &none, &stopped);
        assert_eq!(
            last.steps,
            [
                Step::Remove(vec![Remove {
                    file: "podswarm-default_p.container".into(),
                    pod: Some("default/p".into())
                }]),
                Step::Reload
            ]
        );
    }

    #[test]
    fn a_pod_wanted_again_is_not_removed_on_a_stale_stopped_mark() {
        let want = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let stopped = Memory {
            stopped: ["default/p".to_owned()].into(),
            ..Memory::default()
        };
        let plan = plan(
            &want,
            &written(&want),
            &units(&want, "loaded", "inactive"),
            &stopped,
        );
        assert_eq!(plan.removes().count(), 0);
        assert_eq!(jobs(&plan), [(P, JobKind::Start)]);
    }

    #[test]
    fn a_rejected_unit_fails_its_pod_and_is_not_started() {
        let want = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let plan = plan(
            &want,
            &written(&want),
            &units(&want, "bad-setting", "inactive"),
            &Memory::default(),
        );
        assert_eq!(
            plan.rejected,
            BTreeMap::from([(
                "default/p".to_owned(),
                vec!["podswarm-default_p.container".to_owned()]
            )])
        );
        assert_eq!(plan.steps, [], "not started, and nothing to reload");
    }

    #[test]
    fn a_pod_waiting_for_a_configmap_keeps_its_running_units() {
        let running = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let on_disk = written(&running);
        let mut want = desired([]);
        want.pods.insert(
            "default/p".into(),
            DesiredPod {
                pod: pods(&pod_yaml("p", "localhost/busybox:2")).remove(0),
                created: 0,
                target: Target::Hold(Hold::Missing(vec!["ConfigMap default/cm".into()])),
            },
        );
        let plan = plan(&want, &on_disk, &Units::new(), &Memory::default());
        assert_eq!(plan, Plan::default(), "nothing stopped, removed or written");
    }

    #[test]
    fn an_unplaced_pod_is_stopped_here() {
        let running = desired([run(
            pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
            2,
        )]);
        let mut want = desired([]);
        want.pods.insert(
            "default/p".into(),
            DesiredPod {
                pod: pods(&pod_yaml("p", "localhost/busybox:1")).remove(0),
                created: 0,
                target: Target::Unplaced("no node is ready".into()),
            },
        );
        let plan = plan(&want, &written(&running), &Units::new(), &Memory::default());
        assert_eq!(plan.stops().count(), 1);
    }

    #[test]
    fn fifty_new_pods_cost_one_reload() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 50\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: localhost/busybox:1}]\n";
        let want = desired(pods(yaml).into_iter().zip(2..).map(|(p, ip)| run(p, ip)));
        let plan = plan(
            &want,
            &network_only(),
            &units(&want, "not-found", "inactive"),
            &Memory::default(),
        );
        assert_eq!(plan.writes().count(), 50);
        assert_eq!(plan.reloads(), 1);
        assert_eq!(plan.jobs().count(), 50);
        assert!(plan.jobs().all(|j| j.kind == JobKind::Start));
    }

    #[test]
    fn a_claims_volume_unit_is_retired_with_its_file() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: localhost/busybox:1}]\n  volumes: [{name: d, persistentVolumeClaim: {claimName: db}}]\n";
        let before = desired([run(pods(yaml).remove(0), 2)]);
        let plan = plan(
            &desired([]),
            &written(&before),
            &Units::new(),
            &Memory::default(),
        );
        assert_eq!(
            plan.steps,
            [
                Step::Stop(vec![Stop {
                    pod: "default/p".into(),
                    services: vec![P.into()],
                    volumes: vec![],
                }]),
                Step::Retire(vec!["podswarm-default__db-volume.service".into()]),
                Step::Remove(vec![Remove {
                    file: "podswarm-default__db.volume".into(),
                    pod: None
                }]),
                Step::Reload,
            ]
        );
    }

    #[test]
    fn restart_policies_decide_what_is_started_again() {
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
