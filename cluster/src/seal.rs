//! Every gossip packet and stream frame, sealed with AES-256-GCM.
//!
//! Layout: `PSW1` · kind (1) · sender node id (8) · counter (8) · nonce (12) · ciphertext · tag (16).
//! Everything before the ciphertext is authenticated as associated data, so a packet cannot be
//! re-labelled as another kind or another sender. Nonces are random (96 bits); the counter is per
//! sender, starts at the sender's wall clock in microseconds (so it keeps rising across restarts)
//! and feeds a sliding replay window on the receiver, updated only after a packet authenticates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};

const MAGIC: &[u8; 4] = b"PSW1";
const HEADER: usize = 4 + 1 + 8 + 8;
const NONCE: usize = 12;
const TAG: usize = 16;
/// Bytes a sealed packet adds to its payload.
pub const OVERHEAD: usize = HEADER + NONCE + TAG;

/// What a sealed payload is; authenticated, so one kind cannot be replayed as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A foca (SWIM) packet over UDP.
    Swim = 1,
    /// An anti-entropy frame over TCP.
    Sync = 2,
    /// A join request, sealed with the join token's key.
    JoinRequest = 3,
    /// The answer to a join request, sealed with the join token's key.
    JoinReply = 4,
    /// A secret kept in the replicated state (the cluster CA's key), sealed with the cluster key.
    AtRest = 5,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Swim,
            2 => Kind::Sync,
            3 => Kind::JoinRequest,
            4 => Kind::JoinReply,
            5 => Kind::AtRest,
            _ => return None,
        })
    }
}

/// A 256-bit key; its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    pub fn generate() -> ClusterKey {
        ClusterKey(crate::random_bytes())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> ClusterKey {
        ClusterKey(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<ClusterKey> {
        unhex::<32>(text.trim()).map(ClusterKey)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("packet too short ({len} bytes)")]
    Short { len: usize },
    #[error("not a podswarm packet")]
    Magic,
    #[error("unknown packet kind {kind}")]
    UnknownKind { kind: u8 },
    #[error("expected a {expected:?} packet, got {got:?}")]
    WrongKind { expected: Kind, got: Kind },
    #[error("packet failed authentication")]
    Authentication,
    #[error("replayed packet from {sender:016x} (counter {counter})")]
    Replayed { sender: u64, counter: u64 },
}

/// A sealed packet's authenticated header, available after [`Sealer::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub kind: Kind,
    pub sender: u64,
    pub counter: u64,
}

/// Seals and opens packets with one key on behalf of one node.
pub struct Sealer {
    cipher: Aes256Gcm,
    sender: u64,
    counter: AtomicU64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("sender", &format_args!("{:016x}", self.sender))
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(key: &ClusterKey, sender: u64) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(&key.0.into()),
            sender,
            // Starting at the wall clock in microseconds puts a restarted sender above every
            // counter it used before (unless it sent more than a million packets a second);
            // counting by one from there keeps the receiver's 128-wide window meaningful.
            counter: AtomicU64::new(wall_micros()),
        }
    }

    pub fn sender(&self) -> u64 {
        self.sender
    }

    pub fn seal(&self, kind: Kind, payload: &[u8]) -> Vec<u8> {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let nonce: [u8; NONCE] = crate::random_bytes();
        let mut packet = Vec::with_capacity(payload.len() + OVERHEAD);
        packet.extend_from_slice(MAGIC);
        packet.push(kind as u8);
        packet.extend_from_slice(&self.sender.to_be_bytes());
        packet.extend_from_slice(&counter.to_be_bytes());
        packet.extend_from_slice(&nonce);
        let sealed = self.cipher.encrypt(
            &nonce.into(),
            Payload {
                msg: payload,
                aad: &packet,
            },
        );
        match sealed {
            Ok(ciphertext) => packet.extend_from_slice(&ciphertext),
            // AES-GCM only refuses inputs beyond 64 GiB; nothing podswarm sends comes close.
            Err(_) => unreachable!("AES-GCM refused a {} byte payload", payload.len()),
        }
        packet
    }

    /// Authenticates and decrypts a packet of the `expected` kind; the replay window is consulted
    /// and updated only for packets that authenticate.
    pub fn open(
        &self,
        packet: &[u8],
        expected: Kind,
        window: &mut ReplayWindow,
    ) -> Result<(Opened, Vec<u8>), OpenError> {
        let opened = self.open_unchecked(packet, expected)?;
        if !window.accept(opened.0.sender, opened.0.counter) {
            return Err(OpenError::Replayed {
                sender: opened.0.sender,
                counter: opened.0.counter,
            });
        }
        Ok(opened)
    }

    /// Like [`Sealer::open`] without a replay check, for exchanges that carry their own
    /// freshness (a join reply answers the request it was sealed for).
    pub fn open_unchecked(
        &self,
        packet: &[u8],
        expected: Kind,
    ) -> Result<(Opened, Vec<u8>), OpenError> {
        let header = peek(packet)?;
        if header.kind != expected {
            return Err(OpenError::WrongKind {
                expected,
                got: header.kind,
            });
        }
        let (aad, ciphertext) = packet.split_at(HEADER + NONCE);
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&aad[HEADER..]);
        let plain = self
            .cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError::Authentication)?;
        Ok((header, plain))
    }
}

fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads a packet's header without authenticating it (to pick a key or a handler).
pub fn peek(packet: &[u8]) -> Result<Opened, OpenError> {
    if packet.len() < OVERHEAD {
        return Err(OpenError::Short { len: packet.len() });
    }
    if &packet[..4] != MAGIC {
        return Err(OpenError::Magic);
    }
    let kind = Kind::from_byte(packet[4]).ok_or(OpenError::UnknownKind { kind: packet[4] })?;
    let mut sender = [0u8; 8];
    sender.copy_from_slice(&packet[5..13]);
    let mut counter = [0u8; 8];
    counter.copy_from_slice(&packet[13..21]);
    Ok(Opened {
        kind,
        sender: u64::from_be_bytes(sender),
        counter: u64::from_be_bytes(counter),
    })
}

/// Per-sender sliding window over packet counters (as IPsec's anti-replay): the highest counter
/// seen and a bitmap of the 128 before it. Older counters are refused outright.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    senders: HashMap<u64, (u64, u128)>,
}

impl ReplayWindow {
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// True the first time a counter is seen from a sender and it is not too old.
    pub fn accept(&mut self, sender: u64, counter: u64) -> bool {
        let (highest, seen) = self.senders.entry(sender).or_insert((0, 0));
        if *highest == 0 && *seen == 0 {
            *highest = counter;
            *seen = 1;
            return true;
        }
        if counter > *highest {
            let shift = counter - *highest;
            *seen = if shift >= 128 { 0 } else { *seen << shift };
            *seen |= 1;
            *highest = counter;
            return true;
        }
        let age = *highest - counter;
        if age >= 128 {
            return false;
        }
        let bit = 1u128 << age;
        if *seen & bit != 0 {
            return false;
        }
        *seen |= bit;
        true
    }

    /// Forgets a sender (it left, or restarted with a new identity).
    pub fn forget(&mut self, sender: u64) {
        self.senders.remove(&sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_replay_refused() {
        let key = ClusterKey::generate();
        let a = Sealer::new(&key, 7);
        let b = Sealer::new(&key, 9);
        let mut window = ReplayWindow::new();
        let packet = a.seal(Kind::Swim, b"hello");
        let (header, plain) = b.open(&packet, Kind::Swim, &mut window).unwrap();
        assert_eq!(plain, b"hello");
        assert_eq!(header.sender, 7);
        assert_eq!(
            b.open(&packet, Kind::Swim, &mut window),
            Err(OpenError::Replayed {
                sender: 7,
                counter: header.counter
            })
        );
    }

    #[test]
    fn another_key_or_kind_does_not_open() {
        let a = Sealer::new(&ClusterKey::generate(), 1);
        let b = Sealer::new(&ClusterKey::generate(), 2);
        let packet = a.seal(Kind::Sync, b"x");
        let mut window = ReplayWindow::new();
        assert_eq!(
            b.open(&packet, Kind::Sync, &mut window),
            Err(OpenError::Authentication)
        );
        assert!(matches!(
            a.open(&packet, Kind::Swim, &mut window),
            Err(OpenError::WrongKind { .. })
        ));
    }

    #[test]
    fn relabelled_header_fails_authentication() {
        let key = ClusterKey::generate();
        let a = Sealer::new(&key, 1);
        let mut packet = a.seal(Kind::Swim, b"x");
        packet[12] ^= 1; // the sender id
        let mut window = ReplayWindow::new();
        assert_eq!(
            a.open(&packet, Kind::Swim, &mut window),
            Err(OpenError::Authentication)
        );
    }

    #[test]
    fn window_accepts_reordering_but_not_old_or_repeated_counters() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(1, 1000));
        assert!(w.accept(1, 1002));
        assert!(w.accept(1, 1001));
        assert!(!w.accept(1, 1001));
        assert!(w.accept(1, 1200));
        assert!(!w.accept(1, 1002), "older than the window");
        assert!(w.accept(2, 5), "senders are independent");
    }

    #[test]
    fn hex_round_trip() {
        let key = ClusterKey::generate();
        assert_eq!(ClusterKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(ClusterKey::from_hex("zz"), None);
    }

    proptest! {
        #[test]
        fn any_flipped_bit_is_refused(payload in prop::collection::vec(any::<u8>(), 0..200), bit in any::<prop::sample::Index>()) {
            let key = ClusterKey::generate();
            let a = Sealer::new(&key, 3);
            let mut packet = a.seal(Kind::Swim, &payload);
            let i = bit.index(packet.len() * 8);
            packet[i / 8] ^= 1 << (i % 8);
            let mut window = ReplayWindow::new();
            prop_assert!(a.open(&packet, Kind::Swim, &mut window).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let a = Sealer::new(&ClusterKey::generate(), 3);
            let mut window = ReplayWindow::new();
            prop_assert!(a.open(&bytes, Kind::Swim, &mut window).is_err());
        }
    }
}
