//! RFC 5256 base subject extraction over arbitrary (decoded) subjects: never
//! panics, and extracting again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::imap::subject::base_subject;

fuzz_target!(|data: &[u8]| {
    let subject = String::from_utf8_lossy(data);
    let once = base_subject(&subject);
    assert_eq!(base_subject(&once.text).text, once.text);
});
