//! COMPRESS=DEFLATE (RFC 4978): raw deflate both ways once the client asks.
//! Input is inflated a bounded chunk at a time, so a small compressed
//! command cannot balloon in memory before the framer's limits see it.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
