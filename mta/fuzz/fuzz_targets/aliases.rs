//! The aliases parser: never panics; every error names a line of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.lines().count();
    match mta::aliases::parse(text) {
        Ok(a) => {
            for line in text.lines() {
                if let Some((name, _)) = line.split_once(':') {
                    let _ = a.get(name.trim());
                }
            }
        }
        Err(errors) => assert!(errors.iter().all(|e| e.line >= 1 && e.line <= lines)),
    }
    let _ = mta::aliases::parse_targets(text);
});
