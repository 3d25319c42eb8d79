//! The -request command parser and the bounce-report reader (both read
//! mail bodies from the network): never panic, stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::lists::{bounce, command};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (subject, body) = text.split_once('\n').unwrap_or((&text, ""));
    assert!(command::parse(subject, body).len() <= 21);
    for (_, status) in bounce::report_statuses(data) {
        assert_eq!(status.split('.').count(), 3);
        let _ = bounce::score(&status);
    }
});
