//! PROXY protocol v2 header parsing (haproxy's proxy-protocol.txt, section 2.2).
//! Pure: bytes in, the original client and server addresses out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use thiserror::Error;

const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProxyError {
    #[error("not a PROXY v2 header")]
    Signature,
    #[error("unsupported PROXY version or command")]
    Version,
    #[error("unsupported address family")]
    Family,
    #[error("truncated address block")]
    Truncated,
}

/// A parsed header: `None` addresses for the LOCAL command (health checks)
/// and for families we do not use (UNIX sockets, UNSPEC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

/// Parse a header at the start of `buf`: `Ok(None)` if more bytes are
/// needed, else the header and its length.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(SIGNATURE.len());
    if buf[..n] != SIGNATURE[..n] {
        return Err(ProxyError::Signature);
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let block = &buf[16..16 + len];
    let none = ProxyHeader {
        source: None,
        destination: None,
    };
    let header = match ver_cmd {
        0x20 => none,
        0x21 => match family {
            0x11 => {
                let b = block.get(..12).ok_or(ProxyError::Truncated)?;
                let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]));
                let port = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
                ProxyHeader {
                    source: Some(SocketAddr::new(ip(0), port(8))),
                    destination: Some(SocketAddr::new(ip(4), port(10))),
                }
            }
            0x21 => {
                let b = block.get(..36).ok_or(ProxyError::Truncated)?;
                let ip = |o: usize| {
                    let octets: [u8; 16] = b[o..o + 16].try_into().expect("16 bytes");
                    IpAddr::V6(Ipv6Addr::from(octets))
                };
                let port = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
                ProxyHeader {
                    source: Some(SocketAddr::new(ip(0), port(32))),
                    destination: Some(SocketAddr::new(ip(16), port(34))),
                }
            }
            0x00 | 0x31 | 0x32 => none,
            _ => return Err(ProxyError::Family),
        },
        _ => return Err(ProxyError::Version),
    };
    Ok(Some((header, 16 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use greyd::proxy::header as encode;

    #[test]
    fn roundtrip_and_partial() {
        let s: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let d: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let mut wire = encode(s, d);
        wire.extend_from_slice(b"EHLO x\r\n");
        let (h, n) = parse(&wire).unwrap().unwrap();
        assert_eq!((h.source, h.destination, n), (Some(s), Some(d), 28));
        assert_eq!(parse(&wire[..20]), Ok(None));
        assert_eq!(parse(b"EHLO x\r\n"), Err(ProxyError::Signature));
        let s6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let (h, _) = parse(&encode(s6, d)).unwrap().unwrap();
        assert_eq!(h.source, Some(s6));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut wire = SIGNATURE.to_vec();
            wire.extend_from_slice(&tail);
            let _ = parse(&wire);
            let _ = parse(&tail);
        }
    }
}
