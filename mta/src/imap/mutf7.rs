//! Modified UTF-7 (RFC 3501 §5.1.3): how IMAP4rev1 clients spell mailbox
//! names that are not plain ASCII. The store speaks UTF-8; this converts at
//! the wire.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// UTF-8 to modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
            for i in 0..chunk.len() + 1 {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Modified UTF-7 to UTF-8; `None` if malformed.
pub fn decode(name: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if !(0x20..0x7f).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let end = i + 1 + name[i + 1..].iter().position(|&c| c == b'-')?;
        let run = &name[i + 1..end];
        i = end + 1;
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let mut bits = 0u32;
        let mut nbits = 0;
        let mut units = Vec::new();
        for &c in run {
            let v = B64.iter().position(|&x| x == c)? as u32;
            bits = bits << 6 | v;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push((bits >> nbits) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        // Leftover bits must be zero padding, and the run must hold something non-ASCII.
        if bits != 0 || nbits >= 6 {
            return None;
        }
        let text = String::from_utf16(&units).ok()?;
        if text.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&text);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_examples() {
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(
            decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode(b"A&-B").unwrap(), "A&B");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode(b"&Jjo-!").unwrap(), "☺!");
    }

    #[test]
    fn malformed_is_refused() {
        assert!(decode(b"&U,BTFw").is_none());
        assert!(decode(b"&AGE-").is_none(), "ASCII must not be encoded");
        assert!(decode(b"&!!-").is_none());
        assert!(decode("ü".as_bytes()).is_none());
    }

    proptest! {
        #[test]
        fn round_trip(s in "\\PC{0,20}") {
            prop_assert_eq!(decode(encode(&s).as_bytes()), Some(s));
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode(&b);
        }
    }
}
