//! The list-address parser: never panics, and what it accepts reads back
//! to the same local part (lowercased) through `local_part`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::lists::address::{self, Role};

fuzz_target!(|data: &[u8]| {
    let Ok(local) = std::str::from_utf8(data) else { return };
    let Some(a) = address::parse(local) else { return };
    assert!(address::valid_name(&a.name));
    if let Role::Bounces(Some(member)) = &a.role {
        assert!(member.contains('@'));
    }
    let again = address::parse(&address::local_part(&a.name, &a.role));
    assert_eq!(again.as_ref(), Some(&a), "{local:?}");
});
