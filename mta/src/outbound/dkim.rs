//! DKIM signing (RFC 6376; Ed25519 as RFC 8463) of the mail we originate:
//! the signing keys (`DOMAIN.SELECTOR.key` PEM files in `[dkim] key_dir`,
//! made by `mtactl dkim generate`, several per domain for dual signing),
//! key generation with the DNS TXT record to publish, and the
//! `DKIM-Signature:` headers for one message (relaxed/relaxed, From
//! oversigned). Signing itself is mail-auth's.

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rcgen::PublicKeyData;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Headers signed when present. From is listed twice so a second From
/// added later breaks the signature; absent ones are signed as absent.
/// The list headers are signed so one-click unsubscribe (RFC 8058 §4) can
/// be trusted in a list's mail.
pub const SIGNED_HEADERS: [&str; 16] = [
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// RSA-2048 with SHA-256 (what every verifier understands).
    Rsa,
    /// Ed25519-SHA256 (RFC 8463); publish it beside an RSA key.
    Ed25519,
}

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: the name is not DOMAIN.SELECTOR.key")]
    Name(PathBuf),
    #[error("{0}: not an RSA or Ed25519 private key: {1}")]
    Key(PathBuf, String),
    #[error("generating a key: {0}")]
    Generate(String),
    #[error("signing for {0}: {1}")]
    Sign(String, String),
}

/// A new key pair: the private key to store and the TXT value to publish.
pub struct GeneratedKey {
    /// PKCS#8 PEM.
    pub private_pem: String,
    /// `v=DKIM1; k=...; p=...`.
    pub txt: String,
}

pub fn generate(algorithm: KeyAlgorithm) -> Result<GeneratedKey, DkimError> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let err = |e: rcgen::Error| DkimError::Generate(e.to_string());
    let (pair, k, public) = match algorithm {
        KeyAlgorithm::Rsa => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(err)?;
            // RSA: p= is the SubjectPublicKeyInfo (what opendkim publishes).
            let public = pair.subject_public_key_info();
            (pair, "rsa", public)
        }
        KeyAlgorithm::Ed25519 => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(err)?;
            // Ed25519: p= is the bare 32-byte key (RFC 8463 §4).
            let public = pair.public_key_raw().to_vec();
            (pair, "ed25519", public)
        }
    };
    Ok(GeneratedKey {
        private_pem: pair.serialize_pem(),
        txt: format!("v=DKIM1; k={k}; p={}", b64(&public)),
    })
}

/// The zone-file line publishing `txt` for `selector` and `domain`, split
/// into strings of at most 255 bytes as DNS requires (RSA-2048 needs two).
pub fn dns_record(domain: &str, selector: &str, txt: &str) -> String {
    let strings: Vec<String> = txt
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{selector}._domainkey.{domain}. IN TXT {}", strings.join(" "))
}

/// Where `mtactl dkim generate` stores the key for `domain` and `selector`.
pub fn key_path(dir: &Path, domain: &str, selector: &str) -> PathBuf {
    dir.join(format!("{}.{selector}.key", domain.to_ascii_lowercase()))
}

struct Key {
    selector: String,
    signer: DkimSigner<DkimKey, Done>,
}

/// The signing keys by domain (lowercase), each domain's in selector order.
#[derive(Default)]
pub struct Signers {
    domains: BTreeMap<String, Vec<Key>>,
}

fn parse_key(path: &Path, domain: &str, selector: &str, pem: &[u8]) -> Result<Key, DkimError> {
    let bad = |e: String| DkimError::Key(path.to_path_buf(), e);
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad(e.to_string()))?;
    let ed25519 = match &der {
        PrivateKeyDer::Pkcs8(p) => Ed25519Key::from_pkcs8_maybe_unchecked_der(p.secret_pkcs8_der()).ok(),
        _ => None,
    };
    let key = match ed25519 {
        Some(k) => DkimKey::Ed25519(k),
        None => DkimKey::Rsa(RsaKey::<Sha256>::from_key_der(der).map_err(|e| bad(e.to_string()))?),
    };
    let signer = DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed);
    Ok(Key {
        selector: selector.to_string(),
        signer,
    })
}

impl Signers {
    /// Every `DOMAIN.SELECTOR.key` in `dir` (a missing directory has none).
    /// The selector is the last dot-separated part before `.key`.
    pub fn load(dir: &Path) -> Result<Signers, DkimError> {
        let io = |e| DkimError::Io(dir.to_path_buf(), e);
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Signers::default()),
            Err(e) => return Err(io(e)),
        };
        let mut signers = Signers::default();
        for entry in entries {
            let path = entry.map_err(io)?.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".key"))
            else {
                continue;
            };
            let (domain, selector) = stem
                .rsplit_once('.')
                .filter(|(d, s)| !d.is_empty() && !s.is_empty())
                .ok_or_else(|| DkimError::Name(path.clone()))?;
            let pem = std::fs::read(&path).map_err(|e| DkimError::Io(path.clone(), e))?;
            let domain = domain.to_ascii_lowercase();
            let key = parse_key(&path, &domain, selector, &pem)?;
            signers.domains.entry(domain).or_default().push(key);
        }
        for keys in signers.domains.values_mut() {
            keys.sort_by(|a, b| a.selector.cmp(&b.selector));
        }
        Ok(signers)
    }

    /// The domain to sign `message` for: its From: address's domain if we
    /// have a key for it, else the envelope sender's.
    pub fn signing_domain(&self, message: &[u8], envelope_sender: Option<&str>) -> Option<String> {
        let from = mail_parser::MessageParser::new().parse_headers(message).and_then(|m| {
            m.from()
                .and_then(|f| f.first())
                .and_then(|a| a.address())
                .map(str::to_string)
        });
        [from.as_deref(), envelope_sender]
            .into_iter()
            .flatten()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
            .find(|d| self.domains.contains_key(d))
    }

    /// `DKIM-Signature:` header lines (CRLF-terminated, one per key of the
    /// signing domain) to put in front of `message`; empty when no key applies.
    pub fn sign(&self, message: &[u8], envelope_sender: Option<&str>) -> Result<String, DkimError> {
        let Some(domain) = self.signing_domain(message, envelope_sender) else {
            return Ok(String::new());
        };
        let mut headers = String::new();
        for key in &self.domains[&domain] {
            let sig = key
                .signer
                .sign(message)
                .map_err(|e| DkimError::Sign(domain.clone(), e.to_string()))?;
            headers.push_str(&sig.to_header());
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, ResolverCache, Txt};
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::{Arc, Mutex};

    /// A TXT cache holding the published records, so verification needs no network.
    #[derive(Default)]
    struct Published(Mutex<HashMap<Box<str>, Txt>>);

    impl ResolverCache<Box<str>, Txt> for Published {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().get(name).cloned()
        }
        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().remove(name)
        }
        fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
            self.0.lock().unwrap().insert(key, value);
        }
    }

    const MESSAGE: &[u8] = b"From: Alice <alice@Example.org>\r\nTo: bob@example.net\r\nSubject: signed\r\n\
        Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nHello  there \r\n\r\n\r\n";

    /// Keys for example.org in a temporary directory, with their TXT records.
    fn keys(algorithms: &[(KeyAlgorithm, &str)]) -> (tempfile::TempDir, Published) {
        let dir = tempfile::tempdir().unwrap();
        let published = Published::default();
        for (alg, selector) in algorithms {
            let k = generate(*alg).unwrap();
            std::fs::write(key_path(dir.path(), "example.org", selector), &k.private_pem).unwrap();
            let record = DomainKey::parse(k.txt.as_bytes()).unwrap();
            published.0.lock().unwrap().insert(
                format!("{selector}._domainkey.example.org.").into(),
                Txt::DomainKey(Arc::new(record)),
            );
        }
        (dir, published)
    }

    fn verify(signed: &[u8], published: &Published) -> Vec<DkimResult> {
        let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
        let msg = AuthenticatedMessage::parse(signed).unwrap();
        let params = mail_auth::Parameters::new(&msg).with_txt_cache(published);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(authenticator.verify_dkim(params))
            .into_iter()
            .map(|o| o.result().clone())
            .collect()
    }

    #[test]
    fn rsa_and_ed25519_signatures_verify_and_tampering_breaks_them() {
        let (dir, published) = keys(&[(KeyAlgorithm::Rsa, "r1"), (KeyAlgorithm::Ed25519, "e1")]);
        let signers = Signers::load(dir.path()).unwrap();
        let headers = signers.sign(MESSAGE, None).unwrap();
        assert_eq!(headers.matches("DKIM-Signature:").count(), 2, "{headers}");
        assert!(headers.contains("a=ed25519-sha256") && headers.contains("a=rsa-sha256"));
        assert!(headers.contains("c=relaxed/relaxed"), "{headers}");
        assert!(headers.contains("d=example.org"), "{headers}");
        let h = headers.replace("\r\n\t", "").replace(' ', "");
        // mail-auth lists the headers present bottom-up, then the absent ones: From
        // once for the header and once more, oversigned.
        assert!(h.contains("h=Message-ID:Date:Subject:To:From:From:Cc:"), "{headers}");
        let signed = [headers.as_bytes(), MESSAGE].concat();
        assert_eq!(verify(&signed, &published), [DkimResult::Pass, DkimResult::Pass]);
        // Relaxed body canonicalisation forgives trailing blank lines and spaces, not edits.
        let tampered = String::from_utf8(signed.clone()).unwrap().replace("Hello", "Jello");
        // mail-auth calls a body hash mismatch "neutral"; a changed header "fail".
        let results = verify(tampered.as_bytes(), &published);
        assert_eq!(results.len(), 2);
        assert!(
            results.iter().all(|r| matches!(r, DkimResult::Neutral(_))),
            "{results:?}"
        );
        let resubjected = String::from_utf8(signed)
            .unwrap()
            .replace("Subject: signed", "Subject: changed");
        let results = verify(resubjected.as_bytes(), &published);
        assert!(results.iter().all(|r| matches!(r, DkimResult::Fail(_))), "{results:?}");
    }

    #[test]
    fn from_domain_first_then_envelope_sender_else_nothing() {
        let (dir, _) = keys(&[(KeyAlgorithm::Ed25519, "s")]);
        let signers = Signers::load(dir.path()).unwrap();
        assert_eq!(signers.signing_domain(MESSAGE, None).as_deref(), Some("example.org"));
        let other = b"From: x@other.test\r\n\r\nbody\r\n";
        assert_eq!(
            signers.signing_domain(other, Some("bounce@EXAMPLE.org")).as_deref(),
            Some("example.org")
        );
        assert_eq!(signers.signing_domain(other, Some("a@other.test")), None);
        assert_eq!(signers.sign(other, None).unwrap(), "");
    }

    #[test]
    fn dns_record_splits_long_values() {
        let k = generate(KeyAlgorithm::Rsa).unwrap();
        let line = dns_record("example.org", "s1", &k.txt);
        assert!(
            line.starts_with("s1._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p="),
            "{line}"
        );
        let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        assert!(strings.len() >= 2 && strings.iter().all(|s| s.len() <= 255), "{line}");
        assert_eq!(strings.concat(), k.txt);
    }

    #[test]
    fn bad_key_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nodot.key"), "x").unwrap();
        assert!(matches!(Signers::load(dir.path()), Err(DkimError::Name(_))));
        std::fs::remove_file(dir.path().join("nodot.key")).unwrap();
        std::fs::write(dir.path().join("example.org.s.key"), "not pem").unwrap();
        assert!(matches!(Signers::load(dir.path()), Err(DkimError::Key(..))));
        assert!(Signers::load(&dir.path().join("missing")).unwrap().domains.is_empty());
    }
}
