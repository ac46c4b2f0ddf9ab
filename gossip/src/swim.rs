//! foca glue: the member identity, the broadcast handler that feeds state deltas into the replica,
//! and the task that owns the `Foca` instance (foca is a state machine; this task turns its
//! runtime requests into sealed UDP packets, timers and membership updates).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foca::{BroadcastHandler, Foca, Invalidates, OwnedNotification, PostcardCodec, Timer};
use podswarm_cluster::{Applied, Hlc, Kind, Sealer};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::Metrics;
use crate::proto::Delta;
use crate::replica::Replica;

/// A member as SWIM knows it. `bump` is the session's start time in seconds: a node that comes
/// back at the same address wins over its previous self.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Id {
    pub addr: SocketAddr,
    pub node: u64,
    pub bump: u64,
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}@{}#{}", self.node, self.addr, self.bump)
    }
}

impl foca::Identity for Id {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Id {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.bump, self.node) > (adversary.bump, adversary.node)
    }
}

#[derive(Debug, Clone)]
pub struct DeltaKey {
    key: String,
    version: Hlc,
}

impl Invalidates for DeltaKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.key == other.key && self.version >= other.version
    }
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable state delta")]
pub struct DeltaError(#[source] serde_json::Error);

/// Applies deltas that arrive on SWIM packets; keeps passing on only what was news here.
#[derive(Debug)]
pub struct Handler {
    pub replica: Arc<Mutex<Replica>>,
    /// Peers to pull from (a hint named a newer version than this node holds).
    pub pulls: mpsc::UnboundedSender<SocketAddr>,
    pub metrics: Arc<Metrics>,
}

impl BroadcastHandler<Id> for Handler {
    type Key = DeltaKey;
    type Error = DeltaError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Id>,
    ) -> Result<Option<DeltaKey>, DeltaError> {
        let delta: Delta = serde_json::from_slice(data).map_err(DeltaError)?;
        let key = DeltaKey {
            key: delta.key.clone(),
            version: delta.version,
        };
        if sender.is_none() {
            // Our own write, already in the replica.
            return Ok(Some(key));
        }
        let mut replica = self.replica.lock().unwrap_or_else(|p| p.into_inner());
        match delta.entry {
            Some(entry) => {
                if replica.merge(&delta.key, entry) == Applied::Newer {
                    Metrics::add(&self.metrics.entries_received, 1);
                    Ok(Some(key))
                } else {
                    Ok(None)
                }
            }
            None if replica
                .version(&delta.key)
                .is_none_or(|v| v < delta.version) =>
            {
                let _ = self.pulls.send(delta.origin);
                Ok(Some(key))
            }
            None => Ok(None),
        }
    }
}

pub type Swim = Foca<Id, PostcardCodec, StdRng, Handler>;

#[derive(Debug)]
pub enum Input {
    Data(Vec<u8>),
    Timer(Timer<Id>),
    Announce(SocketAddr),
    /// A delta to disseminate (already applied locally).
    Broadcast(Vec<u8>),
    Leave(oneshot::Sender<()>),
}

/// Membership news for the session (sync with new members promptly).
#[derive(Debug, Clone)]
pub enum Event {
    Up(Id),
    Down(Id),
}

pub fn config(probe_period: Duration, max_packet: usize) -> foca::Config {
    let mut c = foca::Config::new_lan(std::num::NonZeroU32::MIN.saturating_add(31));
    c.probe_period = probe_period;
    c.probe_rtt = probe_period / 2;
    if let Some(size) = std::num::NonZeroUsize::new(max_packet) {
        c.max_packet_size = size;
    }
    // Suspicion long enough for a busy node to answer, short enough that a dead node's pods
    // move within seconds: about five probe periods.
    c.suspect_to_down_after = probe_period * 5;
    // Healing a partition starts with announcing to members believed down; foca's LAN default
    // (65 s) would leave a healed cluster split for a minute.
    if let Some(a) = c.periodic_announce_to_down_members.as_mut() {
        a.frequency = probe_period * 5;
    }
    if let Some(g) = c.periodic_gossip.as_mut() {
        g.frequency = (probe_period / 5).max(Duration::from_millis(20));
    }
    c
}

/// Owns foca: feeds it inputs, sends what it asks to send (sealed), schedules its timers and
/// publishes the active member list.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut swim: Swim,
    mut inputs: mpsc::Receiver<Input>,
    loopback: mpsc::Sender<Input>,
    socket: Arc<UdpSocket>,
    sealer: Arc<Sealer>,
    members: watch::Sender<Vec<Id>>,
    events: mpsc::UnboundedSender<Event>,
    metrics: Arc<Metrics>,
    replica: Arc<Mutex<Replica>>,
) {
    let mut runtime = foca::AccumulatingRuntime::new();
    // Journal lines name the node, not only its SWIM identity.
    let name_of = |id: &Id| {
        replica
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .node_name(id.node)
            .unwrap_or_else(|| "an unnamed node".to_owned())
    };
    while let Some(input) = inputs.recv().await {
        let mut done = None;
        let result = match input {
            Input::Data(data) => swim.handle_data(&data, &mut runtime),
            Input::Timer(timer) => swim.handle_timer(timer, &mut runtime),
            Input::Announce(addr) => swim.announce(
                Id {
                    addr,
                    node: 0,
                    bump: 0,
                },
                &mut runtime,
            ),
            Input::Broadcast(data) => swim
                .add_broadcast(&data)
                .and_then(|_| swim.broadcast(&mut runtime)),
            Input::Leave(reply) => {
                done = Some(reply);
                swim.leave_cluster(&mut runtime)
            }
        };
        if let Err(e) = result {
            Metrics::add(&metrics.dropped_malformed, 1);
            tracing::debug!(error = %e, "swim input refused");
        }
        while let Some((to, data)) = runtime.to_send() {
            let packet = sealer.seal(Kind::Swim, &data);
            match socket.send_to(&packet, to.addr).await {
                Ok(n) => {
                    Metrics::add(&metrics.packets_sent, 1);
                    Metrics::add(&metrics.bytes_sent, n as u64);
                }
                Err(e) => tracing::debug!(peer = %to.addr, error = %e, "send failed"),
            }
        }
        while let Some((after, timer)) = runtime.to_schedule() {
            let tx = loopback.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(Input::Timer(timer)).await;
            });
        }
        let mut changed = false;
        while let Some(n) = runtime.to_notify() {
            match n {
                OwnedNotification::MemberUp(id) => {
                    let name = name_of(&id);
                    tracing::info!(member = %name, address = %id.addr, identity = ?id, "member {name} ({}) up", id.addr);
                    let _ = events.send(Event::Up(id));
                    changed = true;
                }
                OwnedNotification::MemberDown(id) => {
                    let name = name_of(&id);
                    tracing::warn!(member = %name, address = %id.addr, identity = ?id, "member {name} ({}) down", id.addr);
                    let _ = events.send(Event::Down(id));
                    changed = true;
                }
                OwnedNotification::Rename(old, new) => {
                    let name = name_of(&new);
                    tracing::info!(member = %name, address = %new.addr, old = ?old, new = ?new, "member {name} ({}) came back", new.addr);
                    // It may have written while it was away (a healed partition).
                    let _ = events.send(Event::Up(new));
                    changed = true;
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::warn!(identity = ?id, "declared down by the cluster; rejoined");
                }
                other => tracing::debug!(notification = ?other, "swim"),
            }
        }
        if changed {
            let list = swim.iter_members().map(|m| m.id().clone()).collect();
            members.send_replace(list);
        }
        if let Some(reply) = done {
            let _ = reply.send(());
            return;
        }
    }
}
