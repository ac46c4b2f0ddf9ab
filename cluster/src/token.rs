//! Join tokens: `PSWTKN-1-<cluster id>-<secret>`. The cluster id lets a joining node tell which
//! cluster it is joining; the 256-bit secret never travels. A joining node seals its request with
//! a key derived from the secret, and the member it asks seals the cluster key back with the same
//! derived key: a wrong token fails authentication on the member's side and the joiner is told
//! no more than "refused".

use sha2::{Digest, Sha256};

use crate::seal::{ClusterKey, hex, unhex};

const PREFIX: &str = "PSWTKN-1-";

#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub cluster: u64,
    secret: [u8; 32],
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinToken({:016x}, ..)", self.cluster)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a join token looks like PSWTKN-1-<16 hex digits>-<64 hex digits>")]
    Format,
}

impl JoinToken {
    pub fn generate(cluster: u64) -> JoinToken {
        JoinToken {
            cluster,
            secret: crate::random_bytes(),
        }
    }

    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let rest = text.trim().strip_prefix(PREFIX).ok_or(TokenError::Format)?;
        let (cluster, secret) = rest.split_once('-').ok_or(TokenError::Format)?;
        let cluster = u64::from_be_bytes(unhex::<8>(cluster).ok_or(TokenError::Format)?);
        let secret = unhex::<32>(secret).ok_or(TokenError::Format)?;
        Ok(JoinToken { cluster, secret })
    }

    /// The key join requests and replies are sealed with.
    pub fn join_key(&self) -> ClusterKey {
        let mut hash = Sha256::new();
        hash.update(b"podswarm join key v1\0");
        hash.update(self.cluster.to_be_bytes());
        hash.update(self.secret);
        ClusterKey::from_bytes(hash.finalize().into())
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}-{}",
            hex(&self.cluster.to_be_bytes()),
            hex(&self.secret)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let token = JoinToken::generate(0xdead_beef);
        let text = token.to_string();
        assert!(text.starts_with("PSWTKN-1-00000000deadbeef-"), "{text}");
        assert_eq!(JoinToken::parse(&text), Ok(token.clone()));
        assert_eq!(JoinToken::parse(&format!("  {text}\n")), Ok(token));
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let a = JoinToken::generate(1);
        let b = JoinToken::generate(1);
        assert_ne!(a.join_key(), b.join_key());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "PSWTKN-1-",
            "PSWTKN-1-xyz-abc",
            "PSWTKN-2-0000000000000000-00",
        ] {
            assert_eq!(JoinToken::parse(bad), Err(TokenError::Format), "{bad}");
        }
    }
}
