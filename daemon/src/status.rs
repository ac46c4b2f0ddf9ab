//! Pod status: what systemd says about a pod's units (and, when a unit failed, what podman said)
//! turned into the phase, readiness and reason the API shows. Pure: the reconciler reads the
//! states and asks podman ([`Failure`]); this module only decides.
//!
//! Reasons are Kubernetes' own words ([`PodReason`]), so what users know from `kubectl get pods`
//! means the same here; the detail a person needs to act on it (podman's own error line, the
//! missing ConfigMap, Quadlet's complaint) goes to `message`, Kubernetes' name for that field.
//!
//! # A failed pull, a failed create and a crash look alike to systemd
//!
//! A Quadlet `.container` service runs `podman run`, which pulls the image, creates the container
//! and starts it before conmon takes over as the main process. systemd records every failure of
//! that service as `Result=exit-code`, whether podman failed or the container exited. The signals
//! that tell them apart, in the order they are used:
//!
//! - `Result=oom-kill`: the kernel's OOM killer ended a process of the unit (the container's cgroup
//!   sits below the unit's) → `OOMKilled`.
//! - podman's own failure: `podman run` exits **125** when "the error is with Podman itself"
//!   (podman-run(1), EXIT STATUS) and writes `Error: …` to stderr, which the journal keeps under the
//!   unit's invocation (`_SYSTEMD_INVOCATION_ID`, without `CONTAINER_NAME`, which marks what the
//!   container wrote). A `.pod` unit runs `podman pod create` as `ExecStartPre=`, whose failure
//!   leaves `ExecMainStatus=0`; a missing entrypoint makes `podman run` exit 126 or 127, numbers a
//!   container may exit with too. So: status 125, or status 0 (a pre-start command failed), or
//!   podman's `Error:` line for that run (needed for 126/127).
//! - a pull: after podman failed, the image is either in local storage (creating or starting the
//!   container failed → `CreateContainerError`) or not (the pull failed, or `Pull=never` found
//!   nothing → `ErrImagePull`, and `ImagePullBackOff` while systemd waits to restart the unit).
//!   `podman image exists` answers that without parsing messages whose wording changes between
//!   podman versions.
//!
//! Anything else that ends a run is the container's own exit: `Error` when it stays down,
//! `CrashLoopBackOff` while systemd waits to restart it, `Completed` when it exited 0 and stays down.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use podswarm_units::UnitState;

use crate::plan::Hold;

// The pod's view is the API's (and the status records'), so it lives in the API's contract.
pub use podswarm_api::{ContainerView, Phase, PodReason, PodView};

pub type PodViews = Arc<RwLock<BTreeMap<String, PodView>>>;

/// What podman said about a unit's failed run (read only for runs that may be podman's failure:
/// see [`may_be_podman`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// podman's own `Error: …` line of that run, without the `Error: ` prefix.
    pub podman_error: Option<String>,
    /// Whether an image the unit runs is not in local storage.
    pub image_missing: bool,
}

/// A pod's phase, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub phase: Phase,
    pub reason: Option<PodReason>,
    pub message: Option<String>,
}

impl Status {
    fn new(phase: Phase, reason: PodReason, message: impl Into<String>) -> Self {
        Status {
            phase,
            reason: Some(reason),
            message: Some(message.into()),
        }
    }

    /// A pod placed here that cannot run yet; whatever of it runs is kept.
    pub fn held(hold: &Hold) -> Self {
        match hold {
            // As the kubelet does: Pending until the objects exist.
            Hold::Missing(what) => Status::new(
                Phase::Pending,
                PodReason::ContainerCreating,
                format!("waiting for {}", what.join(", ")),
            ),
            // The time left is not shown: the record would change with every pass.
            Hold::Claiming(_) => Status::new(
                Phase::Pending,
                PodReason::ContainerCreating,
                format!(
                    "placed on this node; starts once its claim has stood {}s with no other node's",
                    crate::link::CLAIM_HOLD.as_secs()
                ),
            ),
            Hold::Invalid(error) => Status::new(
                Phase::Failed,
                PodReason::CreateContainerConfigError,
                error.clone(),
            ),
        }
    }

    /// A pod no node can take (placement's reason).
    pub fn unplaced(reason: &str) -> Self {
        Status::new(Phase::Pending, PodReason::Unschedulable, reason)
    }

    /// A pod with files Quadlet rejected (so systemd has no unit for them).
    pub fn rejected(message: &str) -> Self {
        Status::new(
            Phase::Failed,
            PodReason::CreateContainerConfigError,
            message,
        )
    }
}

fn failed(s: &UnitState) -> bool {
    s.active_state == "failed"
}

fn restarting(s: &UnitState) -> bool {
    s.active_state == "activating" && s.sub_state == "auto-restart"
}

/// Whether a unit's last run may have failed in podman rather than in the container, so that
/// podman is worth asking ([`Failure`]): a run that ended with `exit-code` and a status podman
/// itself exits with (or 0: a command before the main one failed).
pub fn may_be_podman(s: &UnitState) -> bool {
    (failed(s) || restarting(s))
        && s.result == "exit-code"
        && matches!(s.exec_main_status, 0 | 125..=127)
}

/// How a unit's last run ended.
enum Ending<'a> {
    /// Podman failed before the container ran: pulling (`pull`) or creating it.
    Podman {
        pull: bool,
        line: Option<&'a str>,
    },
    OomKilled,
    /// The container ended on its own (or was ended by systemd: a timeout, a signal).
    Container,
}

fn ending<'a>(s: &UnitState, failure: Option<&'a Failure>) -> Ending<'a> {
    let line = failure.and_then(|f| f.podman_error.as_deref());
    if s.result == "oom-kill" {
        Ending::OomKilled
    } else if may_be_podman(s) && (matches!(s.exec_main_status, 0 | 125) || line.is_some()) {
        Ending::Podman {
            pull: failure.is_some_and(|f| f.image_missing),
            line,
        }
    } else {
        Ending::Container
    }
}

fn podman_detail(s: &UnitState, line: Option<&str>) -> String {
    line.map_or_else(
        || {
            format!(
                "podman failed: {} (exit status {})",
                s.result, s.exec_main_status
            )
        },
        str::to_owned,
    )
}

/// A unit that failed and stays down.
fn failed_status(s: &UnitState, failure: Option<&Failure>) -> Status {
    let (reason, detail) = match ending(s, failure) {
        Ending::Podman { pull: true, line } => (PodReason::ErrImagePull, podman_detail(s, line)),
        Ending::Podman { pull: false, line } => {
            (PodReason::CreateContainerError, podman_detail(s, line))
        }
        Ending::OomKilled => (
            PodReason::OOMKilled,
            "the container ran out of memory and was killed".to_owned(),
        ),
        Ending::Container => (
            PodReason::Error,
            format!("{} (exit status {})", s.result, s.exec_main_status),
        ),
    };
    Status::new(
        Phase::Failed,
        reason,
        format!("{} failed: {detail}", s.name),
    )
}

/// A container whose unit waits to be restarted.
fn restarting_status(container: &str, s: &UnitState, failure: Option<&Failure>) -> Status {
    let restarts = s.n_restarts;
    let (reason, message) = match ending(s, failure) {
        Ending::Podman { pull, line } => (
            if pull {
                PodReason::ImagePullBackOff
            } else {
                // The kubelet keeps saying CreateContainerError while it retries.
                PodReason::CreateContainerError
            },
            format!(
                "container {container} is restarting after podman failed ({restarts} restarts): {}",
                podman_detail(s, line)
            ),
        ),
        Ending::OomKilled => (
            PodReason::CrashLoopBackOff,
            format!(
                "container {container} is restarting after running out of memory ({restarts} restarts)"
            ),
        ),
        Ending::Container => (
            PodReason::CrashLoopBackOff,
            format!(
                "container {container} is restarting after exiting with status {} ({restarts} restarts)",
                s.exec_main_status
            ),
        ),
    };
    // The pod has run (its other containers may still serve), as before a pull failure was told
    // apart: the phase stays Running.
    Status::new(Phase::Running, reason, message)
}

/// A pod's status from its units: `main` is the service that stands for the pod, `containers` the
/// state of each container's unit in the view's order (a single-container pod's is `main` again),
/// `failures` what podman said about failed runs, by unit.
pub fn of_units(
    main: &UnitState,
    containers: &[(&str, &UnitState)],
    failures: &BTreeMap<String, Failure>,
) -> Status {
    let mut all = std::iter::once(main).chain(containers.iter().map(|(_, s)| *s));
    if let Some(f) = all.clone().find(|s| failed(s)) {
        return failed_status(f, failures.get(&f.name));
    }
    if let Some((name, s)) = containers.iter().find(|(_, s)| restarting(s)) {
        return restarting_status(name, s, failures.get(&s.name));
    }
    if all.all(|s| s.active_state == "active") {
        Status {
            phase: Phase::Running,
            reason: None,
            message: None,
        }
    } else if main.active_state == "inactive"
        && main.main_started_us != 0
        && main.result == "success"
    {
        Status {
            phase: Phase::Succeeded,
            reason: Some(PodReason::Completed),
            message: None,
        }
    } else if main.active_state == "activating" {
        Status::new(Phase::Pending, PodReason::ContainerCreating, "starting")
    } else {
        Status::new(
            Phase::Pending,
            PodReason::ContainerCreating,
            format!("{} is {}/{}", main.name, main.active_state, main.sub_state),
        )
    }
}

/// Puts the units' states into a view: restarts, container states, phase, reason and readiness.
pub fn apply_states(
    view: &mut PodView,
    main: &UnitState,
    containers: &[UnitState],
    failures: &BTreeMap<String, Failure>,
    probes_ready: bool,
) {
    view.restarts = containers.iter().map(|s| s.n_restarts).sum();
    for (c, s) in view.containers.iter_mut().zip(containers) {
        c.state = format!("{}/{}", s.active_state, s.sub_state);
        c.restarts = s.n_restarts;
    }
    let named: Vec<(&str, &UnitState)> = view
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .zip(containers)
        .collect();
    set(view, of_units(main, &named, failures), probes_ready);
}

/// Sets a view's phase, reason and message, and its readiness: running, nothing to report, and
/// every readiness probe passing.
pub fn set(view: &mut PodView, status: Status, probes_ready: bool) {
    view.ready = status.phase == Phase::Running && status.reason.is_none() && probes_ready;
    view.phase = status.phase;
    view.reason = status.reason;
    view.message = status.message;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(active: &str, sub: &str, result: &str, status: i32) -> UnitState {
        UnitState {
            name: "podswarm-default_p.service".into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            result: result.into(),
            exec_main_status: status,
            main_started_us: 5,
            n_restarts: 3,
            ..UnitState::default()
        }
    }

    fn status(s: &UnitState, failure: Option<Failure>) -> Status {
        let failures: BTreeMap<String, Failure> =
            failure.into_iter().map(|f| (s.name.clone(), f)).collect();
        of_units(s, &[("c", s)], &failures)
    }

    fn missing_image(line: &str) -> Option<Failure> {
        Some(Failure {
            podman_error: Some(line.into()),
            image_missing: true,
        })
    }

    /// Was a defect: every unit waiting to restart read as a crash loop, so a pod whose image
    /// cannot be pulled showed CrashLoopBackOff.
    #[test]
    fn a_failed_pull_is_not_a_crash_loop() {
        let pull = "localhost/nope:1: image not known";
        let backoff = status(
            &unit("activating", "auto-restart", "exit-code", 125),
            missing_image(pull),
        );
        assert_eq!(backoff.reason, Some(PodReason::ImagePullBackOff));
        assert!(
            backoff
                .message
                .as_deref()
                .is_some_and(|m| m.ends_with(pull)),
            "{backoff:?}"
        );
        let down = status(
            &unit("failed", "failed", "exit-code", 125),
            missing_image(pull),
        );
        assert_eq!(
            (down.phase, down.reason),
            (Phase::Failed, Some(PodReason::ErrImagePull))
        );
    }

    #[test]
    fn reasons_follow_how_the_unit_ended() {
        let image_there = |line: &str| {
            Some(Failure {
                podman_error: Some(line.into()),
                image_missing: false,
            })
        };
        let cases: [(UnitState, Option<Failure>, Phase, PodReason); 9] = [
            // Podman failed creating the container though the image is there.
            (
                unit("failed", "failed", "exit-code", 125),
                image_there("crun: executable file `nope` not found"),
                Phase::Failed,
                PodReason::CreateContainerError,
            ),
            // A `.pod` unit whose ExecStartPre (`podman pod create`) failed: status 0.
            (
                unit("failed", "failed", "exit-code", 0),
                image_there("building local pause image: finding pause binary"),
                Phase::Failed,
                PodReason::CreateContainerError,
            ),
            // 127 with podman's line: the entrypoint is missing, podman said so.
            (
                unit("activating", "auto-restart", "exit-code", 127),
                image_there("crun: executable file `nope` not found in $PATH"),
                Phase::Running,
                PodReason::CreateContainerError,
            ),
            // 127 without a line of podman's: the container's own exit.
            (
                unit("activating", "auto-restart", "exit-code", 127),
                None,
                Phase::Running,
                PodReason::CrashLoopBackOff,
            ),
            (
                unit("activating", "auto-restart", "exit-code", 1),
                None,
                Phase::Running,
                PodReason::CrashLoopBackOff,
            ),
            (
                unit("failed", "failed", "exit-code", 2),
                None,
                Phase::Failed,
                PodReason::Error,
            ),
            (
                unit("failed", "failed", "oom-kill", 137),
                None,
                Phase::Failed,
                PodReason::OOMKilled,
            ),
            (
                unit("failed", "failed", "signal", 9),
                None,
                Phase::Failed,
                PodReason::Error,
            ),
            // 125 and no journal line (the journal rotated): still podman's failure.
            (
                unit("failed", "failed", "exit-code", 125),
                Some(Failure::default()),
                Phase::Failed,
                PodReason::CreateContainerError,
            ),
        ];
        for (state, failure, phase, reason) in cases {
            let got = status(&state, failure.clone());
            assert_eq!(
                (got.phase, got.reason),
                (phase, Some(reason)),
                "{state:?} {failure:?}: {got:?}"
            );
        }
        let running = unit("active", "running", "success", 0);
        assert_eq!(
            status(&running, None),
            Status {
                phase: Phase::Running,
                reason: None,
                message: None
            }
        );
        let done = unit("inactive", "dead", "success", 0);
        assert_eq!(
            (status(&done, None).phase, status(&done, None).reason),
            (Phase::Succeeded, Some(PodReason::Completed))
        );
    }

    /// Was a defect: the reason said only `failed: exit-code (exit status 0)`.
    #[test]
    fn a_failed_unit_carries_podmans_own_line() {
        let line = r#"building local pause image: finding pause binary: exec: "catatonit": executable file not found in $PATH"#;
        let got = status(
            &unit("failed", "failed", "exit-code", 0),
            Some(Failure {
                podman_error: Some(line.into()),
                image_missing: false,
            }),
        );
        assert_eq!(
            got.message.as_deref(),
            Some(format!("podswarm-default_p.service failed: {line}").as_str())
        );
    }
}
