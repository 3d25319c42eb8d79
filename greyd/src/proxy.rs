//! PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2): the binary
//! header greyd sends the MTA before splicing a whitelisted client to it, so
//! the MTA sees the real source address.

use std::net::{IpAddr, SocketAddr};

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
}
