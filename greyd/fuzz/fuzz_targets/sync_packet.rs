//! Arbitrary bytes as a sync packet, with the empty key and with the HMAC
//! made valid, so the record parser behind the HMAC check is reached too.
#![no_main]

use greyd::sync::{SyncKey, codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SyncKey::empty();
    let _ = codec::decode(data, &key);
    // Re-sign the input so malformed records behind a valid HMAC are exercised.
    if let Some(signed) = codec::resign(data, &key)
        && let Ok(packet) = codec::decode(&signed, &key)
    {
        let again = codec::encode(&packet.messages, packet.counter, &key);
        assert_eq!(codec::decode(&again, &key).unwrap().messages, packet.messages);
    }
});
