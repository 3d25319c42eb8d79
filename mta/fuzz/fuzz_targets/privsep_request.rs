//! The privileged helper's request decoder (run as root on what the
//! network-facing side sends): never panics, refuses frames over the limit
//! and names that are not passwd names, and what it accepts encodes to
//! bytes that decode to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::privsep::protocol::{self, MAX_FRAME, Request, Response};

fuzz_target!(|data: &[u8]| {
    let _ = Response::decode(data);
    let Ok(request) = protocol::decode(data) else { return };
    assert!(data.len() <= MAX_FRAME);
    let user = match &request {
        Request::CheckPassword { user, .. } => user,
        Request::Deliver(d) => &d.user,
        Request::Session(s) => &s.user,
    };
    assert!(protocol::valid_user(user), "{user:?}");
    assert_eq!(protocol::decode(&request.encode()), Ok(request));
});
