//! ARC sealing (RFC 8617): our verdict on a message, sealed with our key,
//! so a receiver of a copy we forward (aliases, `.forward`) can trust the
//! results we saw even though forwarding breaks SPF. The key is an RSA PEM
//! file named `DOMAIN.SELECTOR.key`, as DKIM keys are (`auth_checks.arc_key`).

// The ARC-Message-Signature covers the headers our DKIM signatures do.
use crate::outbound::dkim::SIGNED_HEADERS;
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, Done};
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArcError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: the name is not DOMAIN.SELECTOR.key")]
    Name(PathBuf),
    #[error("{0}: not an RSA private key: {1}")]
    Key(PathBuf, String),
    #[error("sealing: {0}")]
    Seal(mail_auth::Error),
}

pub struct Sealer {
    sealer: ArcSealer<RsaKey<Sha256>, Done>,
}

impl Sealer {
    /// The key in `path`; its domain and selector come from the file name.
    pub fn load(path: &Path) -> Result<Sealer, ArcError> {
        let (domain, selector) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".key"))
            .and_then(|stem| stem.rsplit_once('.'))
            .filter(|(d, s)| !d.is_empty() && !s.is_empty())
            .ok_or_else(|| ArcError::Name(path.to_path_buf()))?;
        let pem = std::fs::read(path).map_err(|e| ArcError::Io(path.to_path_buf(), e))?;
        let bad = |e: String| ArcError::Key(path.to_path_buf(), e);
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(e.to_string()))?;
        let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| bad(e.to_string()))?;
        let sealer = ArcSealer::from_key(key)
            .domain(domain.to_ascii_lowercase())
            .selector(selector)
            .headers(SIGNED_HEADERS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Sealer { sealer })
    }

    /// The ARC set (ARC-Seal, ARC-Message-Signature,
    /// ARC-Authentication-Results lines, CRLF-terminated) for `message`, or
    /// `None` when its chain failed and must not be sealed again.
    pub fn seal(
        &self,
        message: &AuthenticatedMessage<'_>,
        results: &AuthenticationResults<'_>,
        chain: &ArcOutput<'_>,
    ) -> Result<Option<String>, ArcError> {
        if !chain.can_be_sealed() {
            return Ok(None);
        }
        let set = self.sealer.seal(message, results, chain).map_err(ArcError::Seal)?;
        Ok(Some(set.to_header()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path, name: &str) -> PathBuf {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, pair.serialize_pem()).unwrap();
        path
    }

    #[test]
    fn seals_a_message_without_a_chain_as_the_first_instance() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::load(&key_file(dir.path(), "Example.org.arc2026.key")).unwrap();
        let raw = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
        let message = AuthenticatedMessage::parse(raw).unwrap();
        let results = AuthenticationResults::new("mx.example.org");
        let set = sealer.seal(&message, &results, &ArcOutput::default()).unwrap().unwrap();
        let names: Vec<&str> = set
            .split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']) && !l.is_empty())
            .filter_map(|l| l.split_once(':').map(|(n, _)| n))
            .collect();
        assert_eq!(
            names,
            ["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"]
        );
        let unfolded = set.replace("\r\n\t", " ").replace("\r\n ", " ");
        assert!(unfolded.starts_with("ARC-Seal: i=1;"), "{unfolded}");
        assert!(unfolded.contains("cv=none"), "{unfolded}");
        assert!(
            unfolded.contains("d=example.org") && unfolded.contains("s=arc2026"),
            "{unfolded}"
        );
        assert!(
            unfolded.contains("ARC-Authentication-Results: i=1; mx.example.org"),
            "{unfolded}"
        );
    }

    #[test]
    fn key_file_names_and_contents_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let unnamed = key_file(dir.path(), "arc.key");
        assert!(matches!(Sealer::load(&unnamed), Err(ArcError::Name(_))));
        let garbage = dir.path().join("example.org.arc.key");
        std::fs::write(&garbage, "not a key").unwrap();
        assert!(matches!(Sealer::load(&garbage), Err(ArcError::Key(..))));
        let missing = dir.path().join("example.org.none.key");
        assert!(matches!(Sealer::load(&missing), Err(ArcError::Io(..))));
    }
}
