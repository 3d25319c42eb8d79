//! greyd in proxy mode in front of mta, as in the README quick start: a
//! whitelisted client reaches mta through greyd, and mta sees (and
//! records) the client's real address from the PROXY v2 header.

use greyd_tests::greyd::Greyd;
use greyd_tests::mta::*;

#[test]
fn whitelisted_client_reaches_mta_through_greyd() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.edit("proxy_from = []", "proxy_from = [\"127.0.0.1\"]");
    let _mta = setup.start();
    let gdir = tempfile::tempdir().unwrap();
    let g = Greyd::start(gdir.path(), &["-S", "0", "--upstream", &setup.smtp.to_string()]);
    g.greydb(&["-a", "127.0.20.1"]);
    let (mut c, banner) = g.smtp_from("127.0.20.1");
    assert!(banner.text().starts_with("mx.test ESMTP mta"), "{banner:?}");
    let ehlo = c.cmd("EHLO sender.test").unwrap();
    assert!(ehlo.lines[0].contains("[127.0.20.1]"), "{ehlo:?}");
    assert_eq!(c.cmd("MAIL FROM:<bob@remote.test>").unwrap().code, 250);
    // Loopback is not a relay network here: the real address decides.
    assert_eq!(c.cmd("RCPT TO:<victim@remote.test>").unwrap().code, 550);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").unwrap().code, 250);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    assert_eq!(c.cmd("Subject: via greyd\r\n\r\nhi\r\n.").unwrap().code, 250);
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.contains("Received: from sender.test ([127.0.20.1])"), "{text}");
}
