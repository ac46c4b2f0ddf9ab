//! The replicated cluster state and the cryptography around it, without any I/O.
//!
//! `podswarm-gossip` moves these values between nodes; this crate decides what they mean:
//! - [`hlc`]: hybrid logical clocks, so "newer" agrees with real time when clocks are close and
//!   stays a total order when they are not;
//! - [`store`]: a last-writer-wins map whose deletes are tombstones, merged the same way whatever
//!   order deltas arrive in, with a garbage-collection horizon that keeps a stale node from
//!   resurrecting a deleted key;
//! - [`seal`]: AES-256-GCM packets with an authenticated header and a replay window;
//! - [`token`]: join tokens and the key a joining node proves it holds;
//! - [`ca`]: the cluster's certificate authority, which join tokens pin.

pub mod ca;
pub mod hlc;
pub mod seal;
pub mod store;
pub mod token;

pub use ca::{CaError, ClusterCa};
pub use hlc::{Clock, Hlc};
pub use seal::{ClusterKey, Kind, OpenError, ReplayWindow, Sealer};
pub use store::{Applied, Entry, Store};
pub use token::{JoinToken, TokenError};

/// Fills a buffer from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The kernel's getrandom(2) only fails on ancient kernels or a broken seccomp profile; no key
    // may come out of a fallback, so this aborts rather than continue with zeros.
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random source failed: {e}");
    }
    buf
}
