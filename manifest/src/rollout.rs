//! A Deployment's rollout settings, typed, validated and defaulted as Kubernetes does, for the
//! daemon's rolling-update planner.
//!
//! Design decisions:
//!
//! - **Kubernetes' defaults** (`SetDefaults_Deployment`): `RollingUpdate` with `maxSurge` and
//!   `maxUnavailable` 25% each, `minReadySeconds` 0, `progressDeadlineSeconds` 600,
//!   `revisionHistoryLimit` 10, not paused. A manifest written for Kubernetes must roll out the
//!   same way here, and its authors count on those defaults without writing them down.
//! - **One code path for intake and the planner.** `validate.rs` reports every entry of
//!   `problems`, and [`Rollout::of`] fails on the first of the same list, so a Deployment that
//!   intake accepted can never make the planner fail, and the two can never drift apart.
//! - **`maxSurge`/`maxUnavailable` are parsed once**, into [`IntOrPercent`], instead of being kept as
//!   `IntOrString`: [`Strategy::bounds`] then cannot meet a malformed string and needs no error.
//!   Percent strings are exactly Kubernetes' `IsValidPercent` (`^[0-9]+%$`): no sign, no fraction,
//!   no spaces. Unlike Kubernetes, a percentage too large for `u32` is refused at intake; Kubernetes
//!   accepts such a `maxSurge` and then fails every sync of the Deployment.
//! - **Rounding, as `deploymentutil.ResolveFenceposts`:** a percentage of the desired replicas,
//!   surge rounded up (25% of 1 pod still allows one extra pod, so small Deployments can roll),
//!   unavailable rounded down (availability never drops below what was asked for). When both come
//!   out 0 a rollout could never replace a pod, so unavailable becomes 1: availability bends
//!   rather than the rollout stalling forever (Kubernetes' reasoning: surge may be impossible,
//!   there for lack of quota, here for lack of room on the nodes). Validation refuses both given
//!   as 0.
//! - **Unavailable is capped at the replicas**, as Kubernetes' `MaxUnavailable` (what its rolling
//!   updater plans with) does: an integer `maxUnavailable` larger than the Deployment, or the
//!   both-0 bump on 0 replicas, would otherwise make `replicas - unavailable` negative.
//! - **`progressDeadlineSeconds` must exceed `minReadySeconds` even when it is not set**, because
//!   Kubernetes validates after defaulting: with `minReadySeconds: 600` and no deadline, no pod
//!   could become available before the deadline passes.
//! - **`podswarm.io/auto-rollback` is read here too** ([`auto_rollback`]), although it is an
//!   annotation and not a spec field: it is a rollout setting the daemon acts on, so intake and the
//!   daemon must read it with one function. Only `"true"` and `"false"` mean anything; any other
//!   value is refused rather than read as "off", because a user who wrote `"yes"` or `"True"`
//!   believes the safety net is there.

use std::fmt;

use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const MIN_READY: &str = "spec.minReadySeconds";
const DEADLINE: &str = "spec.progressDeadlineSeconds";
const HISTORY: &str = "spec.revisionHistoryLimit";
const TYPE: &str = "spec.strategy.type";
const ROLLING: &str = "spec.strategy.rollingUpdate";
const MAX_SURGE: &str = "spec.strategy.rollingUpdate.maxSurge";
const MAX_UNAVAILABLE: &str = "spec.strategy.rollingUpdate.maxUnavailable";

/// podswarm's own Deployment annotation: `"true"` asks podswarmd to undo a rollout that passes its
/// progress deadline, as `podswarmctl rollout undo` would (see [`auto_rollback`]).
pub const AUTO_ROLLBACK: &str = "podswarm.io/auto-rollback";
/// [`AUTO_ROLLBACK`]'s path in problems (a `&'static str` like the other fields' paths).
const AUTO_ROLLBACK_FIELD: &str = "metadata.annotations[podswarm.io/auto-rollback]";

const DEFAULT_PROGRESS_DEADLINE: u32 = 600;
const DEFAULT_REVISION_HISTORY: u32 = 10;
const DEFAULT_FENCEPOST: IntOrPercent = IntOrPercent::Percent(25);

/// The deadline value that means "no deadline" (Kubernetes' `HasProgressDeadline` checks for
/// `math.MaxInt32`, what the old `extensions/v1beta1` API defaulted to).
const NO_PROGRESS_DEADLINE: u32 = i32::MAX.unsigned_abs();

/// A Deployment's rollout settings with Kubernetes' defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub strategy: Strategy,
    /// How long a new pod must be ready before it counts as available. Default 0.
    pub min_ready_seconds: u32,
    /// How long a rollout may go without progress before it is reported as failed
    /// (`ProgressDeadlineExceeded`). Default 600; `2147483647` means no deadline, see
    /// [`Rollout::progress_deadline`].
    pub progress_deadline_seconds: u32,
    /// How many old revisions to keep for rollback. Default 10.
    pub revision_history_limit: u32,
    /// `spec.paused`: a paused Deployment makes no rollout progress, and its deadline does not run.
    pub paused: bool,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            strategy: Strategy::default(),
            min_ready_seconds: 0,
            progress_deadline_seconds: DEFAULT_PROGRESS_DEADLINE,
            revision_history_limit: DEFAULT_REVISION_HISTORY,
            paused: false,
        }
    }
}

/// How old pods are replaced by new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Replace pods a few at a time. Defaults 25%/25%; never both 0 when read from a manifest.
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
    /// Stop every old pod before starting any new one.
    Recreate,
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::RollingUpdate {
            max_surge: DEFAULT_FENCEPOST,
            max_unavailable: DEFAULT_FENCEPOST,
        }
    }
}

/// A validated `maxSurge`/`maxUnavailable`: a pod count, or a percentage of the desired replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntOrPercent {
    Int(u32),
    /// Whole percent: `25` is 25%. May exceed 100 for `maxSurge`.
    Percent(u32),
}

impl IntOrPercent {
    /// The pod count for `total` desired pods, as Kubernetes' `intstr.GetScaledValueFromIntOrPercent`:
    /// counts pass through, percentages round up or down as asked. Saturates at `u32::MAX`.
    pub fn scaled(self, total: u32, round_up: bool) -> u32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                // Exact in integers; Go computes it in float64, which is exact too at these sizes.
                let product = u64::from(p) * u64::from(total);
                let pods = if round_up {
                    product.div_ceil(100)
                } else {
                    product / 100
                };
                u32::try_from(pods).unwrap_or(u32::MAX)
            }
        }
    }

    /// Zero as Kubernetes' validation sees it: `0` and `0%` alike.
    fn is_zero(self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl From<IntOrPercent> for IntOrString {
    fn from(value: IntOrPercent) -> Self {
        match value {
            // Values come from an i32 field; larger ones are only made by hand and saturate.
            IntOrPercent::Int(n) => IntOrString::Int(i32::try_from(n).unwrap_or(i32::MAX)),
            IntOrPercent::Percent(_) => IntOrString::String(value.to_string()),
        }
    }
}

impl Strategy {
    /// `(surge, unavailable)` pods for `replicas` desired pods: Kubernetes'
    /// `deploymentutil.ResolveFenceposts` (surge rounded up, unavailable rounded down, both 0 →
    /// unavailable 1), with unavailable then capped at `replicas` as Kubernetes' `MaxUnavailable`
    /// does. So `replicas - unavailable` never underflows, and for `replicas > 0` the two are never
    /// both 0. `None` for `Recreate`, which has no such bounds.
    pub fn bounds(&self, replicas: u32) -> Option<(u32, u32)> {
        let Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } = self
        else {
            return None;
        };
        let surge = max_surge.scaled(replicas, true);
        let mut unavailable = max_unavailable.scaled(replicas, false);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        Some((surge, unavailable.min(replicas)))
    }
}

impl Rollout {
    /// Reads the rollout settings of a Deployment spec. Never fails for a spec that intake
    /// accepted (intake refuses exactly the specs this refuses); otherwise the first problem.
    pub fn of(spec: &DeploymentSpec) -> Result<Rollout, RolloutError> {
        let (rollout, errors) = read(spec);
        match errors.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(rollout),
        }
    }

    /// The progress deadline in seconds, `None` when it is `2147483647`, Kubernetes' "no deadline".
    pub fn progress_deadline(&self) -> Option<u32> {
        Some(self.progress_deadline_seconds).filter(|s| *s != NO_PROGRESS_DEADLINE)
    }
}

/// Whether a Deployment opted in to automatic rollback ([`AUTO_ROLLBACK`]): `"true"`; `"false"`
/// or no annotation is off. Any other value is an error, which intake reports; the daemon meets
/// one only in an object an older intake let through, and treats it as off (and says so).
pub fn auto_rollback(meta: &ObjectMeta) -> Result<bool, RolloutError> {
    let value = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(AUTO_ROLLBACK))
        .map(String::as_str);
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(RolloutError {
            field: AUTO_ROLLBACK_FIELD,
            kind: RolloutErrorKind::NotBoolean(other.to_owned()),
        }),
    }
}

/// One problem with a Deployment's rollout settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {kind}")]
pub struct RolloutError {
    /// Path of the offending field within the Deployment, e.g. `spec.minReadySeconds`.
    pub field: &'static str,
    pub kind: RolloutErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutErrorKind {
    #[error("must be 0 or more, got {0}")]
    Negative(i32),
    #[error("{0:?} is neither an integer nor a percentage such as \"25%\" (digits, then '%')")]
    NotIntOrPercent(String),
    #[error("{0:?} is too large a percentage")]
    PercentTooLarge(String),
    #[error("must not be greater than 100%, got {0}%")]
    OverHundredPercent(u32),
    #[error(
        "may not be 0 when maxSurge is 0: maxSurge and maxUnavailable cannot both be 0, or no pod could ever be replaced"
    )]
    BothZero,
    #[error("may not be specified when strategy type is Recreate")]
    RollingUpdateWithRecreate,
    #[error("must be RollingUpdate or Recreate, got {0:?}")]
    UnknownType(String),
    #[error("must be \"true\" or \"false\", got {0:?}")]
    NotBoolean(String),
    #[error("must be greater than minReadySeconds ({min_ready}), got {deadline}{}", default_note(*defaulted))]
    DeadlineNotAfterMinReady {
        deadline: u32,
        min_ready: u32,
        /// The deadline was not set: the default is what falls short.
        defaulted: bool,
    },
}

fn default_note(defaulted: bool) -> &'static str {
    if defaulted {
        " (the default, as it is not set)"
    } else {
        ""
    }
}

/// Every problem with a Deployment's rollout settings, for intake to report all at once.
pub(crate) fn problems(spec: &DeploymentSpec) -> Vec<RolloutError> {
    read(spec).1
}

/// The settings (defaults standing in for bad fields) and every problem found.
fn read(spec: &DeploymentSpec) -> (Rollout, Vec<RolloutError>) {
    let mut errors = Vec::new();
    let mut count = |field: &'static str, value: Option<i32>, default: u32| match value {
        None => Some(default),
        Some(v) => match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                errors.push(RolloutError {
                    field,
                    kind: RolloutErrorKind::Negative(v),
                });
                None
            }
        },
    };
    let min_ready = count(MIN_READY, spec.min_ready_seconds, 0);
    let deadline = count(
        DEADLINE,
        spec.progress_deadline_seconds,
        DEFAULT_PROGRESS_DEADLINE,
    );
    let history = count(
        HISTORY,
        spec.revision_history_limit,
        DEFAULT_REVISION_HISTORY,
    );
    // A negative value is already reported; comparing it too would only add noise.
    if let (Some(min_ready), Some(deadline)) = (min_ready, deadline)
        && deadline <= min_ready
    {
        errors.push(RolloutError {
            field: DEADLINE,
            kind: RolloutErrorKind::DeadlineNotAfterMinReady {
                deadline,
                min_ready,
                defaulted: spec.progress_deadline_seconds.is_none(),
            },
        });
    }
    let strategy = strategy(spec.strategy.as_ref(), &mut errors);
    let rollout = Rollout {
        strategy,
        min_ready_seconds: min_ready.unwrap_or(0),
        progress_deadline_seconds: deadline.unwrap_or(DEFAULT_PROGRESS_DEADLINE),
        revision_history_limit: history.unwrap_or(DEFAULT_REVISION_HISTORY),
        paused: spec.paused.unwrap_or(false),
    };
    (rollout, errors)
}

fn strategy(given: Option<&DeploymentStrategy>, errors: &mut Vec<RolloutError>) -> Strategy {
    let rolling = given.and_then(|s| s.rolling_update.as_ref());
    // Kubernetes defaults an empty type as well as a missing one.
    let kind = given
        .and_then(|s| s.type_.as_deref())
        .filter(|t| !t.is_empty())
        .unwrap_or("RollingUpdate");
    match kind {
        "RollingUpdate" => {
            let mut fencepost = |field, value: Option<&IntOrString>| match value {
                None => Some(DEFAULT_FENCEPOST),
                Some(v) => int_or_percent(v)
                    .map_err(|kind| errors.push(RolloutError { field, kind }))
                    .ok(),
            };
            let surge = fencepost(MAX_SURGE, rolling.and_then(|r| r.max_surge.as_ref()));
            let unavailable = fencepost(
                MAX_UNAVAILABLE,
                rolling.and_then(|r| r.max_unavailable.as_ref()),
            );
            if let Some(IntOrPercent::Percent(p)) = unavailable
                && p > 100
            {
                errors.push(RolloutError {
                    field: MAX_UNAVAILABLE,
                    kind: RolloutErrorKind::OverHundredPercent(p),
                });
            }
            if let (Some(s), Some(u)) = (surge, unavailable)
                && s.is_zero()
                && u.is_zero()
            {
                errors.push(RolloutError {
                    field: MAX_UNAVAILABLE,
                    kind: RolloutErrorKind::BothZero,
                });
            }
            Strategy::RollingUpdate {
                max_surge: surge.unwrap_or(DEFAULT_FENCEPOST),
                max_unavailable: unavailable.unwrap_or(DEFAULT_FENCEPOST),
            }
        }
        "Recreate" => {
            if rolling.is_some() {
                errors.push(RolloutError {
                    field: ROLLING,
                    kind: RolloutErrorKind::RollingUpdateWithRecreate,
                });
            }
            Strategy::Recreate
        }
        other => {
            errors.push(RolloutError {
                field: TYPE,
                kind: RolloutErrorKind::UnknownType(other.to_owned()),
            });
            Strategy::default()
        }
    }
}

/// Kubernetes' `ValidatePositiveIntOrPercent`: a non-negative integer, or `IsValidPercent`.
fn int_or_percent(value: &IntOrString) -> Result<IntOrPercent, RolloutErrorKind> {
    match value {
        IntOrString::Int(n) => u32::try_from(*n)
            .map(IntOrPercent::Int)
            .map_err(|_| RolloutErrorKind::Negative(*n)),
        IntOrString::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| RolloutErrorKind::NotIntOrPercent(s.clone()))?;
            digits
                .parse()
                .map(IntOrPercent::Percent)
                .map_err(|_| RolloutErrorKind::PercentTooLarge(s.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Limits, Object, Policy, parse};
    // proptest's `Strategy` trait would clash with ours.
    use proptest::prelude::{
        ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
    };
    use proptest::strategy::Strategy as Gen;

    use IntOrPercent::{Int, Percent};

    fn rolling(max_surge: IntOrPercent, max_unavailable: IntOrPercent) -> Strategy {
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        }
    }

    /// Each row worked out by hand from deployment_util.go (ResolveFenceposts, then
    /// MaxUnavailable's cap); the rows from its doc comment are marked.
    #[test]
    fn bounds_round_as_kubernetes() {
        let rows = [
            // (maxSurge, maxUnavailable, replicas, expected)
            (Percent(25), Percent(25), 3, (1, 0)), // ceil(0.75), floor(0.75)
            (Percent(25), Percent(25), 4, (1, 1)),
            (Percent(25), Percent(25), 1, (1, 0)), // ceil(0.25): small Deployments still roll
            (Percent(25), Percent(25), 10, (3, 2)), // ceil(2.5), floor(2.5)
            (Percent(33), Percent(33), 10, (4, 3)),
            (Percent(25), Percent(25), 0, (0, 0)), // bumped to 1, capped at 0 replicas
            (Percent(0), Percent(0), 5, (0, 1)),
            (Percent(0), Percent(0), 1, (0, 1)),
            (Percent(0), Percent(1), 2, (0, 1)), // doc: 2 desired, unavailable 1%, surge 0%
            (Percent(0), Percent(1), 1, (0, 1)), // doc: 1 desired, unavailable 1%, surge 0%
            (Percent(1), Percent(25), 2, (1, 0)), // doc: 2 desired, unavailable 25%, surge 1%
            (Percent(1), Percent(25), 1, (1, 0)), // doc: 1 desired, unavailable 25%, surge 1%
            (Percent(1), Percent(0), 2, (1, 0)), // doc: 2 desired, unavailable 0%, surge 1%
            (Percent(1), Percent(0), 1, (1, 0)), // doc: 1 desired, unavailable 0%, surge 1%
            (Percent(100), Int(0), 4, (4, 0)),
            (Int(0), Percent(100), 4, (0, 4)),
            (Percent(200), Int(0), 3, (6, 0)),
            (Int(1), Int(0), 3, (1, 0)),
            (Int(2), Int(3), 10, (2, 3)),
            (Int(0), Int(5), 3, (0, 3)), // capped as MaxUnavailable does
            (Int(3), Int(0), 0, (3, 0)),
            (Int(0), Int(0), 7, (0, 1)),
        ];
        for (surge, unavailable, replicas, expected) in rows {
            assert_eq!(
                rolling(surge, unavailable).bounds(replicas),
                Some(expected),
                "maxSurge {surge}, maxUnavailable {unavailable}, {replicas} replicas"
            );
        }
        assert_eq!(Strategy::Recreate.bounds(3), None);
    }

    #[test]
    fn scaling_saturates_instead_of_wrapping() {
        assert_eq!(Percent(u32::MAX).scaled(u32::MAX, true), u32::MAX);
        assert_eq!(Int(u32::MAX).scaled(0, false), u32::MAX);
    }

    /// Go's `GetScaledValueFromIntOrPercent`, float64 and all, as an independent oracle.
    fn go_scaled(value: IntOrPercent, total: u32, round_up: bool) -> u64 {
        match value {
            Int(n) => u64::from(n),
            Percent(p) => {
                let exact = f64::from(p) * f64::from(total) / 100.0;
                let rounded = if round_up {
                    exact.ceil()
                } else {
                    exact.floor()
                };
                // Below 2^53 here, so the conversion is exact.
                rounded as u64
            }
        }
    }

    fn fencepost() -> impl Gen<Value = IntOrPercent> {
        prop_oneof![(0u32..2000).prop_map(Int), (0u32..400).prop_map(Percent)]
    }

    proptest! {
        #[test]
        fn bounds_match_kubernetes(
            surge in fencepost(),
            unavailable in fencepost(),
            replicas in 0u32..5000,
        ) {
            let (s, u) = rolling(surge, unavailable).bounds(replicas).unwrap();
            let go_surge = go_scaled(surge, replicas, true);
            let mut go_unavailable = go_scaled(unavailable, replicas, false);
            if go_surge == 0 && go_unavailable == 0 {
                go_unavailable = 1;
            }
            prop_assert_eq!(u64::from(s), go_surge);
            prop_assert_eq!(u64::from(u), go_unavailable.min(u64::from(replicas)));
            // Surge is at least the exact share, unavailable at most it.
            if let Percent(p) = surge {
                prop_assert!(u64::from(s) * 100 >= u64::from(p) * u64::from(replicas));
            }
            if let Percent(p) = unavailable
                && !(s == 0 && u == 1)
            {
                prop_assert!(u64::from(u) * 100 <= u64::from(p) * u64::from(replicas));
            }
            prop_assert!(u <= replicas);
            if replicas > 0 {
                prop_assert!(s > 0 || u > 0, "both 0 would stall the rollout");
            }
            if let Int(n) = surge {
                prop_assert_eq!(s, n);
            }
            if let Int(n) = unavailable
                && !(n == 0 && s == 0)
            {
                prop_assert_eq!(u, n.min(replicas));
            }
        }
    }

    #[test]
    fn an_empty_spec_gets_kubernetes_defaults() {
        let rollout = Rollout::of(&DeploymentSpec::default()).unwrap();
        assert_eq!(rollout, Rollout::default());
        assert_eq!(
            rollout,
            Rollout {
                strategy: rolling(Percent(25), Percent(25)),
                min_ready_seconds: 0,
                progress_deadline_seconds: 600,
                revision_history_limit: 10,
                paused: false,
            }
        );
        assert_eq!(rollout.progress_deadline(), Some(600));
    }

    #[test]
    fn no_deadline_is_max_int32() {
        let rollout = Rollout {
            progress_deadline_seconds: 2_147_483_647,
            ..Rollout::default()
        };
        assert_eq!(rollout.progress_deadline(), None);
    }

    #[test]
    fn values_convert_back_to_int_or_string() {
        assert_eq!(IntOrString::from(Int(3)), IntOrString::Int(3));
        assert_eq!(
            IntOrString::from(Percent(25)),
            IntOrString::String("25%".into())
        );
    }

    const BASE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: nginx\n";

    /// A Deployment with `lines` (flow-style YAML, one field per line) added to its spec.
    fn deployment(lines: &[&str]) -> String {
        let extra: String = lines.iter().map(|l| format!("  {l}\n")).collect();
        BASE.replacen("spec:\n", &format!("spec:\n{extra}"), 1)
    }

    fn accepted(lines: &[&str]) -> Rollout {
        let input = deployment(lines);
        let manifest = match parse(&input, "t.yaml", &Limits::default(), &Policy::default()) {
            Ok(m) => m,
            Err(e) => panic!("{lines:?} refused: {e}"),
        };
        assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
        let Object::Deployment(d) = &manifest.objects[0].object else {
            panic!("not a Deployment")
        };
        Rollout::of(&d.spec).unwrap()
    }

    /// The one problem intake finds, as (path, message).
    fn refused(lines: &[&str]) -> (String, String) {
        let input = deployment(lines);
        match parse(&input, "t.yaml", &Limits::default(), &Policy::default()) {
            Ok(_) => panic!("{lines:?} was accepted"),
            Err(Error::Invalid { problems }) => {
                assert_eq!(problems.len(), 1, "{lines:?}: {problems:?}");
                (problems[0].path.clone(), problems[0].message.clone())
            }
            Err(e) => panic!("{lines:?}: {e}"),
        }
    }

    fn assert_refused(lines: &[&str], path: &str, message: &str) {
        let (p, m) = refused(lines);
        assert_eq!(p, path, "{lines:?}: {m}");
        assert!(m.contains(message), "{lines:?}: {m:?} lacks {message:?}");
    }

    #[test]
    fn accepted_settings_are_read_with_defaults_for_the_rest() {
        assert_eq!(accepted(&[]), Rollout::default());
        assert_eq!(
            accepted(&[
                "minReadySeconds: 3",
                "revisionHistoryLimit: 0",
                "progressDeadlineSeconds: 60",
                "paused: true",
                "strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0}}",
            ]),
            Rollout {
                strategy: rolling(Percent(25), Int(0)),
                min_ready_seconds: 3,
                progress_deadline_seconds: 60,
                revision_history_limit: 0,
                paused: true,
            }
        );
        assert_eq!(
            accepted(&["strategy: {rollingUpdate: {maxSurge: 150%, maxUnavailable: '100%'}}"])
                .strategy,
            rolling(Percent(150), Percent(100))
        );
        assert_eq!(
            accepted(&["strategy: {rollingUpdate: {maxSurge: '007%', maxUnavailable: 0}}"])
                .strategy,
            rolling(Percent(7), Int(0)),
            "Kubernetes' percent pattern allows leading zeros"
        );
        assert_eq!(
            accepted(&["strategy: {type: Recreate}"]).strategy,
            Strategy::Recreate
        );
        assert_eq!(
            accepted(&["strategy: {type: ''}"]).strategy,
            Strategy::default(),
            "an empty type is defaulted, as in Kubernetes"
        );
        assert_eq!(
            accepted(&["minReadySeconds: 599"]).progress_deadline_seconds,
            600
        );
    }

    #[test]
    fn both_fenceposts_zero_is_refused() {
        for (surge, unavailable) in [("0", "0"), ("'0%'", "'0%'"), ("0", "'0%'"), ("0%", "0")] {
            assert_refused(
                &[&format!(
                    "strategy: {{rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}}}"
                )],
                MAX_UNAVAILABLE,
                "cannot both be 0",
            );
        }
    }

    #[test]
    fn max_unavailable_over_100_percent_is_refused() {
        assert_refused(
            &["strategy: {rollingUpdate: {maxUnavailable: 101%}}"],
            MAX_UNAVAILABLE,
            "must not be greater than 100%, got 101%",
        );
    }

    #[test]
    fn negative_fenceposts_are_refused() {
        assert_refused(
            &["strategy: {rollingUpdate: {maxSurge: -1}}"],
            MAX_SURGE,
            "must be 0 or more, got -1",
        );
        assert_refused(
            &["strategy: {rollingUpdate: {maxUnavailable: -2}}"],
            MAX_UNAVAILABLE,
            "must be 0 or more, got -2",
        );
    }

    #[test]
    fn malformed_percentages_are_refused() {
        for bad in [
            "abc", "10.5%", "-1%", "", "%", "5", " 5%", "+5%", "5 %", "25%%",
        ] {
            for field in [MAX_SURGE, MAX_UNAVAILABLE] {
                let key = field.rsplit('.').next().unwrap_or_default();
                assert_refused(
                    &[&format!("strategy: {{rollingUpdate: {{{key}: {bad:?}}}}}")],
                    field,
                    &format!("{bad:?} is neither an integer nor a percentage"),
                );
            }
        }
        assert_refused(
            &["strategy: {rollingUpdate: {maxSurge: '99999999999%'}}"],
            MAX_SURGE,
            "too large",
        );
    }

    #[test]
    fn recreate_with_rolling_update_is_refused() {
        for block in ["{maxSurge: 1}", "{}"] {
            assert_refused(
                &[&format!(
                    "strategy: {{type: Recreate, rollingUpdate: {block}}}"
                )],
                ROLLING,
                "may not be specified when strategy type is Recreate",
            );
        }
    }

    #[test]
    fn unknown_strategy_types_are_refused() {
        assert_refused(
            &["strategy: {type: BlueGreen}"],
            TYPE,
            "must be RollingUpdate or Recreate, got \"BlueGreen\"",
        );
    }

    #[test]
    fn negative_durations_and_limits_are_refused() {
        for field in [MIN_READY, HISTORY, DEADLINE] {
            let key = field.trim_start_matches("spec.");
            assert_refused(&[&format!("{key}: -1")], field, "must be 0 or more, got -1");
        }
    }

    #[test]
    fn the_deadline_must_exceed_min_ready_seconds() {
        assert_refused(
            &["minReadySeconds: 10", "progressDeadlineSeconds: 10"],
            DEADLINE,
            "must be greater than minReadySeconds (10), got 10",
        );
        assert_refused(
            &["minReadySeconds: 30", "progressDeadlineSeconds: 0"],
            DEADLINE,
            "must be greater than minReadySeconds (30), got 0",
        );
        assert_refused(
            &["minReadySeconds: 600"],
            DEADLINE,
            "must be greater than minReadySeconds (600), got 600 (the default, as it is not set)",
        );
        assert_eq!(
            accepted(&["minReadySeconds: 10", "progressDeadlineSeconds: 11"])
                .progress_deadline_seconds,
            11
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let input = deployment(&[
            "minReadySeconds: -1",
            "revisionHistoryLimit: -1",
            "strategy: {rollingUpdate: {maxSurge: abc, maxUnavailable: 150%}}",
        ]);
        let Err(Error::Invalid { problems }) =
            parse(&input, "t.yaml", &Limits::default(), &Policy::default())
        else {
            panic!("accepted")
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, [MIN_READY, HISTORY, MAX_SURGE, MAX_UNAVAILABLE]);
    }

    #[test]
    fn rollout_errors_name_their_field() {
        let spec = DeploymentSpec {
            min_ready_seconds: Some(-4),
            ..DeploymentSpec::default()
        };
        let err = Rollout::of(&spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.minReadySeconds: must be 0 or more, got -4"
        );
        assert_eq!(err.kind, RolloutErrorKind::Negative(-4));
    }

    /// The annotation as intake and the daemon read it: only `"true"` and `"false"` mean
    /// anything, and anything else is refused, not read as off.
    #[test]
    fn auto_rollback_is_true_or_false_and_nothing_else() {
        let annotated = |value: &str| {
            BASE.replacen(
                "  name: web\n",
                &format!("  name: web\n  annotations: {{{AUTO_ROLLBACK}: {value}}}\n"),
                1,
            )
        };
        let read =
            |input: &str| match parse(input, "t.yaml", &Limits::default(), &Policy::default()) {
                Ok(m) => match &m.objects[0].object {
                    Object::Deployment(d) => {
                        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
                        Ok(auto_rollback(&d.metadata).unwrap())
                    }
                    other => panic!("not a Deployment: {other:?}"),
                },
                Err(Error::Invalid { problems }) => Err(problems
                    .iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect::<Vec<_>>()),
                Err(e) => panic!("{e}"),
            };
        assert_eq!(read(BASE), Ok(false));
        assert_eq!(read(&annotated("'true'")), Ok(true));
        assert_eq!(read(&annotated("'false'")), Ok(false));
        for (value, shown) in [
            ("'yes'", "\"yes\""),
            ("'True'", "\"True\""),
            ("'1'", "\"1\""),
            ("''", "\"\""),
        ] {
            assert_eq!(
                read(&annotated(value)),
                Err(vec![format!(
                    "metadata.annotations[podswarm.io/auto-rollback]: must be \"true\" or \"false\", got {shown}"
                )]),
                "{value}"
            );
        }
        assert!(AUTO_ROLLBACK_FIELD.contains(AUTO_ROLLBACK));
    }

    fn int_or_string() -> impl Gen<Value = serde_json::Value> {
        prop_oneof![
            (-3i32..20).prop_map(serde_json::Value::from),
            (0u32..130).prop_map(|p| serde_json::Value::from(format!("{p}%"))),
            prop::sample::select(vec!["abc", "10.5%", "-1%", "", "0%", "5", "99999999999%"])
                .prop_map(serde_json::Value::from),
        ]
    }

    fn optional<T: std::fmt::Debug + Clone>(s: impl Gen<Value = T>) -> impl Gen<Value = Option<T>> {
        prop::option::weighted(0.7, s)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Intake and the planner agree: whatever intake accepts, `Rollout::of` reads, and
        /// whatever it refuses for rollout reasons, `Rollout::of` refuses too.
        #[test]
        fn intake_accepts_exactly_what_rollout_reads(
            kind in optional(prop::sample::select(vec!["RollingUpdate", "Recreate", "", "Canary"])),
            rolling_update in optional((optional(int_or_string()), optional(int_or_string()))),
            min_ready in optional(-2i32..900),
            deadline in optional(-2i32..900),
            history in optional(-2i32..20),
            paused in optional(any::<bool>()),
        ) {
            let mut strategy = serde_json::Map::new();
            if let Some(kind) = kind {
                strategy.insert("type".into(), kind.into());
            }
            if let Some((surge, unavailable)) = rolling_update {
                let mut block = serde_json::Map::new();
                if let Some(v) = surge {
                    block.insert("maxSurge".into(), v);
                }
                if let Some(v) = unavailable {
                    block.insert("maxUnavailable".into(), v);
                }
                strategy.insert("rollingUpdate".into(), block.into());
            }
            let mut doc: serde_json::Value = serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {
                    "selector": {"matchLabels": {"app": "web"}},
                    "strategy": strategy,
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
                }
            });
            for (key, value) in [
                ("minReadySeconds", min_ready.map(serde_json::Value::from)),
                ("progressDeadlineSeconds", deadline.map(serde_json::Value::from)),
                ("revisionHistoryLimit", history.map(serde_json::Value::from)),
                ("paused", paused.map(serde_json::Value::from)),
            ] {
                if let Some(v) = value {
                    doc["spec"][key] = v;
                }
            }
            let parsed = parse(&doc.to_string(), "t.json", &Limits::default(), &Policy::default());
            let spec: DeploymentSpec = serde_json::from_value(doc["spec"].clone()).unwrap();
            let read = Rollout::of(&spec);
            match &parsed {
                Ok(m) => {
                    prop_assert!(read.is_ok(), "accepted but {read:?}");
                    prop_assert!(m.warnings.is_empty(), "{:?}", m.warnings);
                    if let Ok(r) = &read
                        && let Some((surge, unavailable)) = r.strategy.bounds(3)
                    {
                        prop_assert!(surge > 0 || unavailable > 0);
                    }
                }
                Err(e) => {
                    let err = read.as_ref().expect_err("refused but read");
                    let paths: Vec<&str> = e.problems().iter().map(|p| p.path.as_str()).collect();
                    prop_assert!(paths.contains(&err.field), "{paths:?} vs {err}");
                }
            }
        }
    }
}
