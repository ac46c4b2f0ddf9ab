//! podswarmd's side of the replicated state, reached through podswarm-gossip's control socket.
//!
//! A follower keeps a mirror of every replicated key (a subscription: snapshot, then changes) and
//! of the live membership (polled); everything podswarmd decides comes from that mirror:
//! - the applied objects are copied into the local [`State`], which the reconciler and the API
//!   read as before, so a node keeps running its pods while gossip is down;
//! - placement ([`crate::schedule`]) runs over the node records of live members, starting from
//!   the move records `podswarmctl rebalance` writes (`moves/<ns>/<pod>`), each of which the node
//!   the pod moves to removes once its copy holds the pod's status record;
//! - this node claims a pod subnet (`subnets/<node>`), and keeps one kernel route per peer subnet;
//! - it publishes the status of its own pods (`pods/<ns>/<pod>`), which every other node's API
//!   shows and uses for Service endpoints.
//!
//! Writes from the API go to gossip first; the API then waits until the mirror has them, so a
//! client reads its own writes from any node it talks to. [`Link::apply`] says per object what it
//! did as an [`Action`], the same enum the API answers with, so no word is mapped back on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use podswarm_cluster::Hlc;
use podswarm_gossip::control::client::{Client, ClientError, Event, Status};
use podswarm_manifest::{Limits, Object, PodInstance, Policy};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::reconcile::{PodView, PodViews, error_chain};
use crate::rollout::{Facts, Revision, Seen, expired_revisions};
use crate::schedule::{Move, NodeInfo, Placement, place, rebalance, steer};
use crate::state::{Action, State, TokenRecord, token_matches};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the cluster state is unavailable")]
    Gossip(#[source] ClientError),
    #[error("the write did not come back from podswarm-gossip within {0:?}")]
    NotSeen(Duration),
}

#[derive(Debug, Default, Clone)]
pub struct Mirror {
    /// A snapshot has arrived since the last (re)connect.
    pub synced: bool,
    pub cluster: Option<String>,
    pub self_id: Option<String>,
    /// Node ids of live members, this node included.
    pub alive: BTreeSet<String>,
    /// When the last snapshot arrived (podswarmd or podswarm-gossip started, or reconnected):
    /// for [`SETTLE`] after it, membership is still being learnt.
    pub synced_at: Option<Instant>,
    pub entries: BTreeMap<String, (Hlc, Value)>,
    /// A change is in the entries but not yet in the local state and the change count: a writer
    /// that saw its write here now would return before the API's snapshot can hold it (a read
    /// right after `rollout resume` found the Deployment still paused, under load).
    pub settling: bool,
}

/// A node as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub name: String,
    pub node_id: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub subnet: Option<String>,
    pub ready: bool,
    /// Takes no new pod (`podswarmctl cordon`, `drain`).
    pub cordoned: bool,
    /// Being drained: its pods move to other nodes.
    pub draining: bool,
    /// Copies of pods it still runs that another node's copy has taken over (stopping now), or
    /// that a second copy elsewhere holds the record of: `ns/name`.
    pub stopping: Vec<String>,
}

/// A node's maintenance record (`cordons/<node>`): present while it is cordoned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cordon {
    /// Drained too: its pods move away, not just new ones.
    #[serde(default)]
    pub drain: bool,
    /// When (seconds since the epoch).
    #[serde(default)]
    pub since: u64,
    /// The id of the node cordoned: a host that left and joins again under the same name is a
    /// new node, and not cordoned.
    #[serde(default)]
    pub node_id: String,
}

/// A pod `podswarmctl rebalance` moves (`moves/<ns>/<pod>`): present until the pod's copy on
/// the new node holds its status record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MoveRecord {
    /// The node it goes to.
    pub to: String,
    /// When the move was asked for (seconds since the epoch).
    #[serde(default)]
    pub since: u64,
}

/// How long a move record stands at most (seconds): far longer than a hand-over takes with the
/// default `move_timeout_ms` (2 minutes), after which the old copy stops whatever happened.
pub const MOVE_TTL: u64 = 600;

impl MoveRecord {
    fn expired(&self, now: u64) -> bool {
        now.saturating_sub(self.since) >= MOVE_TTL
    }
}

/// The move records (`ns/pod` → record) of a mirror.
fn moves_of(m: &Mirror) -> BTreeMap<String, MoveRecord> {
    m.entries
        .range("moves/".to_owned()..)
        .take_while(|(k, _)| k.starts_with("moves/"))
        .filter_map(|(k, (_, v))| {
            let record = serde_json::from_value(v.clone()).ok()?;
            Some((k["moves/".len()..].to_owned(), record))
        })
        .collect()
}

/// The cordon record of `node`, if it has one.
fn cordon_of(m: &Mirror, node: &str) -> Option<Cordon> {
    m.entries
        .get(&format!("cordons/{node}"))
        .and_then(|(_, v)| serde_json::from_value(v.clone()).ok())
}

#[derive(Debug)]
pub struct Link {
    gossip: Client,
    node_name: String,
    state: Arc<State>,
    policy: Policy,
    mirror: RwLock<Mirror>,
    seen: watch::Sender<u64>,
    refused: RwLock<BTreeSet<String>>,
    /// The subnet this process renders its pods with (set once it is known).
    rendering: RwLock<Option<Ipv4Net>>,
    /// Set while this process's pod views are not yet those of its first reconcile pass (just
    /// after a start): the views are empty then, and publishing them would delete every status
    /// record of the pods this node runs, so other nodes would place those pods anew.
    views_pending: std::sync::atomic::AtomicBool,
    /// Since when this node's claim on each pod it does not run yet has stood: its status
    /// record in the mirror names this node (see [`Link::place_claimed`]).
    claims: std::sync::Mutex<BTreeMap<String, Instant>>,
}

fn object_key(o: &Object) -> String {
    format!("objects/{}/{}/{}", o.kind(), o.namespace(), o.name())
}

impl Link {
    pub fn new(socket: PathBuf, node_name: String, state: Arc<State>, policy: Policy) -> Arc<Link> {
        Arc::new(Link {
            gossip: Client::new(socket),
            node_name,
            state,
            policy,
            mirror: RwLock::default(),
            seen: watch::channel(0).0,
            refused: RwLock::default(),
            rendering: RwLock::default(),
            views_pending: std::sync::atomic::AtomicBool::new(false),
            claims: std::sync::Mutex::default(),
        })
    }

    /// Holds the publication of pod status records until [`Link::views_ready`]: podswarmd calls
    /// this at its start, before its first reconcile pass has observed the pods it runs.
    pub fn hold_views(&self) {
        self.views_pending
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The pod views now say what runs here: status records are published (and those of pods
    /// that no longer run here deleted) from now on.
    pub fn views_ready(&self) {
        self.views_pending
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records the subnet this process gives its pods addresses from; until its claim on it
    /// stands in the cluster, no pod is placed here (see [`Link::place`]).
    pub fn set_rendering_subnet(&self, subnet: Ipv4Net) {
        if let Ok(mut r) = self.rendering.write() {
            *r = Some(subnet);
        }
    }

    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Waits (at most `limit`) until the mirror holds the cluster's state since the last
    /// (re)connect; `false` when it still does not.
    pub async fn synced(&self, limit: Duration) -> bool {
        self.wait_mirror(limit, |m| m.synced).await
    }

    /// Waits until `done` holds for the mirror, looked at again after every change to it, for
    /// at most `limit`; `false` when the limit passed first.
    async fn wait_mirror(&self, limit: Duration, done: impl Fn(&Mirror) -> bool) -> bool {
        let mut changes = self.seen.subscribe();
        let wait = async {
            loop {
                // A change still settling is seen once it is counted (`follow_once` bumps after).
                let ready = {
                    let m = self.mirror.read().unwrap_or_else(|p| p.into_inner());
                    !m.settling && done(&m)
                };
                if ready {
                    return true;
                }
                if changes.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }

    /// Waits (at most `limit`) until the local gossip node has exchanged its state with another
    /// member since it started, so that what it holds is the cluster's state and not the one it
    /// had before it went down (after a power cut, its status records still say its old pods run
    /// here, though other nodes took them over meanwhile). Returns at once when no other node is
    /// on record; `false` when the limit passed first.
    pub async fn peer_synced(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let alone = !self.nodes().iter().any(|n| n.name != self.node_name);
                let synced = self
                    .gossip
                    .status()
                    .await
                    .is_ok_and(|s| s.metrics.syncs > 0);
                if alone || synced {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    pub fn mirror(&self) -> Mirror {
        self.mirror.read().map(|m| m.clone()).unwrap_or_default()
    }

    fn bump(&self) {
        self.seen.send_modify(|n| *n += 1);
    }

    /// Every node with a record, and whether it is a live member.
    pub fn nodes(&self) -> Vec<NodeView> {
        // Under the read lock: a copy of the whole mirror per call would cost every placement
        // pass a copy of the cluster's state.
        self.nodes_in(&self.mirror.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// [`Link::nodes`] of a mirror held already.
    fn nodes_in(&self, m: &Mirror) -> Vec<NodeView> {
        let subnets = winning_claims(m);
        let mut out: Vec<NodeView> = m
            .entries
            .range("nodes/".to_owned()..)
            .take_while(|(k, _)| k.starts_with("nodes/"))
            .filter_map(|(_, (_, v))| {
                let name = v.get("name")?.as_str()?.to_owned();
                let node_id = v.get("nodeId")?.as_str()?.to_owned();
                let cordon = cordon_of(m, &name).filter(|c| c.node_id == node_id);
                let ready = name == self.node_name || m.alive.contains(&node_id);
                Some(NodeView {
                    // A node that is down stops nothing: its record is stale.
                    stopping: m
                        .entries
                        .get(&format!("stopping/{name}"))
                        .filter(|_| ready)
                        .and_then(|(_, v)| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default(),
                    cordoned: cordon.is_some(),
                    draining: cordon.is_some_and(|c| c.drain),
                    ready,
                    subnet: subnets.get(&name).map(|s| s.to_string()),
                    address: v
                        .get("address")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    labels: v
                        .get("labels")
                        .and_then(|l| serde_json::from_value(l.clone()).ok())
                        .unwrap_or_default(),
                    name,
                    node_id,
                })
            })
            .collect();
        if !out.iter().any(|n| n.name == self.node_name) {
            // Before gossip has answered, this node still runs what it holds.
            out.push(NodeView {
                name: self.node_name.clone(),
                node_id: String::new(),
                address: String::new(),
                labels: BTreeMap::new(),
                subnet: self.state.subnet().map(|s| s.to_string()),
                ready: true,
                cordoned: false,
                draining: false,
                stopping: Vec::new(),
            });
        }
        out
    }

    /// Places pods on the ready nodes whose pod subnet claim stands. Another node without one
    /// (it just joined, or lost its subnet to an earlier claim and is moving) gets nothing, and
    /// this node runs nothing while another node holds the subnet it renders with (it joined a
    /// cluster where an earlier claim has it): two live pods must never share an address,
    /// whatever the timing of joins and applies. A pod keeps the node its status record names
    /// while that node may still have it (`running`), so running pods do not move; one that
    /// `podswarmctl rebalance` moves is placed on its move record's node ([`steer`]).
    pub fn place(&self, pods: &[&PodInstance]) -> BTreeMap<String, Placement> {
        let (nodes, current) = self.placement_inputs(pods);
        place(pods, &nodes, &current)
    }

    /// [`Link::place`], and which of the pods placed here may not start yet: a pod no live node's
    /// copy holds (a new one, or one whose node is down) is first claimed, its status record
    /// naming this node (Pending), and starts only once that claim has stood for [`CLAIM_HOLD`].
    ///
    /// Why: every node places by its own copy of the state, and in the seconds after nodes join
    /// or an apply lands those copies differ (a node another has not heard of yet, an object one
    /// has and another not yet), so two nodes may each place a pod on themselves. Without the
    /// claim both would start it, and one copy would run until the records settled. With it, the
    /// two claims meet in the record (the last write wins everywhere), the node whose claim lost
    /// sees the record name another live node, keeps the pod there like any running pod, and
    /// never starts it. A node alone in the cluster has no one to meet and claims nothing. A pod
    /// another live node's copy holds (a hand-over, a `rebalance` move, a drain) needs no claim:
    /// that copy's record already decides, and the new copy takes it over once ready.
    pub fn place_claimed(&self, pods: &[&PodInstance]) -> crate::reconcile::Placed {
        let (nodes, current) = self.placement_inputs(pods);
        let at = place(pods, &nodes, &current);
        let claiming = self.claiming(&at, &nodes);
        crate::reconcile::Placed { at, claiming }
    }

    /// The pods of `at` placed here whose claim has not stood for [`CLAIM_HOLD`] yet, with how
    /// long it still must.
    fn claiming(
        &self,
        at: &BTreeMap<String, Placement>,
        nodes: &[NodeInfo],
    ) -> BTreeMap<String, Duration> {
        let me = self.node_name.as_str();
        let holders = self.running();
        let here: BTreeSet<&String> = at
            .iter()
            .filter(|(_, p)| matches!(p, Placement::Node(n) if n == me))
            .map(|(k, _)| k)
            .collect();
        let ready: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| n.ready)
            .map(|n| n.name.as_str())
            .collect();
        let mut out = BTreeMap::new();
        let Ok(mut since) = self.claims.lock() else {
            return out;
        };
        since.retain(|k, _| here.contains(k) && holders.get(k).map(String::as_str) == Some(me));
        // Alone on record: nobody to meet. A node that merely sees no other as ready yet (just
        // joined, membership still settling) does claim: that is when views differ most.
        if self.nodes().iter().all(|n| n.name == me) {
            return out;
        }
        let now = Instant::now();
        for key in here {
            match holders.get(key).map(String::as_str) {
                Some(n) if n == me => {
                    let stood = now.duration_since(*since.entry(key.clone()).or_insert(now));
                    let left = CLAIM_HOLD.saturating_sub(stood);
                    if !left.is_zero() {
                        out.insert(key.clone(), left);
                    }
                }
                Some(n) if ready.contains(n) => {}
                _ => {
                    out.insert(key.clone(), CLAIM_HOLD);
                }
            }
        }
        out
    }

    /// The moves that would even out the spread of `pods` ([`rebalance`]), from where placement
    /// has them now: moves under way count as made, so asking again plans nothing new.
    pub fn plan_rebalance(&self, pods: &[&PodInstance]) -> Vec<Move> {
        let (nodes, current) = self.placement_inputs(pods);
        rebalance(pods, &nodes, &current)
    }

    /// What placement starts from: the nodes that may have pods, and where pods run (steered by
    /// the move records).
    fn placement_inputs(&self, pods: &[&PodInstance]) -> (Vec<NodeInfo>, BTreeMap<String, String>) {
        let (synced, settling, moves) = self
            .mirror
            .read()
            .map(|m| {
                let moves: BTreeMap<String, String> = moves_of(&m)
                    .into_iter()
                    .map(|(pod, record)| (pod, record.to))
                    .collect();
                // A node whose gossip has heard from no other member yet (after a power cut,
                // SWIM takes a while to readmit it) keeps settling longer, up to SETTLE_ALONE.
                let alone = m.alive.len() <= 1;
                let settling = m
                    .synced_at
                    .is_some_and(|t| t.elapsed() < SETTLE || (alone && t.elapsed() < SETTLE_ALONE));
                (m.synced, settling, moves)
            })
            .unwrap_or_default();
        let mut nodes = self.nodes();
        // Just after a (re)start of either process, the local gossip node has not heard from the
        // others yet and counts only itself alive: for placement, a node on record counts as up
        // until membership has had time to settle, so a restart or a power cut of this node
        // never makes it take every pod of the cluster.
        if settling {
            for n in &mut nodes {
                n.ready = true;
            }
        }
        let rendering = self
            .rendering
            .read()
            .ok()
            .and_then(|r| r.map(|s| s.to_string()));
        let nodes = placeable(
            nodes,
            &self.node_name,
            rendering.filter(|_| synced).as_deref(),
        );
        let current = steer(self.running(), &moves, pods, &nodes);
        (nodes, current)
    }

    /// Starts the moves of a rebalance: one move record each. Records that steer nothing any
    /// more go at the same time: their pod is gone (not in `pods`, the `ns/name`s that exist),
    /// their node is down or cordoned, or they are older than [`MOVE_TTL`].
    pub async fn start_moves(
        &self,
        moves: &[Move],
        pods: &BTreeSet<String>,
    ) -> Result<(), LinkError> {
        let now = unix_now();
        let m = self.mirror();
        let open: BTreeSet<String> = self
            .nodes_in(&m)
            .into_iter()
            .filter(|n| n.ready && !n.cordoned)
            .map(|n| n.name)
            .collect();
        let planned: BTreeSet<&str> = moves.iter().map(|mv| mv.pod.as_str()).collect();
        for (pod, record) in moves_of(&m) {
            let stale = !pods.contains(&pod) || !open.contains(&record.to) || record.expired(now);
            if stale && !planned.contains(pod.as_str()) {
                self.write(&format!("moves/{pod}"), None).await?;
            }
        }
        for mv in moves {
            let record = MoveRecord {
                to: mv.to.clone(),
                since: now,
            };
            tracing::info!(pod = %mv.pod, from = %mv.from, to = %mv.to, "moving the pod to even out the spread");
            self.write(
                &format!("moves/{}", mv.pod),
                serde_json::to_value(&record).ok(),
            )
            .await?;
        }
        Ok(())
    }

    /// Where pods are placed now (`ns/pod` → node), from the pod status records
    /// ([`Link::pod_records`]' keys) of every node, this one's included. Only a pod placed on a
    /// node has a record naming it: an unplaced pod's view has an empty node and is not
    /// published, and a record saying `Unschedulable` (another version's) is not taken either.
    /// Read under the lock, two fields per record, so a pass copies and parses no whole record.
    fn running(&self) -> BTreeMap<String, String> {
        let Ok(m) = self.mirror.read() else {
            return BTreeMap::new();
        };
        let unplaced = crate::reconcile::PodReason::Unschedulable.as_str();
        m.entries
            .range("pods/".to_owned()..)
            .take_while(|(k, _)| k.starts_with("pods/"))
            .filter_map(|(k, (_, v))| {
                let node = v.get("node")?.as_str()?;
                let reason = v.get("reason").and_then(Value::as_str);
                // A pod on its way out holds no place: if it is wanted again, it may go anywhere.
                let leaving = v.get("terminating").and_then(Value::as_bool) == Some(true);
                (!node.is_empty() && reason != Some(unplaced) && !leaving)
                    .then(|| (k.trim_start_matches("pods/").to_owned(), node.to_owned()))
            })
            .collect()
    }

    /// Status records other nodes published for their pods.
    pub fn pod_records(&self) -> BTreeMap<String, PodView> {
        let m = self.mirror();
        m.entries
            .range("pods/".to_owned()..)
            .take_while(|(k, _)| k.starts_with("pods/"))
            .filter_map(|(k, (_, v))| {
                let view: PodView = serde_json::from_value(v.clone()).ok()?;
                Some((k.trim_start_matches("pods/").to_owned(), view))
            })
            .collect()
    }

    /// Writes (or with `None` deletes) a key and returns the version it got, once it is on the
    /// local gossip node's disk (not yet in the mirror).
    async fn store(&self, key: &str, value: Option<Value>) -> Result<Hlc, LinkError> {
        match value {
            Some(v) => self.gossip.put(key, v).await,
            None => self.gossip.delete(key).await,
        }
        .map_err(LinkError::Gossip)
    }

    /// Writes (or with `None` deletes) a key and waits until the mirror holds that version.
    pub async fn write(&self, key: &str, value: Option<Value>) -> Result<(), LinkError> {
        let version = self.store(key, value).await?;
        self.wait_seen(key, version).await
    }

    async fn wait_seen(&self, key: &str, version: Hlc) -> Result<(), LinkError> {
        let limit = Duration::from_secs(5);
        let seen = self
            .wait_mirror(limit, |m| match m.entries.get(key) {
                Some((v, _)) => *v >= version,
                // A delete leaves no entry in the mirror.
                None => m.synced,
            })
            .await;
        if seen {
            Ok(())
        } else {
            Err(LinkError::NotSeen(limit))
        }
    }

    /// Writes objects; returns, per object, whether it was new, changed or the same. A
    /// Deployment's template gets its revision record first, so that no node ever sees the new
    /// template without the old one its running pods need.
    pub async fn apply(&self, objects: &[Object]) -> Result<Vec<Action>, LinkError> {
        let mut out = Vec::new();
        for o in objects {
            let key = object_key(o);
            let value = o.to_value();
            let held = self.mirror().entries.get(&key).map(|(_, v)| v.clone());
            let action = action(held.as_ref(), &value);
            if action != Action::Unchanged {
                if let Object::Deployment(d) = o {
                    self.record_revisions(o.namespace(), o.name(), d, held.as_ref())
                        .await?;
                }
                self.write(&key, Some(value)).await?;
            }
            out.push(action);
        }
        Ok(out)
    }

    /// Keeps a Deployment's revision records ([`crate::rollout`]) in step with a write of it:
    /// the template it had (if it has no record yet: written before revisions existed), then the
    /// new one as the newest revision (a template seen before, as by an undo, moves up), and
    /// drops the oldest beyond `revisionHistoryLimit` that no pod still uses.
    async fn record_revisions(
        &self,
        namespace: &str,
        name: &str,
        d: &k8s_openapi::api::apps::v1::Deployment,
        held: Option<&Value>,
    ) -> Result<(), LinkError> {
        let spec = &d.spec;
        let facts = self.rollout_facts(unix_now());
        let at = (namespace.to_owned(), name.to_owned());
        let mut revisions = facts.revisions.get(&at).cloned().unwrap_or_default();
        let prefix = format!("revisions/{namespace}/{name}/");
        let mut newest = revisions.values().map(|r| r.revision).max().unwrap_or(0);
        let hash = podswarm_manifest::template_hash(&spec.template);
        let held_deployment = held.and_then(|v| {
            serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(v.clone()).ok()
        });
        let held_cause = held_deployment
            .as_ref()
            .and_then(|d| podswarm_api::kube::objects::change_cause(&d.metadata));
        let cause = podswarm_api::kube::objects::change_cause(&d.metadata);
        let before = held_deployment.map(|d| d.spec.template);
        let before_hash = before.as_ref().map(podswarm_manifest::template_hash);
        if let Some(template) = before {
            let old = podswarm_manifest::template_hash(&template);
            if old != hash && !revisions.contains_key(&old) {
                newest += 1;
                let rev = Revision {
                    revision: newest,
                    template,
                    created: unix_now(),
                    change_cause: held_cause,
                };
                self.write(&format!("{prefix}{old}"), serde_json::to_value(&rev).ok())
                    .await?;
                revisions.insert(old, rev);
            } else if old != hash
                && let Some(rev) = revisions.get(&old).filter(|r| r.change_cause != held_cause)
            {
                // The template steps down: its revision keeps the cause it last had.
                let rev = Revision {
                    change_cause: held_cause,
                    ..rev.clone()
                };
                self.write(&format!("{prefix}{old}"), serde_json::to_value(&rev).ok())
                    .await?;
                revisions.insert(old, rev);
            }
        }
        // The progress deadline counts from when a rollout can start: a new template, or a
        // resume (a template recorded while paused must not be past its deadline at once; nor
        // one recorded by an earlier apply whose object write failed).
        let was_paused = held
            .and_then(|v| v.pointer("/spec/paused"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let resumed = was_paused && !spec.paused.unwrap_or(false);
        let changed = before_hash.as_deref() != Some(hash.as_str());
        if let Some(rev) = revisions.get(&hash).filter(|r| r.revision == newest)
            && (resumed || changed)
        {
            let rev = Revision {
                created: unix_now(),
                change_cause: cause.clone(),
                ..rev.clone()
            };
            self.write(&format!("{prefix}{hash}"), serde_json::to_value(&rev).ok())
                .await?;
            revisions.insert(hash.clone(), rev);
        }
        if revisions.get(&hash).is_none_or(|r| r.revision < newest) {
            let rev = Revision {
                revision: newest + 1,
                template: spec.template.clone(),
                created: unix_now(),
                change_cause: cause,
            };
            self.write(&format!("{prefix}{hash}"), serde_json::to_value(&rev).ok())
                .await?;
            revisions.insert(hash.clone(), rev);
        }
        let live: BTreeSet<String> = facts
            .pods
            .get(&at)
            .into_iter()
            .flat_map(|pods| pods.keys())
            .filter_map(|p| podswarm_manifest::replica_ordinal(p).map(|(h, _)| h.to_owned()))
            .collect();
        let limit = podswarm_manifest::rollout::Rollout::of(spec)
            .map(|r| r.revision_history_limit)
            .unwrap_or(10);
        for expired in expired_revisions(&revisions, &hash, &live, limit) {
            self.write(&format!("{prefix}{expired}"), None).await?;
        }
        Ok(())
    }

    /// What rollouts decide from ([`crate::rollout`]): the revision records, and what the status
    /// records of pods on live nodes say.
    pub fn rollout_facts(&self, now: u64) -> Facts {
        // Read under the lock once: every pass and every model rebuild asks, so no mirror copies.
        let Ok(m) = self.mirror.read() else {
            return Facts {
                now,
                ..Facts::default()
            };
        };
        let live: BTreeSet<String> = self
            .nodes_in(&m)
            .into_iter()
            .filter(|n| n.ready)
            .map(|n| n.name)
            .collect();
        facts_of(&m, &live, now)
    }

    /// Cordons (`Some`: with `drain`, its pods move away too) or uncordons (`None`) a node by
    /// name, once the write is in the mirror; `false` when the cluster has no node of that name.
    pub async fn set_cordon(
        &self,
        node: &str,
        mut cordon: Option<Cordon>,
    ) -> Result<bool, LinkError> {
        let Some(known) = self.nodes().into_iter().find(|n| n.name == node) else {
            return Ok(false);
        };
        if let Some(c) = cordon.as_mut() {
            c.node_id = known.node_id;
        }
        let key = format!("cordons/{node}");
        let value = cordon.as_ref().and_then(|c| serde_json::to_value(c).ok());
        // Already so: no write, and a drain in progress keeps its start time.
        let held = self.mirror.read().ok().and_then(|m| {
            m.entries
                .get(&key)
                .and_then(|(_, v)| serde_json::from_value::<Cordon>(v.clone()).ok())
        });
        let state = |c: Option<&Cordon>| c.map(|c| (c.drain, c.node_id.clone()));
        if state(held.as_ref()) == state(cordon.as_ref()) {
            return Ok(true);
        }
        self.write(&key, value).await?;
        Ok(true)
    }

    /// Deletes an object (a Deployment with its revision records); `false` when the cluster has no
    /// such object.
    pub async fn delete(&self, kind: &str, namespace: &str, name: &str) -> Result<bool, LinkError> {
        let key = format!("objects/{kind}/{namespace}/{name}");
        let mirror = self.mirror();
        if !mirror.entries.contains_key(&key) {
            return Ok(false);
        }
        self.write(&key, None).await?;
        if kind == "Deployment" {
            let prefix = format!("revisions/{namespace}/{name}/");
            let revisions: Vec<&String> = mirror
                .entries
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k)
                .collect();
            for k in revisions {
                self.write(k, None).await?;
            }
        }
        Ok(true)
    }

    /// Follows gossip until shutdown: the subscription, membership, pod status publishing.
    pub async fn run(self: Arc<Self>, views: PodViews, mut shutdown: watch::Receiver<bool>) {
        let follow = tokio::spawn(Arc::clone(&self).follow());
        let members = tokio::spawn(Arc::clone(&self).poll_members());
        let publish = tokio::spawn(Arc::clone(&self).publish(views));
        let _ = shutdown.changed().await;
        follow.abort();
        members.abort();
        publish.abort();
    }

    async fn follow(self: Arc<Self>) {
        let mut failing = false;
        loop {
            match self.follow_once(&mut failing).await {
                Ok(()) => failing = false,
                // Not a failure: the node changed clusters or this reader fell behind.
                Err(e) if e.kind().is_some_and(|k| k.resubscribe()) => {
                    tracing::debug!(reason = %e, "subscribing to the cluster state again");
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %error_chain(&e), "lost the cluster state; keeping the last copy and retrying");
                    }
                    failing = true;
                }
            }
            if let Ok(mut m) = self.mirror.write() {
                m.synced = false;
                m.settling = false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Follows one subscription until it ends; `failing` is cleared once a snapshot arrives, so
    /// the next outage is reported again.
    async fn follow_once(&self, failing: &mut bool) -> Result<(), ClientError> {
        let status = self.gossip.status().await?;
        self.take_status(&status);
        let mut sub = self.gossip.subscribe("").await?;
        loop {
            let event = sub.next().await?;
            let objects_changed = {
                let Ok(mut m) = self.mirror.write() else {
                    return Ok(());
                };
                m.settling = true;
                match event {
                    Event::Snapshot(items) => {
                        m.entries = items
                            .into_iter()
                            .map(|i| (i.key, (i.version, i.value)))
                            .collect();
                        m.synced = true;
                        m.synced_at = Some(Instant::now());
                        if std::mem::take(failing) {
                            tracing::info!("following the cluster state again");
                        }
                        true
                    }
                    Event::Change(change) => {
                        let is_object = change.key.starts_with("objects/");
                        match change.value {
                            Some(v) => {
                                m.entries.insert(change.key, (change.version, v));
                            }
                            None => {
                                m.entries.remove(&change.key);
                            }
                        }
                        is_object
                    }
                }
            };
            if objects_changed {
                self.sync_state().await;
            } else {
                // Node records and subnets change placement and routes.
                self.state.touch();
            }
            if let Ok(mut m) = self.mirror.write() {
                m.settling = false;
            }
            self.bump();
        }
    }

    fn take_status(&self, status: &Status) {
        // Node ids as node records write them: 16 hex digits.
        let hex = |id: u64| format!("{id:016x}");
        let ids: BTreeSet<String> = status.members.iter().map(|m| hex(m.node_id)).collect();
        let self_id = Some(hex(status.node_id));
        let cluster = Some(hex(status.cluster));
        if status.node_name != self.node_name {
            tracing::error!(gossip = %status.node_name, podswarmd = %self.node_name, "podswarm-gossip and podswarmd disagree on the node name; set node_name in podswarm.toml");
        }
        let changed = {
            let Ok(mut m) = self.mirror.write() else {
                return;
            };
            let mut alive = ids;
            alive.extend(self_id.clone());
            let changed = m.alive != alive || m.cluster != cluster;
            m.alive = alive;
            m.self_id = self_id;
            m.cluster = cluster;
            changed
        };
        if changed {
            self.state.touch();
            self.bump();
        }
    }

    async fn poll_members(self: Arc<Self>) {
        loop {
            if let Ok(status) = self.gossip.status().await {
                self.take_status(&status);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Copies the replicated objects into the local state. The first time this node meets a
    /// cluster that holds no objects while the node does (a single node from before clustering),
    /// the node's objects are written to the cluster instead of being dropped.
    async fn sync_state(&self) {
        let m = self.mirror();
        if !m.synced {
            return;
        }
        let values: Vec<(String, Value)> = m
            .entries
            .range("objects/".to_owned()..)
            .take_while(|(k, _)| k.starts_with("objects/"))
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        let held = self.state.entries();
        if self.state.cluster().is_none() && values.is_empty() && !held.is_empty() {
            tracing::info!(
                objects = held.len(),
                "adopting this node's objects into the cluster"
            );
            let objects: Vec<Object> = held.into_iter().map(|e| e.object).collect();
            if let Err(e) = self.apply(&objects).await {
                tracing::error!(error = %error_chain(&e), "cannot write this node's objects to the cluster");
                return;
            }
        }
        if self.state.cluster() != m.cluster
            && let Err(e) = self
                .state
                .set_membership(m.cluster.clone(), self.state.subnet())
        {
            tracing::error!(error = %error_chain(&e), "cannot record the cluster");
        }
        let mut objects = Vec::new();
        for (key, value) in values {
            match podswarm_manifest::parse(
                &value.to_string(),
                &key,
                &Limits::default(),
                &self.policy,
            ) {
                Ok(parsed) => objects.extend(parsed.objects.into_iter().map(|p| p.object)),
                Err(e) => {
                    let first = self
                        .refused
                        .write()
                        .map(|mut r| r.insert(key.clone()))
                        .unwrap_or(false);
                    if first {
                        tracing::error!(object = %key, error = %e, "a replicated object is refused by this node's configuration; not run here");
                    }
                }
            }
        }
        if let Err(e) = self.state.sync_objects(objects) {
            tracing::error!(error = %error_chain(&e), "cannot store the cluster's objects");
        }
    }

    /// Publishes this node's pod views as status records, and removes records of pods it no
    /// longer runs.
    async fn publish(self: Arc<Self>, views: PodViews) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // Pods this node's copy took over from another live node's, with that node: the record
        // says so for a while, so that every node's view can confirm it routes here now.
        let mut took_over: BTreeMap<String, (String, Instant)> = BTreeMap::new();
        loop {
            tick.tick().await;
            if self
                .views_pending
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                continue;
            }
            let mine: BTreeMap<String, Value> = views
                .read()
                .map(|v| {
                    v.iter()
                        .filter(|(_, p)| p.node == self.node_name)
                        .filter_map(|(k, p)| {
                            Some((format!("pods/{k}"), serde_json::to_value(p).ok()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let m = self.mirror();
            if !m.synced {
                continue;
            }
            let live: BTreeSet<String> = self
                .nodes_in(&m)
                .into_iter()
                .filter(|n| n.ready)
                .map(|n| n.name)
                .collect();
            took_over.retain(|k, (_, at)| mine.contains_key(k) && at.elapsed() < REPLACES_FOR);
            // Copies this node still runs under another node's record (handed over and
            // stopping, or a second copy after a partition): nothing else would show them.
            // A copy being handed over is listed already, so that there is no moment when the
            // record has moved on and this list does not show the copy yet.
            let mut unrecorded: BTreeSet<&str> = BTreeSet::new();
            for (key, value) in &mine {
                // Two copies of one pod (both sides ran it during a partition; two nodes briefly
                // disagreed): the record names one, and placement keeps that one. This node's copy
                // never overwrites a record of another live node's copy, nor, on its way out,
                // any other node's; it is in no view then, and its stop needs no wait. The one
                // exception is a hand-over: the holder's copy says it is `moving` (placement put
                // the pod here), and this copy takes the record over once it is ready, so the
                // views switch from one serving copy to the other.
                let flag = |v: &Value, f: &str| v.get(f).and_then(Value::as_bool) == Some(true);
                let leaving = flag(value, "terminating");
                // Every copy on its way out is listed (a drain waits for them), also one whose
                // record another copy holds or that has none (placed nowhere now).
                if flag(value, "moving") || leaving {
                    unrecorded.insert(&key["pods/".len()..]);
                }
                let record = m.entries.get(key).map(|(_, v)| v);
                let holder = record
                    .and_then(|v| v.get("node")?.as_str())
                    .filter(|n| *n != self.node_name);
                if let Some(holder) = holder {
                    // A copy that is itself being handed away takes nothing over.
                    let handed_over = record.is_some_and(|v| flag(v, "moving"))
                        && flag(value, "ready")
                        && !leaving
                        && !flag(value, "moving");
                    if leaving || (live.contains(holder) && !handed_over) {
                        continue;
                    }
                    if live.contains(holder) {
                        tracing::debug!(pod = %key, from = %holder, "taking the pod over");
                        took_over.insert(key.clone(), (holder.to_owned(), Instant::now()));
                    }
                }
                let mut value = value.clone();
                if let (Some((from, _)), Some(fields)) = (took_over.get(key), value.as_object_mut())
                {
                    fields.insert("replaces".to_owned(), Value::String(from.clone()));
                }
                if record != Some(&value)
                    && let Err(e) = self.store(key, Some(value)).await
                {
                    tracing::debug!(error = %error_chain(&e), "cannot publish pod status");
                }
            }
            let stale: Vec<&String> = m
                .entries
                .range("pods/".to_owned()..)
                .take_while(|(k, _)| k.starts_with("pods/"))
                .filter(|(k, (_, v))| {
                    v.get("node").and_then(Value::as_str) == Some(self.node_name.as_str())
                        && !mine.contains_key(*k)
                })
                .map(|(k, _)| k)
                .collect();
            for key in stale {
                let _ = self.store(key, None).await;
            }
            // A move to this node is done once its copy holds the pod's record (placement keeps
            // the pod here by the record from then on); one that old is over either way.
            let now = unix_now();
            for (pod, record) in moves_of(&m) {
                if record.to != self.node_name {
                    continue;
                }
                let held = m
                    .entries
                    .get(&format!("pods/{pod}"))
                    .and_then(|(_, v)| v.get("node")?.as_str())
                    == Some(self.node_name.as_str());
                if !held && !record.expired(now) {
                    continue;
                }
                tracing::debug!(pod = %pod, done = held, "removing the pod's move record");
                if let Err(e) = self.store(&format!("moves/{pod}"), None).await {
                    tracing::debug!(error = %error_chain(&e), "cannot remove a move record");
                }
            }
            let stopping_key = format!("stopping/{}", self.node_name);
            let held = m.entries.get(&stopping_key).map(|(_, v)| v);
            let now = (!unrecorded.is_empty()).then(|| json!(unrecorded));
            if held != now.as_ref()
                && let Err(e) = self.store(&stopping_key, now).await
            {
                tracing::debug!(error = %error_chain(&e), "cannot publish the pods still stopping here");
            }
        }
    }

    /// This node's pod subnet: the preferred one (configured, or held from before) unless another
    /// node claimed it first, else a free /24 of the pod CIDR ([`free_subnet`]). Waits for the
    /// cluster.
    pub async fn claim_subnet(&self, cidr: Ipv4Net, preferred: Option<Ipv4Net>) -> Ipv4Net {
        let mut seen = self.seen.subscribe();
        let mut announced = false;
        loop {
            let m = self.mirror();
            if m.synced {
                let claims = claims(&m);
                let taken_by_others = |s: &Ipv4Net| {
                    let mine = claims
                        .iter()
                        .find(|c| c.node == self.node_name)
                        .map(|c| c.version);
                    claims.iter().any(|c| {
                        c.node != self.node_name
                            && c.subnet == *s
                            && mine.is_none_or(|v| c.version < v)
                    })
                };
                let pick = preferred.filter(|s| !taken_by_others(s)).or_else(|| {
                    let used: BTreeSet<Ipv4Net> = claims
                        .iter()
                        .filter(|c| c.node != self.node_name)
                        .map(|c| c.subnet)
                        .collect();
                    free_subnet(cidr, &used, &self.node_name)
                });
                let Some(subnet) = pick else {
                    tracing::error!(cidr = %cidr, "the pod CIDR has no free /24 left for this node");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                };
                let current = claims.iter().find(|c| c.node == self.node_name);
                if current.is_some_and(|c| c.subnet == subnet) {
                    if !taken_by_others(&subnet) {
                        return subnet;
                    }
                } else {
                    let key = format!("subnets/{}", self.node_name);
                    match self
                        .write(&key, Some(json!({"subnet": subnet.to_string()})))
                        .await
                    {
                        Ok(()) => continue,
                        Err(e) => {
                            tracing::warn!(error = %error_chain(&e), "cannot claim a pod subnet yet")
                        }
                    }
                }
            } else if !announced {
                tracing::info!("waiting for podswarm-gossip to claim a pod subnet");
                announced = true;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), seen.changed()).await;
        }
    }

    /// Whether this node's claim on `subnet` stands in the cluster it is in now. It does not when
    /// the node moved to another cluster (the claim must be made there), or another node's
    /// earlier claim holds the subnet (after a join, two nodes may have claimed the same one in
    /// their old clusters). Unknown while gossip is unreachable: then it stands.
    pub fn holds_subnet(&self, subnet: Ipv4Net) -> bool {
        let m = self.mirror();
        !m.synced || winning_claims(&m).get(&self.node_name) == Some(&subnet)
    }

    /// Kernel routes to every other node's pod subnet, via that node's address.
    pub fn peer_routes(&self) -> BTreeMap<Ipv4Net, Ipv4Addr> {
        self.nodes()
            .into_iter()
            .filter(|n| n.name != self.node_name)
            .filter_map(|n| {
                let subnet: Ipv4Net = n.subnet?.parse().ok()?;
                match n.address.parse::<IpAddr>().ok()? {
                    IpAddr::V4(a) => Some((subnet, a)),
                    IpAddr::V6(_) => None,
                }
            })
            .collect()
    }

    /// API token records (hashes only) of the whole cluster.
    pub fn tokens(&self) -> Vec<TokenRecord> {
        self.mirror()
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with("tokens/"))
            .filter_map(|(_, (_, v))| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    pub fn verify_token(&self, token: &str, now: u64) -> bool {
        token_matches(&self.tokens(), token, now)
    }

    /// Keeps `key` holding `value` in whichever cluster this node is in (written again after a
    /// join, or if anything replaced it).
    pub async fn keep(self: Arc<Self>, key: String, value: Value) {
        let mut changes = self.changes();
        loop {
            let m = self.mirror();
            if m.synced
                && m.entries.get(&key).map(|(_, v)| v) != Some(&value)
                && let Err(e) = self.write(&key, Some(value.clone())).await
            {
                tracing::warn!(key, error = %error_chain(&e), "cannot write to the cluster state yet");
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// The value of `key` in the mirror, if live.
    pub fn value(&self, key: &str) -> Option<Value> {
        let mirror = self.mirror.read().ok()?;
        mirror.entries.get(key).map(|(_, v)| v.clone())
    }

    /// This node's certificate, signed by the cluster CA (held by podswarm-gossip) for the key
    /// of `csr` (PEM).
    pub async fn sign_node(
        &self,
        csr: &str,
        lifetime: Duration,
        addresses: Vec<std::net::IpAddr>,
    ) -> Result<podswarm_gossip::control::client::NodeCertificate, ClientError> {
        self.gossip.sign_node(csr, lifetime, addresses).await
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.seen.subscribe()
    }

    /// Tells the cluster which terminating pods this node's routing view no longer holds
    /// (`drained/<node>`: their `ns/name`s; no key when there are none), as the view writer
    /// reports them.
    pub async fn publish_drained(self: Arc<Self>, mut drained: watch::Receiver<BTreeSet<String>>) {
        let key = format!("drained/{}", self.node_name);
        let mut published: Option<BTreeSet<String>> = None;
        loop {
            let now = drained.borrow_and_update().clone();
            if published.as_ref() != Some(&now) {
                let value = (!now.is_empty()).then(|| json!(now));
                match self.store(&key, value).await {
                    Ok(_) => published = Some(now),
                    Err(e) => {
                        tracing::debug!(error = %error_chain(&e), "cannot publish the drained pods; trying again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            if drained.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until every live node says its routing view no longer holds the terminating pod
    /// `key` (`ns/name`), or `limit` has passed: nodes that cannot answer (an older version, a
    /// view that cannot be written) delay a stop by at most that much.
    pub async fn wait_drained(&self, key: &str, limit: Duration) {
        // Handed over to another node's copy: the views must route to that one instead.
        let moved = format!("{key}@{}", self.node_name);
        let done = |m: &Mirror| {
            let record = m.entries.get(&format!("pods/{key}")).map(|(_, v)| v);
            let holder = record.and_then(|v| v.get("node")?.as_str());
            let took_over = record
                .and_then(|v| v.get("replaces")?.as_str())
                .is_some_and(|n| n == self.node_name);
            // Which line the views say once they no longer send this copy anything.
            let gone = match holder {
                Some(n) if n == self.node_name => key,
                Some(_) if took_over => moved.as_str(),
                // No record names this node's copy (it was never published, or another node's
                // copy holds the record): no view has it.
                _ => return true,
            };
            self.nodes_in(m)
                .iter()
                .filter(|n| n.ready)
                .all(|n| drained_by(m, &n.name, gone))
        };
        if !self.wait_mirror(limit, done).await {
            let waiting: Vec<String> = self
                .nodes()
                .into_iter()
                .filter(|n| n.ready)
                .filter(|n| {
                    self.mirror.read().is_ok_and(|m| {
                        !drained_by(&m, &n.name, key) && !drained_by(&m, &n.name, &moved)
                    })
                })
                .map(|n| n.name)
                .collect();
            tracing::warn!(pod = %key, nodes = ?waiting, limit_ms = limit.as_millis() as u64, "stopping the pod before every node dropped it from its view");
        }
    }
}

impl Link {
    /// Waits until another live node's copy of the pod `key` (`ns/name`), ready, has taken over
    /// its status record from this node's (which says `moving`), or `limit` has passed; `true`
    /// when it did. This node's copy serves meanwhile, so a pod that moves never has fewer
    /// copies serving than before.
    pub async fn wait_handoff(&self, key: &str, limit: Duration) -> bool {
        let record = format!("pods/{key}");
        let done = |m: &Mirror| {
            let Some(value) = m.entries.get(&record).map(|(_, v)| v) else {
                // This node's record is gone (it never had one): no copy serves from the
                // record, and nothing can take it over.
                return true;
            };
            let holder = value.get("node").and_then(Value::as_str).unwrap_or("");
            let flag = |f: &str| value.get(f).and_then(Value::as_bool) == Some(true);
            // Another live node's copy serves the pod: this one took it over, or (a copy that
            // never held the record) it served all along. A copy that is not ready yet (one that
            // overwrote the record while this node seemed down) is waited for.
            holder != self.node_name
                && flag("ready")
                && !flag("terminating")
                && self.nodes_in(m).iter().any(|n| n.ready && n.name == holder)
        };
        if !self.wait_mirror(limit, done).await {
            tracing::warn!(pod = %key, limit_ms = limit.as_millis() as u64, "no other node's copy took the pod over in time; stopping this copy anyway");
            return false;
        }
        true
    }
}

/// How long after a snapshot of the cluster's state (a start or a reconnect) a node on record
/// counts as up whatever the local membership says: podswarm-gossip re-contacts every node on
/// record every `reconnect_interval_ms` (5 s by default), so a live node is a member again well
/// within it. A node that really is down loses its pods this much later then.
pub const SETTLE: Duration = Duration::from_secs(15);

/// How long after a snapshot a node whose gossip sees no other member alive at all still counts
/// the nodes on record as up for placement: after a power cut the others readmit it only after
/// a few rounds of announcements; a node really cut off from all of them takes their pods then.
pub const SETTLE_ALONE: Duration = Duration::from_secs(60);

/// How long a node's claim on a pod (its status record, naming the node) must stand before the
/// node starts the pod ([`Link::place_claimed`]): longer than a status record takes to reach
/// every node (well under a second on a quiet network; `docs/SCALE.md` has the spread of DNS
/// answers, which ride on the same records), so that a claim written at the same time by another
/// node has met this one in the record by then.
pub const CLAIM_HOLD: Duration = Duration::from_secs(2);

/// How long a copy's status record names the node it took the pod over from: far longer than a
/// hand-over's drain, which is bounded by the drain timeout (the old copy stops by then).
const REPLACES_FOR: Duration = Duration::from_secs(120);

/// Whether `node`'s `drained/<node>` record lists `key`: a terminating pod (`ns/name`) its view
/// holds no more, or (`ns/name@<node>`) a pod its view routes to a copy other than that node's.
fn drained_by(m: &Mirror, node: &str, key: &str) -> bool {
    m.entries
        .get(&format!("drained/{node}"))
        .and_then(|(_, v)| v.as_array())
        .is_some_and(|pods| pods.iter().any(|p| p.as_str() == Some(key)))
}

/// What writing `value` over what the mirror holds (`held`) does.
/// Seconds since the epoch, by this node's clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Rollout facts from a mirror: revision records (`revisions/<ns>/<name>/<hash>`) and the status
/// records of pods on `live` nodes, grouped by the Deployment that owns them. A record from a node
/// that is down says nothing: its pods are being placed elsewhere.
fn facts_of(m: &Mirror, live: &BTreeSet<String>, now: u64) -> Facts {
    let mut facts = Facts {
        now,
        ..Facts::default()
    };
    for (k, (_, v)) in m
        .entries
        .range("revisions/".to_owned()..)
        .take_while(|(k, _)| k.starts_with("revisions/"))
    {
        let mut parts = k["revisions/".len()..].splitn(3, '/');
        let (Some(ns), Some(name), Some(hash)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(rev) = serde_json::from_value::<Revision>(v.clone()) else {
            continue;
        };
        facts
            .revisions
            .entry((ns.to_owned(), name.to_owned()))
            .or_default()
            .insert(hash.to_owned(), rev);
    }
    for (_, (_, v)) in m
        .entries
        .range("pods/".to_owned()..)
        .take_while(|(k, _)| k.starts_with("pods/"))
    {
        let Ok(view) = serde_json::from_value::<PodView>(v.clone()) else {
            continue;
        };
        let Some(deployment) = view
            .owner
            .as_deref()
            .and_then(|o| o.strip_prefix("Deployment/"))
        else {
            continue;
        };
        if !live.contains(&view.node) {
            continue;
        }
        // Records of older nodes carry no time: ready then counts as long since.
        let ready_since = view.ready.then(|| view.ready_since.unwrap_or(0));
        facts
            .pods
            .entry((view.namespace.clone(), deployment.to_owned()))
            .or_default()
            .insert(
                view.name.clone(),
                Seen {
                    ready_since,
                    terminating: view.terminating,
                },
            );
    }
    facts
}

fn action(held: Option<&Value>, value: &Value) -> Action {
    match held {
        None => Action::Created,
        Some(v) if v == value => Action::Unchanged,
        Some(_) => Action::Configured,
    }
}

#[derive(Debug, Clone)]
struct Claim {
    node: String,
    subnet: Ipv4Net,
    version: Hlc,
}

/// Subnet claims of nodes that still have a node record.
fn claims(m: &Mirror) -> Vec<Claim> {
    let nodes: BTreeSet<&str> = m
        .entries
        .keys()
        .filter_map(|k| k.strip_prefix("nodes/"))
        .collect();
    m.entries
        .iter()
        .filter_map(|(k, (ver, v))| {
            let node = k.strip_prefix("subnets/")?;
            if !nodes.contains(node) {
                return None;
            }
            Some(Claim {
                node: node.to_owned(),
                subnet: v.get("subnet")?.as_str()?.parse().ok()?,
                version: *ver,
            })
        })
        .collect()
}

/// The nodes placement may use. Another node without a subnet claim that stands (it just joined,
/// or lost its subnet to an earlier claim and is moving) is not ready for pods, and neither is
/// this node (`me`) while another node holds the subnet it renders with (`rendering`; it joined
/// a cluster where an earlier claim has it): two live pods must never share an address, whatever
/// the timing of joins and applies. `rendering` is `None` while that cannot be known.
fn placeable(nodes: Vec<NodeView>, me: &str, rendering: Option<&str>) -> Vec<NodeInfo> {
    let taken_from_me = rendering.is_some_and(|r| {
        nodes
            .iter()
            .any(|n| n.name != me && n.subnet.as_deref() == Some(r))
    });
    nodes
        .into_iter()
        .map(|n| {
            let addressable = if n.name == me {
                !taken_from_me
            } else {
                n.subnet.is_some()
            };
            NodeInfo {
                ready: n.ready && addressable,
                name: n.name,
                labels: n.labels,
                cordoned: n.cordoned,
                draining: n.draining,
            }
        })
        .collect()
}

/// A free /24 of `cidr` for `node`: the search starts at a place given by the node's name, so
/// nodes joining at the same moment (each not yet seeing the other's claim) rarely pick the same
/// one; the earliest claim still wins any clash, and the loser moves before it runs a pod.
fn free_subnet(cidr: Ipv4Net, used: &BTreeSet<Ipv4Net>, node: &str) -> Option<Ipv4Net> {
    use sha2::Digest;
    let all: Vec<Ipv4Net> = cidr.subnets(24.max(cidr.prefix_len())).ok()?.collect();
    if all.is_empty() {
        return None;
    }
    let digest = sha2::Sha256::digest(node.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let start = usize::try_from(u64::from_be_bytes(first) % all.len() as u64).unwrap_or(0);
    all.iter()
        .cycle()
        .skip(start)
        .take(all.len())
        .find(|s| !used.contains(s))
        .copied()
}

/// Each subnet belongs to its earliest claim (by version, which every node orders the same way).
fn winning_claims(m: &Mirror) -> BTreeMap<String, Ipv4Net> {
    let mut by_subnet: BTreeMap<Ipv4Net, Claim> = BTreeMap::new();
    for c in claims(m) {
        match by_subnet.get(&c.subnet) {
            Some(held) if held.version <= c.version => {}
            _ => {
                by_subnet.insert(c.subnet, c);
            }
        }
    }
    by_subnet
        .into_values()
        .map(|c| (c.node, c.subnet))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-node podswarm-gossip serving its socket in `dir`, and a link to it that follows it.
    async fn linked(dir: &std::path::Path) -> (Arc<Link>, tokio::task::JoinHandle<()>) {
        let (_node, socket) = podswarm_gossip::control::serve_test_node(dir)
            .await
            .unwrap();
        let state_dir = dir.join("podswarmd");
        std::fs::create_dir_all(&state_dir).unwrap();
        let state = Arc::new(
            State::open(&state_dir, &Policy::default(), crate::state::system_clock()).unwrap(),
        );
        let link = Link::new(socket, "n1".to_owned(), state, Policy::default());
        let follow = tokio::spawn(Arc::clone(&link).follow());
        assert!(link.synced(Duration::from_secs(10)).await);
        (link, follow)
    }

    fn object(yaml: &str) -> Object {
        crate::testing::objects(yaml).remove(0)
    }

    #[test]
    fn an_apply_is_created_configured_or_unchanged_by_what_the_mirror_holds() {
        let v = json!({"kind": "ConfigMap", "data": {"a": "1"}});
        assert_eq!(action(None, &v), Action::Created);
        assert_eq!(action(Some(&v), &v), Action::Unchanged);
        let other = json!({"kind": "ConfigMap", "data": {"a": "2"}});
        assert_eq!(action(Some(&other), &v), Action::Configured);
    }

    #[tokio::test]
    async fn apply_answers_actions_through_a_real_gossip_node() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        let config = |value: &str| {
            object(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"{value}\"\n"
            ))
        };
        let other = object("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n");
        assert_eq!(link.apply(&[config("1")]).await.unwrap(), [Action::Created]);
        assert_eq!(
            link.apply(&[config("1")]).await.unwrap(),
            [Action::Unchanged]
        );
        let actions = link.apply(&[config("2"), other]).await.unwrap();
        assert_eq!(actions, [Action::Configured, Action::Created]);
        // The words the API answers with are the enum's own.
        assert_eq!(
            serde_json::to_value(&actions).unwrap(),
            json!(["configured", "created"])
        );
        // Written through: the mirror holds what was applied, at the version gossip gave it.
        let held = link.mirror().entries["objects/ConfigMap/default/c"]
            .1
            .clone();
        assert_eq!(held, config("2").to_value());
        assert!(link.delete("ConfigMap", "default", "c").await.unwrap());
        assert!(!link.delete("ConfigMap", "default", "c").await.unwrap());
        follow.abort();
    }

    /// A stop waits for every live node to say its view dropped the pod, and no longer than the
    /// drain timeout when one does not.
    #[tokio::test]
    async fn a_drain_waits_for_the_views_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        let (tx, rx) = watch::channel(BTreeSet::new());
        let publisher = tokio::spawn(Arc::clone(&link).publish_drained(rx));
        // Another node's copy holds the record: this copy is in no view, nothing to wait for.
        link.write("pods/default/p", Some(json!({"node": "n2"})))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        link.wait_drained("default/p", Duration::from_secs(10))
            .await;
        assert!(started.elapsed() < Duration::from_secs(1));
        // This node's copy is in the views until they say otherwise.
        link.write(
            "pods/default/p",
            Some(json!({"node": "n1", "terminating": true})),
        )
        .await
        .unwrap();
        let started = std::time::Instant::now();
        link.wait_drained("default/p", Duration::from_millis(300))
            .await;
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "bounded, not skipped"
        );
        let waiter = tokio::spawn({
            let link = Arc::clone(&link);
            async move {
                link.wait_drained("default/p", Duration::from_secs(10))
                    .await;
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "no node said so yet");
        tx.send_replace(BTreeSet::from(["default/p".to_owned()]));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the drain ends once this node's view dropped the pod")
            .unwrap();
        // No pod left to drain: the record goes.
        tx.send_replace(BTreeSet::new());
        let mut changes = link.changes();
        tokio::time::timeout(Duration::from_secs(5), async {
            while link.mirror().entries.contains_key("drained/n1") {
                let _ = changes.changed().await;
            }
        })
        .await
        .unwrap();
        publisher.abort();
        follow.abort();
    }

    /// A second live node for tests: a node record under the test gossip node's own id, which is
    /// a live member.
    async fn second_live_node(link: &Link, name: &str) {
        let id = link.mirror().self_id.unwrap();
        link.write(
            &format!("nodes/{name}"),
            Some(json!({"name": name, "nodeId": id})),
        )
        .await
        .unwrap();
    }

    fn pod_view(node: &str, ready: bool) -> PodView {
        serde_json::from_value(json!({
            "namespace": "default", "name": "p", "node": node, "ip": "10.244.1.5",
            "phase": "Running", "ready": ready, "restarts": 0, "reason": null, "owner": null,
            "labels": {}, "unit": "p.service", "units": [], "containers": [], "created": 0,
            "warnings": []
        }))
        .unwrap()
    }

    /// A pod placed on another node keeps serving here until that node's copy took its record
    /// over (bounded), and then stops only once every live node's view routes to the new copy.
    #[tokio::test]
    async fn a_hand_over_waits_for_the_new_copy_and_then_for_the_views() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        link.write(
            "pods/default/p",
            Some(json!({"node": "n1", "moving": true})),
        )
        .await
        .unwrap();
        let started = std::time::Instant::now();
        assert!(
            !link
                .wait_handoff("default/p", Duration::from_millis(300))
                .await
        );
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "bounded, not skipped"
        );
        let waiter = tokio::spawn({
            let link = Arc::clone(&link);
            async move {
                link.wait_handoff("default/p", Duration::from_secs(10))
                    .await
            }
        });
        // A record naming a node that is no live member takes nothing over.
        link.write("pods/default/p", Some(json!({"node": "n2", "ready": true})))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "n2 is no live node yet");
        second_live_node(&link, "n2").await;
        link.write(
            "pods/default/p",
            Some(json!({"node": "n2", "ready": true, "replaces": "n1"})),
        )
        .await
        .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("the live node's copy took over")
                .unwrap()
        );
        // Now the old copy waits until every live node's view routes to n2's copy.
        let drained = tokio::spawn({
            let link = Arc::clone(&link);
            async move {
                link.wait_drained("default/p", Duration::from_secs(10))
                    .await
            }
        });
        link.write("drained/n1", Some(json!(["default/p@n1"])))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!drained.is_finished(), "n2's view has not said so yet");
        link.write("drained/n2", Some(json!(["default/p@n1"])))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("every view routes to the new copy")
            .unwrap();
        follow.abort();
    }

    /// A ready copy takes over the record of a live node's copy only when that one is handing
    /// the pod over (`moving`); the record then says which node it replaced.
    #[tokio::test]
    async fn a_ready_copy_takes_over_only_a_moving_record() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        second_live_node(&link, "n2").await;
        let held = serde_json::to_value(pod_view("n2", true)).unwrap();
        link.write("pods/default/p", Some(held.clone()))
            .await
            .unwrap();
        let views: PodViews = Arc::new(std::sync::RwLock::new(BTreeMap::from([(
            "default/p".to_owned(),
            pod_view("n1", false),
        )])));
        let publisher = tokio::spawn(Arc::clone(&link).publish(Arc::clone(&views)));
        let record = || {
            link.mirror()
                .entries
                .get("pods/default/p")
                .map(|(_, v)| v.clone())
        };
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            record(),
            Some(held.clone()),
            "n2's copy serves and holds the record"
        );
        // Ready now, but n2 is not handing over: two copies after a partition, n2's stands.
        views
            .write()
            .unwrap()
            .insert("default/p".into(), pod_view("n1", true));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(record(), Some(held.clone()));
        // A second copy is no copy on its way out; a terminating one is, also under another
        // node's record, until it is gone.
        let stopping = || {
            link.nodes()
                .into_iter()
                .find(|n| n.name == "n1")
                .map(|n| n.stopping)
        };
        assert_eq!(stopping(), Some(Vec::new()));
        let mut leaving = pod_view("n1", false);
        leaving.terminating = true;
        views.write().unwrap().insert("default/p".into(), leaving);
        let mut changes = link.changes();
        tokio::time::timeout(Duration::from_secs(5), async {
            while stopping() != Some(vec!["default/p".to_owned()]) {
                let _ = changes.changed().await;
            }
        })
        .await
        .expect("the copy on its way out is listed");
        assert_eq!(record(), Some(held.clone()), "and it takes no record over");
        views
            .write()
            .unwrap()
            .insert("default/p".into(), pod_view("n1", true));
        let mut moving = held;
        moving["moving"] = json!(true);
        link.write("pods/default/p", Some(moving)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while record().and_then(|v| v.get("node").cloned()) != Some(json!("n1")) {
                let _ = changes.changed().await;
            }
        })
        .await
        .expect("the ready copy takes the moving record over");
        assert_eq!(record().unwrap()["replaces"], json!("n2"));
        tokio::time::timeout(Duration::from_secs(5), async {
            while stopping() != Some(Vec::new()) {
                let _ = changes.changed().await;
            }
        })
        .await
        .expect("its copy holds the record now");
        publisher.abort();
        follow.abort();
    }

    /// A pod placed here that no live node's copy holds starts only once this node's claim (its
    /// record) has stood for the hold; a node alone claims nothing, and a claim another node's
    /// record won puts the pod there, so this node never starts it.
    #[tokio::test]
    async fn a_new_pod_waits_for_its_claim_and_yields_to_another_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        let pods: Vec<PodInstance> = crate::testing::objects(crate::testing::DEPLOYMENT)
            .iter()
            .flat_map(podswarm_manifest::pods_of)
            .collect();
        let refs: Vec<&PodInstance> = pods.iter().collect();
        let keys: Vec<String> = refs.iter().map(|p| crate::schedule::pod_key(p)).collect();
        // Alone: nothing to meet, nothing held.
        assert!(link.place_claimed(&refs).claiming.is_empty());

        second_live_node(&link, "n2").await;
        link.write("subnets/n2", Some(json!({"subnet": "10.244.1.0/24"})))
            .await
            .unwrap();
        let placed = link.place_claimed(&refs);
        let here: Vec<&String> = keys
            .iter()
            .filter(|k| placed.at[*k] == Placement::Node("n1".into()))
            .collect();
        let there = keys.iter().find(|k| !here.contains(k)).unwrap();
        let mine = here[0];
        assert_eq!(placed.claiming.keys().collect::<Vec<_>>(), here);
        assert_eq!(placed.claiming[mine], CLAIM_HOLD);

        // The claim stands: it waits out the hold from when the record came back.
        link.write(&format!("pods/{mine}"), Some(json!({"node": "n1"})))
            .await
            .unwrap();
        let left = link.place_claimed(&refs).claiming[mine];
        assert!(left <= CLAIM_HOLD && left > Duration::ZERO, "{left:?}");
        tokio::time::sleep(left).await;
        assert!(!link.place_claimed(&refs).claiming.contains_key(mine));

        // n2's claim on the other pod won its record: the pod is n2's, nothing here claims it.
        link.write(&format!("pods/{there}"), Some(json!({"node": "n2"})))
            .await
            .unwrap();
        let placed = link.place_claimed(&refs);
        assert_eq!(placed.at[there], Placement::Node("n2".into()));
        assert!(!placed.claiming.contains_key(there));
        follow.abort();
    }

    /// `podswarmctl rebalance` end to end on the link: the plan, the move records, placement
    /// steered by them, a second plan that finds nothing, and records that steer nothing any
    /// more cleared when moves start.
    #[tokio::test]
    async fn move_records_steer_placement_and_stale_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        second_live_node(&link, "n2").await;
        link.write("subnets/n2", Some(json!({"subnet": "10.244.1.0/24"})))
            .await
            .unwrap();
        // Both replicas run on n1 (placed while it was alone).
        let pods: Vec<PodInstance> = crate::testing::objects(crate::testing::DEPLOYMENT)
            .iter()
            .flat_map(podswarm_manifest::pods_of)
            .collect();
        let refs: Vec<&PodInstance> = pods.iter().collect();
        let keys: BTreeSet<String> = refs.iter().map(|p| crate::schedule::pod_key(p)).collect();
        for key in &keys {
            link.write(&format!("pods/{key}"), Some(json!({"node": "n1"})))
                .await
                .unwrap();
        }
        let on = |link: &Link| -> Vec<Placement> { link.place(&refs).into_values().collect() };
        assert_eq!(
            on(&link),
            [Placement::Node("n1".into()), Placement::Node("n1".into())]
        );
        let moves = link.plan_rebalance(&refs);
        let last = keys.iter().next_back().unwrap().clone();
        assert_eq!(
            moves,
            [Move {
                pod: last.clone(),
                from: "n1".into(),
                to: "n2".into()
            }]
        );
        // Records no pod or node can use: a pod that is gone, a node that is not there.
        let fresh = json!({"to": "n2", "since": unix_now()});
        link.write("moves/shop/gone", Some(fresh.clone()))
            .await
            .unwrap();
        link.write(
            &format!("moves/{}", keys.first().unwrap()),
            Some(json!({"to": "n9", "since": unix_now()})),
        )
        .await
        .unwrap();
        link.start_moves(&moves, &keys).await.unwrap();
        let records: Vec<String> = moves_of(&link.mirror()).into_keys().collect();
        assert_eq!(records, std::slice::from_ref(&last));
        assert_eq!(
            on(&link),
            [Placement::Node("n1".into()), Placement::Node("n2".into())]
        );
        // Under way, the move counts as made: nothing more to do.
        assert_eq!(link.plan_rebalance(&refs), []);
        follow.abort();
    }

    /// The node a pod moves to removes the move record once its copy holds the pod's record, and
    /// any of its move records that is too old; other nodes' moves are theirs.
    #[tokio::test]
    async fn the_new_node_clears_its_move_records() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        second_live_node(&link, "n2").await;
        let now = unix_now();
        for (key, to, since) in [
            ("moves/default/p", "n1", now),
            ("moves/default/old", "n1", now - MOVE_TTL),
            ("moves/default/elsewhere", "n2", now),
            ("moves/default/starting", "n1", now),
        ] {
            link.write(key, Some(json!({"to": to, "since": since})))
                .await
                .unwrap();
        }
        // `p` runs here and its record will say so; `starting` is still another node's.
        link.write(
            "pods/default/starting",
            Some(json!({"node": "n2", "moving": true})),
        )
        .await
        .unwrap();
        let views: PodViews = Arc::new(std::sync::RwLock::new(BTreeMap::from([(
            "default/p".to_owned(),
            pod_view("n1", true),
        )])));
        let publisher = tokio::spawn(Arc::clone(&link).publish(views));
        let mut changes = link.changes();
        let left = || moves_of(&link.mirror()).into_keys().collect::<Vec<_>>();
        tokio::time::timeout(Duration::from_secs(10), async {
            while left() != ["default/elsewhere", "default/starting"] {
                let _ = changes.changed().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("move records left: {:?}", left()));
        publisher.abort();
        follow.abort();
    }

    /// Applying a Deployment records its templates as revisions (the one it had first), a
    /// template seen before moves up as the newest, and deleting it removes them.
    #[tokio::test]
    async fn deployment_templates_become_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let (link, follow) = linked(dir.path()).await;
        let web = |image: &str| {
            object(&format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: {image}}}]}}\n"
            ))
        };
        let revisions = |link: &Link| -> Vec<(u64, String)> {
            let facts = link.rollout_facts(0);
            let mut out: Vec<(u64, String)> = facts
                .revisions
                .get(&("default".to_owned(), "web".to_owned()))
                .into_iter()
                .flatten()
                .map(|(h, r)| (r.revision, h.clone()))
                .collect();
            out.sort();
            out
        };
        let hash = |o: &Object| match o {
            Object::Deployment(d) => podswarm_manifest::template_hash(&d.spec.template),
            _ => unreachable!(),
        };
        let (v1, v2) = (web("x:1"), web("x:2"));
        link.apply(std::slice::from_ref(&v1)).await.unwrap();
        assert_eq!(revisions(&link), [(1, hash(&v1))]);
        link.apply(std::slice::from_ref(&v2)).await.unwrap();
        assert_eq!(revisions(&link), [(1, hash(&v1)), (2, hash(&v2))]);
        // Back to the first template (what `rollout undo` writes): it becomes revision 3.
        link.apply(std::slice::from_ref(&v1)).await.unwrap();
        assert_eq!(revisions(&link), [(2, hash(&v2)), (3, hash(&v1))]);
        assert!(link.delete("Deployment", "default", "web").await.unwrap());
        assert!(revisions(&link).is_empty());
        follow.abort();
    }

    fn mirror(entries: &[(&str, u64, Value)]) -> Mirror {
        Mirror {
            synced: true,
            entries: entries
                .iter()
                .map(|(k, t, v)| {
                    (
                        (*k).to_owned(),
                        (
                            Hlc {
                                millis: *t,
                                counter: 0,
                                node: 1,
                            },
                            v.clone(),
                        ),
                    )
                })
                .collect(),
            ..Mirror::default()
        }
    }

    fn node(name: &str, subnet: Option<&str>) -> NodeView {
        NodeView {
            name: name.to_owned(),
            node_id: String::new(),
            address: String::new(),
            labels: BTreeMap::new(),
            subnet: subnet.map(str::to_owned),
            ready: true,
            cordoned: false,
            draining: false,
            stopping: Vec::new(),
        }
    }

    fn ready(nodes: &[NodeInfo]) -> Vec<&str> {
        nodes
            .iter()
            .filter(|n| n.ready)
            .map(|n| n.name.as_str())
            .collect()
    }

    #[test]
    fn only_nodes_whose_subnet_stands_get_pods() {
        let a = "10.244.0.0/24";
        let b = "10.244.1.0/24";
        // Settled: everyone holds a subnet of their own.
        let all = vec![node("me", Some(a)), node("x", Some(b))];
        assert_eq!(ready(&placeable(all.clone(), "me", Some(a))), ["me", "x"]);
        // Just joined: x's claim has not arrived yet, so x gets nothing.
        let joining = vec![node("me", Some(a)), node("x", None)];
        assert_eq!(ready(&placeable(joining, "me", Some(a))), ["me"]);
        // This node joined a cluster where x's earlier claim holds the subnet it renders with:
        // it runs nothing until it restarts on its new subnet.
        let lost = vec![node("me", None), node("x", Some(a))];
        assert_eq!(ready(&placeable(lost.clone(), "me", Some(a))), ["x"]);
        let moving = vec![node("me", Some(b)), node("x", Some(a))];
        assert_eq!(ready(&placeable(moving, "me", Some(a))), ["x"]);
        // Unknown (gossip not answering): this node keeps what it runs.
        assert_eq!(ready(&placeable(lost, "me", None)), ["me", "x"]);
        // A state reset that lost only this node's own claim takes nothing from it.
        let reset = vec![node("me", None), node("x", Some(b))];
        assert_eq!(ready(&placeable(reset, "me", Some(a))), ["me", "x"]);
    }

    #[test]
    fn free_subnets_start_at_a_place_given_by_the_name_and_skip_claimed_ones() {
        let cidr: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        let none = BTreeSet::new();
        let picks: BTreeSet<Ipv4Net> = (0..20)
            .filter_map(|i| free_subnet(cidr, &none, &format!("node{i}")))
            .collect();
        // Twenty nodes choosing at once mostly choose differently.
        assert!(picks.len() >= 18, "{picks:?}");
        let first = free_subnet(cidr, &none, "node1").unwrap();
        assert_eq!(free_subnet(cidr, &none, "node1"), Some(first));
        let used: BTreeSet<Ipv4Net> = [first].into();
        let second = free_subnet(cidr, &used, "node1").unwrap();
        assert_ne!(second, first);
        assert!(cidr.contains(&second) && second.prefix_len() == 24);
        let small: Ipv4Net = "10.1.0.0/23".parse().unwrap();
        let full: BTreeSet<Ipv4Net> = small.subnets(24).unwrap().collect();
        assert_eq!(free_subnet(small, &full, "node1"), None);
        let one_left: BTreeSet<Ipv4Net> = full.iter().take(1).copied().collect();
        assert_eq!(
            free_subnet(small, &one_left, "node1"),
            full.iter().nth(1).copied()
        );
    }

    #[test]
    fn the_earliest_claim_wins_a_subnet_and_departed_nodes_hold_none() {
        let m = mirror(&[
            ("nodes/a", 1, json!({})),
            ("nodes/b", 1, json!({})),
            ("subnets/a", 5, json!({"subnet": "10.244.0.0/24"})),
            ("subnets/b", 3, json!({"subnet": "10.244.0.0/24"})),
            ("subnets/gone", 1, json!({"subnet": "10.244.1.0/24"})),
        ]);
        let won = winning_claims(&m);
        assert_eq!(
            won.get("b").map(ToString::to_string).as_deref(),
            Some("10.244.0.0/24")
        );
        assert_eq!(won.get("a"), None);
        assert_eq!(won.get("gone"), None);
    }
}
