//! PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2): the binary
//! header greyd sends the MTA before splicing a whitelisted client to it
//! ([`header`]), and the MTA's parser of it ([`parse`]), so the MTA sees the
//! real source address. Pure: addresses to bytes and back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use thiserror::Error;

/// The 12-byte v2 signature.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header for a TCP connection from `src` to `dst` (`dst` is the address
/// the client connected to). Mixed families are sent as IPv6, mapping the IPv4 side.
pub fn header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

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

    #[test]
    fn ipv4_header_bytes() {
        let h = header("192.0.2.1:40000".parse().unwrap(), "198.51.100.2:25".parse().unwrap());
        let mut want = SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 0x9c, 0x40, 0, 25]);
        assert_eq!(h, want);
    }

    #[test]
    fn ipv6_header_length() {
        let h = header("[2001:db8::1]:1".parse().unwrap(), "[2001:db8::2]:25".parse().unwrap());
        assert_eq!(
            (h[13], u16::from_be_bytes([h[14], h[15]]), h.len()),
            (0x21, 36, 16 + 36)
        );
        assert_eq!(
            &h[16..32],
            &"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn roundtrip_and_partial() {
        let s: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let d: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let mut wire = header(s, d);
        wire.extend_from_slice(b"EHLO x\r\n");
        let (h, n) = parse(&wire).unwrap().unwrap();
        assert_eq!((h.source, h.destination, n), (Some(s), Some(d), 28));
        assert_eq!(parse(&wire[..20]), Ok(None));
        assert_eq!(parse(b"EHLO x\r\n"), Err(ProxyError::Signature));
        let s6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let (h, _) = parse(&header(s6, d)).unwrap().unwrap();
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
