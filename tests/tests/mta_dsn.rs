//! Delivery status notifications end to end: a local failure bounces as an
//! RFC 3464 multipart/report (read back with Python's email module), one
//! per message for all its failed recipients; NOTIFY=SUCCESS gets a success
//! report; NOTIFY=NEVER and the null sender get none, except that a failed
//! bounce goes to the postmaster. Bounces to our SRS addresses (computed in
//! Python as libsrs2 does) reach the original sender.

use greyd_tests::mta::*;
use std::time::Duration;

/// One SMTP transaction with DSN parameters; returns the queue id.
fn send(setup: &MtaSetup, mail: &str, rcpts: &[&str], body: &str) -> String {
    send_transaction(setup.smtp, mail, rcpts, body)
}

/// Python prints the report's structure: the top-level type and
/// report-type, each part's type, then the delivery-status groups as
/// `name: value` lines with a blank line between groups.
const DESCRIBE: &str = r#"
import email, sys
from email import policy
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.compat32)
print(m.get_content_type(), m.get_param('report-type'))
print('from', m['From'])
print('to', m['To'])
print('subject', m['Subject'])
print('auto-submitted', m['Auto-Submitted'])
parts = m.get_payload()
print('parts', ' '.join(p.get_content_type() for p in parts))
print('text', parts[0].get_payload(decode=True).decode().replace('\r\n', '\n').replace('\n', ' | '))
for group in parts[1].get_payload():
    print()
    for k, v in group.items():
        print(f'{k}: {v}')
print()
returned = parts[2]
if returned.get_content_type() == 'message/rfc822':
    inner = returned.get_payload()[0]
    print('returned-subject', inner['Subject'])
    print('returned-body', inner.get_payload().strip())
else:
    print('returned-headers', returned.get_payload().replace('\r\n', '\n').replace('\n', ' | '))
"#;

fn describe(msg: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), msg).unwrap();
    let (ok, out, err) = python(DESCRIBE, &[file.path().to_str().unwrap()]);
    assert!(ok, "python: {err}\n{}", String::from_utf8_lossy(msg));
    out
}

fn setup_with_failing_aliases() -> MtaSetup {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    setup.add_user("carol@example.test", "pw");
    setup.write(
        "aliases",
        "broken: \"|exit 1\"\nalso-broken: \"|exit 1\"\npostmaster: carol@example.test\n",
    );
    setup
}

#[test]
fn failure_is_reported_in_one_multipart_report() {
    let setup = setup_with_failing_aliases();
    let mta = setup.start();
    let id = send(
        &setup,
        "<alice@example.test> RET=HDRS ENVID=env+2B42",
        &[
            "<broken@example.test> ORCPT=rfc822;Broken@example.test",
            "<also-broken@example.test>",
        ],
        "From: alice@example.test\r\nSubject: doomed\r\n\r\nsecret body\r\n",
    );
    mta.wait_log(
        &format!("{id}: sender non-delivery notification"),
        Duration::from_secs(10),
    );
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.starts_with("Return-Path: <>\n"), "{text}");
    let d = describe(&msgs[0]);
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(lines[0], "multipart/report delivery-status", "{d}");
    assert_eq!(lines[1], "from Mail Delivery System <MAILER-DAEMON@mx.test>", "{d}");
    assert_eq!(lines[2], "to <alice@example.test>", "{d}");
    assert_eq!(lines[3], "subject Undelivered Mail Returned to Sender", "{d}");
    assert_eq!(lines[4], "auto-submitted auto-replied", "{d}");
    assert_eq!(
        lines[5], "parts text/plain message/delivery-status text/rfc822-headers",
        "{d}"
    );
    assert!(lines[6].contains("<broken@example.test>: failed"), "{d}");
    let groups: Vec<&str> = d.split("\n\n").collect();
    let per_message = groups[1];
    assert!(per_message.contains("Reporting-MTA: dns; mx.test\n"), "{d}");
    assert!(per_message.contains("Original-Envelope-Id: env+42\n"), "{d}");
    assert!(per_message.contains("Arrival-Date: "), "{d}");
    let broken = groups[2];
    for field in [
        "Final-Recipient: rfc822; broken@example.test",
        "Original-Recipient: rfc822; Broken@example.test",
        "Action: failed",
        "Status: 5.",
        "Diagnostic-Code: ",
        "Last-Attempt-Date: ",
    ] {
        assert!(broken.contains(field), "{field} missing in {broken}");
    }
    let also = groups[3];
    assert!(
        also.contains("Final-Recipient: rfc822; also-broken@example.test"),
        "{also}"
    );
    assert!(also.contains("Action: failed"), "{also}");
    assert!(!also.contains("Original-Recipient"), "{also}");
    // RET=HDRS: the headers come back, not the body.
    let returned = groups[4];
    assert!(returned.contains("Subject: doomed"), "{returned}");
    assert!(!text.contains("secret body"), "{text}");
}

#[test]
fn notify_success_gets_a_success_report_with_the_message() {
    let setup = setup_with_failing_aliases();
    let mta = setup.start();
    let id = send(
        &setup,
        "<alice@example.test>",
        &["<carol@example.test> NOTIFY=SUCCESS"],
        "From: alice@example.test\r\nSubject: hello carol\r\n\r\nhi\r\n",
    );
    mta.wait_log(&format!("{id}: sender success notification"), Duration::from_secs(10));
    wait_messages(&setup.maildir("carol@example.test"), 1);
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    let d = describe(&msgs[0]);
    assert!(d.contains("subject Successful Mail Delivery Report\n"), "{d}");
    assert!(
        d.contains("parts text/plain message/delivery-status message/rfc822\n"),
        "{d}"
    );
    assert!(d.contains("Final-Recipient: rfc822; carol@example.test\n"), "{d}");
    assert!(d.contains("Action: delivered\nStatus: 2.0.0\n"), "{d}");
    assert!(d.contains("returned-subject hello carol\nreturned-body hi"), "{d}");
}

#[test]
fn null_sender_and_notify_never_get_none_but_the_postmaster_hears_of_failed_bounces() {
    let setup = setup_with_failing_aliases();
    let mta = setup.start();
    let never = send(
        &setup,
        "<alice@example.test>",
        &["<broken@example.test> NOTIFY=NEVER"],
        "Subject: never tell\r\n\r\nx\r\n",
    );
    let null = send(
        &setup,
        "<>",
        &["<broken@example.test>"],
        "From: MAILER-DAEMON@elsewhere.test\r\nSubject: a bounce\r\n\r\nx\r\n",
    );
    mta.wait_log(
        &format!("{null}: sender non-delivery notification"),
        Duration::from_secs(10),
    );
    mta.wait_log(
        &format!("{never}: to=<broken@example.test>, status=bounced"),
        Duration::from_secs(10),
    );
    // The failed bounce went to the postmaster (carol), nothing to alice.
    let msgs = wait_messages(&setup.maildir("carol@example.test"), 1);
    let d = describe(&msgs[0]);
    assert!(d.contains("to <postmaster@mx.test>\n"), "{d}");
    assert!(d.contains("returned-subject a bounce\n"), "{d}");
    // A message sent after both reaches alice alone: no report came before it.
    send(
        &setup,
        "<bob@remote.test>",
        &["<alice@example.test>"],
        "Subject: later\r\n\r\nx\r\n",
    );
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    std::thread::sleep(Duration::from_millis(500));
    let msgs_after = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert_eq!(msgs_after.len(), 1, "{:?}", String::from_utf8_lossy(&msgs_after[0]));
    assert!(String::from_utf8_lossy(&msgs[0]).contains("Subject: later"));
    assert!(!mta.log().contains(&format!("{never}: sender")), "{}", mta.log());
}

/// argv: key file, original local, original domain, our domain; prints the
/// SRS0 address as libsrs2 writes it (computed here, independently of mta).
const SRS0: &str = r#"
import base64, hashlib, hmac, sys, time
key = open(sys.argv[1]).readline().strip().encode()
local, domain, ours = sys.argv[2:5]
alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
day = int(time.time()) // 86400 % 1024
stamp = alphabet[day >> 5 & 31] + alphabet[day & 31]
digest = hmac.new(key, (stamp + domain + local).lower().encode(), hashlib.sha1).digest()
print("SRS0=%s=%s=%s=%s@%s" % (base64.b64encode(digest).decode()[:4], stamp, domain, local, ours))
"#;

fn srs0(setup: &MtaSetup, local: &str, domain: &str) -> String {
    let key = setup.root().join("srs.key");
    let (ok, out, err) = python(SRS0, &[key.to_str().unwrap(), local, domain, HOST]);
    assert!(ok, "{err}");
    out.trim().to_string()
}

#[test]
fn srs_addresses_lead_back_to_the_original_sender() {
    let setup = setup_with_failing_aliases();
    let key = setup.root().join("srs.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let mta = setup.start();
    // A bounce of mail we forwarded for alice comes back to her, from anywhere.
    let to_alice = srs0(&setup, "alice", DOMAIN);
    send(
        &setup,
        "<>",
        &[&format!("<{to_alice}>")],
        "Subject: your mail bounced\r\n\r\nx\r\n",
    );
    let msgs = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("Subject: your mail bounced"));
    // For a sender elsewhere it is relayed to the original address.
    let to_remote = srs0(&setup, "Dave", "remote.test");
    let id = send(
        &setup,
        "<>",
        &[&format!("<{to_remote}>")],
        "Subject: bounce\r\n\r\nx\r\n",
    );
    // Relayed to the original sender (no DNS answers in this test, so it is deferred).
    mta.wait_log(&format!("{id}: to=<Dave@remote.test>, relay="), Duration::from_secs(40));
    // A forged or altered hash, or a mangled address, is refused at RCPT.
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO client.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<>").unwrap().code, 250);
    let (hash, rest) = to_remote["SRS0=".len()..].split_once('=').unwrap();
    let forged = format!(
        "SRS0={}={rest}",
        if hash.eq_ignore_ascii_case("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    for bad in [
        forged,
        format!("SRS0={hash}={}", rest.replacen("Dave", "Eve", 1)),
        "SRS0=x@mx.test".into(),
    ] {
        let r = c.cmd(&format!("RCPT TO:<{bad}>")).unwrap();
        assert_eq!(r.code, 550, "{bad}: {r:?}");
        assert!(r.text().starts_with("5.1.1 Invalid SRS address"), "{r:?}");
    }
}
