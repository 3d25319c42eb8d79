//! TLS: the rustls server configuration (aws-lc-rs provider) loaded from
//! PEM files and swapped on reload (SIGHUP), and self-signed pairs for
//! `mtactl cert` and `mtactl init`.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    Pem(PathBuf, rustls_pki_types::pem::Error),
    #[error("{0}: no certificate found")]
    NoCert(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem(cert.into(), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(cert.into(), e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem(key.into(), e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?)
}

/// The current TLS configuration; `reload` swaps it for new sessions.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        Ok(Tls {
            cert: cert.into(),
            key: key.into(),
            current: RwLock::new(Arc::new(server_config(cert, key)?)),
        })
    }

    /// Re-read the PEM files; on error the old configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(server_config(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

/// Write a new self-signed certificate for `names` and its key (mode 0600).
pub fn write_self_signed(names: &[String], cert: &Path, key: &Path) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pair = rcgen::generate_simple_self_signed(names.to_vec())?;
    std::fs::write(cert, pair.cert.pem()).map_err(|e| TlsError::Write(cert.into(), e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key)
        .and_then(|mut f| f.write_all(pair.signing_key.serialize_pem().as_bytes()))
        .map_err(|e| TlsError::Write(key.into(), e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_signed_loads_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        super::write_self_signed(&["mx.example".into()], &c, &k).unwrap();
        let tls = super::Tls::load(&c, &k).unwrap();
        std::fs::write(&c, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert!(super::Tls::load(&k, &k).is_err());
    }
}
