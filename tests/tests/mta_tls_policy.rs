//! Outbound TLS policy end to end: a sending mta resolves through a real
//! DNS server on loopback and delivers to our own mta instances on 127.x
//! addresses, some with the self-signed certificate `mtactl init` makes,
//! some with one from a test CA the sender trusts (`outbound.tls_ca_file`);
//! MTA-STS policies come from HTTPS servers on loopback with test-CA
//! certificates, the policy table from `outbound.tls_policy`, and a peer
//! without STARTTLS is Postfix's smtp-sink.

use greyd_tests::Daemon;
use greyd_tests::dns::DnsServer;
use greyd_tests::mta::{MtaSetup, delivery_line, run_ok, send_transaction, wait_messages};
use greyd_tests::setup::{Body, HttpServer};
use greyd_tests::tls::TestCa;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

const SENDER: &str = "alice@sender.test";
const BOB: &str = "bob@example.test";

/// Everything one test needs: DNS, the test CA, the MX port and the MTA-STS port.
struct World {
    dns: DnsServer,
    ca: TestCa,
    port: u16,
    sts_port: u16,
}

impl World {
    fn new() -> World {
        World {
            dns: DnsServer::start(),
            ca: TestCa::new(),
            port: greyd_tests::free_port(),
            sts_port: greyd_tests::free_port(),
        }
    }

    /// A receiving mta for example.test (user bob) on 127.0.0.`octet`,
    /// named `host` in DNS; `names` gives it a test-CA certificate for
    /// those names, none keeps the self-signed one.
    fn receiver(&self, host: &str, octet: u8, names: Option<&[&str]>) -> (MtaSetup, Daemon) {
        let mut rx = MtaSetup::new();
        rx.listen_smtp(SocketAddr::from(([127, 0, 0, octet], self.port)));
        rx.add_user(BOB, "pw");
        if let Some(names) = names {
            let (cert, key) = self.ca.issue(names);
            std::fs::write(rx.root().join("cert.pem"), cert).unwrap();
            std::fs::write(rx.root().join("key.pem"), key).unwrap();
        }
        self.dns.a(host, Ipv4Addr::new(127, 0, 0, octet));
        let daemon = rx.start();
        (rx, daemon)
    }

    /// Publish an MTA-STS policy for `domain`: the TXT record and an HTTPS
    /// server for mta-sts.`domain` on 127.0.0.`octet`.
    fn sts(&self, domain: &str, octet: u8, policy: &str) -> HttpServer {
        self.sts_as(domain, octet, "text/plain", policy)
    }

    /// The same, served with Content-Type `media`.
    fn sts_as(&self, domain: &str, octet: u8, media: &'static str, policy: &str) -> HttpServer {
        let host = format!("mta-sts.{domain}");
        self.dns.txt(&format!("_mta-sts.{domain}"), "v=STSv1; id=20261203T1");
        self.dns.a(&host, Ipv4Addr::new(127, 0, 0, octet));
        HttpServer::start_tls_on(
            SocketAddr::from(([127, 0, 0, octet], self.sts_port)),
            vec![(
                "/.well-known/mta-sts.txt",
                Body::Typed(media, policy.as_bytes().to_vec()),
            )],
            self.ca.server_config(&[&host]),
        )
    }

    /// The sending mta: trusts the test CA, `table` as its TLS policy table.
    fn sender(&self, table: Option<&str>) -> (MtaSetup, Daemon) {
        let s = MtaSetup::new();
        s.edit("hostname = \"mx.test\"", "hostname = \"out.sender.test\"");
        s.edit("domains = [\"example.test\"]", "domains = [\"sender.test\"]");
        s.edit("networks = []", "networks = [\"127.0.0.0/8\"]");
        s.use_dns(self.dns.addr, self.port);
        s.edit("mta_sts_port = 443", &format!("mta_sts_port = {}", self.sts_port));
        s.write("test-ca.pem", self.ca.pem());
        let mut outbound = format!("[outbound]\ntls_ca_file = {:?}\n", s.root().join("test-ca.pem"));
        if let Some(table) = table {
            s.write("tls_policy", table);
            outbound.push_str(&format!("tls_policy = {:?}\n", s.root().join("tls_policy")));
        }
        s.edit("[outbound]\n", &outbound);
        s.add_user(SENDER, "pw");
        let daemon = s.start();
        (s, daemon)
    }
}

fn send(tx: &MtaSetup, rcpt: &str) {
    send_transaction(
        tx.smtp,
        &format!("<{SENDER}>"),
        &[&format!("<{rcpt}>")],
        &format!("From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: tls policy\r\n\r\nhello\r\n"),
    );
}

#[test]
fn sts_enforce_skips_unlisted_mx_refuses_unverified_and_delivers_to_verified() {
    let w = World::new();
    // stray (preference 5) is not in the policy; mx1 has a self-signed
    // certificate; mx2 one from the CA.
    w.dns.mx("example.test", 5, "stray.example.test");
    w.dns.mx("example.test", 10, "mx1.example.test");
    w.dns.mx("example.test", 20, "mx2.example.test");
    w.dns.a("stray.example.test", Ipv4Addr::new(127, 0, 0, 30));
    let (_rx1, _d1) = w.receiver("mx1.example.test", 31, None);
    let (rx2, _d2) = w.receiver("mx2.example.test", 32, Some(&["mx2.example.test"]));
    let _sts = w.sts(
        "example.test",
        33,
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: mx2.example.test\r\nmax_age: 86400\r\n",
    );
    // other.test enforces too, but its only MX is the unverified one.
    w.dns.mx("other.test", 10, "mx1.example.test");
    let _sts_other = w.sts(
        "other.test",
        34,
        "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n",
    );
    let (tx, out) = w.sender(None);
    send(&tx, BOB);
    send(&tx, "carol@other.test");
    let got = wait_messages(&rx2.maildir(BOB), 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: tls policy"));
    let sent = delivery_line(&out, BOB, "status=sent");
    assert!(
        sent.contains(&format!("relay=mx2.example.test[127.0.0.32]:{}", w.port))
            && sent.contains("tls=TLSv1.3 verified=yes policy=sts"),
        "{sent}"
    );
    let log = out.log();
    assert!(
        log.contains("MX host stray.example.test is not in the MTA-STS policy of example.test; skipped"),
        "{log}"
    );
    assert!(
        !log.contains("stray.example.test[127.0.0.30]"),
        "stray was tried: {log}"
    );
    assert!(
        log.contains("certificate of mx1.example.test not verified"),
        "no reason for refusing mx1: {log}"
    );
    let deferred = delivery_line(&out, "carol@other.test", "status=deferred");
    assert!(
        deferred.contains("dsn=4.7.5") && deferred.contains("certificate of mx1.example.test not verified"),
        "{deferred}"
    );
    let q = run_ok(&mut tx.command("mailq"));
    assert!(q.contains("carol@other.test") && q.contains("not verified"), "{q}");
    // The policy is cached on disk under the queue directory.
    let cached = std::fs::read_to_string(tx.root().join("queue/mta-sts/example.test")).unwrap();
    assert!(
        cached.contains("mx2.example.test") && cached.contains("20261203T1"),
        "{cached}"
    );
}

#[test]
fn sts_testing_delivers_to_an_unverified_peer_and_logs_why() {
    let w = World::new();
    w.dns.mx("example.test", 10, "mx.example.test");
    let (rx, _d) = w.receiver("mx.example.test", 41, None);
    let _sts = w.sts(
        "example.test",
        42,
        "version: STSv1\nmode: testing\nmx: other.example.test\nmax_age: 600\n",
    );
    let (tx, out) = w.sender(None);
    send(&tx, BOB);
    wait_messages(&rx.maildir(BOB), 1);
    let sent = delivery_line(&out, BOB, "status=sent");
    assert!(sent.contains("tls=TLSv1.3 verified=no policy=sts-testing"), "{sent}");
    let log = out.log();
    assert!(
        log.contains("MTA-STS testing for example.test: MX host mx.example.test is not in the MTA-STS policy")
            && log.contains("MTA-STS testing for example.test: certificate of mx.example.test not verified"),
        "{log}"
    );
}

#[test]
fn policy_table_encrypt_defers_without_starttls_and_verify_matches_names() {
    let w = World::new();
    // plain.test: smtp-sink, which offers no STARTTLS.
    w.dns.mx("plain.test", 10, "sink.plain.test");
    w.dns.a("sink.plain.test", Ipv4Addr::new(127, 0, 0, 51));
    let sink = Daemon::spawn({
        let mut c = Command::new("/usr/sbin/smtp-sink");
        c.args(["-u", "nobody", &format!("127.0.0.51:{}", w.port), "10"]);
        c
    });
    greyd_tests::wait_port(SocketAddr::from(([127, 0, 0, 51], w.port)), Duration::from_secs(5));
    // example.test: the certificate names mail.example.test, not the MX host.
    w.dns.mx("example.test", 10, "mx.example.test");
    let (rx, _d) = w.receiver("mx.example.test", 52, Some(&["mail.example.test"]));
    let (tx, out) = w.sender(Some(
        "# test policies\nplain.test encrypt\nexample.test verify match=mail.example.test\n",
    ));
    send(&tx, "someone@plain.test");
    send(&tx, BOB);
    wait_messages(&rx.maildir(BOB), 1);
    let sent = delivery_line(&out, BOB, "status=sent");
    assert!(sent.contains("tls=TLSv1.3 verified=yes policy=table"), "{sent}");
    let deferred = delivery_line(&out, "someone@plain.test", "status=deferred");
    assert!(
        deferred.contains("dsn=4.7.5")
            && deferred.contains("does not offer STARTTLS, which the TLS policy requires")
            && deferred.contains("tls=none"),
        "{deferred}"
    );
    drop(sink);
}

#[test]
fn verify_without_a_matching_name_defers_and_default_is_opportunistic() {
    let w = World::new();
    // Both domains go to one self-signed peer: strict.test must verify, example.test not.
    w.dns.mx("example.test", 10, "mx.example.test");
    w.dns.mx("strict.test", 10, "mx.example.test");
    let (rx, _d) = w.receiver("mx.example.test", 61, None);
    let (tx, out) = w.sender(Some("strict.test verify\n"));
    send(&tx, BOB);
    send(&tx, "dave@strict.test");
    wait_messages(&rx.maildir(BOB), 1);
    let sent = delivery_line(&out, BOB, "status=sent");
    assert!(sent.contains("tls=TLSv1.3 verified=no policy=default"), "{sent}");
    let deferred = delivery_line(&out, "dave@strict.test", "status=deferred");
    assert!(
        deferred.contains("dsn=4.7.5") && deferred.contains("certificate of mx.example.test not verified"),
        "{deferred}"
    );
}

#[test]
fn a_policy_not_served_as_text_plain_is_no_policy() {
    let w = World::new();
    w.dns.mx("example.test", 10, "mx.example.test");
    // Self-signed: an enforced policy would refuse this peer.
    let (rx, _d) = w.receiver("mx.example.test", 71, None);
    let _sts = w.sts_as(
        "example.test",
        72,
        "text/html",
        "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 600\n",
    );
    let (tx, out) = w.sender(None);
    send(&tx, BOB);
    wait_messages(&rx.maildir(BOB), 1);
    let sent = delivery_line(&out, BOB, "status=sent");
    assert!(sent.contains("tls=TLSv1.3 verified=no policy=default"), "{sent}");
    let log = out.log();
    assert!(
        log.contains(
            "mta-sts example.test: fetching the policy: the policy is served as \"text/html\", not text/plain"
        ),
        "{log}"
    );
}

#[test]
fn a_session_kept_from_a_plaintext_domain_is_not_reused_for_one_that_requires_tls() {
    let w = World::new();
    w.dns.mx("example.test", 10, "mx.example.test");
    w.dns.mx("plain.test", 10, "mx.example.test");
    let mut rx = MtaSetup::new();
    rx.listen_smtp(SocketAddr::from(([127, 0, 0, 73], w.port)));
    rx.edit(
        "domains = [\"example.test\"]",
        "domains = [\"example.test\", \"plain.test\"]",
    );
    rx.add_user(BOB, "pw");
    rx.add_user("carol@plain.test", "pw");
    w.dns.a("mx.example.test", Ipv4Addr::new(127, 0, 0, 73));
    let _rx = rx.start();
    let (tx, out) = w.sender(Some("plain.test none\nexample.test encrypt\n"));
    send(&tx, "carol@plain.test");
    let plain = delivery_line(&out, "carol@plain.test", "status=sent");
    assert!(plain.contains("tls=none"), "{plain}");
    // Within the idle time of the plaintext session, to the same server.
    send(&tx, BOB);
    wait_messages(&rx.maildir(BOB), 1);
    let sent = delivery_line(&out, BOB, "status=sent");
    assert!(sent.contains("tls=TLSv1.3 verified=no policy=table"), "{sent}");
}
