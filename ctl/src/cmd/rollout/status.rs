//! `rollout status`: kubectl's completion rule and lines, over the Deployment's status as the
//! Kubernetes API reports it, read about once a second.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::apps::v1::DeploymentStatus;
use tokio::time::Instant;

use super::{Target, detail};
use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Watch the status of the rollout until it's done (--watch=false prints it once)
    #[arg(
        short = 'w',
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub watch: bool,
    /// Pin to a specific revision: fail if another one is current; 0 follows the latest
    #[arg(long, default_value_t = 0)]
    pub revision: u64,
    /// How long to wait before ending the watch, e.g. 90s, 5m, 1h30m; 0 means never
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// How often the status is read again while waiting.
const POLL: Duration = Duration::from_secs(1);

/// Where a rollout stands, as kubectl's `DeploymentStatusViewer.Status` says it: the line to
/// print, and whether the rollout is done. An error (a passed progress deadline, another
/// revision than the one pinned) ends the wait with exit status 1.
///
/// `desired` is the object's `spec.replicas` (Kubernetes defaults it to 1); `status` is what the
/// API computed, `None` if it has not (kubectl's "spec update not observed yet": podswarmd
/// computes the status from the object it serves, so it always has observed it); `running` is
/// the Deployment's revision (its `deployment.kubernetes.io/revision`).
pub fn verdict(
    name: &str,
    desired: Option<i32>,
    status: Option<&DeploymentStatus>,
    running: u64,
    revision: u64,
) -> Result<(String, bool)> {
    if revision > 0 && revision != running {
        bail!("desired revision ({revision}) is different from the running revision ({running})");
    }
    let Some(s) = status else {
        return Ok((
            "Waiting for deployment spec update to be observed...".to_owned(),
            false,
        ));
    };
    if s.conditions.iter().flatten().any(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        bail!("deployment {name:?} exceeded its progress deadline");
    }
    let updated = s.updated_replicas.unwrap_or(0);
    let total = s.replicas.unwrap_or(0);
    let available = s.available_replicas.unwrap_or(0);
    if let Some(desired) = desired
        && updated < desired
    {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
            false,
        ));
    }
    if total > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                total - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out"), true))
}

/// Reads the status until the rollout is done (or once, with `--watch=false`), printing each
/// line that differs from the one before.
pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let name = args.target.name()?;
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    // kubectl's words when its watch runs out of time.
    let timed_out = || anyhow!("timed out waiting for the condition");
    let mut last: Option<String> = None;
    loop {
        let read = detail(client, &args.target);
        let d = match deadline {
            Some(at) => tokio::time::timeout_at(at, read)
                .await
                .map_err(|_| timed_out())??,
            None => read.await?,
        };
        // The API server defaults an absent `replicas` to 1; podswarm keeps objects as applied.
        let desired = Some(d.spec.replicas.unwrap_or(1));
        let running = super::revision_number(&d.metadata).unwrap_or(0);
        let (message, done) = verdict(name, desired, d.status.as_ref(), running, args.revision)?;
        if last.as_deref() != Some(message.as_str()) {
            println!("{message}");
            last = Some(message);
        }
        if done || !args.watch {
            return Ok(());
        }
        let next = Instant::now() + POLL;
        match deadline {
            Some(at) if at <= next => {
                tokio::time::sleep_until(at).await;
                return Err(timed_out());
            }
            _ => tokio::time::sleep_until(next).await,
        }
    }
}

/// A duration as Go's `time.ParseDuration` (and so kubectl's `--timeout`) reads it: a sequence
/// of numbers with units (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), decimals allowed, `0` alone
/// without a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: use e.g. 30s, 5m, 1h30m (0: no limit)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("{text:?}: a timeout cannot be negative"));
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("invalid duration {text:?}: missing unit")),
            _ => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
        };
        seconds += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentCondition;

    /// A status with `(total, updated, available)` pods and a `Progressing` reason.
    fn status(counts: (i32, i32, i32), reason: &str) -> DeploymentStatus {
        let (total, updated, available) = counts;
        DeploymentStatus {
            replicas: Some(total),
            updated_replicas: Some(updated),
            ready_replicas: Some(available),
            available_replicas: Some(available),
            conditions: Some(vec![DeploymentCondition {
                type_: Some("Progressing".into()),
                status: Some("True".into()),
                reason: Some(reason.into()),
                ..DeploymentCondition::default()
            }]),
            ..DeploymentStatus::default()
        }
    }

    /// One row of the table: the object's desired replicas, its status, the pinned revision, and
    /// what `rollout status` says.
    struct Case {
        what: &'static str,
        desired: Option<i32>,
        status: Option<DeploymentStatus>,
        revision: u64,
        says: Result<(String, bool), String>,
    }

    fn case(
        what: &'static str,
        desired: Option<i32>,
        status: Option<DeploymentStatus>,
        says: Result<(&str, bool), &str>,
    ) -> Case {
        Case {
            what,
            desired,
            status,
            revision: 0,
            says: says
                .map(|(m, done)| (m.to_owned(), done))
                .map_err(str::to_owned),
        }
    }

    /// kubectl's own cases (`rollout_status_test.go`, `TestDeploymentStatusViewerStatus`: the first
    /// four and "not observed"), then the error rules and edges it does not test.
    #[test]
    fn rollout_status_reads_like_kubectl() {
        const GOING: &str = "ReplicaSetUpdated";
        const DONE_: &str = "NewReplicaSetAvailable";
        const UPDATED: &str = "Waiting for deployment \"web\" rollout to finish: 0 out of 1 new replicas have been updated...";
        const OLD: &str = "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...";
        const AVAILABLE: &str = "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...";
        const PAUSED: &str = "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...";
        const DONE: &str = "deployment \"web\" successfully rolled out";
        const UNOBSERVED: &str = "Waiting for deployment spec update to be observed...";
        let cases = [
            case(
                "new pods still to start",
                Some(1),
                Some(status((1, 0, 1), GOING)),
                Ok((UPDATED, false)),
            ),
            case(
                "old pods still to go",
                Some(1),
                Some(status((2, 1, 2), GOING)),
                Ok((OLD, false)),
            ),
            case(
                "new pods not yet available",
                Some(2),
                Some(status((2, 2, 1), GOING)),
                Ok((AVAILABLE, false)),
            ),
            case(
                "done",
                Some(2),
                Some(status((2, 2, 2), DONE_)),
                Ok((DONE, true)),
            ),
            case("not observed yet", Some(1), None, Ok((UNOBSERVED, false))),
            case(
                "scaled to 0",
                Some(0),
                Some(status((0, 0, 0), DONE_)),
                Ok((DONE, true)),
            ),
            case(
                "no desired count: the updated count rules",
                None,
                Some(status((3, 3, 3), DONE_)),
                Ok((DONE, true)),
            ),
            case(
                "the deadline beats every count",
                Some(2),
                Some(status((3, 1, 2), "ProgressDeadlineExceeded")),
                Err("deployment \"web\" exceeded its progress deadline"),
            ),
            case(
                "paused mid-rollout: still waiting",
                Some(3),
                Some(status((4, 1, 3), "DeploymentPaused")),
                Ok((PAUSED, false)),
            ),
            Case {
                revision: 2,
                ..case(
                    "the pinned revision runs",
                    Some(1),
                    Some(status((1, 1, 1), DONE_)),
                    Ok((DONE, true)),
                )
            },
            Case {
                revision: 1,
                ..case(
                    "another revision than the pinned one",
                    Some(1),
                    Some(status((1, 1, 1), DONE_)),
                    Err("desired revision (1) is different from the running revision (2)"),
                )
            },
        ];
        for c in cases {
            let got = verdict("web", c.desired, c.status.as_ref(), 2, c.revision)
                .map_err(|e| e.to_string());
            assert_eq!(got, c.says, "{}", c.what);
        }
    }

    #[test]
    fn timeouts_read_like_go_durations() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("5d")
                .unwrap_err()
                .contains("unknown unit \"d\"")
        );
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..2s").is_err());
    }
}
