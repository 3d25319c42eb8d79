//! The spamd.conf and TOML parsers take any text without panicking, and what
//! spamd.conf yields always passes validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(conf) = greyd_setup::conf::parse(text) {
        assert!(conf.validate().is_ok());
    }
    let _ = greyd_setup::tomlconf::parse(text);
});
