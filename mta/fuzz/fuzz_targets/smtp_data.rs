//! DATA end detection and dot-unstuffing: decoding arbitrary input in two
//! pieces gives the same result as in one; when the input is a stuffed
//! body of CRLF lines, decoding gives the body back exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::smtp::data::{DataDecoder, DataOutcome, dot_stuff};

fuzz_target!(|data: &[u8]| {
    let mut whole = Vec::new();
    let one = DataDecoder::new(1 << 16).feed(data, &mut whole);
    let split = data.first().map_or(0, |&b| b as usize).min(data.len());
    let mut d = DataDecoder::new(1 << 16);
    let mut parts = Vec::new();
    let (n1, r1) = d.feed(&data[..split], &mut parts);
    let two = match r1 {
        Some(r) => (n1, Some(r)),
        None => {
            let (n2, r2) = d.feed(&data[split..], &mut parts);
            (n1 + n2, r2)
        }
    };
    assert_eq!(one, two);
    assert_eq!(whole, parts);

    // A clean body: printable lines joined with CRLF.
    let body: Vec<u8> = data
        .split(|&b| b == b'\n')
        .flat_map(|l| {
            let mut l: Vec<u8> = l.iter().copied().filter(|&b| b != b'\r').collect();
            l.extend_from_slice(b"\r\n");
            l
        })
        .collect();
    let wire = dot_stuff(&body);
    let mut out = Vec::new();
    let (n, r) = DataDecoder::new(1 << 20).feed(&wire, &mut out);
    assert_eq!((n, r), (wire.len(), Some(DataOutcome::Ok)));
    assert_eq!(out, body);
});
