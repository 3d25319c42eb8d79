//! DKIM signing end to end: keys made with `mtactl dkim generate` (RSA and
//! Ed25519, both at once), mail submitted over 587 with AUTH and mail from
//! `sendmail` signed at acceptance, bounces signed too, mail from other
//! servers not; every signature checked with Debian's python3-dkim against
//! the TXT records mtactl printed.

use greyd_tests::mta::*;
use std::process::Command;
use std::time::Duration;

/// argv: port user password rcpt; submits over STARTTLS with AUTH PLAIN.
const SUBMIT: &str = r#"
import smtplib, ssl, sys
port, user, pw, rcpt = sys.argv[1:5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(port), timeout=10)
s.starttls(context=ctx)
s.login(user, pw)
s.sendmail(user, [rcpt], "From: Alice <" + user + ">\r\nTo: " + rcpt + "\r\nSubject: signed\r\n"
           "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <dkim-test@example.test>\r\n\r\n"
           "Hello,  signed world. \r\n\r\n")
s.quit()
"#;

/// argv: message file, then `name=value` TXT records; prints `a=ALG result` per signature.
const VERIFY: &str = r#"
import dkim, sys
msg = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
records = dict(a.split("=", 1) for a in sys.argv[2:])
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    value = records.get(name)
    return value.encode() if value is not None else None
d = dkim.DKIM(msg)
n = sum(1 for line in msg.split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
for i in range(n):
    try:
        ok = d.verify(idx=i, dnsfunc=dnsfunc)
    except Exception:  # e.g. nacl refusing an RSA signature for an Ed25519 key
        ok = False
    print("a=" + d.signature_fields[b"a"].decode(), "pass" if ok else "fail")
"#;

/// `mtactl dkim generate`; returns (DNS name, TXT value) from the printed record.
fn generate(setup: &MtaSetup, args: &[&str]) -> (String, String) {
    let out = run_ok(
        Command::new(greyd_tests::bin("mtactl"))
            .args(["dkim", "generate"])
            .args(args)
            .arg("--config")
            .arg(&setup.config),
    );
    let (name, rest) = out.trim().split_once(" IN TXT ").expect(&out);
    let value: String = rest.split('"').skip(1).step_by(2).collect();
    (name.to_string(), value)
}

fn verify(msg: &[u8], records: &[(String, String)]) -> Vec<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), msg).unwrap();
    let mut args = vec![file.path().to_str().unwrap().to_string()];
    args.extend(records.iter().map(|(n, v)| format!("{n}={v}")));
    // python3-dkim is Debian's: use Debian's interpreter, whatever else is on PATH.
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(VERIFY)
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn header_count(msg: &[u8]) -> usize {
    String::from_utf8_lossy(msg).matches("\nDKIM-Signature:").count()
}

#[test]
fn submitted_and_local_mail_and_bounces_are_signed_with_both_keys() {
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "alice-pw");
    setup.add_user("bob@example.test", "bob-pw");
    setup.write("aliases", "broken: \"|exit 1\"\n");
    let rsa = generate(&setup, &["example.test"]);
    assert_eq!(rsa.0, "mta._domainkey.example.test.");
    assert!(rsa.1.starts_with("v=DKIM1; k=rsa; p="), "{rsa:?}");
    let ed = generate(&setup, &["example.test", "--algorithm", "ed25519", "--selector", "ed1"]);
    assert_eq!(ed.0, "ed1._domainkey.example.test.");
    assert!(ed.1.starts_with("v=DKIM1; k=ed25519; p="), "{ed:?}");
    let key = setup.root().join("dkim/example.test.mta.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // A second key under the same name is refused, never overwritten.
    let again = Command::new(greyd_tests::bin("mtactl"))
        .args(["dkim", "generate", "example.test", "--config"])
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(!again.status.success());
    // The host name signs the bounces.
    let host_record = generate(&setup, &[HOST]);
    let records = vec![rsa.clone(), ed.clone()];

    let mta = setup.start();
    let (ok, out, err) = python(
        SUBMIT,
        &[
            &setup.submission.port().to_string(),
            "alice@example.test",
            "alice-pw",
            "bob@example.test",
        ],
    );
    assert!(ok, "{out}{err}");
    let msgs = wait_messages(&setup.maildir("bob@example.test"), 1);
    assert_eq!(header_count(&msgs[0]), 2, "{}", String::from_utf8_lossy(&msgs[0]));
    assert_eq!(
        verify(&msgs[0], &records),
        ["a=ed25519-sha256 pass", "a=rsa-sha256 pass"]
    );
    // The wrong key for a selector fails: the check can fail.
    let swapped = vec![(rsa.0.clone(), ed.1.clone()), (ed.0.clone(), rsa.1.clone())];
    assert!(verify(&msgs[0], &swapped).iter().all(|r| r.ends_with(" fail")));

    // Local mail through sendmail is signed as well.
    let out = run_with_input(
        setup
            .command("sendmail")
            .args(["-f", "alice@example.test", "bob@example.test"]),
        b"From: alice@example.test\nSubject: from cron\n\nlocal\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let msgs = wait_messages(&setup.maildir("bob@example.test"), 2);
    assert_eq!(
        verify(&msgs[1], &records),
        ["a=ed25519-sha256 pass", "a=rsa-sha256 pass"]
    );

    // Mail from another server over port 25 is not ours to sign.
    let mut c = smtp(setup.smtp);
    assert_eq!(c.cmd("EHLO remote.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<carol@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<bob@example.test>").unwrap().code, 250);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    assert_eq!(
        c.cmd("From: alice@example.test\r\nSubject: forged\r\n\r\nx\r\n.")
            .unwrap()
            .code,
        250
    );
    let msgs = wait_messages(&setup.maildir("bob@example.test"), 3);
    assert_eq!(header_count(&msgs[2]), 0, "{}", String::from_utf8_lossy(&msgs[2]));

    // A bounce is signed for the host name's domain.
    c.cmd("MAIL FROM:<alice@example.test>").unwrap();
    c.cmd("RCPT TO:<broken@example.test>").unwrap();
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    assert_eq!(c.cmd("Subject: doomed\r\n\r\nx\r\n.").unwrap().code, 250);
    mta.wait_log("sender non-delivery notification", Duration::from_secs(10));
    let bounce = wait_messages(&setup.maildir("alice@example.test"), 1);
    assert_eq!(header_count(&bounce[0]), 1, "{}", String::from_utf8_lossy(&bounce[0]));
    assert_eq!(verify(&bounce[0], &[host_record]), ["a=rsa-sha256 pass"]);
}
