//! The Sender Rewriting Scheme as libsrs2 and postsrsd write it, so that
//! mail we forward passes SPF at the receiver and its bounces find their way
//! back: `forward` rewrites an envelope sender to
//! `SRS0=HHHH=TT=domain=local@ourdomain` (HHHH: the first 4 base64
//! characters of HMAC-SHA1 over the lowercased timestamp, domain and local
//! part; TT: the day number modulo 1024 in two base32 characters), or an
//! SRS0 address from another forwarder to `SRS1=HHHH=theirdomain==…`;
//! `reverse` checks and undoes it (hashes compared case-insensitively, at
//! most 21 days old). Pure: the router reads the key file.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Days an SRS0 address stays valid (libsrs2's default).
pub const MAX_AGE_DAYS: u64 = 21;

const HASH_LENGTH: usize = 4;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const TIME_SLOTS: u64 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrsError {
    #[error("not an SRS address")]
    NotSrs,
    #[error("malformed SRS address")]
    Malformed,
    #[error("SRS hash does not match")]
    BadHash,
    #[error("SRS address expired")]
    Expired,
}

/// The HMAC secret (the first line of `[srs] key_file`).
#[derive(Clone)]
pub struct SrsKey(Vec<u8>);

impl SrsKey {
    pub fn new(secret: &[u8]) -> SrsKey {
        SrsKey(secret.to_vec())
    }

    /// The key in a key file's text: its first line; `None` if that is empty.
    pub fn from_file_text(text: &str) -> Option<SrsKey> {
        let secret = text.lines().next().unwrap_or("").trim();
        (!secret.is_empty()).then(|| SrsKey::new(secret.as_bytes()))
    }

    /// A new random secret for a key file (32 random bytes, base64).
    pub fn generate_secret() -> String {
        use base64::Engine;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("system random source");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn hash(&self, parts: &[&str]) -> String {
        use base64::Engine;
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p.to_ascii_lowercase().as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let mut b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        b64.truncate(HASH_LENGTH);
        b64
    }

    fn hash_matches(&self, given: &str, parts: &[&str]) -> bool {
        given.len() == HASH_LENGTH && given.eq_ignore_ascii_case(&self.hash(parts))
    }
}

/// An SRS local part taken apart (no checks of hash or age yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrsAddress<'a> {
    /// `SRS0=hash=stamp=domain=local`.
    Srs0 {
        hash: &'a str,
        stamp: &'a str,
        domain: &'a str,
        local: &'a str,
    },
    /// `SRS1=hash=host=opaque`: `opaque` (starting with its separator) is
    /// the SRS0 local part after `SRS0` of the address at `host`.
    Srs1 {
        hash: &'a str,
        host: &'a str,
        opaque: &'a str,
    },
}

/// `SRS0`/`SRS1` (any case) and one of libsrs2's separators `=`, `+`, `-`.
fn tag<'a>(local: &'a str, name: &str) -> Option<&'a str> {
    let head = local.get(..4)?;
    let rest = &local[4..];
    (head.eq_ignore_ascii_case(name) && rest.starts_with(['=', '+', '-'])).then(|| &rest[1..])
}

/// Split an SRS local part (the part before the last `@`).
pub fn parse(local: &str) -> Result<SrsAddress<'_>, SrsError> {
    if let Some(rest) = tag(local, "SRS0") {
        let mut f = rest.splitn(4, '=');
        let (Some(hash), Some(stamp), Some(domain), Some(local)) = (f.next(), f.next(), f.next(), f.next()) else {
            return Err(SrsError::Malformed);
        };
        if hash.is_empty() || stamp.len() != 2 || domain.is_empty() || local.is_empty() {
            return Err(SrsError::Malformed);
        }
        return Ok(SrsAddress::Srs0 {
            hash,
            stamp,
            domain,
            local,
        });
    }
    if let Some(rest) = tag(local, "SRS1") {
        let (hash, rest) = rest.split_once('=').ok_or(SrsError::Malformed)?;
        let sep = rest.find('=').ok_or(SrsError::Malformed)?;
        let (host, opaque) = (&rest[..sep], &rest[sep + 1..]);
        // `opaque` keeps the SRS0 address's own separator; something must follow it.
        if hash.is_empty() || host.is_empty() || opaque.len() < 2 || !opaque.starts_with(['=', '+', '-']) {
            return Err(SrsError::Malformed);
        }
        return Ok(SrsAddress::Srs1 { hash, host, opaque });
    }
    Err(SrsError::NotSrs)
}

fn day(now: u64) -> u64 {
    (now / 86400) % TIME_SLOTS
}

fn encode_stamp(now: u64) -> String {
    let d = day(now) as usize;
    [BASE32[(d >> 5) & 31], BASE32[d & 31]]
        .iter()
        .map(|&b| b as char)
        .collect()
}

fn decode_stamp(stamp: &str) -> Option<u64> {
    stamp.bytes().try_fold(0u64, |acc, b| {
        let v = BASE32.iter().position(|&c| c == b.to_ascii_uppercase())?;
        Some(acc << 5 | v as u64)
    })
}

fn fresh(stamp: u64, now: u64) -> bool {
    let mut today = day(now);
    if today < stamp {
        today += TIME_SLOTS;
    }
    today - stamp <= MAX_AGE_DAYS
}

/// The envelope sender to use when forwarding mail from `sender` (a
/// `local@domain` address; `<>` is never rewritten, so do not call this for
/// it) out of `our_domain`, at time `now` (seconds since the epoch).
/// Senders in `our_domain` and addresses without `@` are returned as they
/// are; an SRS0 or SRS1 address from another forwarder becomes SRS1, so
/// bounces go back through that forwarder.
pub fn forward(sender: &str, our_domain: &str, key: &SrsKey, now: u64) -> String {
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return sender.to_string();
    };
    if domain.eq_ignore_ascii_case(our_domain) {
        return sender.to_string();
    }
    let srs1 = |host: &str, opaque: &str| {
        let hash = key.hash(&[host, opaque]);
        format!("SRS1={hash}={host}={opaque}@{our_domain}")
    };
    match parse(local) {
        Ok(SrsAddress::Srs0 { .. }) => srs1(domain, &local[4..]),
        Ok(SrsAddress::Srs1 { host, opaque, .. }) => srs1(host, opaque),
        Err(_) => {
            let stamp = encode_stamp(now);
            let hash = key.hash(&[&stamp, domain, local]);
            format!("SRS0={hash}={stamp}={domain}={local}@{our_domain}")
        }
    }
}

/// The address an SRS local part of ours stands for: the original sender
/// for SRS0 (if the hash matches and it is at most 21 days old), the
/// previous forwarder's SRS0 address for SRS1.
pub fn reverse(local: &str, key: &SrsKey, now: u64) -> Result<String, SrsError> {
    match parse(local)? {
        SrsAddress::Srs0 {
            hash,
            stamp,
            domain,
            local,
        } => {
            if !key.hash_matches(hash, &[stamp, domain, local]) {
                return Err(SrsError::BadHash);
            }
            let stamp = decode_stamp(stamp).ok_or(SrsError::Malformed)?;
            if !fresh(stamp, now) {
                return Err(SrsError::Expired);
            }
            Ok(format!("{local}@{domain}"))
        }
        SrsAddress::Srs1 { hash, host, opaque } => {
            if !key.hash_matches(hash, &[host, opaque]) {
                return Err(SrsError::BadHash);
            }
            Ok(format!("SRS0{opaque}@{host}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_767_225_600; // 2026-01-01

    fn key() -> SrsKey {
        SrsKey::new(b"tops3cret")
    }

    #[test]
    fn srs0_layout_and_round_trip() {
        let fwd = forward("Alice@Example.org", "fwd.test", &key(), NOW);
        let (local, domain) = fwd.rsplit_once('@').unwrap();
        assert_eq!(domain, "fwd.test");
        let fields: Vec<&str> = local.split('=').collect();
        assert_eq!(fields[0], "SRS0");
        assert_eq!(fields[1].len(), 4);
        assert_eq!(fields[2], encode_stamp(NOW));
        assert_eq!(&fields[3..], ["Example.org", "Alice"]);
        assert_eq!(reverse(local, &key(), NOW).unwrap(), "Alice@Example.org");
        // Hash and timestamp are case-insensitive (some MTAs lowercase local parts).
        assert_eq!(
            reverse(&local.to_ascii_lowercase(), &key(), NOW).unwrap(),
            "alice@example.org"
        );
    }

    #[test]
    fn hash_is_hmac_sha1_of_the_lowercased_fields() {
        // HMAC-SHA1("tops3cret", lowercase("" + stamp + domain + local)), base64, 4 chars.
        let stamp = encode_stamp(NOW);
        let mut mac = Hmac::<Sha1>::new_from_slice(b"tops3cret").unwrap();
        mac.update(format!("{}example.orgalice", stamp.to_ascii_lowercase()).as_bytes());
        use base64::Engine;
        let full = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(
            forward("alice@example.org", "fwd.test", &key(), NOW),
            format!("SRS0={}={stamp}=example.org=alice@fwd.test", &full[..4])
        );
        assert_eq!(encode_stamp(NOW), "7G"); // day 20454 % 1024 = 998 = 31*32 + 6
    }

    #[test]
    fn expiry_after_21_days_across_the_wrap() {
        let fwd = forward("a@b.example", "fwd.test", &key(), NOW);
        let local = fwd.rsplit_once('@').unwrap().0;
        assert!(reverse(local, &key(), NOW + 21 * 86400).is_ok());
        assert_eq!(reverse(local, &key(), NOW + 22 * 86400), Err(SrsError::Expired));
        // Made on day 1020 of the 1024-day cycle, checked after the counter wrapped.
        let late = NOW + 22 * 86400;
        let fwd = forward("a@b.example", "fwd.test", &key(), late);
        let local = fwd.rsplit_once('@').unwrap().0;
        assert!(reverse(local, &key(), late + 10 * 86400).is_ok());
        assert_eq!(reverse(local, &key(), late + 22 * 86400), Err(SrsError::Expired));
        assert_eq!(reverse(local, &key(), late - 86400), Err(SrsError::Expired));
    }

    #[test]
    fn srs1_for_forwarded_srs0_and_back() {
        let first = forward("alice@example.org", "one.test", &SrsKey::new(b"one"), NOW);
        let second = forward(&first, "two.test", &key(), NOW);
        let (local, domain) = second.rsplit_once('@').unwrap();
        assert_eq!(domain, "two.test");
        assert!(local.starts_with("SRS1="), "{second}");
        let first_local = first.rsplit_once('@').unwrap().0;
        assert!(local.ends_with(&format!("=one.test={}", &first_local[4..])), "{second}");
        assert_eq!(reverse(local, &key(), NOW).unwrap(), first);
        // A third forwarder keeps pointing at the first one.
        let third = forward(&second, "three.test", &SrsKey::new(b"three"), NOW);
        let local3 = third.rsplit_once('@').unwrap().0;
        assert_eq!(reverse(local3, &SrsKey::new(b"three"), NOW).unwrap(), first);
        assert_eq!(
            reverse(first.rsplit_once('@').unwrap().0, &SrsKey::new(b"one"), NOW).unwrap(),
            "alice@example.org"
        );
    }

    #[test]
    fn our_own_senders_are_not_rewritten() {
        assert_eq!(forward("bob@Fwd.Test", "fwd.test", &key(), NOW), "bob@Fwd.Test");
        assert_eq!(forward("postmaster", "fwd.test", &key(), NOW), "postmaster");
    }

    #[test]
    fn malformed_addresses() {
        assert_eq!(reverse("alice", &key(), NOW), Err(SrsError::NotSrs));
        assert_eq!(
            reverse("SRS0=abcd=2C=example.org", &key(), NOW),
            Err(SrsError::Malformed)
        );
        assert_eq!(reverse("SRS0=abcd=2CC=x=y", &key(), NOW), Err(SrsError::Malformed));
        assert_eq!(reverse("SRS1=abcd=host", &key(), NOW), Err(SrsError::Malformed));
        assert_eq!(
            reverse("SRS0=abcd=2C=example.org=alice", &key(), NOW),
            Err(SrsError::BadHash)
        );
        assert_eq!(reverse("SRS", &key(), NOW), Err(SrsError::NotSrs));
        assert_eq!(reverse("SRS\u{e9}=x", &key(), NOW), Err(SrsError::NotSrs));
    }

    fn address() -> impl Strategy<Value = (String, String)> {
        (
            "[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,30}",
            "[a-z0-9-]{1,20}(\\.[a-z]{2,6}){1,2}",
        )
    }

    proptest! {
        #[test]
        fn reverse_undoes_forward((local, domain) in address(), now in 0u64..4_000_000_000, age in 0u64..=21) {
            prop_assume!(parse(&local).is_err());
            let sender = format!("{local}@{domain}");
            let fwd = forward(&sender, "fwd.test", &key(), now);
            let srs_local = fwd.strip_suffix("@fwd.test").unwrap();
            let back = reverse(srs_local, &key(), now + age * 86400).unwrap();
            prop_assert_eq!(back, sender);
        }

        #[test]
        fn tampered_hashes_are_rejected((local, domain) in address(), i in 0usize..4, c in "[A-Za-z0-9+/]") {
            let fwd = forward(&format!("{local}@{domain}"), "fwd.test", &key(), NOW);
            let srs_local = fwd.strip_suffix("@fwd.test").unwrap();
            let start = 5; // after "SRS0=" or "SRS1="
            let old = &srs_local[start + i..start + i + 1];
            prop_assume!(!old.eq_ignore_ascii_case(&c));
            let tampered = format!("{}{c}{}", &srs_local[..start + i], &srs_local[start + i + 1..]);
            prop_assert_eq!(reverse(&tampered, &key(), NOW), Err(SrsError::BadHash));
            prop_assert!(reverse(srs_local, &SrsKey::new(b"other"), NOW).is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = reverse(&s, &key(), NOW);
        }
    }
}
