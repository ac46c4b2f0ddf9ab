//! What travels between gossip processes besides SWIM itself: state deltas (piggy-backed on SWIM
//! packets), the anti-entropy exchange and the join handshake (length-prefixed sealed frames over
//! TCP).
//!
//! Anti-entropy, initiator A and responder B:
//! 1. A → B `Hello { fingerprint }`;
//! 2. B → A `InSync` when the fingerprints match (the common case: one small frame each way),
//!    else `Digest` (every key and version B holds);
//! 3. A → B `Push` with what A holds newer than B's digest, and A's own digest;
//! 4. B → A `Push` with what B holds newer than A's digest.
//!
//! A node whose replica is being refilled after its file was damaged (`replica`) says so in its
//! `Hello` or `Digest`: an exchange with a node that is recovering itself ends nobody's recovery,
//! and while either side recovers the exchange is always a full one (no `InSync`). Older nodes
//! leave the field out and read as not recovering, which they cannot be.

use std::net::SocketAddr;

use podswarm_cluster::{Entry, Hlc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest frame accepted: a whole state for a few thousand objects fits many times over.
pub const MAX_FRAME: usize = 64 << 20;

/// A state change riding on SWIM packets. `entry` is left out when the value is too big for a
/// packet; receivers holding an older version then pull from `origin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delta {
    pub key: String,
    pub version: Hlc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
    pub origin: SocketAddr,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "camelCase")]
pub enum Sync {
    Hello {
        fingerprint: [u8; 32],
        #[serde(default, skip_serializing_if = "is_false")]
        recovering: bool,
    },
    InSync,
    Digest {
        digest: Vec<(String, Hlc)>,
        #[serde(default, skip_serializing_if = "is_false")]
        recovering: bool,
    },
    Push {
        entries: Vec<(String, Entry)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<Vec<(String, Hlc)>>,
    },
}

// serde's `skip_serializing_if` passes a reference.
fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    #[serde(with = "crate::identity::hex_u64")]
    pub node_id: u64,
    pub node_name: String,
    pub advertise: SocketAddr,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    #[serde(with = "crate::identity::hex_u64")]
    pub cluster: u64,
    pub key: String,
    /// Members to announce to.
    pub seeds: Vec<SocketAddr>,
    /// The request's counter: this reply answers that request and no other.
    pub answers: u64,
}

/// The first frame of a join, in the clear: asks the member for the cluster CA's certificate,
/// which the joiner checks against its token's fingerprint before it sends anything sealed.
/// Members from before cluster CAs drop it (it does not open) and close the connection.
pub const CA_REQUEST: &[u8] = b"podswarm cluster CA?";

/// The answer to [`CA_REQUEST`], in the clear (the certificate is public).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaReply {
    pub ca_cert: String,
}

/// Sent in the clear: a refused joiner learns nothing but the reason.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refusal {
    pub refused: String,
}

pub async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(bytes).await?;
    w.flush().await
}

pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit"),
        ));
    }
    // Grown as bytes arrive, not allocated up front: the length is the unauthenticated sender's
    // claim, and a peer that claims 64 MiB and sends nothing must cost nothing.
    let mut buf = Vec::with_capacity(len.min(64 << 10));
    r.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_a_short_or_oversized_one_is_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").await.unwrap();
        assert_eq!(read_frame(&mut wire.as_slice()).await.unwrap(), b"hello");
        // Claims 1 MiB, sends 3 bytes: refused, nothing like 1 MiB held.
        let mut short = (1u32 << 20).to_be_bytes().to_vec();
        short.extend_from_slice(b"abc");
        let e = read_frame(&mut short.as_slice()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let huge = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
        let e = read_frame(&mut huge.as_slice()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
