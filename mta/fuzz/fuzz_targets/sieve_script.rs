//! The Sieve parser and interpreter: never panic; errors name a line of
//! the script; a run that fails keeps the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::sieve::{Action, Input};

const MAIL: &[u8] = b"From: a@b.example\r\nTo: c+d@e.example\r\nSubject: x\r\n\r\nbody\r\n";

fuzz_target!(|data: &[u8]| {
    let lines = 1 + data.iter().filter(|&&b| b == b'\n').count();
    match mta::sieve::parse(data) {
        Ok(script) => {
            let exists = |_: &str| true;
            let input = Input {
                content: MAIL,
                sender: Some("a@b.example"),
                recipient: "c+d@e.example",
                mailbox_exists: &exists,
                now: 1_800_000_000,
                scores: &Default::default(),
                seen: &|_| false,
                include: &|_, _| Ok(None),
            };
            let out = mta::sieve::run(&script, &input);
            if out.error.is_some() {
                assert_eq!(out.actions, vec![Action::Keep { flags: vec![] }]);
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "{e}"),
    }
});
