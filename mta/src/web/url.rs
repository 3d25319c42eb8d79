//! Percent-encoding for the folder names and search texts put in links.

/// Encode everything but RFC 3986's unreserved characters.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_non_ascii_bytes_are_encoded() {
        assert_eq!(enc("Lists/rust & co"), "Lists%2Frust%20%26%20co");
        assert_eq!(enc("Entwürfe"), "Entw%C3%BCrfe");
    }
}
