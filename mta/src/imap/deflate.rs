//! COMPRESS=DEFLATE (RFC 4978): raw deflate both ways once the client asks,
//! as a layer over the session's stream ([`Compressed`]), so the session's
//! connection reads and writes plain text as before. Input is inflated a
//! bounded chunk at a time, so a small compressed command cannot balloon in
//! memory before the framer's limits see it.

use crate::net::Io;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes inflated per step.
const CHUNK: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
#[error("corrupt deflate stream")]
pub struct Corrupt;

pub struct Deflate {
    compress: Compress,
    decompress: Decompress,
    /// Compressed input not inflated yet.
    pending: Vec<u8>,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate::new()
    }
}

impl Deflate {
    pub fn new() -> Deflate {
        Deflate {
            compress: Compress::new(Compression::fast(), false),
            decompress: Decompress::new(false),
            pending: Vec::new(),
        }
    }

    /// Compress `data` and sync-flush, so the client can act on every reply.
    pub fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut input = data;
        loop {
            out.reserve(input.len() / 2 + 1024);
            let before = self.compress.total_in();
            // Writing into a Vec's spare capacity cannot fail.
            let _ = self.compress.compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.compress.total_in() - before) as usize..];
            // Done when all input is in and the flush left spare room in the buffer.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    pub fn push(&mut self, compressed: &[u8]) {
        self.pending.extend_from_slice(compressed);
    }

    /// Inflate up to one chunk of the pending input (empty: more input needed).
    pub fn inflate(&mut self) -> Result<Vec<u8>, Corrupt> {
        let mut out = Vec::with_capacity(CHUNK);
        let before = self.decompress.total_in();
        let status = self
            .decompress
            .decompress_vec(&self.pending, &mut out, FlushDecompress::Sync)
            .map_err(|_| Corrupt)?;
        let used = (self.decompress.total_in() - before) as usize;
        self.pending.drain(..used);
        if status == Status::StreamEnd && !self.pending.is_empty() {
            return Err(Corrupt);
        }
        Ok(out)
    }
}

/// Compressed bytes read from the stream at a time.
const READ_CHUNK: usize = 16 << 10;

/// A stream that carries raw deflate: what is written is compressed and
/// sync-flushed on flush, what is read is inflated.
pub struct Compressed {
    io: Box<dyn Io>,
    /// The client, named when its stream turns out corrupt.
    peer: SocketAddr,
    codec: Deflate,
    /// Inflated input not yet read.
    plain: Vec<u8>,
    /// Compressed output not yet written.
    outgoing: Vec<u8>,
}

impl Compressed {
    /// Deflate over `io`; `already` is what the client sent compressed
    /// behind its COMPRESS command, read before the layer was in place.
    pub fn new(io: Box<dyn Io>, peer: SocketAddr, already: &[u8]) -> Compressed {
        let mut codec = Deflate::new();
        codec.push(already);
        Compressed {
            io,
            peer,
            codec,
            plain: Vec::new(),
            outgoing: Vec::new(),
        }
    }

    /// Write out what was compressed earlier.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.outgoing.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.outgoing.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Compressed {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(buf.remaining());
                buf.put_slice(&this.plain[..n]);
                this.plain.drain(..n);
                return Poll::Ready(Ok(()));
            }
            this.plain = this.codec.inflate().map_err(|e| {
                tracing::info!("imap: {e} from {}", this.peer);
                std::io::Error::new(std::io::ErrorKind::InvalidData, e)
            })?;
            if !this.plain.is_empty() {
                continue;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.codec.push(read.filled());
        }
    }
}

impl AsyncWrite for Compressed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        // Each write is sync-flushed, so the client can act on every reply.
        this.outgoing = this.codec.deflate(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

    #[test]
    fn round_trip_in_bounded_chunks() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        let text: Vec<u8> = b"a1 NOOP\r\n".repeat(100_000);
        let wire = client.deflate(&text);
        assert!(wire.len() < text.len() / 50);
        server.push(&wire);
        let mut got = Vec::new();
        loop {
            let chunk = server.inflate().unwrap();
            assert!(chunk.len() <= CHUNK);
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, text);
        server.push(b"\xff\xff\xff garbage");
        assert!(server.inflate().is_err());
    }

    #[tokio::test]
    async fn the_layer_inflates_what_came_before_it_and_deflates_replies() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut peer = Deflate::new();
        let early = peer.deflate(b"a1 NOOP\r\n");
        let mut stream = Compressed::new(Box::new(server), PEER, &early);
        let mut client = client;
        client.write_all(&peer.deflate(b"a2 LOGOUT\r\n")).await.unwrap();
        let mut got = vec![0u8; 20];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"a1 NOOP\r\na2 LOGOUT\r\n");
        stream.write_all(b"* BYE\r\n").await.unwrap();
        stream.flush().await.unwrap();
        let mut wire = vec![0u8; 64];
        let n = client.read(&mut wire).await.unwrap();
        peer.push(&wire[..n]);
        assert_eq!(peer.inflate().unwrap(), b"* BYE\r\n");
        drop(client);
        assert_eq!(stream.read(&mut got).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn corrupt_input_is_an_error() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut stream = Compressed::new(Box::new(server), PEER, &[]);
        client.write_all(b"\xff\xff\xff garbage").await.unwrap();
        let mut got = [0u8; 16];
        let e = stream.read(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
