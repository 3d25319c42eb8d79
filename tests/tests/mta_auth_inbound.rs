//! Inbound mail authentication end to end: mta on a loopback DNS server
//! holding SPF, DKIM and DMARC records, senders connecting from chosen
//! 127.x addresses, messages signed here with mail-auth and with Debian's
//! python3-dkim. Asserted is what users see: the reply to the end of DATA,
//! the Authentication-Results: header of the delivered copy, and the folder
//! (INBOX or Junk) it landed in; and the ARC seal, checked by python3-dkim.

use greyd_tests::dns::{Broken, DnsServer};
use greyd_tests::mta::*;
use greyd_tests::{Daemon, Reply, SmtpClient, connect_from, free_port};
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rcgen::PublicKeyData;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

const RCPT: &str = "bob@example.test";
/// Allowed by the SPF records below.
const GOOD_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Allowed by none.
const OTHER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A DNS server and an mta using it, with the user bob@example.test.
struct World {
    dns: DnsServer,
    setup: MtaSetup,
    _daemon: Option<Daemon>,
}

fn world() -> World {
    let dns = DnsServer::start();
    let setup = MtaSetup::new();
    setup.use_dns(dns.addr, free_port());
    setup.check_authentication();
    setup.add_user(RCPT, "secret");
    World {
        dns,
        setup,
        _daemon: None,
    }
}

impl World {
    fn start(&mut self) {
        self._daemon = Some(self.setup.start());
    }

    /// One transaction from `ip`; returns the reply to the final dot.
    fn send(&self, ip: Ipv4Addr, helo: &str, mail_from: &str, message: &str) -> Reply {
        let stream = connect_from(IpAddr::V4(ip), self.setup.smtp).unwrap();
        // A dropped DNS query takes the resolver's timeouts before the reply.
        let mut c = SmtpClient::new(stream, Duration::from_secs(90));
        assert_eq!(c.reply().unwrap().code, 220);
        assert_eq!(c.cmd(&format!("EHLO {helo}")).unwrap().code, 250);
        assert_eq!(c.cmd(&format!("MAIL FROM:<{mail_from}>")).unwrap().code, 250);
        assert_eq!(c.cmd(&format!("RCPT TO:<{RCPT}>")).unwrap().code, 250);
        assert_eq!(c.cmd("DATA").unwrap().code, 354);
        c.send_raw(message.as_bytes()).unwrap();
        let reply = c.cmd(".").unwrap();
        let _ = c.cmd("QUIT");
        reply
    }

    fn send_ok(&self, ip: Ipv4Addr, helo: &str, mail_from: &str, message: &str) {
        let r = self.send(ip, helo, mail_from, message);
        assert_eq!(r.code, 250, "{mail_from}: {r:?}");
    }

    /// The delivered messages of a folder (INBOX: `None`) by Subject.
    fn delivered(&self, folder: Option<&str>, n: usize) -> HashMap<String, String> {
        let inbox = self.setup.maildir(RCPT);
        let dir = folder.map_or(inbox.clone(), |f| inbox.join(format!(".{f}")));
        wait_messages(&dir, n)
            .into_iter()
            .map(|m| {
                let text = String::from_utf8(m).unwrap();
                (header(&text, "Subject").expect("Subject"), text)
            })
            .collect()
    }
}

/// A plain message from `from` with a unique Subject.
fn message(from: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{RCPT}>\r\nSubject: {subject}\r\nDate: Thu, 3 Dec 2026 12:00:00 +0000\r\n\
         Message-ID: <{subject}@test>\r\n\r\nHello from {from}.\r\n"
    )
}

/// Every value of header `name` in a delivered (LF) message, unfolded.
fn headers(msg: &str, name: &str) -> Vec<String> {
    let head = msg
        .split("\n\n")
        .next()
        .unwrap()
        .replace("\n\t", " ")
        .replace("\n ", " ");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn header(msg: &str, name: &str) -> Option<String> {
    headers(msg, name).into_iter().next()
}

/// The result of `method` (with property `prop` present, e.g.
/// `smtp.mailfrom`) in our Authentication-Results: header.
fn result(msg: &str, method: &str, prop: &str) -> String {
    let ours: Vec<String> = headers(msg, "Authentication-Results")
        .into_iter()
        .filter(|v| v.starts_with("mx.test;"))
        .collect();
    assert_eq!(ours.len(), 1, "one A-R of ours in {msg}");
    ours[0]
        .split(';')
        .map(str::trim)
        .filter_map(|r| r.strip_prefix(&format!("{method}=")))
        .find(|r| r.contains(prop))
        .and_then(|r| r.split([' ', '(']).next().map(str::to_string))
        .unwrap_or_else(|| panic!("no {method} with {prop} in {}", ours[0]))
}

/// An RSA key pair: the private key (PKCS#8 PEM) and its DKIM TXT record.
fn dkim_key() -> (String, String) {
    use base64::Engine;
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(pair.subject_public_key_info());
    (pair.serialize_pem(), format!("v=DKIM1; k=rsa; p={public}"))
}

/// `message` with a DKIM-Signature made by mail-auth.
fn sign_mail_auth(pem: &str, domain: &str, selector: &str, message: &str) -> String {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let key = RsaKey::<Sha256>::from_key_der(der).unwrap();
    let signature = DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(message.as_bytes())
        .unwrap();
    signature.to_header() + message
}

/// argv: key file, domain, selector; the message on stdin, signed on stdout.
const PY_SIGN: &str = r#"
import dkim, sys
key = open(sys.argv[1], "rb").read()
msg = sys.stdin.buffer.read()
sig = dkim.sign(msg, sys.argv[3].encode(), sys.argv[2].encode(), key,
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
sys.stdout.buffer.write(sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg)
"#;

/// `message` signed by Debian's python3-dkim (with Debian's interpreter).
fn sign_python(pem: &str, domain: &str, selector: &str, message: &str) -> String {
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), pem).unwrap();
    let out = run_with_input(
        Command::new("/usr/bin/python3")
            .args(["-c", PY_SIGN])
            .arg(key.path())
            .args([domain, selector]),
        message.as_bytes(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `n` SPF records, each including the next, the last allowing OTHER_IP:
/// evaluating `name` takes exactly `n` DNS-querying terms.
fn include_chain(dns: &DnsServer, name: &str, n: usize) {
    let link = |i: usize| format!("i{i}.{name}");
    dns.txt(name, &format!("v=spf1 include:{} -all", link(1)));
    for i in 1..n {
        dns.txt(&link(i), &format!("v=spf1 include:{} -all", link(i + 1)));
    }
    dns.txt(&link(n), &format!("v=spf1 ip4:{OTHER_IP} -all"));
}

#[test]
fn spf_results_iprev_and_a_dns_timeout() {
    let mut w = world();
    w.dns.txt("spf.test", "v=spf1 ip4:127.0.0.2 -all");
    w.dns.txt("soft.test", "v=spf1 ip4:127.0.0.2 ~all");
    w.dns.txt("neutral.test", "v=spf1 ?all");
    // Ten DNS-querying terms is the limit (RFC 7208 §4.6.4); eleven is a permerror.
    include_chain(&w.dns, "ten.test", 10);
    include_chain(&w.dns, "eleven.test", 11);
    // Two void lookups (names that do not exist) are allowed, a third is a
    // permerror (RFC 7208 §4.6.4); `exists` of a name with an address is no void.
    w.dns.a("found.test", Ipv4Addr::new(192, 0, 2, 1));
    w.dns.txt(
        "twovoid.test",
        "v=spf1 a:n1.void.test a:n2.void.test exists:found.test -all",
    );
    w.dns.txt(
        "threevoid.test",
        &format!("v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test ip4:{OTHER_IP} -all"),
    );
    w.dns.txt(
        "existsvoid.test",
        &format!("v=spf1 exists:n1.void.test a:n2.void.test mx:n3.void.test ip4:{OTHER_IP} -all"),
    );
    w.dns.break_name("temp.test", Broken::Silent);
    w.start();

    w.send_ok(GOOD_IP, "spf.test", "a@spf.test", &message("a@spf.test", "pass"));
    w.send_ok(OTHER_IP, "client.test", "a@spf.test", &message("a@spf.test", "fail"));
    w.send_ok(
        OTHER_IP,
        "client.test",
        "a@soft.test",
        &message("a@soft.test", "softfail"),
    );
    w.send_ok(
        OTHER_IP,
        "client.test",
        "a@neutral.test",
        &message("a@neutral.test", "neutral"),
    );
    w.send_ok(OTHER_IP, "client.test", "a@none.test", &message("a@none.test", "none"));
    w.send_ok(OTHER_IP, "client.test", "a@ten.test", &message("a@ten.test", "ten"));
    w.send_ok(
        OTHER_IP,
        "client.test",
        "a@eleven.test",
        &message("a@eleven.test", "eleven"),
    );
    for void in ["twovoid", "threevoid", "existsvoid"] {
        let from = format!("a@{void}.test");
        w.send_ok(OTHER_IP, "client.test", &from, &message(&from, void));
    }
    w.send_ok(GOOD_IP, "spf.test", "", &message("mailer-daemon@spf.test", "bounce"));
    // The resolver answers 127.in-addr.arpa itself (RFC 6761): every 127.x
    // is "localhost", whose address is 127.0.0.1.
    w.send_ok(
        Ipv4Addr::LOCALHOST,
        "client.test",
        "a@none.test",
        &message("a@none.test", "iprev"),
    );
    let temp = w.send(OTHER_IP, "client.test", "a@temp.test", &message("a@temp.test", "temp"));
    assert_eq!(temp.code, 451, "{temp:?}");
    assert!(temp.text().starts_with("4.7."), "{temp:?}");

    let got = w.delivered(None, 12);
    let mail_from = |s: &str| result(&got[s], "spf", "smtp.mailfrom");
    assert_eq!(mail_from("pass"), "pass");
    assert_eq!(result(&got["pass"], "spf", "smtp.helo=spf.test"), "pass");
    assert_eq!(result(&got["iprev"], "iprev", "policy.iprev=127.0.0.1"), "pass");
    assert_eq!(mail_from("fail"), "fail");
    assert_eq!(result(&got["fail"], "spf", "smtp.helo=client.test"), "none");
    assert_eq!(result(&got["fail"], "iprev", "policy.iprev=127.0.0.3"), "fail");
    assert_eq!(mail_from("softfail"), "softfail");
    assert_eq!(mail_from("neutral"), "neutral");
    assert_eq!(mail_from("none"), "none");
    assert_eq!(mail_from("ten"), "pass");
    assert_eq!(mail_from("eleven"), "permerror");
    assert_eq!(mail_from("twovoid"), "pass");
    assert_eq!(mail_from("threevoid"), "permerror");
    assert_eq!(mail_from("existsvoid"), "permerror");
    // <>: the HELO identity stands in (RFC 7208 §2.4).
    assert_eq!(result(&got["bounce"], "spf", "smtp.mailfrom=<>"), "pass");
    assert!(!got.contains_key("temp"));
    for msg in got.values() {
        assert_eq!(result(msg, "dmarc", "header.from"), "none");
        // Unsigned: mail-auth writes no dkim= result at all.
        assert!(
            !header(msg, "Authentication-Results").unwrap().contains("dkim="),
            "{msg}"
        );
    }
}

#[test]
fn dkim_and_dmarc_decide_inbox_junk_or_refusal() {
    let mut w = world();
    let (pem, record) = dkim_key();
    for domain in ["signed.test", "nodmarc.test"] {
        w.dns.txt(&format!("sel._domainkey.{domain}"), &record);
    }
    w.dns.txt("_dmarc.signed.test", "v=DMARC1; p=reject");
    for domain in ["reject.test", "quarantine.test", "monitor.test"] {
        w.dns.txt(domain, "v=spf1 ip4:127.0.0.2 -all");
    }
    w.dns.txt("_dmarc.reject.test", "v=DMARC1; p=reject");
    w.dns.txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine");
    w.dns.txt("_dmarc.monitor.test", "v=DMARC1; p=none");
    // SPF passes for a subdomain of the From: domain: aligned only when relaxed.
    w.dns.txt("mail.relaxed.test", "v=spf1 ip4:127.0.0.2 -all");
    w.dns.txt("mail.strict.test", "v=spf1 ip4:127.0.0.2 -all");
    w.dns.txt("_dmarc.relaxed.test", "v=DMARC1; p=reject");
    w.dns.txt("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s");
    w.start();

    // DKIM alone makes DMARC pass under p=reject: SPF has no record here.
    let signed = sign_mail_auth(&pem, "signed.test", "sel", &message("a@signed.test", "dkim-mail-auth"));
    w.send_ok(OTHER_IP, "client.test", "a@signed.test", &signed);
    let py = sign_python(&pem, "signed.test", "sel", &message("a@signed.test", "dkim-python"));
    w.send_ok(OTHER_IP, "client.test", "a@signed.test", &py);
    let changed = sign_mail_auth(&pem, "nodmarc.test", "sel", &message("a@nodmarc.test", "dkim-changed"))
        .replace("Hello from", "Hello, altered, from");
    w.send_ok(OTHER_IP, "client.test", "a@nodmarc.test", &changed);
    let nokey = sign_mail_auth(&pem, "nodmarc.test", "gone", &message("a@nodmarc.test", "dkim-nokey"));
    w.send_ok(OTHER_IP, "client.test", "a@nodmarc.test", &nokey);
    // The same body change under p=reject: refused.
    let forged = sign_mail_auth(&pem, "signed.test", "sel", &message("a@signed.test", "dkim-forged"))
        .replace("Hello from", "Hello, altered, from");
    let r = w.send(OTHER_IP, "client.test", "a@signed.test", &forged);
    assert_eq!(r.code, 550, "{r:?}");

    let r = w.send(
        OTHER_IP,
        "client.test",
        "x@reject.test",
        &message("x@reject.test", "reject"),
    );
    assert_eq!(r.code, 550, "{r:?}");
    assert!(r.text().starts_with("5.7.1 "), "{r:?}");
    w.send_ok(
        GOOD_IP,
        "client.test",
        "x@reject.test",
        &message("x@reject.test", "reject-pass"),
    );
    w.send_ok(
        OTHER_IP,
        "client.test",
        "x@quarantine.test",
        &message("x@quarantine.test", "quarantine"),
    );
    w.send_ok(
        OTHER_IP,
        "client.test",
        "x@monitor.test",
        &message("x@monitor.test", "monitor"),
    );
    w.send_ok(
        GOOD_IP,
        "client.test",
        "b@mail.relaxed.test",
        &message("a@relaxed.test", "relaxed"),
    );
    let r = w.send(
        GOOD_IP,
        "client.test",
        "b@mail.strict.test",
        &message("a@strict.test", "strict"),
    );
    assert_eq!(r.code, 550, "{r:?}");

    let inbox = w.delivered(None, 7);
    assert_eq!(result(&inbox["dkim-mail-auth"], "dkim", "signed.test"), "pass");
    assert_eq!(
        result(&inbox["dkim-mail-auth"], "dmarc", "header.from=signed.test"),
        "pass"
    );
    assert_eq!(result(&inbox["dkim-python"], "dkim", "signed.test"), "pass");
    assert_eq!(
        result(&inbox["dkim-python"], "dmarc", "header.from=signed.test"),
        "pass"
    );
    // mail-auth reports a body hash mismatch as neutral, with the reason in a comment.
    assert_eq!(result(&inbox["dkim-changed"], "dkim", "header.s=sel"), "neutral");
    assert!(
        header(&inbox["dkim-changed"], "Authentication-Results")
            .unwrap()
            .contains("body hash")
    );
    assert_eq!(result(&inbox["dkim-nokey"], "dkim", "header.s=gone"), "permerror");
    assert_eq!(
        result(&inbox["reject-pass"], "dmarc", "header.from=reject.test"),
        "pass"
    );
    assert_eq!(result(&inbox["monitor"], "dmarc", "policy.dmarc=none"), "fail");
    assert_eq!(result(&inbox["relaxed"], "spf", "smtp.mailfrom"), "pass");
    assert_eq!(result(&inbox["relaxed"], "dmarc", "header.from=relaxed.test"), "pass");
    let junk = w.delivered(Some("Junk"), 1);
    assert_eq!(result(&junk["quarantine"], "dmarc", "policy.dmarc=quarantine"), "fail");
}

#[test]
fn forged_results_are_removed_and_submissions_left_alone() {
    let mut w = world();
    w.start();
    // Ours (any case, after a comment) goes, also one claiming the junk mark; others stay.
    let forged = format!(
        "Authentication-Results: mx.test; dmarc=fail policy.action=junk\r\n\
         Authentication-Results: (relay) MX.TEST;\r\n\tdkim=pass header.d=bank.test\r\n\
         Authentication-Results: other.example; spf=pass\r\n{}",
        message("a@none.test", "forged")
    );
    w.send_ok(OTHER_IP, "client.test", "a@none.test", &forged);
    let got = w.delivered(None, 1);
    let msg = &got["forged"];
    let all = headers(msg, "Authentication-Results");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].starts_with("mx.test;") && all[0].contains("spf=none"), "{all:?}");
    assert!(!all[0].contains("header.d=bank.test"), "{all:?}");
    assert_eq!(all[1], "other.example; spf=pass");

    // Port 587 with AUTH: no checks, nothing added or removed.
    let data = tempfile::NamedTempFile::new().unwrap();
    let text = format!(
        "Authentication-Results: mx.test; dkim=pass header.d=bank.test\r\n{}",
        message(RCPT, "submitted")
    );
    std::fs::write(data.path(), text).unwrap();
    let port = w.setup.submission.port().to_string();
    run_ok(
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port", &port, "--tls", "--auth", "PLAIN"])
            .args([
                "--auth-user",
                RCPT,
                "--auth-password",
                "secret",
                "--from",
                RCPT,
                "--to",
                RCPT,
            ])
            .arg("--data")
            .arg(data.path()),
    );
    let got = w.delivered(None, 2);
    let all = headers(&got["submitted"], "Authentication-Results");
    assert_eq!(all, ["mx.test; dkim=pass header.d=bank.test"]);
    let junk = std::fs::read_dir(w.setup.maildir(RCPT).join(".Junk/new")).map_or(0, |d| d.count());
    assert_eq!(junk, 0);
}

/// argv: message file, key record name, TXT value; prints the chain validation.
const PY_ARC_VERIFY: &str = r#"
import dkim, sys
msg = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    return sys.argv[3].encode() if name.rstrip(".") == sys.argv[2] else None
cv, results, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc)
print(cv.decode(), reason)
"#;

#[test]
fn verified_mail_is_arc_sealed_for_forwarding() {
    let mut w = world();
    let (pem, record) = dkim_key();
    let key = w.setup.root().join("arc.test.seal.key");
    std::fs::write(&key, &pem).unwrap();
    w.setup.edit(
        "received_spf = false",
        &format!("received_spf = true\narc_key = \"{}\"", key.display()),
    );
    w.dns.txt("spf.test", "v=spf1 ip4:127.0.0.2 -all");
    w.start();
    w.send_ok(GOOD_IP, "spf.test", "a@spf.test", &message("a@spf.test", "sealed"));
    let got = w.delivered(None, 1);
    let msg = &got["sealed"];
    assert!(
        header(msg, "ARC-Seal").unwrap().starts_with("i=1; a=rsa-sha256"),
        "{msg}"
    );
    let aar = header(msg, "ARC-Authentication-Results").unwrap();
    assert!(aar.starts_with("i=1; mx.test;") && aar.contains("spf=pass"), "{aar}");
    assert!(header(msg, "Received-SPF").unwrap().starts_with("pass "), "{msg}");

    // Debian's python3-dkim checks the seal against the published key.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), msg).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", PY_ARC_VERIFY])
        .arg(file.path())
        .args(["seal._domainkey.arc.test", &record])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("pass"), "{stdout}");
}

/// The gzipped XML attachment of a delivered DMARC report (LF lines).
fn report_xml(msg: &str) -> String {
    use base64::Engine;
    use std::io::Read;
    let part = msg
        .split("\n--")
        .find(|p| p.contains("application/gzip"))
        .unwrap_or_else(|| panic!("no gzip part:\n{msg}"));
    let body: String = part
        .split_once("\n\n")
        .unwrap()
        .1
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    let gz = base64::engine::general_purpose::STANDARD.decode(body.trim()).unwrap();
    let mut xml = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut xml).unwrap();
    xml
}

#[test]
fn dmarc_aggregate_reports_go_to_authorised_addresses() {
    let dns = DnsServer::start();
    let port = free_port();
    // The receiver of the reports, the MX of all three report domains.
    let mut rx = MtaSetup::new();
    rx.listen_smtp(std::net::SocketAddr::from(([127, 0, 0, 5], port)));
    rx.edit(
        "domains = [\"example.test\"]",
        "domains = [\"sender.test\", \"partner.test\", \"thirdparty.test\"]",
    );
    for user in ["dmarc@sender.test", "ok@partner.test", "agg@thirdparty.test"] {
        rx.add_user(user, "pw");
    }
    let _rx = rx.start();
    dns.a("rx.test", Ipv4Addr::new(127, 0, 0, 5));
    for domain in ["sender.test", "partner.test", "thirdparty.test"] {
        dns.mx(domain, 10, "rx.test");
    }
    dns.txt("sender.test", "v=spf1 ip4:127.0.0.2 -all");
    dns.txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=none; rua=mailto:dmarc@sender.test,mailto:ok@partner.test,mailto:agg@thirdparty.test",
    );
    // partner.test takes sender.test's reports; thirdparty.test publishes nothing.
    dns.txt("sender.test._report._dmarc.partner.test", "v=DMARC1");

    let mut w = World {
        dns,
        setup: MtaSetup::new(),
        _daemon: None,
    };
    w.setup.use_dns(w.dns.addr, port);
    w.setup.check_authentication();
    w.setup.add_user(RCPT, "secret");
    w.setup.edit("dmarc_reports = false", "dmarc_reports = true");
    w.setup
        .edit("dmarc_report_interval = \"1d\"", "dmarc_report_interval = \"4s\"");
    w.start();
    w.send_ok(
        GOOD_IP,
        "sender.test",
        "a@sender.test",
        &message("a@sender.test", "one"),
    );
    w.send_ok(
        GOOD_IP,
        "sender.test",
        "a@sender.test",
        &message("a@sender.test", "two"),
    );
    w.send_ok(
        OTHER_IP,
        "sender.test",
        "a@sender.test",
        &message("a@sender.test", "three"),
    );
    w.delivered(None, 3);

    let report = wait_messages(&rx.maildir("dmarc@sender.test"), 1).remove(0);
    let report = String::from_utf8(report).unwrap();
    // The Subject comes as RFC 2047 encoded words; read it as a mail reader does.
    let subject = header(&report, "Subject").unwrap();
    let subject = subject
        .replace("=?us-ascii?Q?", "")
        .replace("?= ", "")
        .replace("?=", "")
        .replace('_', " ");
    assert!(
        subject.starts_with("Report Domain: sender.test Submitter: mx.test Report-ID: <"),
        "{subject}"
    );
    assert_eq!(header(&report, "Auto-Submitted").as_deref(), Some("auto-generated"));
    let xml = report_xml(&report);
    let record = |ip: &str| {
        xml.split("<record>")
            .find(|r| r.contains(&format!("<source_ip>{ip}</source_ip>")))
            .unwrap_or_else(|| panic!("no record for {ip}:\n{xml}"))
            .to_string()
    };
    let good = record("127.0.0.2");
    assert!(
        good.contains("<count>2</count>") && good.contains("<spf>pass</spf>"),
        "{good}"
    );
    let other = record("127.0.0.3");
    assert!(
        other.contains("<count>1</count>") && other.contains("<spf>fail</spf>"),
        "{other}"
    );
    assert!(
        xml.contains("<domain>sender.test</domain>") && xml.contains("<p>none</p>"),
        "{xml}"
    );

    // The authorised outside address got the same report; the other none.
    let copy = wait_messages(&rx.maildir("ok@partner.test"), 1).remove(0);
    assert!(String::from_utf8_lossy(&copy).contains("Report Domain: sender.test"));
    let daemon = w._daemon.as_ref().unwrap();
    daemon.wait_log(
        "<agg@thirdparty.test> did not authorise reports",
        Duration::from_secs(10),
    );
    assert!(std::fs::read_dir(rx.maildir("agg@thirdparty.test").join("new")).map_or(true, |d| d.count() == 0));
}
