//! Arbitrary bytes as a control-socket request: parse errors, never panics;
//! whatever parses re-encodes to a line that parses to the same request.
#![no_main]

use greyd::control::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        assert_eq!(Request::parse(&req.to_line()).unwrap(), req);
    }
});
