//! Wiring: the listener's TLS (rustls, TLS 1.2 and 1.3 only, HTTP/2 and HTTP/1.1 offered over
//! ALPN). The certificate and key are PEM files, read again on `SIGHUP` or when either file
//! changes; a handshake takes the certificate of its moment, so connections already open
//! keep theirs and nothing is dropped. A reload that fails (a half-written file, a key that
//! does not match) keeps the certificate in use and says why in the log.
//!
//! [`self_signed`] makes a development certificate: a CA of its own and a leaf for the names
//! given, so a client can trust the CA file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use gust_keyring::write_private;
use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// How often the certificate files are checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What can go wrong with the listener's certificate; all are the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A certificate file with no PEM certificate in it.
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    /// A key file with no PEM private key in it.
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    /// A key rustls cannot use, or one that is not the certificate's.
    #[error("the key does not fit the certificate: {0}")]
    Mismatch(String),
    /// The development certificate could not be made or written.
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The certificate the listener presents, replaced in place on reload.
#[derive(Debug)]
pub struct Certificates {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<Files>,
}

#[derive(Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    /// The files' modification times when last read.
    seen: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl Files {
    fn stamps(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (modified(&self.cert), modified(&self.key))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().clone())
    }
}

impl Certificates {
    /// The certificate chain in `cert` and the private key in `key`, both PEM; watched for
    /// changes by [`watch`](Self::watch).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<Certificates>, TlsError> {
        let files = Files {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            seen: RwLock::new((None, None)),
        };
        let stamps = files.stamps();
        let certified = read_pair(cert, key)?;
        *files.seen.write().unwrap_or_else(|e| e.into_inner()) = stamps;
        Ok(Arc::new(Certificates {
            current: RwLock::new(Arc::new(certified)),
            files: Some(files),
        }))
    }

    /// A certificate chain and key given as PEM text (never reloaded).
    pub fn from_pem(cert: &str, key: &str) -> Result<Arc<Certificates>, TlsError> {
        let certified = certified_key(
            parse_certs(cert.as_bytes(), Path::new("<certificate>"))?,
            parse_key(key.as_bytes(), Path::new("<key>"))?,
        )?;
        Ok(Arc::new(Certificates {
            current: RwLock::new(Arc::new(certified)),
            files: None,
        }))
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The SHA-256 fingerprint of the leaf certificate now presented, as `AA:BB:...`.
    pub fn fingerprint(&self) -> String {
        let current = self.current();
        let leaf = current.cert.first().map(|c| c.as_ref()).unwrap_or_default();
        Sha256::digest(leaf)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Reads the files again (if they are files); `Ok(true)` if the certificate changed.
    /// On an error the certificate in use stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        // Noted only once the pair loads: a pair that fails (half written) is tried again at
        // every check until it loads, even if its writer finishes within the same timestamp.
        let stamps = files.stamps();
        let certified = read_pair(&files.cert, &files.key)?;
        *files.seen.write().unwrap_or_else(|e| e.into_inner()) = stamps;
        let changed = {
            let current = self.current();
            current.cert != certified.cert
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        Ok(changed)
    }

    /// Reloads on `SIGHUP` and whenever a file's modification time changes, until the
    /// process ends. Does nothing for a certificate not read from files.
    pub fn watch(self: &Arc<Self>) {
        let Some(files) = &self.files else {
            return;
        };
        let (cert, key) = (files.cert.clone(), files.key.clone());
        let certs = Arc::downgrade(self);
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(WATCH_EVERY);
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hangup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<()>();
                let forced = tokio::select! {
                    () = signalled => true,
                    _ = tick.tick() => false,
                };
                let Some(certs) = certs.upgrade() else { return };
                let Some(files) = &certs.files else { return };
                let moved = files.stamps() != *files.seen.read().unwrap_or_else(|e| e.into_inner());
                if !forced && !moved {
                    continue;
                }
                match certs.reload() {
                    Ok(changed) => tracing::info!(
                        cert = %cert.display(),
                        changed,
                        fingerprint = %certs.fingerprint(),
                        "TLS certificate reloaded"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        key = %key.display(),
                        "TLS certificate not reloaded; the one in use stays"
                    ),
                }
            }
        });
    }

    /// The listener's TLS configuration: TLS 1.2 and 1.3, this certificate, `h2` and
    /// `http/1.1` offered over ALPN.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    certified_key(
        parse_certs(&read(cert)?, cert)?,
        parse_key(&read(key)?, key)?,
    )
}

fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| TlsError::NoKey(path.to_path_buf()))
}

fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    let certified = CertifiedKey::from_der(certs, key, &default_provider())
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(certified)
}

/// A development certificate written to `dir`: `ca.pem` (the CA a client trusts, made once
/// and kept), `cert.pem` and `key.pem` (a leaf for `names`, DNS names or IP addresses, made
/// again at every start). Returns the paths of the CA, the leaf and its key.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<SelfSigned, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let err = |e: &dyn std::fmt::Display| TlsError::SelfSigned(e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    let (ca_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca_params = || {
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, "Gust development CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    // The CA's name and key identifier come from its parameters and key, so a leaf signed at
    // a later start chains to the CA file written at the first.
    let kept = std::fs::read_to_string(&ca_key_path)
        .ok()
        .filter(|_| ca_path.exists());
    let ca_key = match kept {
        Some(key) => KeyPair::from_pem(&key).map_err(|e| err(&e))?,
        None => {
            let key = KeyPair::generate().map_err(|e| err(&e))?;
            let ca = ca_params().self_signed(&key).map_err(|e| err(&e))?;
            write_private(&ca_key_path, key.serialize_pem().as_bytes()).map_err(|e| err(&e))?;
            std::fs::write(&ca_path, ca.pem()).map_err(|e| err(&e))?;
            key
        }
    };
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(|e| err(&e))?;
    leaf.distinguished_name
        .push(DnType::CommonName, "Gust development server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().map_err(|e| err(&e))?;
    let cert = leaf.signed_by(&leaf_key, &issuer).map_err(|e| err(&e))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    write_private(&key_path, leaf_key.serialize_pem().as_bytes()).map_err(|e| err(&e))?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| err(&e))?;
    Ok(SelfSigned {
        ca: ca_path,
        cert: cert_path,
        key: key_path,
    })
}

/// Where [`self_signed`] wrote its files.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_loads_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = self_signed(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let certs = Certificates::from_files(&made.cert, &made.key).unwrap();
        let first = certs.fingerprint();
        assert_eq!(first.len(), 32 * 3 - 1);
        // A second start keeps the CA and makes a new leaf.
        let ca = std::fs::read(&made.ca).unwrap();
        let again = self_signed(dir.path(), &["localhost".into()]).unwrap();
        assert_eq!(std::fs::read(&again.ca).unwrap(), ca);
        assert!(certs.reload().unwrap());
        assert_ne!(certs.fingerprint(), first);
        // A key of another certificate: refused, the one in use stays.
        let other = tempfile::tempdir().unwrap();
        let stranger = self_signed(other.path(), &["localhost".into()]).unwrap();
        std::fs::copy(&stranger.key, &made.key).unwrap();
        let before = certs.fingerprint();
        assert!(matches!(certs.reload(), Err(TlsError::Mismatch(_))));
        assert_eq!(certs.fingerprint(), before);
        std::fs::write(&made.key, "not a key").unwrap();
        assert!(matches!(certs.reload(), Err(TlsError::NoKey(_))));
    }
}
