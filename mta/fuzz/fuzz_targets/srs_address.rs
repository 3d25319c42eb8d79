//! The SRS address parser: never panics; whatever it accepts as SRS0
//! reverses only with the right hash, and what we forward reverses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::outbound::srs::{self, SrsError, SrsKey};

const NOW: u64 = 1_767_225_600;

fuzz_target!(|data: &[u8]| {
    let Ok(local) = std::str::from_utf8(data) else { return };
    let key = SrsKey::new(b"fuzz");
    let reversed = srs::reverse(local, &key, NOW);
    assert!(!matches!(reversed, Ok(ref a) if !a.contains('@')));
    if srs::parse(local) == Err(SrsError::NotSrs) && !local.contains('@') && !local.is_empty() {
        let sender = format!("{local}@example.org");
        let fwd = srs::forward(&sender, "fwd.test", &key, NOW);
        let srs_local = fwd.strip_suffix("@fwd.test").expect("our domain");
        assert_eq!(srs::reverse(srs_local, &key, NOW).as_deref(), Ok(sender.as_str()));
    }
});
