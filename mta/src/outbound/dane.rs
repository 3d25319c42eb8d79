//! DANE for SMTP (RFC 7672): the TLSA records of an MX host and whether a
//! server's certificate chain matches them. DANE-EE (usage 3): the leaf
//! certificate or its public key matches, with no name or date check;
//! DANE-TA (usage 2): a certificate of the chain matches, and the leaf
//! chains to it and names the host (webpki, dates checked). The PKIX usages
//! 0 and 1 are unusable in SMTP (§3.1.3). Pure: the lookups are `dns`'s,
//! the decision what to do without usable records `tls_policy`'s.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256, Sha512};
use std::sync::Arc;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

const DANE_TA: u8 = 2;
const DANE_EE: u8 = 3;

impl Tlsa {
    /// Usable for SMTP: usage DANE-TA or DANE-EE, selector full certificate
    /// or SubjectPublicKeyInfo, matching exact, SHA-256 or SHA-512.
    pub fn usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether `cert` is the one this record names.
    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected = match self.selector {
            0 => cert.as_ref().to_vec(),
            1 => match webpki::EndEntityCert::try_from(cert) {
                Ok(parsed) => parsed.subject_public_key_info().as_ref().to_vec(),
                Err(_) => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data,
            1 => Sha256::digest(&selected).as_slice() == self.data.as_slice(),
            2 => Sha512::digest(&selected).as_slice() == self.data.as_slice(),
            _ => false,
        }
    }
}

/// Why a chain does not satisfy the TLSA records.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DaneError {
    #[error("the server sent no certificate")]
    NoCertificate,
    #[error("no certificate of the chain matches a TLSA record")]
    NoMatch,
    #[error("a DANE-TA trust anchor matched, but the server certificate does not chain to it for {0}: {1}")]
    TrustAnchor(String, rustls::Error),
}

/// Whether `chain` (leaf first) matches one of the usable `records` for
/// `host`, the TLSA base domain.
pub fn verify(
    records: &[Tlsa],
    chain: &[CertificateDer<'static>],
    host: &str,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<(), DaneError> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Err(DaneError::NoCertificate);
    };
    let usable = || records.iter().filter(|r| r.usable());
    if usable().any(|r| r.usage == DANE_EE && r.matches(leaf)) {
        return Ok(());
    }
    let mut last = DaneError::NoMatch;
    for anchor in rest
        .iter()
        .filter(|c| usable().any(|r| r.usage == DANE_TA && r.matches(c)))
    {
        match chains_to(leaf, rest, anchor, host, provider) {
            Ok(()) => return Ok(()),
            Err(why) => last = DaneError::TrustAnchor(host.to_string(), why),
        }
    }
    Err(last)
}

/// Whether `leaf` chains to `anchor` through `intermediates` and names `host`.
fn chains_to(
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    anchor: &CertificateDer<'static>,
    host: &str,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(anchor.clone())?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        // Only fails without roots, and one was just added.
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PublicKeyData};

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn record(usage: u8, selector: u8, matching: u8, data: &[u8]) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data: data.to_vec(),
        }
    }

    fn der(cert: &rcgen::Certificate) -> CertificateDer<'static> {
        cert.der().clone()
    }

    #[test]
    fn dane_ee_matches_the_leaf_key_or_certificate_whatever_its_name() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["other.name".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let chain = [der(&cert)];
        let spki = key.subject_public_key_info();
        let p = provider();
        let ok = |r: Tlsa| verify(&[r], &chain, "mx.example.org", &p);
        assert_eq!(ok(record(3, 1, 1, &Sha256::digest(&spki))), Ok(()));
        assert_eq!(ok(record(3, 1, 2, &Sha512::digest(&spki))), Ok(()));
        assert_eq!(ok(record(3, 1, 0, &spki)), Ok(()));
        assert_eq!(ok(record(3, 0, 1, &Sha256::digest(chain[0].as_ref()))), Ok(()));
        assert_eq!(ok(record(3, 1, 1, &[0; 32])), Err(DaneError::NoMatch));
        // PKIX-EE (1) is unusable in SMTP, even when it matches.
        assert_eq!(ok(record(1, 1, 1, &Sha256::digest(&spki))), Err(DaneError::NoMatch));
        assert_eq!(
            verify(&[record(3, 1, 1, &[0; 32])], &[], "mx", &p),
            Err(DaneError::NoCertificate)
        );
    }

    #[test]
    fn dane_ta_wants_the_chain_to_the_anchor_and_the_host_name() {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "DANE test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let leaf_for = |name: &str| {
            let key = KeyPair::generate().unwrap();
            CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap()
        };
        let ta = record(2, 0, 1, &Sha256::digest(ca.der().as_ref()));
        let p = provider();
        let good = [der(&leaf_for("mx.example.org")), der(&ca)];
        assert_eq!(verify(std::slice::from_ref(&ta), &good, "mx.example.org", &p), Ok(()));
        let wrong_name = [der(&leaf_for("mx.other.org")), der(&ca)];
        assert!(matches!(
            verify(std::slice::from_ref(&ta), &wrong_name, "mx.example.org", &p),
            Err(DaneError::TrustAnchor(..))
        ));
        // The anchor must be in the chain the server sends.
        assert_eq!(verify(&[ta], &good[..1], "mx.example.org", &p), Err(DaneError::NoMatch));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_chains_never_panic_and_garbage_never_matches_a_hash(
            usage in 0u8..5,
            selector in 0u8..3,
            matching in 0u8..4,
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..70),
            chain in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..200), 0..3),
        ) {
            let chain: Vec<CertificateDer<'static>> = chain.into_iter().map(CertificateDer::from).collect();
            let records = [record(usage, selector, matching, &data)];
            let verdict = verify(&records, &chain, "mx.example.org", &provider());
            // Random bytes are no certificate: only an exact full-certificate
            // record (3 0 0) can match them.
            if verdict.is_ok() {
                proptest::prop_assert_eq!((usage, selector, matching), (3, 0, 0));
                proptest::prop_assert_eq!(chain[0].as_ref(), data.as_slice());
            }
        }
    }
}
