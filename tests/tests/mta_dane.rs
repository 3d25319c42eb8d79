//! DANE (RFC 7672) end to end: a sending mta with `[dns] dnssec` on trusts
//! the key of a signed root zone served on loopback, and delivers to our
//! own mta instances on 127.x addresses whose certificates the TLSA records
//! name, or do not: DANE-EE (3 1 1) with a self-signed certificate, DANE-TA
//! (2 0 1) with a test CA, a signed domain without TLSA, TLSA records in
//! an unsigned child zone, which do not count, and a sender trusting
//! another key, to which every answer is bogus.

use greyd_tests::Daemon;
use greyd_tests::dns::DnsServer;
use greyd_tests::mta::{MtaSetup, delivery_line, wait_messages};
use greyd_tests::outbound::{send, sender};
use greyd_tests::tls::TestCa;
use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

struct World {
    dns: DnsServer,
    port: u16,
}

impl World {
    /// A receiving mta for `domain` (user bob) on 127.0.0.`octet`, its MX
    /// host `mx.DOMAIN`, presenting `cert` (a PEM chain) with `key`.
    fn receiver(&self, domain: &str, octet: u8, cert: &str, key: &str) -> (MtaSetup, Daemon) {
        let mut rx = MtaSetup::new();
        rx.edit("domains = [\"example.test\"]", &format!("domains = [\"{domain}\"]"));
        rx.listen_smtp(SocketAddr::from(([127, 0, 0, octet], self.port)));
        rx.add_user(&format!("bob@{domain}"), "pw");
        std::fs::write(rx.root().join("cert.pem"), cert).unwrap();
        std::fs::write(rx.root().join("key.pem"), key).unwrap();
        let host = format!("mx.{domain}");
        self.dns.mx(domain, 10, &host);
        self.dns.a(&host, Ipv4Addr::new(127, 0, 0, octet));
        let daemon = rx.start();
        (rx, daemon)
    }

    /// TLSA record of `domain`'s MX host, on the MX port.
    fn tlsa(&self, domain: &str, usage: u8, selector: u8, matching: u8, data: &[u8]) {
        let owner = format!("_{}._tcp.mx.{domain}", self.port);
        self.dns.tlsa(&owner, usage, selector, matching, data);
    }

    /// The sending mta, validating DNSSEC with `trust_anchor`; `table` its TLS policy table.
    fn sender(&self, trust_anchor: &str, table: &str) -> (MtaSetup, Daemon) {
        let s = sender(&self.dns, self.port, &[]);
        s.write("root.key", trust_anchor);
        s.edit(
            "dnssec = false",
            &format!("dnssec = true\ntrust_anchor = {:?}", s.root().join("root.key")),
        );
        s.write("tls_policy", table);
        s.edit(
            "[outbound]\n",
            &format!("[outbound]\ntls_policy = {:?}\n", s.root().join("tls_policy")),
        );
        let daemon = s.start();
        (s, daemon)
    }
}

/// A self-signed certificate for `name`: (certificate PEM, key PEM, SHA-256 of its SubjectPublicKeyInfo).
fn self_signed(name: &str) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let spki = Sha256::digest(key.subject_public_key_info()).to_vec();
    (cert.pem(), key.serialize_pem(), spki)
}

#[test]
fn dane_decides_which_certificates_are_good_where_dnssec_proves_the_records() {
    let w = World {
        dns: DnsServer::start_signed(&["insecure.test"]),
        port: greyd_tests::free_port(),
    };
    let ca = TestCa::new();
    let ca_der = CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap();
    let ca_hash = Sha256::digest(ca_der.as_ref()).to_vec();

    // DANE-EE: the key matches; the certificate's name and issuer do not matter.
    let (cert, key, spki) = self_signed("not-the-mx.invalid");
    let (ee, _ee) = w.receiver("ee.test", 61, &cert, &key);
    w.tlsa("ee.test", 3, 1, 1, &spki);
    // DANE-EE whose record names another key.
    let (cert, key, _) = self_signed("mx.mismatch.test");
    let (mismatch, _mismatch) = w.receiver("mismatch.test", 62, &cert, &key);
    w.tlsa("mismatch.test", 3, 1, 1, &[0x55; 32]);
    // DANE-TA: the test CA is the trust anchor, in the chain the server sends.
    let (leaf, key) = ca.issue(&["mx.ta.test"]);
    let (ta, _ta) = w.receiver("ta.test", 63, &format!("{leaf}{}", ca.pem()), &key);
    w.tlsa("ta.test", 2, 0, 1, &ca_hash);
    // DANE-TA, but the certificate names another host.
    let (leaf, key) = ca.issue(&["mx.elsewhere.test"]);
    let (ta_name, _ta_name) = w.receiver("taname.test", 64, &format!("{leaf}{}", ca.pem()), &key);
    w.tlsa("taname.test", 2, 0, 1, &ca_hash);
    // Signed, without TLSA: no DANE, opportunistic TLS; dane-only refuses it.
    let (cert, key, _) = self_signed("mx.plain.test");
    let (plain, _plain) = w.receiver("plain.test", 65, &cert, &key);
    w.dns.mx("only.test", 10, "mx.plain.test");
    // An unsigned zone's TLSA records do not count, even mismatching ones.
    let (cert, key, _) = self_signed("mx.insecure.test");
    let (insecure, _insecure) = w.receiver("insecure.test", 66, &cert, &key);
    w.tlsa("insecure.test", 3, 1, 1, &[0x55; 32]);

    let (tx, out) = w.sender(w.dns.trust_anchor(), "only.test dane-only\n");
    for domain in ["ee", "mismatch", "ta", "taname", "plain", "insecure", "only"] {
        send(&tx, &[&format!("bob@{domain}.test")], "dane");
    }

    let relay = |domain: &str, octet: u8| format!("relay=mx.{domain}[127.0.0.{octet}]:{}", w.port);
    for (domain, octet, rx, tls) in [
        ("ee.test", 61, &ee, "tls=TLSv1.3 verified=dane policy=default"),
        ("ta.test", 63, &ta, "tls=TLSv1.3 verified=dane policy=default"),
        ("plain.test", 65, &plain, "tls=TLSv1.3 verified=no policy=default"),
        ("insecure.test", 66, &insecure, "tls=TLSv1.3 verified=no policy=default"),
    ] {
        let rcpt = format!("bob@{domain}");
        let got = wait_messages(&rx.maildir(&rcpt), 1);
        assert!(String::from_utf8_lossy(&got[0]).contains("Subject: dane"));
        let sent = delivery_line(&out, &rcpt, "status=sent");
        assert!(sent.contains(&relay(domain, octet)) && sent.contains(tls), "{sent}");
    }
    for (rcpt, why) in [
        (
            "bob@mismatch.test",
            "certificate of mx.mismatch.test does not match its TLSA records",
        ),
        ("bob@taname.test", "does not chain to it for mx.taname.test"),
        (
            "bob@only.test",
            "mx.plain.test: no TLSA records, and the dane-only policy requires DANE",
        ),
    ] {
        let deferred = delivery_line(&out, rcpt, "status=deferred");
        assert!(deferred.contains("dsn=4.7.5") && deferred.contains(why), "{deferred}");
    }
    std::thread::sleep(Duration::from_millis(500));
    for (rx, rcpt) in [(&mismatch, "bob@mismatch.test"), (&ta_name, "bob@taname.test")] {
        let new = rx.maildir(rcpt).join("new");
        let count = std::fs::read_dir(&new).map_or(0, |d| d.count());
        assert_eq!(count, 0, "{rcpt} got mail over a connection DANE refused");
    }

    // A sender trusting another key finds every answer bogus: nothing is
    // sent, everything waits.
    let other = DnsServer::start_signed(&[]);
    let (wrong, wrong_out) = w.sender(other.trust_anchor(), "");
    send(&wrong, &["bob@ee.test"], "dane");
    let deferred = delivery_line(&wrong_out, "bob@ee.test", "status=deferred");
    assert!(
        deferred.contains("dsn=4.4.3") && deferred.contains("DNSSEC validation failed"),
        "{deferred}"
    );
    assert_eq!(wait_messages(&ee.maildir("bob@ee.test"), 1).len(), 1);
}
