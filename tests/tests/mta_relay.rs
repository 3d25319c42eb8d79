//! The open-relay battery against mta on 25, 587 and 465: unauthenticated
//! relaying is refused whatever the address trick, while local mail and
//! authenticated relaying still work.

use greyd_tests::mta::*;

/// Recipients that must never be relayed for an unauthenticated client.
const TRICKS: &[&str] = &[
    "victim@remote.test",
    "victim%remote.test@example.test",
    "victim%remote.test@[127.0.0.1]",
    "remote.test!victim@example.test",
    "@example.test:victim@remote.test",
    "@example.test,@mx.test:victim@remote.test",
    "\"victim@remote.test\"@example.test",
    "\"victim%remote.test\"@example.test",
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "victim@remote.test.",
    "victim@example.test@remote.test",
];

/// Relay battery over STARTTLS/implicit TLS with Python, without AUTH.
const BATTERY_TLS: &str = r#"
import smtplib, ssl, sys
port, mode = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for rcpt in sys.argv[3:]:
    if mode == "smtps":
        s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=10)
    else:
        s = smtplib.SMTP("127.0.0.1", port, timeout=10); s.ehlo(); s.starttls(context=ctx)
    s.ehlo()
    code, _ = s.mail("spammer@remote.test")
    if code != 250:
        print(code); s.close(); continue
    code, msg = s.rcpt("<" + rcpt + ">")
    print(code)
    s.close()
"#;

#[test]
fn unauthenticated_relay_is_refused_on_every_port() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    for rcpt in TRICKS {
        assert_eq!(c.cmd("MAIL FROM:<spammer@remote.test>").unwrap().code, 250);
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).unwrap();
        assert!(r.code >= 500, "port 25 accepted <{rcpt}>: {r:?}");
        assert_eq!(c.cmd("RSET").unwrap().code, 250);
    }
    // Local delivery is still open on 25.
    assert_eq!(c.cmd("MAIL FROM:<spammer@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").unwrap().code, 250);
    for (port, mode) in [
        (setup.smtp.port(), "starttls"),
        (setup.submission.port(), "starttls"),
        (setup.smtps.port(), "smtps"),
    ] {
        let mut args = vec![port.to_string(), mode.to_string()];
        args.extend(TRICKS.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = python(BATTERY_TLS, &args);
        assert!(ok, "{out}{err}");
        for (rcpt, code) in TRICKS.iter().zip(out.lines()) {
            let code: u16 = code.parse().unwrap();
            assert!(code >= 500, "port {port} ({mode}) accepted <{rcpt}>: {code}");
        }
        assert_eq!(out.lines().count(), TRICKS.len());
    }
    // Nothing was queued.
    let q = run_ok(&mut setup.command("mailq"));
    assert!(q.contains("Mail queue is empty"), "{q}");
}

#[test]
fn relay_domains_and_networks_allow_relaying() {
    let setup = MtaSetup::new();
    setup.write("relay-domains", "partner.test\n127.0.0.9\n");
    let _mta = setup.start();
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@sub.partner.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@other.test>").unwrap().code, 550);
    // A client in a relay network (from relay-domains) may relay anywhere.
    let from9 = greyd_tests::connect_from("127.0.0.9".parse().unwrap(), setup.smtp).unwrap();
    let mut c = greyd_tests::SmtpClient::new(from9, std::time::Duration::from_secs(10));
    assert_eq!(c.reply().unwrap().code, 220);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@other.test>").unwrap().code, 250);
}
