//! Carrying out a [`Plan`]: files written atomically, one reload, systemd jobs through the `units`
//! crate (the only D-Bus user), podman for secrets and volumes.
//!
//! The executor decides as little as it can. Its one judgement is the one the plan cannot make
//! (see `plan.rs`): right after a reload it reads the load state of every unit of the pods that run
//! here, and a pod with a file Quadlet rejected loses its jobs. Everything else it does is what a
//! step says, in order, plus what every pass does whatever the plan: the podman secrets and
//! ConfigMap files of the running pods are made current before any step (units that use them may
//! start), and secrets nothing uses any more are removed after the last step.
//!
//! A stop runs in a task of its own and wakes the run loop when it is done, so that the pass that
//! follows removes the pod's files. Before its stop job, a pod on its way out is drained (the
//! pass's observation marks it terminating; the stop waits until every live node's DNS and ingress
//! dropped it, bounded by the drain timeout), then its `preStop` hooks run (`lifecycle.rs`), then
//! systemd stops it: SIGTERM, and SIGKILL after `terminationGracePeriodSeconds`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use podswarm_units::{JobResult, Systemd};

use crate::plan::{self, Desired, Job, JobKind, Plan, Remove, Step, Stop, Write};
use crate::podman::Podman;
use crate::reconcile::{Pass, ReconcileError, Reconciler, error_chain};
use crate::state::write_atomic;

/// What carrying out a plan did.
#[derive(Debug, Default)]
pub(crate) struct Executed {
    pub pass: Pass,
    /// Pods with files Quadlet rejected, with the message their status shows.
    pub rejected: BTreeMap<String, String>,
}

impl<S: Systemd, P: Podman> Reconciler<S, P> {
    /// Carries out `plan`, made for `desired`. An `Err` is a failure of the pass (a file that
    /// cannot be written, systemd unreachable); a failed job only lands on its pod.
    pub(crate) async fn execute(
        &self,
        desired: &Desired,
        plan: &Plan,
    ) -> Result<Executed, ReconcileError> {
        let mut pass = Pass::default();
        let secrets = self.supply(desired).await?;
        // Pods found rejected after this pass's reload; until then, what the plan saw.
        let mut rejected = plan.rejected.clone();
        for step in &plan.steps {
            match step {
                Step::Stop(stops) => {
                    for stop in stops {
                        pass.stopped.extend(stop.services.iter().cloned());
                        self.spawn_stop(stop.clone());
                    }
                }
                Step::Retire(units) => {
                    for unit in units {
                        let _ = self.systemd.stop(unit).await;
                        let _ = self.systemd.reset_failed(unit).await;
                    }
                }
                Step::Write(writes) => pass.written.extend(self.write(writes)?),
                Step::Remove(removes) => pass.removed.extend(self.remove(removes)?),
                Step::Reload => {
                    self.systemd.reload().await?;
                    pass.reloaded = true;
                    rejected = self.loaded_check(desired).await?;
                }
                Step::Jobs(jobs) => {
                    let admitted = jobs.iter().filter(|j| !rejected.contains_key(&j.pod));
                    for (job, result) in self.jobs(admitted.cloned().collect()).await {
                        log_job(desired, &job, &result);
                        match job.kind {
                            JobKind::Restart => pass.restarted.push(job.unit),
                            JobKind::Start => pass.started.push(job.unit),
                        }
                    }
                }
            }
        }
        self.prune_secrets(&secrets).await;
        let rejected = self.remember(desired, plan, &rejected).await;
        Ok(Executed { pass, rejected })
    }

    /// Makes the podman secrets and ConfigMap files of the running pods current, and removes the
    /// data of pods that are gone. Returns the secrets wanted and those that were there.
    async fn supply(&self, desired: &Desired) -> Result<Secrets, ReconcileError> {
        let wanted: BTreeMap<String, Vec<u8>> = desired
            .runnable()
            .flat_map(|(_, _, r)| &r.rendered.secrets)
            .map(|s| (s.name.clone(), s.data.clone()))
            .collect();
        let existing = self.podman.secrets().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot list podman secrets");
            BTreeSet::new()
        });
        for (name, data) in &wanted {
            if !existing.contains(name)
                && let Err(e) = self.podman.create_secret(name, data).await
            {
                tracing::error!(error = %e, secret = %name, "cannot create a podman secret");
            }
        }
        self.write_data(desired)?;
        Ok(Secrets { wanted, existing })
    }

    async fn prune_secrets(&self, secrets: &Secrets) {
        for name in secrets
            .existing
            .iter()
            .filter(|n| !secrets.wanted.contains_key(*n))
        {
            if let Err(e) = self.podman.remove_secret(name).await {
                tracing::warn!(error = %e, secret = %name, "cannot remove an unused podman secret");
            }
        }
    }

    fn write_data(&self, desired: &Desired) -> Result<(), ReconcileError> {
        for (_, _, run) in desired.runnable() {
            for dir in &run.rendered.directories {
                std::fs::create_dir_all(dir).map_err(|source| ReconcileError::Write {
                    path: dir.into(),
                    source,
                })?;
            }
            for f in &run.rendered.data_files {
                let path = PathBuf::from(&f.path);
                if std::fs::read(&path).ok().as_deref() != Some(f.contents.as_slice()) {
                    write_atomic(&path, &f.contents, f.mode)
                        .map_err(|source| ReconcileError::Write { path, source })?;
                }
            }
        }
        // Data of pods that are gone (`<ns>_<pod>` directories).
        let keep: BTreeSet<String> = desired
            .pods
            .keys()
            .filter(|k| desired.keeps(k))
            .map(|k| k.replacen('/', "_", 1))
            .collect();
        if let Ok(entries) = std::fs::read_dir(&self.settings.data_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains('_') && !keep.contains(&name) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    fn write(&self, writes: &[Write]) -> Result<Vec<String>, ReconcileError> {
        for w in writes {
            let path = self.settings.unit_dir.join(&w.file);
            write_atomic(&path, w.contents.as_bytes(), 0o644)
                .map_err(|source| ReconcileError::Write { path, source })?;
        }
        self.metrics
            .files_written
            .fetch_add(writes.len() as u64, Ordering::Relaxed);
        Ok(writes.iter().map(|w| w.file.clone()).collect())
    }

    fn remove(&self, removes: &[Remove]) -> Result<Vec<String>, ReconcileError> {
        // The pods' stops are done and their files go now: nothing of them is left to mark.
        if let Ok(mut m) = self.memory.lock() {
            for pod in removes.iter().filter_map(|r| r.pod.as_ref()) {
                m.stopped.remove(pod);
            }
        }
        for r in removes {
            let path = self.settings.unit_dir.join(&r.file);
            if let Err(source) = std::fs::remove_file(&path)
                && source.kind() != std::io::ErrorKind::NotFound
            {
                return Err(ReconcileError::Write { path, source });
            }
        }
        self.metrics
            .files_removed
            .fetch_add(removes.len() as u64, Ordering::Relaxed);
        Ok(removes.iter().map(|r| r.file.clone()).collect())
    }

    /// After a reload: the pods with a file whose unit systemd did not load (Quadlet rejected it).
    async fn loaded_check(
        &self,
        desired: &Desired,
    ) -> Result<BTreeMap<String, Vec<String>>, ReconcileError> {
        let units = self.unit_states(desired.services()).await?;
        Ok(desired
            .runnable()
            .map(|(key, _, run)| (key.clone(), plan::unloaded_files(&run.rendered, &units)))
            .filter(|(_, files)| !files.is_empty())
            .collect())
    }

    /// Keeps what the next passes need to know: rejections with Quadlet's message (asked again
    /// only when a pod's files changed), and no `stopped` mark on a pod wanted here again. Returns
    /// the rejected pods with their messages.
    async fn remember(
        &self,
        desired: &Desired,
        plan: &Plan,
        rejected: &BTreeMap<String, Vec<String>>,
    ) -> BTreeMap<String, String> {
        let changed: BTreeSet<&String> = plan.writes().filter_map(|w| w.pod.as_ref()).collect();
        let known = self
            .memory
            .lock()
            .map(|m| m.rejected.clone())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for (pod, files) in rejected {
            let message = match known.get(pod) {
                Some(message) if !changed.contains(pod) => message.clone(),
                _ => {
                    let names: Vec<&str> = files.iter().map(String::as_str).collect();
                    format!(
                        "systemd has no unit for {} after a reload: {}",
                        names.join(", "),
                        self.quadlet_message(&names).await
                    )
                }
            };
            out.insert(pod.clone(), message);
        }
        if let Ok(mut m) = self.memory.lock() {
            m.rejected = out.clone();
            // A pod wanted here again (placement moved it away and back while its stop ran, as it
            // does while a healed partition settles) is no longer on its way out.
            m.stopped.retain(|k| !desired.keeps(k));
        }
        out
    }

    /// Stops a pod in a task of its own; marks it stopped and wakes the run loop when done.
    fn spawn_stop(&self, stop: Stop) {
        self.metrics
            .stops
            .fetch_add(stop.services.len() as u64, Ordering::Relaxed);
        // Placed on another node now: a hand-over, when there is a way to wait for one.
        let handoff = self.handoff.clone().filter(|_| {
            self.placed
                .lock()
                .is_ok_and(|placed| placed.get(&stop.pod) == Some(&false))
        });
        let placed = Arc::clone(&self.placed);
        if let Ok(mut m) = self.memory.lock() {
            m.stopping.insert(stop.pod.clone());
            if handoff.is_some() {
                m.handing_off.insert(stop.pod.clone());
            }
        }
        // Out of service from now on (after the hand-over, for a pod that moves): the next status
        // publication takes the pod out of every node's view, and the drain below waits for that
        // (not for the rest of this pass).
        let views = Arc::clone(&self.views);
        let views_now = Arc::clone(&self.views);
        let out_of_service = move |pod: &str| {
            if let Ok(mut views) = views.write()
                && let Some(view) = views.get_mut(pod)
            {
                view.terminating = true;
                view.moving = false;
                view.ready = false;
            }
        };
        if let Some(view) = self
            .views
            .write()
            .ok()
            .as_mut()
            .and_then(|v| v.get_mut(&stop.pod))
        {
            view.moving = handoff.is_some();
        }
        if handoff.is_none() {
            out_of_service(&stop.pod);
        }
        let systemd = Arc::clone(&self.systemd);
        let podman = Arc::clone(&self.podman);
        let memory = Arc::clone(&self.memory);
        let wake = Arc::clone(&self.wake);
        let drain = self.drain.clone();
        // Its hooks, from the pod as it was last wanted here, against the address it ran at.
        let hooks = self
            .last_wanted
            .lock()
            .ok()
            .and_then(|w| w.get(&stop.pod).cloned())
            .map(|pod| {
                let ip = self
                    .views
                    .read()
                    .ok()
                    .and_then(|v| v.get(&stop.pod).and_then(|p| p.ip.clone()));
                let names = crate::lifecycle::podman_names(&pod, &self.settings.options);
                (pod, ip, names, self.settings.podman.clone())
            });
        // The terminating view (and so the status record that takes the pod out of every node's
        // view) comes from the observation at the end of this pass; the wait starts now.
        tokio::spawn(async move {
            let pod = stop.pod.clone();
            if let Some(handoff) = handoff {
                let started = std::time::Instant::now();
                let placed_now = || placed.lock().ok().and_then(|p| p.get(&pod).copied());
                // Placement may change its mind meanwhile (an uncordon, a rollout step, a delete):
                // the wait ends as soon as the pod is no longer placed on another node.
                let still_moving = async {
                    while placed_now() == Some(false) {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                };
                tokio::select! {
                    () = handoff(pod.clone()) => {}
                    () = still_moving => {}
                }
                if placed_now() == Some(true) {
                    // Placed here again: this copy goes on serving, and nothing stops.
                    tracing::debug!(pod = %pod, "hand-over called off: the pod is placed here again");
                    if let Ok(mut m) = memory.lock() {
                        m.handing_off.remove(&pod);
                        m.stopping.remove(&pod);
                    }
                    if let Ok(mut views) = views_now.write()
                        && let Some(view) = views.get_mut(&pod)
                    {
                        view.moving = false;
                    }
                    wake.notify_one();
                    return;
                }
                tracing::debug!(pod = %pod, waited_ms = started.elapsed().as_millis() as u64, "pod handed over");
                // Memory first: a refresh that writes the views meanwhile marks them from it.
                if let Ok(mut m) = memory.lock() {
                    m.handing_off.remove(&pod);
                }
                out_of_service(&pod);
            }
            if let Some(drain) = drain {
                let started = std::time::Instant::now();
                drain(pod.clone()).await;
                tracing::debug!(pod = %pod, waited_ms = started.elapsed().as_millis() as u64, "pod drained from every view");
            }
            if let Some((instance, ip, names, podman_path)) = hooks {
                crate::lifecycle::pre_stop(&instance, ip.as_deref(), &podman_path, &names).await;
            }
            run_stop(stop, systemd.as_ref(), podman.as_ref()).await;
            if let Ok(mut m) = memory.lock() {
                m.stopping.remove(&pod);
                m.stopped.insert(pod);
            }
            wake.notify_one();
        });
    }

    /// Runs jobs concurrently (bounded), each awaited to its result.
    async fn jobs(&self, jobs: Vec<Job>) -> Vec<(Job, Result<(), String>)> {
        let systemd = &self.systemd;
        let metrics = &self.metrics;
        futures_util::stream::iter(jobs.into_iter().map(|job| async move {
            let result = match job.kind {
                JobKind::Start => {
                    metrics.starts.fetch_add(1, Ordering::Relaxed);
                    let _ = systemd.reset_failed(&job.unit).await;
                    systemd.start(&job.unit).await
                }
                JobKind::Restart => {
                    metrics.restarts.fetch_add(1, Ordering::Relaxed);
                    systemd.restart(&job.unit).await
                }
            };
            let result = match result {
                Ok(JobResult::Done) => Ok(()),
                Ok(other) => Err(format!("job {other}")),
                Err(e) => Err(e.to_string()),
            };
            (job, result)
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
}

struct Secrets {
    wanted: BTreeMap<String, Vec<u8>>,
    existing: BTreeSet<String>,
}

fn log_job(desired: &Desired, job: &Job, result: &Result<(), String>) {
    let (namespace, pod) = desired
        .pods
        .get(&job.pod)
        .map(|d| (d.pod.namespace.as_str(), d.pod.name.as_str()))
        .unwrap_or_default();
    let unit = &job.unit;
    // Fields become journal fields (NAMESPACE=, POD=, UNIT=): `journalctl POD=web-…`.
    match result {
        Ok(()) => {
            let done = match job.kind {
                JobKind::Restart => "restarted",
                JobKind::Start => "started",
            };
            tracing::info!(namespace, pod, unit = %unit, job = ?job.kind, "pod unit {done}");
        }
        Err(e) => {
            tracing::error!(namespace, pod, unit = %unit, job = ?job.kind, error = %e, "pod unit job failed");
        }
    }
}

/// Stops a pod's services, then its volume units, and deletes its pod-scoped podman volumes.
async fn run_stop<S: Systemd, P: Podman>(stop: Stop, systemd: &S, podman: &P) {
    let (namespace, pod) = stop.pod.split_once('/').unwrap_or_default();
    let stops = futures_util::future::join_all(stop.services.iter().map(|s| systemd.stop(s))).await;
    for (service, result) in stop.services.iter().zip(stops) {
        match result {
            Ok(JobResult::Done) => {
                tracing::info!(namespace, pod, unit = %service, "pod unit stopped");
            }
            Ok(other) => {
                tracing::warn!(namespace, pod, unit = %service, job = %other, "stopping a pod unit did not finish cleanly");
            }
            Err(e) => {
                tracing::warn!(namespace, pod, unit = %service, error = %error_chain(&e), "stopping a pod unit failed");
            }
        }
        // A container stopped by SIGTERM exits 143, which systemd records as a failure; without a
        // reset the deleted pod would linger in `systemctl list-units` as "not-found failed".
        let _ = systemd.reset_failed(service).await;
    }
    for v in stop.volumes {
        let _ = systemd.stop(&v.service).await;
        let _ = systemd.reset_failed(&v.service).await;
        if let Some(volume) = v.volume
            && let Err(e) = podman.remove_volume(&volume).await
        {
            tracing::warn!(namespace, pod, volume, error = %e, "cannot remove the volume of a deleted pod");
        }
    }
}
