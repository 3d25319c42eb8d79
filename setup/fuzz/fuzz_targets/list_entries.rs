//! Any bytes parse into well-formed ranges, and the collapsed CIDRs of those
//! ranges parse back into the same set.
#![no_main]

use greyd_setup::merge::Set;
use greyd_setup::parse::{Entry, parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_list(data);
    for e in &parsed.entries {
        match *e {
            Entry::V4(lo, hi) => assert!(lo <= hi),
            Entry::V6(lo, hi) => assert!(lo <= hi),
        }
    }
    let set = Set::from_entries(&parsed.entries);
    let text: String = set.to_cidrs().iter().map(|n| format!("{n}\n")).collect();
    let again = parse_list(text.as_bytes());
    assert!(again.malformed.is_empty());
    assert_eq!(Set::from_entries(&again.entries), set);
});
