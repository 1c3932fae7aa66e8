//! HTTPS on a gateway port (`tls = { cert, key }`), with rustls on ring.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS cannot be served: names the file and what is wrong with it (never the
/// key's content).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read TLS certificate {}: {source}", path.display())]
    Cert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {}", .0.display())]
    NoCert(PathBuf),
    #[error("cannot read TLS key {}: {source}", path.display())]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("TLS: {0}")]
    Protocols(#[source] rustls::Error),
    #[error("TLS certificate {} and its key: {source}", cert.display())]
    Pair {
        cert: PathBuf,
        source: rustls::Error,
    },
}

/// The server side of TLS from PEM files.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|source| Error::Cert {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(Error::NoCert(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| Error::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::Protocols)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|source| Error::Pair {
            cert: cert.to_path_buf(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
