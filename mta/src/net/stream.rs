//! The byte stream a session runs over, and making it TLS: the server side
//! of the handshake, for implicit TLS at accept and for STARTTLS/STLS.

use crate::tls::Tls;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream a session runs over (TCP, TLS, or stdio).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The server side of a TLS handshake on `stream`, within `timeout`.
pub(super) async fn handshake<S: Io + 'static>(
    stream: S,
    tls: &Tls,
    timeout: Duration,
) -> Result<Box<dyn Io>, HandshakeError> {
    match tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(HandshakeError::Timeout),
    }
}

/// STARTTLS (SMTP, IMAP) and STLS (POP3): replace the plaintext `io` by TLS
/// over it. The caller has flushed its go-ahead and dropped whatever the
/// client pipelined after the command. On an error `io` is gone: close.
pub async fn upgrade_tls(io: &mut Box<dyn Io>, tls: &Tls, timeout: Duration) -> Result<(), HandshakeError> {
    let plain = std::mem::replace(io, Box::new(tokio::io::empty()));
    *io = handshake(plain, tls, timeout).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server certificate for `mx.example`, and a client that trusts only it.
    fn pair() -> (tempfile::TempDir, Tls, tokio_rustls::TlsConnector) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        crate::tls::write_self_signed(&["mx.example".into()], &cert, &key).unwrap();
        let tls = Tls::load(&cert, &key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (dir, tls, tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    #[tokio::test]
    async fn starttls_upgrades_the_stream_in_place() {
        let (_dir, tls, connector) = pair();
        let (client, server) = tokio::io::duplex(16 << 10);
        let mut io: Box<dyn Io> = Box::new(server);
        let client = tokio::spawn(async move {
            let name = ServerName::try_from("mx.example").unwrap();
            let mut stream = connector.connect(name, client).await.unwrap();
            stream.write_all(b"EHLO client\r\n").await.unwrap();
            stream.flush().await.unwrap();
            let mut reply = [0u8; 6];
            stream.read_exact(&mut reply).await.unwrap();
            reply
        });
        upgrade_tls(&mut io, &tls, Duration::from_secs(10)).await.unwrap();
        let mut line = [0u8; 13];
        io.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"EHLO client\r\n");
        io.write_all(b"250 ok").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(&client.await.unwrap(), b"250 ok");
    }

    #[tokio::test]
    async fn a_client_that_never_starts_the_handshake_times_out() {
        let (_dir, tls, _) = pair();
        let (_client, server) = tokio::io::duplex(1024);
        let mut io: Box<dyn Io> = Box::new(server);
        let r = upgrade_tls(&mut io, &tls, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(HandshakeError::Timeout)), "{r:?}");
    }

    #[tokio::test]
    async fn plaintext_after_starttls_fails_the_handshake() {
        let (_dir, tls, _) = pair();
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io: Box<dyn Io> = Box::new(server);
        client.write_all(b"MAIL FROM:<a@b>\r\n").await.unwrap();
        let r = upgrade_tls(&mut io, &tls, Duration::from_secs(10)).await;
        assert!(matches!(r, Err(HandshakeError::Io(_))), "{r:?}");
    }
}
