//! POP3 command lines, framed as the server frames them, through the parser
//! and the session state machine (as if every login succeeded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::pop3::command::{self, MAX_LINE};
use mta::pop3::machine::{Action, Entry, Machine};
use mta::net::Input;
use mta::smtp::lines::LineBuffer;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineBuffer::new(MAX_LINE - 2);
    lines.extend(data);
    let mut machine = Machine::new(false, true, u32::MAX);
    while let Some(line) = lines.next_line() {
        let Ok(line) = line else { continue };
        let _ = command::parse(&line);
        match machine.line(&line) {
            Action::StartTls => machine.tls_started(),
            Action::Login { .. } | Action::Authenticate { .. } => {
                let entries = vec![Entry { size: 3, uidl: "x".into() }; 3];
                machine.logged_in(entries);
            }
            Action::Retrieve { index, top } => {
                let mut out = Vec::new();
                mta::pop3::machine::stuffed(&line, top, &mut out);
                assert!(index < 3 && out.ends_with(b".\r\n"));
            }
            _ => {}
        }
    }
});
