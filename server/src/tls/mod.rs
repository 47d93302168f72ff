//! TLS on the gRPC and HTTP ports (rustls with ring): the settings of each port, loading its
//! certificate and key, serving them to each handshake, and reloading them while the server runs.
//!
//! - **Settings** ([`TlsSettings`]): a certificate chain and a private key per port, both PEM
//!   files. A port with both speaks TLS only; a port with neither speaks plaintext (the default).
//! - **Loading** (`certs.rs`): a missing, unreadable or invalid file, or a key that does not
//!   belong to the certificate, is a [`TlsError`] naming the setting and the file; at start it
//!   stops the server.
//! - **Serving** ([`CertStore`]): each port's rustls configuration asks its store for the
//!   certificate at every handshake ([`rustls::server::ResolvesServerCert`]), so replacing the
//!   store's pair changes what new connections get; connections already open keep theirs.
//! - **Reloading** (`reload.rs`): on SIGHUP, and when either file's modification time or size
//!   changes (checked every [`POLL_INTERVAL`]), the files are read again. A good pair replaces the
//!   one in use; a bad one is logged as an error naming the file, and the old pair stays.
//! - **Handshakes** ([`MaybeTls`]): the accept loop of `crate::connections` wraps each accepted
//!   TCP stream before the connection's task reads it, so the handshake runs in that task, never
//!   in the accept loop, and counts against the connection limit and the header read timeout
//!   like the first request it precedes.
//!
//! ALPN: the gRPC port offers `h2` only; the HTTP port offers `h2` and `http/1.1`.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

mod certs;
mod reload;
mod stream;

pub use certs::CertStore;
pub use reload::POLL_INTERVAL;
pub use stream::MaybeTls;

/// The certificate chain and private key files of one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM certificates, the server's own first.
    pub cert: PathBuf,
    /// PEM private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// TLS of both ports: `None` serves plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub grpc: Option<CertPaths>,
    pub http: Option<CertPaths>,
}

/// One of the two ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Grpc,
    Http,
}

impl Port {
    /// The port's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Port::Grpc => "gRPC",
            Port::Http => "HTTP",
        }
    }

    /// The setting naming the port's certificate file.
    pub fn cert_setting(self) -> &'static str {
        match self {
            Port::Grpc => "grpc-tls-cert",
            Port::Http => "http-tls-cert",
        }
    }

    /// The setting naming the port's key file.
    pub fn key_setting(self) -> &'static str {
        match self {
            Port::Grpc => "grpc-tls-key",
            Port::Http => "http-tls-key",
        }
    }

    /// The ALPN protocols the port offers, preferred first.
    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Port::Grpc => vec![b"h2".to_vec()],
            Port::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a certificate or key could not be used. Each names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting}: cannot read `{}`: {source}", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{setting}: `{}` is not valid PEM: {reason}", path.display())]
    Pem {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{setting}: `{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate {
        setting: &'static str,
        path: PathBuf,
    },
    #[error("{setting}: `{}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey {
        setting: &'static str,
        path: PathBuf,
    },
    #[error("{setting}: the certificate in `{}` is not usable: {reason}", path.display())]
    BadCertificate {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{setting}: the private key in `{}` is not usable: {reason}", path.display())]
    BadKey {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "{key_setting}: the private key in `{}` does not belong to the certificate in `{}` ({cert_setting})",
        key.display(),
        cert.display()
    )]
    Mismatch {
        key_setting: &'static str,
        key: PathBuf,
        cert_setting: &'static str,
        cert: PathBuf,
    },
    #[error("cannot set up TLS on the {port} port: {reason}")]
    Setup { port: Port, reason: String },
}

/// The TLS of a running server: each port's acceptor (`None`: plaintext) and the stores the
/// reloader refreshes.
#[derive(Default)]
pub struct ServerTls {
    pub grpc: Option<TlsAcceptor>,
    pub http: Option<TlsAcceptor>,
    stores: Vec<Arc<CertStore>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("grpc", &self.grpc.is_some())
            .field("http", &self.http.is_some())
            .field("stores", &self.stores)
            .finish()
    }
}

impl ServerTls {
    /// Loads the certificate and key of each port that has them.
    pub fn load(settings: &TlsSettings) -> Result<ServerTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = ServerTls::default();
        for (port, paths) in [(Port::Grpc, &settings.grpc), (Port::Http, &settings.http)] {
            let Some(paths) = paths else { continue };
            let store = CertStore::load(port, paths.clone(), provider.clone())?;
            let acceptor = acceptor(port, &store, &provider)?;
            match port {
                Port::Grpc => tls.grpc = Some(acceptor),
                Port::Http => tls.http = Some(acceptor),
            }
            tls.stores.push(store);
        }
        Ok(tls)
    }

    /// Reloads the certificates on SIGHUP and when their files change, until `shutdown`; does
    /// nothing when neither port has TLS (SIGHUP then keeps its default action).
    pub fn watch(&self, shutdown: &CancellationToken) {
        if !self.stores.is_empty() {
            reload::spawn(self.stores.clone(), shutdown.clone());
        }
    }
}

/// The acceptor of `port`, asking `store` for the certificate at each handshake.
fn acceptor(
    port: Port,
    store: &Arc<CertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<TlsAcceptor, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup {
            port,
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.alpn_protocols = port.alpn();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
