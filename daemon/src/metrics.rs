//! `/metrics` in the Prometheus text format (0.0.4), encoded by `prometheus-client`.
//!
//! The values already live elsewhere: the reconciler counts passes and jobs in its own atomics,
//! systemd's client counts reloads, and pods come from the current [`Snapshot`]. So nothing is
//! registered as a live metric: one [`Collector`] reads them at scrape time, which keeps a single
//! source for every number and costs nothing between scrapes.
//!
//! Pods are counted twice, because the two questions differ: `podswarm_pods{phase}` is this
//! node's pods (placed here), what an alert on one machine wants; `podswarm_cluster_pods{phase}`
//! is every pod of the cluster as this node sees it, including pods no node can take (Pending
//! with no node). Every node reports the same cluster numbers, so sum `podswarm_pods`, not
//! `podswarm_cluster_pods`, across nodes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::model::Snapshot;
use crate::reconcile::{self, Phase};

/// The `Content-Type` of [`Exporter::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Where the numbers come from.
#[derive(Clone)]
pub struct Sources {
    pub reconcile: Arc<reconcile::Metrics>,
    /// systemd daemon reloads requested so far.
    pub reloads: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

/// The registry `/metrics` encodes.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(sources: Sources) -> Exporter {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(sources)));
        Exporter { registry }
    }

    /// The metrics as Prometheus text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Debug)]
struct Scrape(Sources);

const PHASES: [Phase; 4] = [
    Phase::Pending,
    Phase::Running,
    Phase::Succeeded,
    Phase::Failed,
];

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Succeeded => "Succeeded",
        Phase::Failed => "Failed",
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    // Counters get their `_total` suffix from the encoder.
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// One gauge per phase (every phase, zeros included, so a series never vanishes).
fn pods_by_phase<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    pods: impl Iterator<Item = &'a reconcile::PodView>,
) -> std::fmt::Result {
    let mut counts = [0i64; PHASES.len()];
    for pod in pods {
        if let Some(i) = PHASES.iter().position(|p| *p == pod.phase) {
            counts[i] += 1;
        }
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    let mut by_name: Vec<(&str, i64)> = PHASES.iter().map(|p| phase_name(*p)).zip(counts).collect();
    by_name.sort_unstable();
    for (phase, n) in by_name {
        let labels = [("phase", phase)];
        ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Sources {
            reconcile: m,
            reloads,
            snapshots,
        } = &self.0;
        let counters = [
            (
                "podswarm_systemd_reloads",
                "systemd daemon reloads requested by podswarmd",
                reloads(),
            ),
            (
                "podswarm_reconcile_passes",
                "reconcile passes",
                m.passes.load(Ordering::Relaxed),
            ),
            (
                "podswarm_reconcile_errors",
                "reconcile passes that failed",
                m.errors.load(Ordering::Relaxed),
            ),
            (
                "podswarm_unit_files_written",
                "Quadlet files written",
                m.files_written.load(Ordering::Relaxed),
            ),
            (
                "podswarm_unit_files_removed",
                "Quadlet files removed",
                m.files_removed.load(Ordering::Relaxed),
            ),
            (
                "podswarm_unit_starts",
                "start jobs",
                m.starts.load(Ordering::Relaxed),
            ),
            (
                "podswarm_unit_restarts",
                "restart jobs",
                m.restarts.load(Ordering::Relaxed),
            ),
            (
                "podswarm_unit_stops",
                "stop jobs",
                m.stops.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            counter(&mut encoder, name, help, value)?;
        }
        let snapshot = Arc::clone(&snapshots.borrow());
        let here = snapshot.node_name();
        pods_by_phase(
            &mut encoder,
            "podswarm_pods",
            "pods placed on this node, by phase",
            snapshot.pods().map(|p| &p.view).filter(|v| v.node == here),
        )?;
        pods_by_phase(
            &mut encoder,
            "podswarm_cluster_pods",
            "pods of the whole cluster as this node sees it (any node, or none yet), by phase",
            snapshot.pods().map(|p| &p.view),
        )?;
        let version = ConstGauge::new(i64::try_from(snapshot.stamp.state).unwrap_or(i64::MAX));
        version.encode(encoder.encode_descriptor(
            "podswarm_state_version",
            "version of the desired state",
            None,
            version.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Inputs, Stamp};
    use crate::reconcile::PodView;
    use serde_json::json;

    fn view(name: &str, node: &str, phase: &str) -> (String, PodView) {
        let v = serde_json::from_value(json!({
            "namespace": "default", "name": name, "node": node, "phase": phase, "ready": false,
            "restarts": 0, "labels": {}, "unit": "", "units": [], "containers": [], "created": 0,
            "warnings": []
        }))
        .unwrap();
        (format!("default/{name}"), v)
    }

    fn node(name: &str) -> crate::link::NodeView {
        crate::link::NodeView {
            name: name.into(),
            node_id: String::new(),
            address: String::new(),
            labels: BTreeMap::new(),
            subnet: None,
            ready: true,
            cordoned: false,
            draining: false,
            stopping: Vec::new(),
        }
    }

    fn render(inputs: Inputs) -> String {
        let metrics = Arc::new(reconcile::Metrics::default());
        metrics.passes.store(7, Ordering::Relaxed);
        let exporter = Exporter::new(Sources {
            reconcile: metrics,
            reloads: Arc::new(|| 3),
            snapshots: watch::channel(Arc::new(Snapshot::build(inputs))).1,
        });
        exporter.render().unwrap()
    }

    #[test]
    fn only_this_nodes_pods_count_in_its_gauge() {
        let text = render(Inputs {
            stamp: Stamp { state: 12, link: 1 },
            node_name: "me".into(),
            local: BTreeMap::from([
                view("mine", "me", "Running"),
                // No node can take it: the cluster's, not this node's.
                view("unplaced", "", "Pending"),
            ]),
            nodes: vec![node("me"), node("other")],
            records: BTreeMap::from([view("elsewhere", "other", "Running")]),
            ..Inputs::default()
        });
        for line in [
            "podswarm_pods{phase=\"Running\"} 1\n",
            "podswarm_pods{phase=\"Pending\"} 0\n",
            "podswarm_pods{phase=\"Failed\"} 0\n",
            "podswarm_cluster_pods{phase=\"Running\"} 2\n",
            "podswarm_cluster_pods{phase=\"Pending\"} 1\n",
            "podswarm_cluster_pods{phase=\"Succeeded\"} 0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
    }

    #[test]
    fn existing_names_and_meanings_are_kept() {
        let text = render(Inputs {
            stamp: Stamp { state: 12, link: 1 },
            ..Inputs::default()
        });
        for line in [
            "# HELP podswarm_systemd_reloads_total systemd daemon reloads requested by podswarmd\n",
            "# TYPE podswarm_systemd_reloads_total counter\n",
            "podswarm_systemd_reloads_total 3\n",
            "podswarm_reconcile_passes_total 7\n",
            "podswarm_reconcile_errors_total 0\n",
            "podswarm_unit_files_written_total 0\n",
            "podswarm_unit_files_removed_total 0\n",
            "podswarm_unit_starts_total 0\n",
            "podswarm_unit_restarts_total 0\n",
            "podswarm_unit_stops_total 0\n",
            "# TYPE podswarm_pods gauge\n",
            "# TYPE podswarm_state_version gauge\n",
            "podswarm_state_version 12\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        // Prometheus text, not OpenMetrics.
        assert!(!text.contains("# EOF"));
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }
}
