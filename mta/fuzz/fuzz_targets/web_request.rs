//! What webmail reads from a request beyond axum's HTTP parsing: cookie
//! headers, the CSRF token of a query string, the compose form's fields and
//! recipient lists, the identities form's address and name and the file they
//! are kept in; and the message built from them parses back. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::web::{compose, csrf, identities, mime, session};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (name, rest) = text.split_once('\n').unwrap_or(("a", &text));
    if let Some(v) = session::cookie_value(rest, name) {
        assert!(!v.contains(';'));
    }
    if let Some(t) = csrf::query_token(rest) {
        assert!(!t.contains('&'));
    }
    let mut posted = compose::Posted::default();
    let (mut f, mut uid, mut mode) = (None, None, None);
    for line in rest.lines() {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        compose::set_field(&mut posted, k, v.to_string(), (&mut f, &mut uid, &mut mode));
    }
    let _ = compose::recipients(&[&posted.message.to, &posted.message.cc, &posted.bcc]);
    if let Some(a) = identities::clean_address(name) {
        assert!(!a.contains([',', '<', '>', ' ']));
    }
    assert!(!identities::clean_name(rest).contains(['"', '\n', ',', '<']));
    let ids = identities::parse(rest, "me@example.test");
    assert_eq!(identities::parse(&identities::render(&ids), "me@example.test"), ids);
    let raw = mime::build(&posted.message, "Thu, 3 Dec 2026 10:00:00 +0000", "<id@h>", "=_b");
    assert!(mail_parser::MessageParser::default().parse(&raw).is_some());
});
