//! Arbitrary client bytes through the line framer, the command parser and
//! both dialogue modes: no panic, bounded lines, replies always CRLF-terminated.
#![no_main]

use greyd::smtp::{Dialogue, DialogueConfig, LineReader, MAX_LINE, Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = DialogueConfig { hostname: "fuzz.example".into(), max_bad_commands: 20 };
    for mode in [Mode::Grey, Mode::Black { reply: "450 no\r\n".into() }] {
        let mut dialogue = Dialogue::new("192.0.2.1".parse().unwrap(), mode, config.clone());
        let mut lines = LineReader::new();
        // Feed in uneven chunks so framing across reads is exercised.
        for chunk in data.chunks(7) {
            lines.push(chunk);
            while let Some(line) = lines.next_line() {
                if let Ok(l) = &line {
                    assert!(l.len() <= MAX_LINE);
                }
                let step = dialogue.on_line(line.as_deref().map_err(|e| *e));
                if let Some(reply) = &step.reply {
                    assert!(reply.ends_with("\r\n"));
                }
            }
        }
    }
});
