//! The MTA-STS policy file and TXT record parsers: never panic; an accepted
//! policy has a capped max_age, valid mx patterns (unless mode none), and
//! every plain pattern allows its own host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::outbound::mta_sts::{self, MAX_AGE_LIMIT, Mode, Policy};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Policy::parse(data) {
        assert!(p.max_age <= MAX_AGE_LIMIT);
        assert!(p.mode == Mode::None || !p.mx.is_empty());
        for host in p.mx.iter().filter(|h| !h.starts_with("*.")) {
            assert!(p.allows(host), "{host}");
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(id) = mta_sts::parse_txt(text)
    {
        assert!(!id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
});
