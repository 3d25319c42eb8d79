//! Sieve at delivery end to end: scripts in the user's Maildir (active one
//! marked as Pigeonhole does), a global before script from mta.toml, mail
//! sent with Python's smtplib, and the folders and flags checked over IMAP
//! with imaplib, as a mail client would see them. Broken scripts and
//! scripts over a limit keep the message; reject is a 550 at SMTP time
//! for one recipient, else a bounce to the sender; vacation answers a
//! sender once per period, through the queue, from `<>`.

use greyd_tests::mta::*;
use std::path::Path;
use std::process::Command;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const PASS: &str = "pw-sieve";

const SCRIPT: &str = r#"require ["fileinto", "mailbox", "imap4flags", "reject", "variables", "subaddress", "envelope"];
# Lists go to Lists/<name>, flagged, made on first use.
if header :matches "List-Id" "*<*.lists.example>" {
    fileinto :create :flags ["\\Flagged", "$Work"] "Lists/${2}";
    stop;
}
if envelope :detail "to" "seen" { addflag "\\Seen"; }
if header :contains "subject" "reject me" { reject "not wanted here"; }
if header :contains "subject" "five redirects" {
    redirect "a@remote.example"; redirect "b@remote.example"; redirect "c@remote.example";
    redirect "d@remote.example"; redirect "e@remote.example";
}
"#;

/// Put `text` in the Maildir as script `name` and mark it active.
fn install(maildir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(maildir.join("sieve")).unwrap();
    std::fs::write(maildir.join("sieve").join(format!("{name}.sieve")), text).unwrap();
    let link = maildir.join(".dovecot.sieve");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("sieve/{name}.sieve"), link).unwrap();
}

/// Send with smtplib to `to`; what the server said to the message: "ok",
/// or the code and text of a refusal at the end of DATA.
fn try_send(setup: &MtaSetup, from: &str, to: &[&str], headers: &str) -> String {
    let (ok, out, err) = python(
        r#"
import smtplib, sys
port, sender, rcpts, headers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:
        s.sendmail(sender, rcpts.split(","), headers.replace("|", "\r\n") + "\r\n\r\nbody\r\n")
    print("ok")
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
"#,
        &[&setup.smtp.port().to_string(), from, &to.join(","), headers],
    );
    assert!(ok, "{out}{err}");
    out.trim_end().to_string()
}

fn send(setup: &MtaSetup, from: &str, to: &str, headers: &str) {
    assert_eq!(try_send(setup, from, &[to], headers), "ok");
}

/// Per folder: how many messages and the flags of each, as IMAP shows them.
fn imap_view(setup: &MtaSetup, user: &str) -> String {
    let (ok, out, err) = python(
        r#"
import imaplib, ssl, sys, re
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=15)
c.starttls(ssl_context=ctx)
c.login(sys.argv[2], sys.argv[3])
for box in ["INBOX", "Junk", "Lists/rust"]:
    typ, data = c.select('"%s"' % box, readonly=True)
    if typ != "OK":
        print(box, "missing"); continue
    n = int(data[0])
    flags = []
    if n:
        typ, data = c.fetch("1:*", "(FLAGS)")
        for d in data:
            f = re.search(rb"FLAGS \(([^)]*)\)", d).group(1).decode().split()
            flags.append(",".join(sorted(x for x in f if x != "\\Recent")) or "-")
    print(box, n, " ".join(sorted(flags)))
c.logout()
"#,
        &[&setup.imap.port().to_string(), user, PASS],
    );
    assert!(ok, "{out}{err}");
    out
}

fn eventually_view(setup: &MtaSetup, user: &str, want: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = imap_view(setup, user);
        if last == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(last, want);
}

#[test]
fn scripts_file_flag_reject_and_keep_on_failure() {
    let setup = MtaSetup::new();
    setup.add_user(ALICE, PASS);
    setup.add_user(BOB, PASS);
    let before = setup.root().join("before.sieve");
    std::fs::write(
        &before,
        "require \"fileinto\";\nif header :is \"X-Spam\" \"yes\" { fileinto \"Junk\"; stop; }\n",
    )
    .unwrap();
    setup.edit(
        "[delivery]",
        &format!("[delivery]\nsieve_before = {:?}", before.display().to_string()),
    );
    install(&setup.maildir(ALICE), "main", SCRIPT);
    install(
        &setup.maildir(BOB),
        "broken",
        "require \"fileinto\";\nfileinto \"x\"\nkeep;\n",
    );
    let _mta = setup.start();

    send(
        &setup,
        BOB,
        ALICE,
        "Subject: weekly|List-Id: Rust users <rust.lists.example>",
    );
    send(&setup, BOB, ALICE, "Subject: buy now|X-Spam: yes");
    send(&setup, BOB, "alice+seen@example.test", "Subject: hello");
    send(&setup, BOB, ALICE, "Subject: five redirects please");
    eventually_view(
        &setup,
        ALICE,
        "INBOX 2 - \\Seen\nJunk 1 -\nLists/rust 1 $Work,\\Flagged\n",
    );
    // INBOX holds "hello" (\Seen, from +seen) and the message whose script
    // broke the limit of 4 redirects, kept as it came.

    // A script that does not compile is skipped: Bob's mail still arrives.
    send(&setup, ALICE, BOB, "Subject: to bob");
    eventually_view(&setup, BOB, "INBOX 1 -\nJunk 0 \nLists/rust missing\n");

    // reject to Alice alone: refused at the end of DATA with the reason.
    assert_eq!(
        try_send(&setup, BOB, &[ALICE], "Subject: please reject me"),
        "550 5.7.1 not wanted here"
    );
    // With a second recipient the delivery decides: Bob (local) gets the
    // message and a non-delivery report with the reason.
    assert_eq!(try_send(&setup, BOB, &[ALICE, BOB], "Subject: please reject me"), "ok");
    eventually_view(&setup, BOB, "INBOX 3 - - -\nJunk 0 \nLists/rust missing\n");
    // IMAP has moved them to cur/.
    let texts: Vec<String> = std::fs::read_dir(setup.maildir(BOB).join("cur"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(texts.iter().any(|t| t.contains("not wanted here")), "{texts:?}");
    eventually_view(
        &setup,
        ALICE,
        "INBOX 2 - \\Seen\nJunk 1 -\nLists/rust 1 $Work,\\Flagged\n",
    );
}

#[test]
fn vacation_answers_each_sender_once() {
    let setup = MtaSetup::new();
    setup.add_user(ALICE, PASS);
    setup.add_user(BOB, PASS);
    install(
        &setup.maildir(ALICE),
        "away",
        "require \"vacation\";\nvacation :days 3 :subject \"Away\" \"I am away until Monday.\";\n",
    );
    let _mta = setup.start();
    send(
        &setup,
        BOB,
        ALICE,
        "To: Alice <alice@example.test>|Subject: one|Message-ID: <one@example.test>",
    );
    send(
        &setup,
        BOB,
        ALICE,
        "To: alice@example.test|Subject: two|Message-ID: <two@example.test>",
    );
    // Bulk mail and mail that does not name Alice get no reply either.
    send(
        &setup,
        BOB,
        ALICE,
        "To: alice@example.test|Precedence: bulk|Subject: news",
    );
    send(&setup, BOB, ALICE, "To: all@example.test|Subject: to everyone");
    wait_messages(&setup.maildir(ALICE), 4);

    let replies = wait_messages(&setup.maildir(BOB), 1);
    let reply = String::from_utf8_lossy(&replies[0]).into_owned();
    for want in [
        "Return-Path: <>\n",
        "From: alice@example.test\n",
        "To: <bob@example.test>\n",
        "Subject: Away\n",
        "Auto-Submitted: auto-replied",
        "In-Reply-To: <one@example.test>\n",
        "\n\nI am away until Monday.\n",
    ] {
        assert!(reply.contains(want), "{want:?} in {reply}");
    }
    // The reply to the first message was queued when it was delivered;
    // the others' would have been too, so a short wait shows none came.
    std::thread::sleep(std::time::Duration::from_secs(2));
    wait_messages(&setup.maildir(BOB), 1);
    let remembered = std::fs::read_dir(setup.maildir(ALICE).join("sieve/.vacation"))
        .unwrap()
        .count();
    assert_eq!(remembered, 1);
}

/// Every message file in the Maildir's INBOX (new/ and cur/).
fn inbox_texts(maildir: &Path) -> Vec<String> {
    ["new", "cur"]
        .iter()
        .flat_map(|d| std::fs::read_dir(maildir.join(d)).unwrap())
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn include_spamtest_duplicate_and_editheader_at_delivery() {
    let setup = MtaSetup::new();
    setup.add_user(ALICE, PASS);
    let global = setup.root().join("sieve-global");
    std::fs::create_dir_all(&global).unwrap();
    std::fs::write(
        global.join("spam.sieve"),
        r#"require ["fileinto", "spamtest", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "6" { fileinto "Junk"; stop; }
"#,
    )
    .unwrap();
    setup.edit(
        "[delivery]",
        &format!("[delivery]\nsieve_global_dir = {:?}", global.display().to_string()),
    );
    install(
        &setup.maildir(ALICE),
        "edit",
        "require \"editheader\";\ndeleteheader \"X-Internal\";\naddheader \"X-Sieve\" \"filtered\";\n",
    );
    install(
        &setup.maildir(ALICE),
        "main",
        r#"require ["include", "duplicate"];
include :global "spam";
if duplicate { discard; stop; }
include :personal "edit";
"#,
    );
    let _mta = setup.start();
    send(
        &setup,
        BOB,
        ALICE,
        "Subject: cheap|X-Spam-Score: 8.5|Message-ID: <s@example.test>",
    );
    send(
        &setup,
        BOB,
        ALICE,
        "Subject: first|Message-ID: <d@example.test>|X-Internal: secret",
    );
    eventually_view(&setup, ALICE, "INBOX 1 -\nJunk 1 -\nLists/rust missing\n");
    // The same Message-ID again is discarded; another one arrives.
    send(&setup, BOB, ALICE, "Subject: first again|Message-ID: <d@example.test>");
    send(&setup, BOB, ALICE, "Subject: second|Message-ID: <e@example.test>");
    eventually_view(&setup, ALICE, "INBOX 2 - -\nJunk 1 -\nLists/rust missing\n");
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(imap_view(&setup, ALICE), "INBOX 2 - -\nJunk 1 -\nLists/rust missing\n");
    let texts = inbox_texts(&setup.maildir(ALICE));
    assert!(
        texts
            .iter()
            .all(|t| t.starts_with("Return-Path: <bob@example.test>\nX-Sieve: filtered\n")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .all(|t| !t.contains("secret") && !t.contains("first again")),
        "{texts:?}"
    );
}

#[test]
fn mtactl_checks_and_tests_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.sieve");
    let bad = dir.path().join("bad.sieve");
    let mail = dir.path().join("mail.eml");
    std::fs::write(&good, SCRIPT).unwrap();
    std::fs::write(&bad, "keep;\n\nfileinto \"x\";\n").unwrap();
    std::fs::write(&mail, "Subject: w\r\nList-Id: <rust.lists.example>\r\n\r\nx\r\n").unwrap();
    let out = Command::new(greyd_tests::bin("mtactl"))
        .args(["sieve", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(greyd_tests::bin("mtactl"))
        .args(["sieve", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: fileinto needs require \"fileinto\""), "{err}");
    let out = run_ok(
        Command::new(greyd_tests::bin("mtactl"))
            .args(["sieve", "test"])
            .arg(&good)
            .arg(&mail),
    );
    assert_eq!(out, "fileinto Lists/rust (create) flags \\Flagged $Work\n");
}
