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

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::seal::{ClusterKey, Kind, Sealer, hex, unhex};

/// How long a new cluster CA is valid.
pub const CA_LIFETIME: time::Duration = time::Duration::days(3653);

/// The shortest and longest node certificate lifetimes the CA signs: a minute (tests force
/// renewals with it) and 398 days (the longest a public CA may issue; far beyond any sane setting).
pub const NODE_LIFETIME_MIN: std::time::Duration = std::time::Duration::from_secs(60);
pub const NODE_LIFETIME_MAX: std::time::Duration = std::time::Duration::from_secs(398 * 86_400);

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
    #[error("the node's certificate request is not valid")]
    Request(#[source] rcgen::Error),
    #[error("cannot sign the certificate of node {node:?}")]
    Sign {
        node: String,
        #[source]
        source: rcgen::Error,
    },
}

/// A node's new key and the request for its certificate (both PEM): the key stays with the
/// node's podswarmd, the request goes to the CA's holder.
pub struct NodeRequest {
    pub key_pem: String,
    pub csr_pem: String,
}

impl std::fmt::Debug for NodeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeRequest(..)")
    }
}

impl NodeRequest {
    pub fn generate(node: &str) -> Result<NodeRequest, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Create)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, node);
        let csr = params.serialize_request(&key).map_err(CaError::Create)?;
        Ok(NodeRequest {
            key_pem: key.serialize_pem(),
            csr_pem: csr.pem().map_err(CaError::Create)?,
        })
    }
}

/// A node certificate the CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertificate {
    pub cert_pem: String,
    /// Seconds since the epoch.
    pub not_before: u64,
    pub not_after: u64,
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

    /// Signs node `node`'s certificate for the key of `csr_pem`, valid from `now` for
    /// `lifetime` (clamped to [`NODE_LIFETIME_MIN`]..=[`NODE_LIFETIME_MAX`]). Only the request's
    /// key is taken from it: the names are the CA holder's to set. The certificate serves both
    /// ends of TLS (the node's API, and its requests to other nodes), for the node's name,
    /// `localhost`, the loopback addresses and `addresses`.
    pub fn sign_node(
        &self,
        csr_pem: &str,
        node: &str,
        addresses: &[IpAddr],
        lifetime: std::time::Duration,
        now: std::time::SystemTime,
    ) -> Result<NodeCertificate, CaError> {
        let sign_error = |source| CaError::Sign {
            node: node.to_owned(),
            source,
        };
        let mut request =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(CaError::Request)?;
        let lifetime = lifetime.clamp(NODE_LIFETIME_MIN, NODE_LIFETIME_MAX);
        let now = time::OffsetDateTime::from(now);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "podswarm");
        params.distinguished_name.push(DnType::CommonName, node);
        let mut names = vec![
            SanType::DnsName(node.try_into().map_err(sign_error)?),
            SanType::DnsName("localhost".try_into().map_err(sign_error)?),
        ];
        let loopback = [
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ];
        for ip in addresses.iter().chain(&loopback) {
            if !names.contains(&SanType::IpAddress(*ip)) {
                names.push(SanType::IpAddress(*ip));
            }
        }
        params.subject_alt_names = names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        // No serial given: rcgen derives one from the certificate's contents, and every node
        // certificate is for a fresh key.
        // As the CA: a little in the past, for a peer whose clock is slightly behind.
        let not_before = now - time::Duration::minutes(5);
        let not_after = now + lifetime;
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        request.params = params;
        let key = KeyPair::from_pem(&self.key_pem).map_err(CaError::Key)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, key).map_err(sign_error)?;
        let cert = request.signed_by(&issuer).map_err(sign_error)?;
        let seconds = |t: time::OffsetDateTime| u64::try_from(t.unix_timestamp()).unwrap_or(0);
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            not_before: seconds(not_before),
            not_after: seconds(not_after),
        })
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
    fn a_node_certificate_chains_to_the_ca_with_the_node_names() {
        let ca = ClusterCa::generate(7).unwrap();
        let request = NodeRequest::generate("node-1").unwrap();
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let now = std::time::SystemTime::now();
        let cert = ca
            .sign_node(
                &request.csr_pem,
                "node-1",
                &[ip],
                std::time::Duration::from_secs(90 * 86_400),
                now,
            )
            .unwrap();
        let unix = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(cert.not_after, unix + 90 * 86_400);
        assert!(cert.not_before < unix);
        let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(parsed.issuer(), ca_parsed.subject());
        parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .unwrap();
        let sans = parsed.subject_alternative_name().unwrap().unwrap();
        let text = format!("{:?}", sans.value.general_names);
        for name in ["node-1", "localhost", "[10, 0, 0, 5]", "[127, 0, 0, 1]"] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        // The lifetime is clamped; a request that is not one is refused.
        let short = ca
            .sign_node(
                &request.csr_pem,
                "node-1",
                &[],
                std::time::Duration::ZERO,
                now,
            )
            .unwrap();
        assert_eq!(short.not_after, unix + 60);
        assert!(matches!(
            ca.sign_node("garbage", "node-1", &[], NODE_LIFETIME_MIN, now),
            Err(CaError::Request(_))
        ));
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
