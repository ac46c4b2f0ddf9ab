//! Certificates for the HTTPS listener, chosen per connection by SNI.
//!
//! The certificates come from the served Ingresses' `spec.tls` entries: podswarmd writes each
//! Secret as one PEM file (chain, then key) and the view names the file. They are loaded when a
//! view is loaded (a file is read again only when its Secret's version changes) and live in the
//! same snapshot as the routes, so a reload swaps both at once; handshakes in progress keep the
//! certificate they started with.
//!
//! Which certificate a connection gets ([`Certs::for_name`]): the one whose `hosts` list the
//! server name exactly, else one whose `*.parent` wildcard covers it (one label), else the
//! default. A TLS entry with no `hosts` covers the hosts of its Ingress's rules and is the
//! default certificate (the first such entry in namespace/name order). Without a default, a
//! client that sends no or an unknown server name gets a handshake failure rather than a
//! certificate for another name. Between Ingresses, the first to name a host wins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use podswarm_view::Ingress;
use podswarm_view::watch::Current;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::routes::{normalize_host, wildcard_parent};
use crate::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no private key")]
    NoKey { path: PathBuf },
    #[error("{path}: the key does not fit the certificate or is not supported")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot set up TLS")]
    Config {
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider: ring, the one pingora's rustls backend uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM file with a certificate chain and its private key.
pub fn load_pem(path: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey {
        path: path.to_owned(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Loaded certificates, by the file they came from and the Secret version it held.
pub type CertCache = HashMap<(PathBuf, u64), Arc<CertifiedKey>>;

/// The certificates of the served Ingresses, by server name.
#[derive(Debug, Default)]
pub struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Certs {
    /// Loads the certificates `ingresses` name, reusing `cache` for files already read (and
    /// leaving only the ones in use in it). Returns the problems (files that cannot be used)
    /// besides: their hosts get no certificate.
    pub fn load<'a>(
        ingresses: impl IntoIterator<Item = &'a Ingress>,
        cache: &mut CertCache,
        provider: &CryptoProvider,
    ) -> (Certs, Vec<String>) {
        let mut certs = Certs::default();
        let mut problems = Vec::new();
        let mut used = CertCache::new();
        for ing in ingresses {
            for t in &ing.tls {
                let Some(path) = &t.cert_file else {
                    problems.push(format!(
                        "Ingress {}/{}: no certificate file for Secret {} yet",
                        ing.namespace, ing.name, t.secret
                    ));
                    continue;
                };
                let key = (path.clone(), t.secret_version);
                let cert = match cache.get(&key).or_else(|| used.get(&key)) {
                    Some(c) => c.clone(),
                    None => match load_pem(path, provider) {
                        Ok(c) => Arc::new(c),
                        Err(e) => {
                            problems.push(format!(
                                "Ingress {}/{}: {}",
                                ing.namespace,
                                ing.name,
                                crate::error_chain(&e)
                            ));
                            continue;
                        }
                    },
                };
                used.insert(key, cert.clone());
                let hosts: Vec<&str> = if t.hosts.is_empty() {
                    if certs.default.is_none() {
                        certs.default = Some(cert.clone());
                    }
                    ing.rules.iter().filter_map(|r| r.host.as_deref()).collect()
                } else {
                    t.hosts.iter().map(String::as_str).collect()
                };
                for h in hosts {
                    let map = match h.strip_prefix("*.") {
                        Some(parent) => certs.wildcard.entry(parent.to_owned()),
                        None => certs.exact.entry(h.to_owned()),
                    };
                    map.or_insert_with(|| cert.clone());
                }
            }
        }
        *cache = used;
        (certs, problems)
    }

    fn for_host(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact
            .get(host)
            .or_else(|| wildcard_parent(host).and_then(|p| self.wildcard.get(p)))
    }

    /// The certificate for a handshake with this server name (module docs).
    pub fn for_name(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        server_name
            .and_then(|n| self.for_host(&normalize_host(n)))
            .or(self.default.as_ref())
            .cloned()
    }

    /// Whether `host` (normalized) has a certificate of its own: plain HTTP requests for it
    /// are redirected to HTTPS.
    pub fn covers(&self, host: &str) -> bool {
        self.for_host(host).is_some()
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.default.is_none()
    }
}

/// Picks the certificate from the current snapshot during each handshake.
#[derive(Debug)]
pub struct SniResolver {
    pub current: Arc<Current<Snapshot>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        let cert = self.current.get().certs.for_name(name);
        if cert.is_none() {
            tracing::debug!(server_name = ?name, "no certificate for this server name");
        }
        cert
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN,
/// certificates by SNI.
pub fn server_config(current: Arc<Current<Snapshot>>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Config { source })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { current }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_view::{IngressRule, IngressTls};

    fn self_signed(dir: &Path, name: &str, hosts: &[&str]) -> (PathBuf, Vec<u8>) {
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let cert = rcgen::generate_simple_self_signed(names).unwrap();
        let pem = format!("{}{}", cert.cert.pem(), cert.signing_key.serialize_pem());
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, pem).unwrap();
        (path, cert.cert.der().to_vec())
    }

    fn ingress(name: &str, rule_hosts: &[&str], tls: Vec<IngressTls>) -> Ingress {
        Ingress {
            namespace: "default".into(),
            name: name.into(),
            rules: rule_hosts
                .iter()
                .map(|h| IngressRule {
                    host: Some((*h).into()),
                    paths: vec![],
                })
                .collect(),
            tls,
            ..Ingress::default()
        }
    }

    fn tls(hosts: &[&str], path: Option<&Path>, version: u64) -> IngressTls {
        IngressTls {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            secret: "s".into(),
            cert_file: path.map(Path::to_owned),
            secret_version: version,
        }
    }

    fn der(c: Option<Arc<CertifiedKey>>) -> Option<Vec<u8>> {
        c.and_then(|c| c.cert.first().map(|d| d.to_vec()))
    }

    #[test]
    fn certificates_are_chosen_by_exact_name_then_wildcard_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_der) = self_signed(dir.path(), "a", &["a.test"]);
        let (w, w_der) = self_signed(dir.path(), "w", &["*.w.test"]);
        let (d, d_der) = self_signed(dir.path(), "d", &["d.test"]);
        let ingresses = vec![
            ingress(
                "one",
                &[],
                vec![
                    tls(&["a.test"], Some(&a), 1),
                    tls(&["*.w.test"], Some(&w), 1),
                ],
            ),
            ingress("two", &["d.test"], vec![tls(&[], Some(&d), 1)]),
        ];
        let mut cache = CertCache::new();
        let (certs, problems) = Certs::load(&ingresses, &mut cache, &provider());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(der(certs.for_name(Some("a.test"))), Some(a_der.clone()));
        assert_eq!(der(certs.for_name(Some("A.Test"))), Some(a_der));
        assert_eq!(der(certs.for_name(Some("x.w.test"))), Some(w_der));
        // Wildcards cover one label only; everything else gets the default.
        assert_eq!(der(certs.for_name(Some("y.x.w.test"))), Some(d_der.clone()));
        assert_eq!(der(certs.for_name(Some("d.test"))), Some(d_der.clone()));
        assert_eq!(der(certs.for_name(None)), Some(d_der));
        assert!(certs.covers("a.test") && certs.covers("x.w.test") && certs.covers("d.test"));
        assert!(!certs.covers("w.test") && !certs.covers("other.test"));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn without_a_default_unknown_names_get_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = self_signed(dir.path(), "a", &["a.test"]);
        let ingresses = vec![ingress("one", &[], vec![tls(&["a.test"], Some(&a), 1)])];
        let (certs, _) = Certs::load(&ingresses, &mut CertCache::new(), &provider());
        assert!(certs.for_name(Some("b.test")).is_none());
        assert!(certs.for_name(None).is_none());
    }

    #[test]
    fn bad_or_missing_files_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = self_signed(dir.path(), "a", &["a.test"]);
        let only_cert = dir.path().join("cert-only.pem");
        let text = std::fs::read_to_string(&a).unwrap_or_default();
        let cert_part = text
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap_or_default();
        std::fs::write(&only_cert, cert_part).unwrap();
        let (other, _) = self_signed(dir.path(), "other", &["other.test"]);
        let mismatched = dir.path().join("mismatched.pem");
        let other_key = std::fs::read_to_string(&other)
            .unwrap_or_default()
            .split_inclusive("-----END CERTIFICATE-----\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        std::fs::write(&mismatched, format!("{cert_part}{other_key}")).unwrap();
        let ingresses = vec![ingress(
            "one",
            &[],
            vec![
                tls(&["x.test"], None, 0),
                tls(&["y.test"], Some(&dir.path().join("missing.pem")), 1),
                tls(&["z.test"], Some(&only_cert), 1),
                tls(&["m.test"], Some(&mismatched), 1),
                tls(&["a.test"], Some(&a), 1),
            ],
        )];
        let (certs, problems) = Certs::load(&ingresses, &mut CertCache::new(), &provider());
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("no certificate file"));
        assert!(problems[1].contains("cannot read"));
        assert!(problems[2].contains("no private key"));
        assert!(problems[3].contains("does not fit"));
        assert!(certs.covers("a.test"));
        assert!(!certs.covers("z.test") && !certs.covers("m.test"));
    }

    #[test]
    fn files_are_read_again_only_for_a_new_secret_version() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_der) = self_signed(dir.path(), "a", &["a.test"]);
        let mut cache = CertCache::new();
        let v1 = vec![ingress("one", &[], vec![tls(&["a.test"], Some(&a), 1)])];
        let _ = Certs::load(&v1, &mut cache, &provider());
        // Replaced on disk, same version: the cached certificate stays.
        let (_, b_der) = self_signed(dir.path(), "a", &["a.test"]);
        let (certs, _) = Certs::load(&v1, &mut cache, &provider());
        assert_eq!(der(certs.for_name(Some("a.test"))), Some(a_der));
        let v2 = vec![ingress("one", &[], vec![tls(&["a.test"], Some(&a), 2)])];
        let (certs, _) = Certs::load(&v2, &mut cache, &provider());
        assert_eq!(der(certs.for_name(Some("a.test"))), Some(b_der));
        assert_eq!(cache.len(), 1);
    }
}
