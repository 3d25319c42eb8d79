//! Authentication-Results: removal over arbitrary messages: never panics,
//! never adds bytes, removes nothing when no field carries the id, and
//! leaves no field with our authserv-id behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::inbound_auth::results::{authserv_id, marked_junk, remove_ours};

fuzz_target!(|data: &[u8]| {
    let (id, message) = match data.iter().position(|&b| b == 0) {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        None => ("mx.test".to_string(), data),
    };
    let _ = authserv_id(message);
    let _ = marked_junk(message);
    let once = remove_ours(message, &id);
    assert!(once.len() <= message.len());
    // Removal is idempotent: what is left has no field of ours in its header.
    let twice = remove_ours(&once, &id);
    assert_eq!(once.as_ref(), twice.as_ref());
});
