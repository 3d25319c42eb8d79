//! The virtusertable parser and lookup: never panics; errors name real lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.lines().count();
    match mta::virtusertable::parse(text) {
        Ok(t) => {
            for word in text.split_whitespace() {
                if let Some((local, domain)) = word.rsplit_once('@') {
                    let _ = t.lookup(local, domain);
                    let _ = t.has_domain(domain);
                }
            }
        }
        Err(errors) => assert!(errors.iter().all(|e| e.line >= 1 && e.line <= lines)),
    }
});
