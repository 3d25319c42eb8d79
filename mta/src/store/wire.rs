//! How a message file holds its message, and the wire form (what IMAP
//! FETCH and POP3 RETR send, and what RFC822.SIZE and LIST count) that
//! each kind of file gives back.
//!
//! Most messages are kept with LF line ends, as Maildir tools expect, and
//! get CRLF on the way out. That rewrite would alter a message whose bytes
//! are not plain CRLF text: a BINARY APPEND (`~{n}`), or a part with
//! `Content-Transfer-Encoding: binary` holding a bare LF. Such a message
//! is kept exactly as it came, in a *raw* file marked by a `,raw` field in
//! its Maildir unique name (`1700000000.M1P2Q3.host,raw:2,S`); the field is
//! part of the base name, so it survives flag changes, COPY and MOVE, and
//! other Maildir tools ignore it as they ignore Dovecot's `,S=` fields.

use std::borrow::Cow;

/// The unique-name field that marks a raw file.
const RAW_FIELD: &str = "raw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// LF line ends on disk; CRLF on the wire.
    Lf,
    /// The exact bytes, on disk and on the wire.
    Raw,
}

impl Form {
    /// The form of the file whose Maildir unique name (without `:2,…`) is `base`.
    pub fn of(base: &str) -> Form {
        if base.split(',').skip(1).any(|field| field == RAW_FIELD) {
            Form::Raw
        } else {
            Form::Lf
        }
    }

    /// How to keep `data`, sent by a client (`binary`: as a literal8): raw
    /// exactly when storing it with LF ends would not give it back as sent.
    /// Text a client sent with LF ends only is not binary and is served
    /// with CRLF, as before.
    pub fn for_new(data: &[u8], binary: bool) -> Form {
        let changed = to_crlf(&to_lf(data)) != data;
        if changed && (binary || data.windows(2).any(|w| w == b"\r\n")) {
            Form::Raw
        } else {
            Form::Lf
        }
    }

    /// `base` with this form's mark.
    pub fn mark(self, base: String) -> String {
        match self {
            Form::Lf => base,
            Form::Raw => format!("{base},{RAW_FIELD}"),
        }
    }

    /// What to write to disk for `data`.
    pub fn stored(self, data: &[u8]) -> Cow<'_, [u8]> {
        match self {
            Form::Lf => Cow::Owned(to_lf(data)),
            Form::Raw => Cow::Borrowed(data),
        }
    }

    /// The wire form of a file's contents.
    pub fn wire(self, file: Vec<u8>) -> Vec<u8> {
        match self {
            Form::Lf => to_crlf(&file),
            Form::Raw => file,
        }
    }

    /// The size of the wire form of a file's contents.
    pub fn wire_size(self, file: &[u8]) -> u64 {
        match self {
            Form::Lf => crlf_size(file),
            Form::Raw => file.len() as u64,
        }
    }
}

/// Size of `data` once every bare LF is a CRLF.
fn crlf_size(data: &[u8]) -> u64 {
    let bare = data
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
        .count();
    (data.len() + bare) as u64
}

/// Bare LF → CRLF (what the wire protocols want).
fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crlf_size(data) as usize);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// CRLF → LF (the Maildir convention).
fn to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(0u8)], 0..64)
    }

    #[test]
    fn the_mark_is_a_unique_name_field() {
        let base = Form::Raw.mark("1700000000.M1P2Q3.host".into());
        assert_eq!(base, "1700000000.M1P2Q3.host,raw");
        assert_eq!(Form::of(&base), Form::Raw);
        assert_eq!(Form::of("1700000000.M1P2Q3.host,S=120,W=124"), Form::Lf);
        assert_eq!(Form::of("1700000000.M1P2Q3.raw"), Form::Lf);
        assert_eq!(Form::Lf.mark("x".into()), "x");
    }

    #[test]
    fn only_what_normalising_would_alter_is_raw() {
        assert_eq!(Form::for_new(b"a: b\r\n\r\nbody\r\n", false), Form::Lf);
        assert_eq!(Form::for_new(b"a: b\r\n\r\nNUL \0 is kept\r\n", true), Form::Lf);
        assert_eq!(Form::for_new(b"a: b\n\nLF only\n", false), Form::Lf);
        assert_eq!(Form::for_new(b"a: b\r\n\r\nbare\nLF\r\n", false), Form::Raw);
        assert_eq!(Form::for_new(b"a: b\n\n\0binary\n", true), Form::Raw);
        assert_eq!(Form::for_new(b"a: b\r\n\r\nCR\r\r\n", false), Form::Raw);
    }

    proptest! {
        #[test]
        fn line_end_conversions(data in bytes()) {
            let crlf = to_crlf(&data);
            prop_assert_eq!(crlf.len() as u64, crlf_size(&data));
            prop_assert_eq!(to_crlf(&crlf), crlf);
        }

        #[test]
        fn lf_text_survives_the_wire_form(data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a')], 0..64)) {
            prop_assert_eq!(to_lf(&to_crlf(&data)), data);
        }

        /// What a client sends with CRLF lines, or as a literal8, comes
        /// back byte for byte, with a wire size that counts those bytes.
        #[test]
        fn stored_messages_come_back_as_sent(data in bytes(), binary: bool) {
            let form = Form::for_new(&data, binary);
            let file = form.stored(&data).into_owned();
            prop_assert_eq!(form.wire_size(&file), form.wire(file.clone()).len() as u64);
            let wire = form.wire(file);
            if binary || data.windows(2).any(|w| w == b"\r\n") {
                prop_assert_eq!(wire, data);
            } else {
                prop_assert_eq!(wire, to_crlf(&data));
            }
        }
    }
}
