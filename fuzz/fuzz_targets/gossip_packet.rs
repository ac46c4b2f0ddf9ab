//! Any bytes where podswarm-gossip reads from the network: a UDP datagram (opened with the cluster
//! key, then handed to foca), the plaintext an authenticated member could send (foca's packet
//! decoding and the state-delta handler behind it), and a TCP stream of frames (anti-entropy and
//! join messages). podswarm-gossip must refuse or apply, never panic, hang or allocate what the
//! sender merely claims.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use podswarm_cluster::{ClusterKey, Kind, ReplayWindow, Sealer, seal};
use podswarm_gossip::Metrics;
use podswarm_gossip::proto::{self, Delta, JoinReply, JoinRequest, Refusal, Sync};
use podswarm_gossip::replica::Replica;
use podswarm_gossip::swim::{self, Handler, Id, Swim};

fn sealer() -> &'static Sealer {
    static SEALER: OnceLock<Sealer> = OnceLock::new();
    SEALER.get_or_init(|| Sealer::new(&ClusterKey::from_bytes([7; 32]), 2))
}

fn replica() -> Arc<Mutex<Replica>> {
    static REPLICA: OnceLock<Arc<Mutex<Replica>>> = OnceLock::new();
    REPLICA
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("podswarm-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a scratch directory");
            Arc::new(Mutex::new(Replica::open(&dir, 1, 1).expect("an empty replica")))
        })
        .clone()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

/// What foca and the delta handler do with a packet that authenticated.
fn feed(plain: &[u8]) {
    let me = Id {
        addr: SocketAddr::from(([127, 0, 0, 1], 7946)),
        node: 1,
        bump: 1,
    };
    let (pulls, _) = tokio::sync::mpsc::unbounded_channel();
    let handler = Handler {
        replica: replica(),
        pulls,
        metrics: Arc::new(Metrics::default()),
    };
    let rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(1);
    let mut foca = Swim::with_custom_broadcast(
        me,
        swim::config(Duration::from_secs(1), 1400 - seal::OVERHEAD),
        rng,
        foca::PostcardCodec,
        handler,
    );
    let mut runtime = foca::AccumulatingRuntime::new();
    let _ = foca.handle_data(plain, &mut runtime);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let _ = seal::peek(rest);
            let mut window = ReplayWindow::new();
            if let Ok((_, plain)) = sealer().open(rest, Kind::Swim, &mut window) {
                feed(&plain);
            }
        }
        1 => feed(rest),
        2 => {
            let mut stream = rest;
            while let Ok(frame) = runtime().block_on(proto::read_frame(&mut stream)) {
                let _ = seal::peek(&frame);
                let _ = serde_json::from_slice::<Sync>(&frame);
                let _ = serde_json::from_slice::<JoinRequest>(&frame);
                let _ = serde_json::from_slice::<JoinReply>(&frame);
                let _ = serde_json::from_slice::<Refusal>(&frame);
            }
        }
        _ => {
            let _ = serde_json::from_slice::<Delta>(rest);
        }
    }
});
