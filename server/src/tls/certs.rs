//! A port's certificate chain and key: read from their PEM files, checked to belong together,
//! and held in a [`CertStore`] that every handshake asks for the pair in use.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{CertPaths, Port, TlsError};
use crate::sync;

/// What identifies a version of a file without reading it: its modification time and size
/// (`None` while it cannot be read).
type Stamp = Option<(SystemTime, u64)>;

/// The certificate and key a port serves, replaced whole by a successful reload.
#[derive(Debug)]
pub struct CertStore {
    port: Port,
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when they were last read (certificate, key).
    seen: Mutex<[Stamp; 2]>,
}

impl CertStore {
    /// Reads the port's certificate and key; fails naming the setting and the file.
    pub fn load(
        port: Port,
        paths: CertPaths,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<CertStore>, TlsError> {
        let seen = stamps(&paths);
        let key = load(port, &paths, &provider)?;
        Ok(Arc::new(CertStore {
            port,
            paths,
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(seen),
        }))
    }

    /// The port this store serves.
    pub fn port(&self) -> Port {
        self.port
    }

    /// The files this store reads.
    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        sync::read(&self.current).clone()
    }

    /// Reads the files again: a good pair replaces the one in use; otherwise the error, and the
    /// pair in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        // Stamped before reading: a change made while reading is seen by the next check.
        *sync::lock(&self.seen) = stamps(&self.paths);
        let key = load(self.port, &self.paths, &self.provider)?;
        *sync::write(&self.current) = Arc::new(key);
        Ok(())
    }

    /// Whether either file has changed since it was last read.
    pub fn changed(&self) -> bool {
        stamps(&self.paths) != *sync::lock(&self.seen)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamps(paths: &CertPaths) -> [Stamp; 2] {
    [stamp(&paths.cert), stamp(&paths.key)]
}

/// The stamp of the file `path` names, following symbolic links (a mounted secret's files are
/// links that change target when it is updated).
fn stamp(path: &Path) -> Stamp {
    let metadata = fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The certificate chain and key of `port` from `paths`, checked to belong together.
pub(super) fn load(
    port: Port,
    paths: &CertPaths,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_setting = port.cert_setting();
    let key_setting = port.key_setting();
    let cert_path = || paths.cert.clone();
    let key_path = || paths.key.clone();

    let pem = read(cert_setting, &paths.cert)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            setting: cert_setting,
            path: cert_path(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            setting: cert_setting,
            path: cert_path(),
        });
    }

    let pem = read(key_setting, &paths.key)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            setting: key_setting,
            path: key_path(),
        },
        e => TlsError::Pem {
            setting: key_setting,
            path: key_path(),
            reason: e.to_string(),
        },
    })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                setting: key_setting,
                path: key_path(),
                reason: e.to_string(),
            })?;

    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        // A key that cannot tell its public key is taken on trust, as rustls does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            key_setting,
            key: key_path(),
            cert_setting,
            cert: cert_path(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            setting: cert_setting,
            path: cert_path(),
            reason: e.to_string(),
        }),
    }
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: PathBuf::from(path),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    /// A directory of its own for `name`'s files.
    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lookout-certs-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A self-signed certificate for `localhost` and its key, written as PEM into `dir`.
    fn write_pair(dir: &Path) -> (CertPaths, CertificateDer<'static>) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let paths = CertPaths {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        fs::write(&paths.cert, generated.cert.pem()).unwrap();
        fs::write(&paths.key, generated.signing_key.serialize_pem()).unwrap();
        (paths, generated.cert.der().clone())
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn a_pair_loads_and_bad_files_name_the_setting_and_the_file() {
        let dir = dir("load");
        let (paths, der) = write_pair(&dir);
        let store = CertStore::load(Port::Grpc, paths.clone(), provider()).unwrap();
        assert_eq!(store.current().end_entity_cert().unwrap(), &der);

        let missing = CertPaths {
            cert: dir.join("missing.pem"),
            ..paths.clone()
        };
        let e = CertStore::load(Port::Grpc, missing, provider()).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("grpc-tls-cert: cannot read `"), "{text}");
        assert!(text.contains("missing.pem"), "{text}");

        let garbage = dir.join("garbage.pem");
        fs::write(&garbage, "not a certificate\n").unwrap();
        let e = CertStore::load(
            Port::Http,
            CertPaths {
                cert: garbage.clone(),
                ..paths.clone()
            },
            provider(),
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().starts_with("http-tls-cert: "), "{e}");
        let e = CertStore::load(
            Port::Http,
            CertPaths {
                key: garbage,
                ..paths.clone()
            },
            provider(),
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        assert!(e.to_string().starts_with("http-tls-key: "), "{e}");

        // The key of another certificate.
        let other = dir.join("other");
        fs::create_dir_all(&other).unwrap();
        let (other, _) = write_pair(&other);
        let e = CertStore::load(
            Port::Grpc,
            CertPaths {
                key: other.key,
                ..paths
            },
            provider(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{text}");
        assert!(
            text.contains("grpc-tls-key") && text.contains("grpc-tls-cert"),
            "{text}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reload_replaces_a_good_pair_and_keeps_the_old_one_otherwise() {
        let dir = dir("reload");
        let (paths, first) = write_pair(&dir);
        let store = CertStore::load(Port::Http, paths.clone(), provider()).unwrap();
        assert!(!store.changed());

        fs::write(&paths.cert, "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
        assert!(store.changed());
        assert!(store.reload().is_err());
        assert!(!store.changed());
        assert_eq!(store.current().end_entity_cert().unwrap(), &first);

        let (_, second) = write_pair(&dir);
        store.reload().unwrap();
        assert_ne!(first, second);
        assert_eq!(store.current().end_entity_cert().unwrap(), &second);
        let _ = fs::remove_dir_all(&dir);
    }
}
