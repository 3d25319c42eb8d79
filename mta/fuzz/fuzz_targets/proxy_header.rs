//! greyd-shared's PROXY v2 header parser, which the mta reads its connections with:
//! never panics, never claims more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = greyd_shared::proxy::parse(data) {
        assert!(used <= data.len());
    }
});
