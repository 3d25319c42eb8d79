//! The spamd sync wire format (OpenBSD's sync.h, protocol version 2), pure:
//! a 32-byte header (version, address family, length, counter, HMAC-SHA1,
//! padding), then type-length-value records, then an END record.
//!
//! All integers are big-endian. The HMAC is computed over the whole packet
//! with the HMAC field zeroed, keyed by the hex SHA-1 of the key file.
//! Grey records carry NUL-terminated strings and are padded to 16 bytes.
//!
//! Extensions, ignored or dropped by spamd: `DEL_WHITE` (4) and
//! `DEL_TRAPPED` (5) records, laid out like WHITE/TRAPPED (greyd-C's
//! deletions), and IPv6 packets (`af` 24, OpenBSD's AF_INET6) whose address
//! fields are 16 bytes. Deletions and IPv6 entries are always sent in packets
//! of their own, so a spamd peer drops only those.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

pub const VERSION: u8 = 2;
pub const AF_INET: u8 = 2;
/// OpenBSD's AF_INET6, used on the wire for IPv6 packets.
pub const AF_INET6: u8 = 24;
pub const HMAC_LEN: usize = 20;
pub const HEADER_LEN: usize = 32;
/// Where the HMAC sits in the header (after version, af, length, counter).
const HMAC_AT: usize = 8;
/// Largest packet spamd sends or accepts.
pub const MAX_PACKET: usize = 1408;

const TYPE_END: u16 = 0;
const TYPE_GREY: u16 = 1;
const TYPE_WHITE: u16 = 2;
const TYPE_TRAPPED: u16 = 3;
const TYPE_DEL_WHITE: u16 = 4;
const TYPE_DEL_TRAPPED: u16 = 5;

/// One synchronised change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// A greylisting tuple was seen at `timestamp`.
    Grey {
        timestamp: u32,
        ip: IpAddr,
        helo: String,
        from: String,
        to: String,
    },
    White {
        timestamp: u32,
        expire: u32,
        ip: IpAddr,
    },
    Trapped {
        timestamp: u32,
        expire: u32,
        ip: IpAddr,
    },
    DelWhite {
        timestamp: u32,
        ip: IpAddr,
    },
    DelTrapped {
        timestamp: u32,
        ip: IpAddr,
    },
}

impl SyncMessage {
    pub fn ip(&self) -> IpAddr {
        match self {
            SyncMessage::Grey { ip, .. }
            | SyncMessage::White { ip, .. }
            | SyncMessage::Trapped { ip, .. }
            | SyncMessage::DelWhite { ip, .. }
            | SyncMessage::DelTrapped { ip, .. } => *ip,
        }
    }

    /// Whether a spamd peer understands this record (it drops the rest of a packet otherwise).
    pub fn spamd_compatible(&self) -> bool {
        self.ip().is_ipv4() && !matches!(self, SyncMessage::DelWhite { .. } | SyncMessage::DelTrapped { .. })
    }
}

/// The HMAC key: the lower-case hex SHA-1 of the key file's content (empty when there is no key file).
#[derive(Clone)]
pub struct SyncKey(Vec<u8>);

impl SyncKey {
    pub fn from_file_content(content: &[u8]) -> SyncKey {
        let digest = Sha1::digest(content);
        SyncKey(
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        )
    }

    pub fn empty() -> SyncKey {
        SyncKey(Vec::new())
    }

    fn mac(&self, packet: &[u8]) -> [u8; HMAC_LEN] {
        let mut mac = <Hmac<Sha1>>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&packet[..HMAC_AT]);
        mac.update(&[0u8; HMAC_LEN]);
        mac.update(&packet[HMAC_AT + HMAC_LEN..]);
        mac.finalize().into_bytes().into()
    }
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("shorter than its header or its stated length")]
    Truncated,
    #[error("unsupported version or address family")]
    Unsupported,
    #[error("bad HMAC")]
    BadHmac,
    #[error("malformed record")]
    Malformed,
    #[error("unknown record type")]
    UnknownType,
}

/// A decoded, authenticated packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub counter: u32,
    pub hmac: [u8; HMAC_LEN],
    pub messages: Vec<SyncMessage>,
}

fn align16(n: usize) -> usize {
    (n + 15) & !15
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

fn put_addr_record(out: &mut Vec<u8>, kind: u16, timestamp: u32, expire: u32, ip: IpAddr) {
    let len = 12 + if ip.is_ipv4() { 4 } else { 16 };
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&expire.to_be_bytes());
    put_ip(out, ip);
}

fn put_record(out: &mut Vec<u8>, msg: &SyncMessage) {
    match msg {
        SyncMessage::Grey {
            timestamp,
            ip,
            helo,
            from,
            to,
        } => {
            let ip_len = if ip.is_ipv4() { 4 } else { 16 };
            let strings = from.len() + to.len() + helo.len() + 3;
            let len = 14 + ip_len + strings;
            let padded = align16(len);
            out.extend_from_slice(&TYPE_GREY.to_be_bytes());
            out.extend_from_slice(&(padded as u16).to_be_bytes());
            out.extend_from_slice(&timestamp.to_be_bytes());
            put_ip(out, *ip);
            for s in [from, to, helo] {
                out.extend_from_slice(&((s.len() + 1) as u16).to_be_bytes());
            }
            for s in [from, to, helo] {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            out.resize(out.len() + padded - len, 0);
        }
        SyncMessage::White { timestamp, expire, ip } => put_addr_record(out, TYPE_WHITE, *timestamp, *expire, *ip),
        SyncMessage::Trapped { timestamp, expire, ip } => put_addr_record(out, TYPE_TRAPPED, *timestamp, *expire, *ip),
        SyncMessage::DelWhite { timestamp, ip } => put_addr_record(out, TYPE_DEL_WHITE, *timestamp, 0, *ip),
        SyncMessage::DelTrapped { timestamp, ip } => put_addr_record(out, TYPE_DEL_TRAPPED, *timestamp, 0, *ip),
    }
}

/// Bytes `msg` takes in a packet.
pub fn record_len(msg: &SyncMessage) -> usize {
    let mut v = Vec::new();
    put_record(&mut v, msg);
    v.len()
}

/// One packet holding `messages`, which must share one address family and
/// fit in [`MAX_PACKET`] (see [`record_len`]).
pub fn encode(messages: &[SyncMessage], counter: u32, key: &SyncKey) -> Vec<u8> {
    let v6 = messages.first().is_some_and(|m| m.ip().is_ipv6());
    let mut out = Vec::with_capacity(MAX_PACKET);
    out.push(VERSION);
    out.push(if v6 { AF_INET6 } else { AF_INET });
    out.extend_from_slice(&[0, 0]); // length, set below
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&[0; HMAC_LEN + 4]);
    for m in messages {
        put_record(&mut out, m);
    }
    out.extend_from_slice(&TYPE_END.to_be_bytes());
    out.extend_from_slice(&4u16.to_be_bytes());
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    let mac = key.mac(&out);
    out[HMAC_AT..HMAC_AT + HMAC_LEN].copy_from_slice(&mac);
    out
}

/// `packet` with its HMAC replaced by a valid one for `key` (None when it
/// has no room for a header). Lets tests and the fuzzer reach the records.
pub fn resign(packet: &[u8], key: &SyncKey) -> Option<Vec<u8>> {
    let len = be16(packet.get(..4)?, 2).min(packet.len());
    if len < HEADER_LEN {
        return None;
    }
    let mut out = packet.to_vec();
    let mac = key.mac(&out[..len]);
    out[HMAC_AT..HMAC_AT + HMAC_LEN].copy_from_slice(&mac);
    Some(out)
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A NUL-terminated string of exactly `len` bytes (NUL included).
fn c_string(b: &[u8]) -> Result<String, DecodeError> {
    match b.split_last() {
        Some((0, text)) if !text.contains(&0) => Ok(String::from_utf8_lossy(text).into_owned()),
        _ => Err(DecodeError::Malformed),
    }
}

/// Authenticate and decode one packet. Nothing is returned from a packet
/// that fails any check.
pub fn decode(packet: &[u8], key: &SyncKey) -> Result<Packet, DecodeError> {
    if packet.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let ip_len = match (packet[0], packet[1]) {
        (VERSION, AF_INET) => 4,
        (VERSION, AF_INET6) => 16,
        _ => return Err(DecodeError::Unsupported),
    };
    let len = be16(packet, 2);
    if len < HEADER_LEN || packet.len() < len {
        return Err(DecodeError::Truncated);
    }
    let packet = &packet[..len];
    let mut hmac = [0u8; HMAC_LEN];
    hmac.copy_from_slice(&packet[HMAC_AT..HMAC_AT + HMAC_LEN]);
    // Constant-time comparison through the Mac API.
    let mut mac = <Hmac<Sha1>>::new_from_slice(&key.0).expect("HMAC takes any key length");
    mac.update(&packet[..HMAC_AT]);
    mac.update(&[0u8; HMAC_LEN]);
    mac.update(&packet[HMAC_AT + HMAC_LEN..]);
    mac.verify_slice(&hmac).map_err(|_| DecodeError::BadHmac)?;

    let ip_at = |b: &[u8], at: usize| -> IpAddr {
        if ip_len == 4 {
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&b[at..at + 4]).unwrap()))
        } else {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[at..at + 16]).unwrap()))
        }
    };
    let mut messages = Vec::new();
    let mut rest = &packet[HEADER_LEN..];
    loop {
        if rest.len() < 4 {
            return Err(DecodeError::Truncated);
        }
        let (kind, rlen) = (be16(rest, 0) as u16, be16(rest, 2));
        if rlen < 4 || rlen > rest.len() {
            return Err(DecodeError::Malformed);
        }
        let r = &rest[..rlen];
        match kind {
            TYPE_END => break,
            TYPE_GREY => {
                let fixed = 14 + ip_len;
                if rlen < fixed {
                    return Err(DecodeError::Malformed);
                }
                let (fl, tl, hl) = (be16(r, 8 + ip_len), be16(r, 10 + ip_len), be16(r, 12 + ip_len));
                if fixed + fl + tl + hl > rlen {
                    return Err(DecodeError::Malformed);
                }
                let from = c_string(&r[fixed..fixed + fl])?;
                let to = c_string(&r[fixed + fl..fixed + fl + tl])?;
                let helo = c_string(&r[fixed + fl + tl..fixed + fl + tl + hl])?;
                messages.push(SyncMessage::Grey {
                    timestamp: be32(r, 4),
                    ip: ip_at(r, 8),
                    helo,
                    from,
                    to,
                });
            }
            TYPE_WHITE | TYPE_TRAPPED | TYPE_DEL_WHITE | TYPE_DEL_TRAPPED => {
                if rlen != 12 + ip_len {
                    return Err(DecodeError::Malformed);
                }
                let (timestamp, expire, ip) = (be32(r, 4), be32(r, 8), ip_at(r, 12));
                messages.push(match kind {
                    TYPE_WHITE => SyncMessage::White { timestamp, expire, ip },
                    TYPE_TRAPPED => SyncMessage::Trapped { timestamp, expire, ip },
                    TYPE_DEL_WHITE => SyncMessage::DelWhite { timestamp, ip },
                    _ => SyncMessage::DelTrapped { timestamp, ip },
                });
            }
            _ => return Err(DecodeError::UnknownType),
        }
        rest = &rest[rlen..];
    }
    Ok(Packet {
        counter: be32(packet, 4),
        hmac,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SyncKey {
        SyncKey::from_file_content(b"secret\n")
    }

    #[test]
    fn key_is_hex_sha1_of_the_file() {
        // What `sha1sum` prints for a file holding "secret\n".
        assert_eq!(key().0, b"fc683cd9ed1990ca2ea10b84e5e6fba048c24929");
    }

    /// The layout of sync.h (version 2) written out by hand.
    #[test]
    fn white_packet_is_byte_exact() {
        let msg = SyncMessage::White {
            timestamp: 0x0102_0304,
            expire: 0x0506_0708,
            ip: "192.0.2.1".parse().unwrap(),
        };
        let p = encode(std::slice::from_ref(&msg), 7, &SyncKey::empty());
        let mut want = vec![2, 2, 0, 52, 0, 0, 0, 7];
        want.extend_from_slice(&p[8..28]); // the HMAC, checked below
        want.extend_from_slice(&[0, 0, 0, 0]); // sh_pad
        want.extend_from_slice(&[0, 2, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 192, 0, 2, 1]);
        want.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(p, want);
        // HMAC-SHA1 with an empty key over the packet with the HMAC zeroed.
        let mut zeroed = p.clone();
        zeroed[8..28].fill(0);
        let mut mac = <Hmac<Sha1>>::new_from_slice(b"").unwrap();
        mac.update(&zeroed);
        assert_eq!(&p[8..28], &mac.finalize().into_bytes()[..]);
        assert_eq!(decode(&p, &SyncKey::empty()).unwrap().messages, vec![msg]);
    }

    #[test]
    fn grey_record_is_byte_exact_and_padded() {
        let msg = SyncMessage::Grey {
            timestamp: 1,
            ip: "10.0.0.1".parse().unwrap(),
            helo: "h".into(),
            from: "a@b".into(),
            to: "c@d".into(),
        };
        let p = encode(std::slice::from_ref(&msg), 0, &key());
        // 18 fixed bytes + "a@b\0" + "c@d\0" + "h\0" = 28, padded to 32.
        let rec = &p[HEADER_LEN..HEADER_LEN + 32];
        assert_eq!(&rec[..18], &[0, 1, 0, 32, 0, 0, 0, 1, 10, 0, 0, 1, 0, 4, 0, 4, 0, 2]);
        assert_eq!(&rec[18..28], b"a@b\0c@d\0h\0");
        assert_eq!(&rec[28..], &[0, 0, 0, 0]);
        assert_eq!(p.len(), HEADER_LEN + 32 + 4);
        assert_eq!(decode(&p, &key()).unwrap().messages, vec![msg]);
    }

    #[test]
    fn forged_truncated_and_foreign_packets_are_rejected() {
        let msg = SyncMessage::Trapped {
            timestamp: 5,
            expire: 6,
            ip: "192.0.2.9".parse().unwrap(),
        };
        let p = encode(&[msg], 1, &key());
        assert_eq!(
            decode(&p, &SyncKey::from_file_content(b"other")),
            Err(DecodeError::BadHmac)
        );
        let mut flipped = p.clone();
        flipped[HEADER_LEN + 15] ^= 1;
        assert_eq!(decode(&flipped, &key()), Err(DecodeError::BadHmac));
        assert_eq!(decode(&p[..p.len() - 1], &key()), Err(DecodeError::Truncated));
        assert_eq!(decode(&p[..10], &key()), Err(DecodeError::Truncated));
        let mut v1 = p.clone();
        v1[0] = 1;
        assert_eq!(decode(&v1, &key()), Err(DecodeError::Unsupported));
    }

    #[test]
    fn ipv6_and_deletions_round_trip() {
        let msgs = vec![
            SyncMessage::DelWhite {
                timestamp: 9,
                ip: "2001:db8::1".parse().unwrap(),
            },
            SyncMessage::Grey {
                timestamp: 3,
                ip: "2001:db8::2".parse().unwrap(),
                helo: "x".into(),
                from: "".into(),
                to: "t@x".into(),
            },
        ];
        let p = encode(&msgs, 3, &key());
        assert_eq!(p[1], AF_INET6);
        let d = decode(&p, &key()).unwrap();
        assert_eq!((d.counter, d.messages), (3, msgs));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, &SyncKey::empty());
        }

        #[test]
        fn grey_round_trips(ts in any::<u32>(), ip in any::<u32>(), helo in "[a-z.]{0,30}", from in "[a-z@.]{0,40}", to in "[a-z@.]{0,40}") {
            let msg = SyncMessage::Grey { timestamp: ts, ip: IpAddr::V4(ip.into()), helo, from, to };
            let p = encode(std::slice::from_ref(&msg), 1, &key());
            prop_assert_eq!(p.len() % 4, 0);
            prop_assert_eq!(decode(&p, &key()).unwrap().messages, vec![msg]);
        }
    }
}
