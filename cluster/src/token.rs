//! Join tokens: `PSWTKN-2-<cluster id>-<CA fingerprint>-<secret>`, as k3s's `K10<CA hash>::…`.
//! The cluster id lets a joining node tell which cluster it is joining; the CA fingerprint (the
//! SHA-256 of the cluster CA certificate, see [`crate::ca`]) lets it check, before it sends
//! anything, that the member it reached belongs to that cluster; the 256-bit secret never travels.
//! A joining node seals its request with a key derived from all three, and the member it asks
//! seals the cluster key back with the same derived key: a wrong token fails authentication on the
//! member's side and the joiner is told no more than "refused". Tokens of the first format
//! (`PSWTKN-1-`, made before clusters had a CA) pin nothing and are refused with what to do.

use sha2::{Digest, Sha256};

use crate::seal::{ClusterKey, hex, unhex};

const PREFIX: &str = "PSWTKN-2-";
const OLD_PREFIX: &str = "PSWTKN-1-";

#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub cluster: u64,
    /// The SHA-256 of the cluster CA's certificate (DER).
    pub ca: [u8; 32],
    secret: [u8; 32],
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinToken({:016x}, ..)", self.cluster)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a join token looks like PSWTKN-2-<16 hex digits>-<64 hex digits>-<64 hex digits>")]
    Format,
    #[error(
        "this join token (PSWTKN-1-…) is from a podswarm before cluster CAs and cannot prove which cluster it joins; run `podswarmctl cluster join-token` on a member for a current one"
    )]
    Old,
}

impl JoinToken {
    /// A new token for the cluster `cluster` whose CA has the fingerprint `ca`.
    pub fn generate(cluster: u64, ca: [u8; 32]) -> JoinToken {
        JoinToken {
            cluster,
            ca,
            secret: crate::random_bytes(),
        }
    }

    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let text = text.trim();
        if text.starts_with(OLD_PREFIX) {
            return Err(TokenError::Old);
        }
        let rest = text.strip_prefix(PREFIX).ok_or(TokenError::Format)?;
        let mut parts = rest.split('-');
        let (Some(cluster), Some(ca), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Format);
        };
        let cluster = u64::from_be_bytes(unhex::<8>(cluster).ok_or(TokenError::Format)?);
        let ca = unhex::<32>(ca).ok_or(TokenError::Format)?;
        let secret = unhex::<32>(secret).ok_or(TokenError::Format)?;
        Ok(JoinToken {
            cluster,
            ca,
            secret,
        })
    }

    /// The CA fingerprint as users compare it: `sha256:<hex>`.
    pub fn ca_text(&self) -> String {
        crate::ca::fingerprint_text(&self.ca)
    }

    /// The key join requests and replies are sealed with: it binds the CA fingerprint too, so a
    /// token whose fingerprint was changed does not open.
    pub fn join_key(&self) -> ClusterKey {
        let mut hash = Sha256::new();
        hash.update(b"podswarm join key v2\0");
        hash.update(self.cluster.to_be_bytes());
        hash.update(self.ca);
        hash.update(self.secret);
        ClusterKey::from_bytes(hash.finalize().into())
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}-{}-{}",
            hex(&self.cluster.to_be_bytes()),
            hex(&self.ca),
            hex(&self.secret)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let token = JoinToken::generate(0xdead_beef, [7; 32]);
        let text = token.to_string();
        assert!(
            text.starts_with(&format!("PSWTKN-2-00000000deadbeef-{}-", "07".repeat(32))),
            "{text}"
        );
        assert_eq!(JoinToken::parse(&text), Ok(token.clone()));
        assert_eq!(JoinToken::parse(&format!("  {text}\n")), Ok(token));
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let a = JoinToken::generate(1, [0; 32]);
        let b = JoinToken::generate(1, [0; 32]);
        assert_ne!(a.join_key(), b.join_key());
        // Same secret, another CA: another key.
        let mut c = a.clone();
        c.ca = [1; 32];
        assert_ne!(a.join_key(), c.join_key());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "PSWTKN-2-",
            "PSWTKN-2-xyz-abc",
            "PSWTKN-2-0000000000000000-00",
            "PSWTKN-3-0000000000000000-00-00",
        ] {
            assert_eq!(JoinToken::parse(bad), Err(TokenError::Format), "{bad}");
        }
        let good = JoinToken::generate(1, [2; 32]).to_string();
        assert_eq!(
            JoinToken::parse(&good[..good.len() - 1]),
            Err(TokenError::Format),
            "truncated"
        );
        assert_eq!(
            JoinToken::parse(&format!("{good}-00")),
            Err(TokenError::Format)
        );
        assert_eq!(
            JoinToken::parse(&format!("PSWTKN-1-{:016x}-{}", 1, "00".repeat(32))),
            Err(TokenError::Old)
        );
    }
}
