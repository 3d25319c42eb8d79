//! BINARY (RFC 3516): a MIME part's content with its Content-Transfer-Encoding
//! undone (base64 and quoted-printable decoded, 7bit/8bit/binary as they
//! are), and the `~{n}` literal8 that carries what a plain string cannot (NUL).
//! Decoding is lenient, as mail readers are: stray characters in base64 and
//! malformed `=` escapes in quoted-printable are skipped or kept, never fatal.

use super::message;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use mail_parser::{Message, MimeHeaders};

/// A Content-Transfer-Encoding we cannot undo: FETCH answers `NO [UNKNOWN-CTE]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Content-Transfer-Encoding {0:?}")]
pub struct UnknownCte(pub String);

/// `content` with the transfer encoding `cte` (a header value) undone.
pub fn decode(cte: &str, content: &[u8]) -> Result<Vec<u8>, UnknownCte> {
    match cte.trim().to_ascii_lowercase().as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(content.to_vec()),
        "base64" => Ok(base64(content)),
        "quoted-printable" => Ok(quoted_printable(content)),
        other => Err(UnknownCte(other.to_string())),
    }
}

fn base64(content: &[u8]) -> Vec<u8> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    // Line breaks, padding and anything outside the alphabet carry no data.
    let mut digits: Vec<u8> = content
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    // A lone last digit holds fewer than 8 bits: it cannot be decoded.
    if digits.len() % 4 == 1 {
        digits.pop();
    }
    LENIENT.decode(&digits).unwrap_or_default()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn quoted_printable(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    for line in content.split_inclusive(|&b| b == b'\n') {
        let (text, eol): (&[u8], &[u8]) = if let Some(t) = line.strip_suffix(b"\r\n") {
            (t, b"\r\n")
        } else if let Some(t) = line.strip_suffix(b"\n") {
            (t, b"\n")
        } else {
            (line, b"")
        };
        // Trailing white space may have been added in transport (RFC 2045 §6.7 rule 3).
        let text = text.trim_ascii_end();
        let (text, soft_break) = match text.strip_suffix(b"=") {
            Some(t) => (t, true),
            None => (text, false),
        };
        let mut i = 0;
        while i < text.len() {
            let escaped = match (text[i], text.get(i + 1), text.get(i + 2)) {
                (b'=', Some(&high), Some(&low)) => hex(high).zip(hex(low)).map(|(h, l)| h << 4 | l),
                _ => None,
            };
            match escaped {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(text[i]);
                    i += 1;
                }
            }
        }
        if !soft_break {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// The content of `BINARY[part]`: `None` when the message has no such part.
/// The empty part is the whole message, which has no encoding of its own.
pub fn part(raw: &[u8], m: Option<&Message>, part: &[u32]) -> Option<Result<Vec<u8>, UnknownCte>> {
    if part.is_empty() {
        return Some(Ok(raw.to_vec()));
    }
    let (msg, id, base) = message::find_part(m?, part)?;
    let p = msg.parts.get(id as usize)?;
    let content = base.get(p.offset_body as usize..p.offset_end as usize)?;
    Some(decode(p.content_transfer_encoding().unwrap_or(""), content))
}

/// Write decoded content: a literal8 when it holds NUL (RFC 3516 §4.3), else an ordinary string.
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.contains(&0) {
        out.extend_from_slice(format!("~{{{}}}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    } else {
        message::string(out, bytes);
    }
}

/// `1.2` for the response's `BINARY[1.2]`.
pub fn part_name(part: &[u32]) -> String {
    part.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;
    use proptest::prelude::*;

    const MIXED: &[u8] = b"From: a@x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
gr=C3=BC=C3=9F =\r\nmich\r\n--B\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n/w==\r\n--B\r\nContent-Type: application/x-thing\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n--B--\r\n";

    #[test]
    fn parts_are_decoded() {
        let m = MessageParser::default().parse(MIXED).unwrap();
        assert_eq!(part(MIXED, Some(&m), &[1]), Some(Ok("grüß mich".as_bytes().to_vec())));
        assert_eq!(part(MIXED, Some(&m), &[2]), Some(Ok(vec![0, 1, 2, 0xff])));
        assert_eq!(part(MIXED, Some(&m), &[3]), Some(Err(UnknownCte("x-uuencode".into()))));
        assert_eq!(part(MIXED, Some(&m), &[4]), None);
        assert_eq!(part(MIXED, Some(&m), &[]), Some(Ok(MIXED.to_vec())));
    }

    #[test]
    fn quoted_printable_rules() {
        assert_eq!(quoted_printable(b"a=3Db  \r\nc=\r\nd"), b"a=b\r\ncd");
        assert_eq!(quoted_printable(b"bad =ZZ and =4"), b"bad =ZZ and =4");
        assert_eq!(quoted_printable(b"=\n"), b"");
    }

    #[test]
    fn literal8_only_for_nul() {
        let mut out = Vec::new();
        string(&mut out, b"a\0b");
        assert_eq!(out, b"~{3}\r\na\0b");
        out.clear();
        string(&mut out, b"ab");
        assert_eq!(out, b"\"ab\"");
    }

    proptest! {
        #[test]
        fn base64_round_trips_through_line_breaks(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
            let wrapped: Vec<u8> = encoded.as_bytes().chunks(76).flat_map(|c| [c, b"\r\n"].concat()).collect();
            prop_assert_eq!(decode("Base64", &wrapped).unwrap(), data);
        }

        #[test]
        fn decoding_never_panics(cte in prop::sample::select(vec!["base64", "quoted-printable", "7bit"]),
                                 data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let out = decode(cte, &data).unwrap();
            prop_assert!(out.len() <= data.len());
        }
    }
}
