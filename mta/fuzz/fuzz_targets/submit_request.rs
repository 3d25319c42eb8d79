//! The local submission socket's request line never panics, whatever a local user sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mta::submit::decode_request(data, 1 << 20, 100);
});
