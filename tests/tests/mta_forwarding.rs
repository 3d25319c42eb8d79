//! Forwarding with SRS between two of our mta instances: mail that the
//! forwarder (fwd.test) sends on through aliases, virtusertable or a
//! ~/.forward leaves with an SRS0 envelope sender; a bounce to that address
//! comes back through the forwarder to the original sender. `<>` and
//! senders of the forwarder's own domains are never rewritten. Forwarded
//! recipients keep the original's NOTIFY and ORCPT (RFC 3461 §6.2), so the
//! bounce from further on names the address the sender used.

use greyd_tests::dns::DnsServer;
use greyd_tests::mta::{MtaSetup, send_transaction, strip_trace, wait_messages};
use greyd_tests::outbound::{SENDER, sender};
use greyd_tests::users::SystemUser;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

#[test]
fn forwarded_mail_gets_an_srs_sender_and_its_bounce_comes_home() {
    let dns = DnsServer::start();
    let port = greyd_tests::free_port();
    // The origin: alice@sender.test, and final.test where forwarded mail ends.
    let mut origin = sender(&dns, port, &[]);
    origin.edit(
        "domains = [\"sender.test\"]",
        "domains = [\"sender.test\", \"final.test\"]",
    );
    origin.listen_smtp(SocketAddr::from(([127, 0, 0, 12], port)));
    origin.add_user("bob@final.test", "pw");
    origin.write("aliases", "gone: \"|exit 67\"\n");
    dns.mx("sender.test", 10, "mx.sender.test");
    dns.mx("final.test", 10, "mx.sender.test");
    dns.a("mx.sender.test", Ipv4Addr::new(127, 0, 0, 12));
    // The forwarder: fwd.test, its SRS addresses @mx.fwd.test (its hostname).
    let mut fwd = MtaSetup::new();
    fwd.edit("hostname = \"mx.test\"", "hostname = \"mx.fwd.test\"");
    fwd.edit("domains = [\"example.test\"]", "domains = [\"fwd.test\"]");
    fwd.edit("networks = []", "networks = [\"127.0.0.0/8\"]");
    fwd.use_dns(dns.addr, port);
    fwd.listen_smtp(SocketAddr::from(([127, 0, 0, 13], port)));
    dns.mx("fwd.test", 10, "mx.fwd.test");
    dns.a("mx.fwd.test", Ipv4Addr::new(127, 0, 0, 13));
    let user = SystemUser::create("fwd");
    user.write(".forward", "bob@final.test\n");
    fwd.write("aliases", "list: gone@final.test\n");
    fwd.write("virtusertable", "info@fwd.test bob@final.test\n");
    let _origin = origin.start();
    let _fwd = fwd.start();

    let mail = |from: &str, to: &str, subject: &str| {
        let body = format!("From: <{SENDER}>\r\nSubject: {subject}\r\n\r\nhi\r\n");
        send_transaction(fwd.smtp, &format!("<{from}>"), &[&format!("<{to}>")], &body);
    };
    mail(SENDER, "info@fwd.test", "by virtusertable");
    mail(SENDER, &format!("{}@fwd.test", user.name), "by dot-forward");
    mail("", "info@fwd.test", "a bounce forwarded");
    mail("carol@fwd.test", "bob@final.test", "from the forwarder's own domain");
    mail(SENDER, "list@fwd.test", "by alias, to a dead end");
    let dead_end = |rcpt: &str, subject: &str| {
        let body = format!("From: <{SENDER}>\r\nSubject: {subject}\r\n\r\nhi\r\n");
        send_transaction(fwd.smtp, &format!("<{SENDER}>"), &[rcpt], &body);
    };
    dead_end("<list@fwd.test> NOTIFY=NEVER", "dead end, no notice wanted");
    dead_end(
        "<list@fwd.test> NOTIFY=FAILURE ORCPT=rfc822;first+2Bhop@elsewhere.test",
        "dead end, ORCPT given",
    );

    let got = wait_messages(&origin.maildir("bob@final.test"), 4);
    let return_path = |subject: &str| {
        let m = got
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .find(|m| m.contains(&format!("Subject: {subject}\n")))
            .unwrap_or_else(|| panic!("no message {subject:?}"));
        m.lines().next().unwrap().to_string()
    };
    for subject in ["by virtusertable", "by dot-forward"] {
        let rp = return_path(subject);
        let srs = rp
            .strip_prefix("Return-Path: <SRS0=")
            .unwrap_or_else(|| panic!("{subject}: {rp}"));
        let fields: Vec<&str> = srs.trim_end_matches('>').split('=').collect();
        assert_eq!(fields.len(), 4, "{rp}");
        assert_eq!(fields[0].len(), 4, "{rp}");
        assert_eq!(fields[2], "sender.test", "{rp}");
        assert_eq!(fields[3], "alice@mx.fwd.test", "{rp}");
    }
    assert_eq!(return_path("a bounce forwarded"), "Return-Path: <>");
    assert_eq!(
        return_path("from the forwarder's own domain"),
        "Return-Path: <carol@fwd.test>"
    );

    // The dead ends bounce to the SRS address; the forwarder sends them on
    // to alice, except the one whose sender asked for no notice.
    let bounces: Vec<String> = wait_messages(&origin.maildir(SENDER), 2)
        .iter()
        .map(|m| String::from_utf8_lossy(&strip_trace(m, "").1).into_owned())
        .collect();
    let bounce = |subject: &str| {
        bounces
            .iter()
            .find(|b| b.contains(&format!("Subject: {subject}")))
            .unwrap_or_else(|| panic!("no bounce of {subject:?}: {bounces:?}"))
    };
    let first = bounce("by alias, to a dead end");
    assert!(
        first.contains("Subject: Undelivered Mail Returned to Sender"),
        "{first}"
    );
    assert!(first.contains("To: <SRS0="), "addressed to the SRS address: {first}");
    assert!(first.contains("=sender.test=alice@mx.fwd.test>"), "{first}");
    assert!(first.contains("Final-Recipient: rfc822; gone@final.test"), "{first}");
    // No ORCPT from the client: the forwarder supplied the alias it was sent to.
    assert!(first.contains("Original-Recipient: rfc822; list@fwd.test"), "{first}");
    let given = bounce("dead end, ORCPT given");
    assert!(given.contains("Final-Recipient: rfc822; gone@final.test"), "{given}");
    assert!(
        given.contains("Original-Recipient: rfc822; first+hop@elsewhere.test"),
        "{given}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let all = wait_messages(&origin.maildir(SENDER), 2);
    assert_eq!(all.len(), 2, "NOTIFY=NEVER was passed on: no third bounce");
}
