//! ManageSieve input, framed as the server frames it (literals bounded),
//! through the command parser and the session state machine (as if every
//! STARTTLS and login succeeded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::imap::framer::{Frame, Framer, Limits};
use mta::managesieve::command;
use mta::managesieve::session::{Action, Session};
use mta::net::Input;

fuzz_target!(|data: &[u8]| {
    let mut framer = Framer::new(Limits {
        text: 4096,
        literals: 1 << 16,
    });
    framer.extend(data);
    let mut session = Session::new("mx.example", true, u32::MAX);
    while let Some(frame) = framer.next_frame() {
        if let Frame::Command(bytes) = &frame {
            let _ = command::parse(bytes);
            let _ = command::sasl_response(bytes);
        }
        match session.frame(frame) {
            Some(Action::StartTls) => {
                session.tls_started();
            }
            Some(Action::Authenticate { .. }) => {
                session.logged_in("alice@example.org".into());
            }
            Some(Action::Close(bytes)) => {
                assert!(bytes.starts_with(b"OK") || bytes.starts_with(b"BYE"));
                break;
            }
            _ => {}
        }
    }
});
