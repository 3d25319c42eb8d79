//! DANE's matching of the certificate chain a server sends against TLSA
//! records: arbitrary bytes as certificates and records, never a panic, and
//! never a match for a chain that holds no certificate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::outbound::dane::{Tlsa, verify};
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some((&[usage, selector, matching, split], rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let (record, certs) = rest.split_at((split as usize).min(rest.len()));
    let records = [Tlsa {
        usage,
        selector,
        matching,
        data: record.to_vec(),
    }];
    let chain: Vec<CertificateDer<'static>> = certs
        .chunks(256)
        .map(|c| CertificateDer::from(c.to_vec()))
        .collect();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verdict = verify(&records, &chain, "mx.example.org", &provider);
    assert!(!(chain.is_empty() && verdict.is_ok()));
});
