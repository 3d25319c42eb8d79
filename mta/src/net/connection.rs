//! A session's connection (SMTP, POP3, IMAP): the stream, the input read
//! but not yet taken (framed by the protocol's own buffer), and the replies
//! queued until the next flush, which comes before every read so a client
//! never waits for an answer held back. STARTTLS happens here too, and a
//! layer over the stream (IMAP's COMPRESS) is put in place here.

use super::stream::{HandshakeError, Io, upgrade_tls};
use crate::tls::Tls;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const READ_CHUNK: usize = 16 * 1024;

/// A protocol's input framing: fed what the client sent.
pub trait Input {
    fn extend(&mut self, bytes: &[u8]);
    /// Drop what is buffered (plaintext pipelined after STARTTLS).
    fn clear(&mut self);
}

/// Why reading more input stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("no input within the timeout")]
    Timeout,
}

pub struct Connection<I> {
    io: Box<dyn Io>,
    /// What the client sent, framed by the protocol.
    pub input: I,
    /// Replies not yet written.
    pub out: Vec<u8>,
}

impl<I: Input> Connection<I> {
    pub fn new(io: Box<dyn Io>, input: I) -> Connection<I> {
        Connection {
            io,
            input,
            out: Vec::new(),
        }
    }

    /// The stream itself, for a session handed to another process (input
    /// buffered but not yet taken is dropped: clients wait for the login's reply).
    pub fn into_io(self) -> Box<dyn Io> {
        self.io
    }

    /// Queue `text` and CRLF.
    pub fn reply(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.io.write_all(&out).await?;
        self.io.flush().await
    }

    /// Flush the replies, then give the input what the client sends next.
    pub async fn fill(&mut self, timeout: Duration) -> Result<(), ReadError> {
        self.flush().await.map_err(|_| ReadError::Closed)?;
        let mut buf = [0u8; READ_CHUNK];
        match tokio::time::timeout(timeout, self.io.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Err(ReadError::Closed),
            Ok(Ok(n)) => {
                self.input.extend(&buf[..n]);
                Ok(())
            }
            Err(_) => Err(ReadError::Timeout),
        }
    }

    /// STARTTLS/STLS after the go-ahead was queued: flush it, drop what was
    /// pipelined in plaintext (CVE-2011-0411), and go on over TLS.
    pub async fn start_tls(&mut self, tls: &Tls, timeout: Duration) -> Result<(), HandshakeError> {
        self.flush().await?;
        self.input.clear();
        upgrade_tls(&mut self.io, tls, timeout).await
    }

    /// Put `layer` over the stream; the replies queued before went out
    /// with [`Connection::flush`] already, and what was read stays in the input.
    pub fn wrap(&mut self, layer: impl FnOnce(Box<dyn Io>) -> Box<dyn Io>) {
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        self.io = layer(io);
    }

    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Input for Bytes {
        fn extend(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
        fn clear(&mut self) {
            self.0.clear();
        }
    }

    #[tokio::test]
    async fn replies_go_out_before_the_next_read() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = Connection::new(Box::new(server), Bytes::default());
        conn.reply("220 ready");
        client.write_all(b"QUIT\r\n").await.unwrap();
        conn.fill(Duration::from_secs(5)).await.unwrap();
        assert_eq!(conn.input.0, b"QUIT\r\n");
        let mut greeting = [0u8; 11];
        client.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"220 ready\r\n");
    }

    #[tokio::test]
    async fn silence_times_out_and_a_hang_up_is_closed() {
        let (client, server) = tokio::io::duplex(1024);
        let mut conn = Connection::new(Box::new(server), Bytes::default());
        assert_eq!(conn.fill(Duration::from_millis(20)).await, Err(ReadError::Timeout));
        drop(client);
        assert_eq!(conn.fill(Duration::from_secs(5)).await, Err(ReadError::Closed));
    }
}
