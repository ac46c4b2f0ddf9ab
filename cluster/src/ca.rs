//! The cluster's certificate authority: one ECDSA P-256 key and a self-signed certificate valid
//! for ten years, made by rcgen when a cluster is created (or, for a cluster from before there
//! was one, by its first node to start on a version that has it).
//!
//! It lives in the replicated state as `cluster/ca`: the certificate in PEM, and the key sealed
//! with the cluster key ([`Kind::AtRest`]), so that every member holds the same CA (whichever
//! node made it) while the key is never on disk in clear outside the node's private key directory.
//! Its identity is the SHA-256 of the certificate's DER ([`ClusterCa::fingerprint`]): join tokens
//! carry it, and a joining node checks the CA a member presents against it before it sends
//! anything derived from the token's secret. Nothing here pins the CA itself: a later CA
//! rotation replaces the record and re-renders the token.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::seal::{ClusterKey, Kind, Sealer, hex, unhex};

/// How long a new cluster CA is valid.
pub const CA_LIFETIME: time::Duration = time::Duration::days(3653);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot create the cluster CA")]
    Create(#[source] rcgen::Error),
    #[error("the cluster CA certificate is not a PEM certificate")]
    Certificate(#[source] rustls_pki_types::pem::Error),
    #[error("the cluster CA key is not a PEM key")]
    Key(#[source] rcgen::Error),
    #[error("the cluster CA key does not belong to its certificate")]
    Mismatch,
    #[error("the cluster CA key does not open with this cluster's key")]
    Sealed,
}

/// The cluster CA: certificate and key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterCa({}, ..)", fingerprint_text(&self.fingerprint))
    }
}

impl ClusterCa {
    /// A new CA for the cluster `cluster`, valid from now for [`CA_LIFETIME`].
    pub fn generate(cluster: u64) -> Result<ClusterCa, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Create)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "podswarm");
        params.distinguished_name.push(
            DnType::CommonName,
            format!("podswarm cluster {cluster:016x}"),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // A little in the past, so that a node whose clock is slightly behind accepts it.
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        let cert = params.self_signed(&key).map_err(CaError::Create)?;
        Ok(ClusterCa {
            fingerprint: digest(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A CA from its certificate and key; the key must be the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, CaError> {
        let der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(CaError::Certificate)?;
        let key = KeyPair::from_pem(key_pem).map_err(CaError::Key)?;
        // The certificate's subject public key is the key's public point, byte for byte.
        let public = key.public_key_raw();
        if public.is_empty() || !der.windows(public.len()).any(|w| w == public) {
            return Err(CaError::Mismatch);
        }
        Ok(ClusterCa {
            fingerprint: digest(&der),
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    /// The CA from its replicated record: the certificate, and the key sealed with `key`.
    pub fn from_record(
        cert_pem: &str,
        sealed_key: &str,
        key: &ClusterKey,
    ) -> Result<Self, CaError> {
        let packet = unhex_vec(sealed_key).ok_or(CaError::Sealed)?;
        let (_, plain) = Sealer::new(key, 0)
            .open_unchecked(&packet, Kind::AtRest)
            .map_err(|_| CaError::Sealed)?;
        let key_pem = String::from_utf8(plain).map_err(|_| CaError::Sealed)?;
        ClusterCa::from_pem(cert_pem, &key_pem)
    }

    /// The key, sealed with the cluster key `key`, for the replicated record.
    pub fn sealed_key(&self, key: &ClusterKey) -> String {
        hex(&Sealer::new(key, 0).seal(Kind::AtRest, self.key_pem.as_bytes()))
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// SHA-256 of the certificate's DER: what join tokens pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

/// The SHA-256 of a PEM certificate's DER, as [`ClusterCa::fingerprint`] gives it.
pub fn fingerprint_of(cert_pem: &str) -> Result<[u8; 32], CaError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(CaError::Certificate)?;
    Ok(digest(&der))
}

/// A CA fingerprint as users compare it: `sha256:<hex>` (join tokens carry the hex part).
pub fn fingerprint_text(fingerprint: &[u8; 32]) -> String {
    format!("sha256:{}", hex(fingerprint))
}

fn digest(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn unhex_vec(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| unhex::<1>(text.get(i..i + 2)?).map(|b| b[0]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ca_round_trips_through_pem_and_its_record() {
        let ca = ClusterCa::generate(0xabc).unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(fingerprint_of(ca.cert_pem()).unwrap(), ca.fingerprint());
        let again = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(again, ca);
        let key = ClusterKey::generate();
        let sealed = ca.sealed_key(&key);
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            ClusterCa::from_record(ca.cert_pem(), &sealed, &key).unwrap(),
            ca
        );
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_foreign_key_or_cluster_key_is_refused() {
        let a = ClusterCa::generate(1).unwrap();
        let b = ClusterCa::generate(1).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(matches!(
            ClusterCa::from_pem(a.cert_pem(), b.key_pem()),
            Err(CaError::Mismatch)
        ));
        let sealed = a.sealed_key(&ClusterKey::generate());
        assert!(matches!(
            ClusterCa::from_record(a.cert_pem(), &sealed, &ClusterKey::generate()),
            Err(CaError::Sealed)
        ));
        assert!(matches!(
            ClusterCa::from_record(a.cert_pem(), "zz", &ClusterKey::generate()),
            Err(CaError::Sealed)
        ));
        assert!(matches!(
            fingerprint_of("not a certificate"),
            Err(CaError::Certificate(_))
        ));
    }
}
