//! The mta's IMAP server end to end, against the real daemon: Python's
//! imaplib over STARTTLS and IMAPS, curl, and mail that SMTP delivered.

use greyd_tests::mta::*;
use greyd_tests::wait_port;
use std::time::Duration;

const USER: &str = "alice@example.test";
const PASS: &str = "alice-pw";

fn started(n: usize) -> (MtaSetup, greyd_tests::Daemon) {
    imap_daemon(USER, PASS, n)
}

fn py(script: &str, args: &[&str]) -> String {
    let (ok, out, err) = python(script, args);
    assert!(ok, "python failed:\n{out}\n{err}");
    out
}

/// Common Python: `connect(kind)` returns a logged-in IMAP4 over STARTTLS ("plain") or IMAPS ("tls").
const PRELUDE: &str = r#"
import imaplib, ssl, sys, os, base64, socket, smtplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
imap_port, imaps_port, user, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def connect(kind):
    if kind == "tls":
        c = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx, timeout=15)
    else:
        c = imaplib.IMAP4("127.0.0.1", imap_port, timeout=15)
        c.starttls(ssl_context=ctx)
    c.login(user, pw)
    return c
"#;

fn run(setup: &MtaSetup, body: &str, extra: &[&str]) -> String {
    let script = format!("{PRELUDE}{body}");
    let (imap, imaps) = (setup.imap.port().to_string(), setup.imaps.port().to_string());
    let mut args = vec![imap.as_str(), imaps.as_str(), USER, PASS];
    args.extend_from_slice(extra);
    py(&script, &args)
}

#[test]
fn starttls_login_and_byte_for_byte_fetch() {
    let (setup, _mta) = started(1);
    let out = run(
        &setup,
        r#"
c = imaplib.IMAP4("127.0.0.1", imap_port, timeout=15)
print("before-tls", " ".join(sorted(x for x in c.capabilities if x in ("LOGINDISABLED", "STARTTLS"))))
try:
    c.login(user, pw); print("login accepted in plaintext")
except imaplib.IMAP4.error as e:
    print("refused", "PRIVACYREQUIRED" in str(e))
c.starttls(ssl_context=ctx)
typ, _ = c.login(user, pw)
print("login", typ)
typ, data = c.select("INBOX")
print("exists", data[0].decode())
typ, data = c.fetch("1", "(UID FLAGS BODY.PEEK[])")
print("meta", data[0][0].decode())
print("body", data[0][1].hex())
typ, data = c.fetch("1", "(FLAGS)")
print("still-unseen", data[0].decode())
c.logout()
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "before-tls LOGINDISABLED STARTTLS");
    assert_eq!(lines[1], "refused True");
    assert_eq!(lines[2], "login OK");
    assert_eq!(lines[3], "exists 1");
    assert!(
        lines[4].starts_with("meta 1 (UID 1 FLAGS (\\Recent) BODY[] {"),
        "{}",
        lines[4]
    );
    // SELECT moved it from new/ into cur/.
    let on_disk = read_cur(&setup)[0].1.clone();
    let crlf = String::from_utf8(on_disk).unwrap().replace('\n', "\r\n");
    let hex = lines[5].strip_prefix("body ").unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let fetched = String::from_utf8(bytes).unwrap();
    assert_eq!(fetched, crlf);
    assert!(fetched.ends_with("Hello number 0.\r\n"));
    assert_eq!(
        lines[6], "still-unseen 1 (FLAGS (\\Recent))",
        "BODY.PEEK must not set \\Seen"
    );
}

/// (file name, contents) of the messages in cur/.
fn read_cur(setup: &MtaSetup) -> Vec<(String, Vec<u8>)> {
    let dir = setup.maildir(USER).join("cur");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_sessions_see_each_others_changes_and_flags_reach_file_names() {
    let (setup, _mta) = started(2);
    let out = run(
        &setup,
        r#"
a = connect("tls"); b = connect("plain")
a.select("INBOX"); b.select("INBOX")
typ, data = a.store("1", "+FLAGS", "(\\Flagged \\Seen)")
print("store", data[0].decode())
print("names", " ".join(sorted(n.split(":2,")[1] for n in os.listdir(os.path.join(sys.argv[5], "cur")))))
typ, data = b.noop()
print("b-sees", [x.decode() for x in b.untagged_responses.pop("FETCH", [])])
a.store("2", "+FLAGS", "(\\Deleted)")
typ, data = a.expunge()
print("a-expunge", [x.decode() for x in data])
b.noop()
print("b-expunge", [x.decode() for x in b.untagged_responses.pop("EXPUNGE", [])])
typ, data = b.search(None, "ALL")
print("b-search", data[0].decode())
typ, data = b.uid("SEARCH", None, "FLAGGED")
print("b-uid-search", data[0].decode())
a.logout(); b.logout()
"#,
        &[setup.maildir(USER).to_str().unwrap()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "store 1 (FLAGS (\\Seen \\Flagged \\Recent))");
    assert_eq!(lines[1], "names  FS", "flags in the Maildir names: {out}");
    assert_eq!(lines[2], "b-sees ['1 (UID 1 FLAGS (\\\\Seen \\\\Flagged))']");
    assert_eq!(lines[3], "a-expunge ['2']");
    assert_eq!(lines[4], "b-expunge ['2']");
    assert_eq!(lines[5], "b-search 1");
    assert_eq!(lines[6], "b-uid-search 1");
    assert_eq!(read_cur(&setup).len(), 1);
}

/// RFC 3501 §7.4.1: no EXPUNGE while the client uses sequence numbers
/// (FETCH, STORE, SEARCH), so its numbers stay right until the next NOOP.
#[test]
fn expunges_wait_while_the_client_uses_sequence_numbers() {
    let (setup, _mta) = started(3);
    let out = run(
        &setup,
        r#"
a = connect("tls"); b = connect("tls")
a.select("INBOX"); b.select("INBOX")
b.untagged_responses.pop("EXISTS")
a.store("1", "+FLAGS", "(\\Deleted)")
a.expunge()
a.append("INBOX", None, None, b"Subject: later\r\n\r\nlate\r\n")
typ, data = b.fetch("2", "(UID)")
print("b-fetch", data[0].decode(), b.untagged_responses.pop("EXISTS", []), "EXPUNGE" in b.untagged_responses)
typ, data = b.store("3", "+FLAGS", "(\\Seen)")
print("b-store", data[0].decode())
b.noop()
print("b-noop", b.untagged_responses.pop("EXPUNGE", []), b.untagged_responses.pop("EXISTS", []))
typ, data = b.fetch("3", "(UID)")
print("b-after", data[0].decode())
a.noop()
print("a-noop", [x.decode() for x in a.untagged_responses.pop("FETCH", [])])
a.logout(); b.logout()
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "b-fetch 2 (UID 2) [b'4'] False", "{out}");
    assert_eq!(lines[1], "b-store 3 (FLAGS (\\Seen))", "{out}");
    assert_eq!(lines[2], "b-noop [b'1'] []", "{out}");
    assert_eq!(lines[3], "b-after 3 (UID 4)", "{out}");
    // a learns of b's \Seen once, by its UID; nothing of its own changes.
    assert_eq!(lines[4], "a-noop ['2 (UID 3 FLAGS (\\\\Seen \\\\Recent))']", "{out}");
}

/// A keyword set by one session is announced to the other with new FLAGS
/// and PERMANENTFLAGS lists, and lasts in dovecot-keywords.
#[test]
fn a_new_keyword_is_announced_to_other_sessions() {
    let (setup, _mta) = started(1);
    let out = run(
        &setup,
        r#"
a = connect("tls"); b = connect("tls")
a.select("INBOX"); b.select("INBOX")
print("b-select", b.untagged_responses.pop("FLAGS", [b""])[-1].decode())
b.untagged_responses.pop("OK", None)
a.store("1", "+FLAGS", "($Label1)")
b.noop()
print("b-flags", b.untagged_responses.pop("FLAGS", [b""])[-1].decode())
print("b-permanent", [x.decode() for x in b.untagged_responses.pop("OK", []) if b"PERMANENTFLAGS" in x])
a.logout(); b.logout()
c = connect("tls"); c.select("INBOX")
print("c-select", c.untagged_responses.pop("FLAGS", [b""])[-1].decode())
c.logout()
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], r"b-select (\Answered \Flagged \Deleted \Seen \Draft)",
        "{out}"
    );
    assert_eq!(
        lines[1], r"b-flags (\Answered \Flagged \Deleted \Seen \Draft $Label1)",
        "{out}"
    );
    assert_eq!(
        lines[2],
        r"b-permanent ['[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Limited']",
        "{out}"
    );
    assert_eq!(
        lines[3], r"c-select (\Answered \Flagged \Deleted \Seen \Draft $Label1)",
        "{out}"
    );
}

#[test]
fn idle_is_woken_by_smtp_delivery() {
    let (setup, _mta) = started(1);
    let out = run(
        &setup,
        r#"
c = connect("tls")
c.select("INBOX")
tag = c._new_tag()
c.send(tag + b" IDLE\r\n")
print("cont", c.readline().decode().strip())
s = smtplib.SMTP("127.0.0.1", int(sys.argv[5]), timeout=15)
s.sendmail("bob@remote.test", [user], "Subject: while idle\r\n\r\nwake up\r\n")
s.quit()
while True:
    line = c.readline().decode().strip()
    if line.endswith("EXISTS"):
        print("untagged", line); break
c.send(b"DONE\r\n")
while True:
    line = c.readline().decode().strip()
    if line.startswith(tag.decode()):
        print("done", line.split(" ", 1)[1]); break
typ, data = c.fetch("2", "(BODY[TEXT])")
print("text", data[0][1].decode().strip())
typ, data = c.fetch("2", "(FLAGS)")
print("seen-now", data[0].decode())
c.logout()
"#,
        &[&setup.smtp.port().to_string()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "cont + idling");
    assert_eq!(lines[1], "untagged * 2 EXISTS");
    assert_eq!(lines[2], "done OK IDLE terminated");
    assert_eq!(lines[3], "text wake up");
    assert_eq!(lines[4], "seen-now 2 (FLAGS (\\Seen \\Recent))", "BODY[] sets \\Seen");
}

const UIDS: &str = r#"
c = connect("tls")
typ, data = c.select("INBOX")
typ, data = c.response("UIDVALIDITY")
print("validity", data[0].decode())
typ, data = c.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print(" ".join(x[0].decode().split()[2] + "=" + x[1].decode().strip().replace(" ", "_") for x in data if isinstance(x, tuple)))
c.logout()
"#;

#[test]
fn uids_survive_restart_and_external_maildir_changes() {
    let (setup, mut mta) = started(2);
    let before = run(&setup, UIDS, &[]);
    let validity = before.lines().next().unwrap().to_string();
    assert_eq!(before.lines().nth(1).unwrap(), "1=Subject:_note_0 2=Subject:_note_1");
    // Another tool (procmail, say) drops a message into new/ while the server runs.
    let new = setup.maildir(USER).join("new").join("1700000000.M1P1.external");
    std::fs::write(&new, "Subject: external\n\nfrom outside\n").unwrap();
    let after = run(&setup, UIDS, &[]);
    assert_eq!(after.lines().next().unwrap(), validity);
    assert_eq!(
        after.lines().nth(1).unwrap(),
        "1=Subject:_note_0 2=Subject:_note_1 3=Subject:_external"
    );
    assert_eq!(mta.terminate(), Some(0));
    let mta2 = setup.start();
    wait_port(setup.imaps, Duration::from_secs(10));
    let restarted = run(&setup, UIDS, &[]);
    assert_eq!(restarted, after, "UIDs and UIDVALIDITY unchanged by a restart");
    drop(mta2);
}

#[test]
fn mailboxes_append_copy_move_and_special_use() {
    let (setup, _mta) = started(1);
    let out = run(
        &setup,
        r#"
c = connect("tls")
typ, data = c.list()
print("list", sorted(x.decode() for x in data))
print("create", c.create("Lists/R&APw-st")[0])
typ, data = c.list('""', "Lists/*")
print("children", [x.decode() for x in data])
typ, data = c.append("Drafts", "(\\Draft)", None, b"Subject: draft\r\n\r\nunfinished\r\n")
print("append", data[0].decode())
c.select("INBOX")
typ, data = c.copy("1", "Archive")
print("copy", data[0].decode())
typ, data = c._simple_command("MOVE", "1", "Trash")
print("move", c.untagged_responses.pop("EXPUNGE", [b""])[0].decode(), typ)
typ, data = c.status("Trash", "(MESSAGES UIDNEXT UNSEEN)")
print("status", data[0].decode())
typ, data = c.status("Drafts", "(MESSAGES)")
print("drafts", data[0].decode())
typ, data = c.append("Nope", None, None, b"Subject: x\r\n\r\ny\r\n")
print("missing", typ, data[0].decode())
c.logout()
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "list ['(\\\\HasNoChildren \\\\Archive) \"/\" \"Archive\"', '(\\\\HasNoChildren \\\\Drafts) \"/\" \"Drafts\"', \
'(\\\\HasNoChildren \\\\Junk) \"/\" \"Junk\"', '(\\\\HasNoChildren \\\\Sent) \"/\" \"Sent\"', \
'(\\\\HasNoChildren \\\\Trash) \"/\" \"Trash\"', '(\\\\HasNoChildren) \"/\" \"INBOX\"']"
    );
    assert_eq!(lines[1], "create OK");
    assert_eq!(lines[2], "children ['(\\\\HasNoChildren) \"/\" \"Lists/R&APw-st\"']");
    assert!(
        lines[3].starts_with("append [APPENDUID ") && lines[3].ends_with(" 1] APPEND completed"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("copy [COPYUID ") && lines[4].ends_with(" 1 1] COPY completed"),
        "{}",
        lines[4]
    );
    assert_eq!(lines[5], "move 1 OK");
    assert_eq!(lines[6], "status \"Trash\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)");
    assert_eq!(lines[7], "drafts \"Drafts\" (MESSAGES 1)");
    assert_eq!(lines[8], "missing NO [TRYCREATE] No such mailbox: Nope");
    assert!(setup.maildir(USER).join(".Lists.Rüst").join("cur").is_dir());
}

#[test]
fn plaintext_commands_pipelined_behind_starttls_are_discarded() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
s = socket.create_connection(("127.0.0.1", imap_port), timeout=15)
f = s.makefile("rb")
print("greeting", f.readline().decode().split()[1])
s.sendall(b"a STARTTLS\r\nb LOGIN " + user.encode() + b" " + pw.encode() + b"\r\n")
print("starttls", f.readline().decode().strip())
t = ctx.wrap_socket(s)
t.sendall(b"c NOOP\r\n")
print("after", t.recv(1000).decode().strip())
"#,
        &[],
    );
    assert_eq!(
        out, "greeting OK\nstarttls a OK Begin TLS negotiation now\nafter c OK completed\n",
        "the injected LOGIN must not be answered"
    );
}

#[test]
fn oversized_and_malformed_input_gets_clean_errors() {
    let (setup, mta) = started(0);
    let out = run(
        &setup,
        r#"
s = socket.create_connection(("127.0.0.1", imap_port), timeout=15)
f = s.makefile("rb")
f.readline()
s.sendall(b"a1 LOGIN {100000000}\r\n")
print(f.readline().decode().strip())
s.sendall(b"a2 " + b"x" * 70000 + b"\r\n")
print(f.readline().decode().strip())
s.sendall(b"a3 FETCH 1:* (FLAGS)\r\n")
print(f.readline().decode().strip())
s.sendall(b"a4 SEARCH " + b"NOT " * 100 + b"ALL\r\n")
print(f.readline().decode().strip())
s.sendall(b"\x00\xff garbage\r\n")
print(f.readline().decode().strip())
s.sendall(b"a5 NOOP\r\n")
print(f.readline().decode().strip())
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("a1 NO [TOOBIG]"), "{out}");
    assert_eq!(lines[1], "a2 BAD Command line too long");
    assert_eq!(lines[2], "a3 BAD Log in first");
    assert_eq!(lines[3], "a4 BAD search nested too deeply");
    assert_eq!(lines[4], "* BAD missing tag");
    assert_eq!(lines[5], "a5 OK completed");
    assert!(!mta.log().contains("panicked"));
}

#[test]
fn failed_logins_are_throttled() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
results = []
for i in range(12):
    c = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx, timeout=15)
    try:
        c.login(user, "wrong"); results.append("ok")
    except imaplib.IMAP4.error as e:
        results.append("throttled" if "UNAVAILABLE" in str(e) else "failed")
    c.shutdown()
c = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx, timeout=15)
try:
    c.login(user, pw); results.append("right-password-ok")
except imaplib.IMAP4.error as e:
    results.append("right-password-" + ("throttled" if "UNAVAILABLE" in str(e) else "failed"))
print(" ".join(results))
"#,
        &[],
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], "failed");
    assert!(words.contains(&"throttled"), "{out}");
    assert_eq!(*words.last().unwrap(), "right-password-throttled", "{out}");
}

#[test]
fn curl_lists_and_fetches_over_imaps() {
    let (setup, _mta) = started(1);
    let base = format!("imaps://127.0.0.1:{}", setup.imaps.port());
    let auth = format!("{USER}:{PASS}");
    let list =
        run_ok(std::process::Command::new("curl").args(["-sSk", "--max-time", "15", "-u", &auth, &format!("{base}/")]));
    assert!(list.contains("\"/\" \"INBOX\""), "{list}");
    assert!(list.contains("\\Sent) \"/\" \"Sent\""), "{list}");
    let msg = run_ok(std::process::Command::new("curl").args([
        "-sSk",
        "--max-time",
        "15",
        "-u",
        &auth,
        &format!("{base}/INBOX;UID=1"),
    ]));
    assert!(msg.starts_with("Return-Path: <bob@remote.test>\r\n"), "{msg}");
    assert!(msg.ends_with("Subject: note 0\r\n\r\nHello number 0.\r\n"), "{msg}");
}

/// Messages in a Maildir folder: (`new/name` or `cur/name`, contents).
fn maildir_files(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let e = e.unwrap();
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            v.push((format!("{sub}/{}", e.file_name().to_string_lossy()), text));
        }
    }
    v.sort();
    v
}

#[test]
fn mbsync_syncs_a_mailbox_both_ways() {
    let (setup, _mta) = started(1);
    let local = setup.root().join("local");
    std::fs::create_dir(&local).unwrap();
    let rc = setup.root().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount acct\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASS}\nSSLType IMAPS\n\
CertificateFile {cert}\n\nIMAPStore remote\nAccount acct\n\nMaildirStore local\nPath {local}/\n\
Inbox {local}/INBOX\nSubFolders Verbatim\n\nChannel sync\nFar :remote:\nNear :local:\n\
Patterns INBOX Sent\nCreate Both\nExpunge Both\nSyncState *\n",
            port = setup.imaps.port(),
            cert = setup.root().join("cert.pem").display(),
            local = local.display(),
        ),
    )
    .unwrap();
    let mbsync = || run_ok(std::process::Command::new("mbsync").arg("-c").arg(&rc).arg("-a"));
    mbsync();
    let down = maildir_files(&local.join("INBOX"));
    assert_eq!(down.len(), 1, "{down:?}");
    assert!(down[0].1.contains("\nSubject: note 0\n"), "{down:?}");
    assert!(down[0].1.ends_with("\n\nHello number 0.\n"), "{down:?}");
    // Locally: flag the synced message and write a new one into Sent.
    let (name, _) = &down[0];
    let base = name.split(":2,").next().unwrap().rsplit('/').next().unwrap();
    std::fs::rename(
        local.join("INBOX").join(name),
        local.join("INBOX").join("cur").join(format!("{base}:2,FS")),
    )
    .unwrap();
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(local.join("Sent").join(sub)).unwrap();
    }
    std::fs::write(
        local.join("Sent").join("cur").join("1700000000.M2P2.local:2,S"),
        "From: alice@example.test\nSubject: sent locally\n\nup it goes\n",
    )
    .unwrap();
    mbsync();
    let server = setup.maildir(USER);
    let inbox = maildir_files(&server);
    assert_eq!(inbox.len(), 1);
    assert!(
        inbox[0].0.ends_with(":2,FS"),
        "flags reach the server's file name: {inbox:?}"
    );
    let sent = maildir_files(&server.join(".Sent"));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].1.contains("Subject: sent locally"), "{sent:?}");
    assert!(sent[0].0.ends_with(":2,S"), "{sent:?}");
}

#[test]
fn authenticate_plain_login_and_sasl_ir() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
c = imaplib.IMAP4("127.0.0.1", imap_port, timeout=15)
print("before-tls", any(x.startswith("AUTH=") for x in c.capabilities))
c.starttls(ssl_context=ctx)
print("after-tls", sorted(x for x in c.capabilities if x.startswith("AUTH=")))
print("plain", c.authenticate("PLAIN", lambda _: b"\0" + user.encode() + b"\0" + pw.encode())[0])
c.logout()
c = connect("tls"); c.logout()
c = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx, timeout=15)
answers = iter([user.encode(), pw.encode()])
print("login-mech", c.authenticate("LOGIN", lambda _: next(answers))[0])
c.logout()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps_port), timeout=15))
f = s.makefile("rb")
f.readline()
ir = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode())
s.sendall(b"x AUTHENTICATE PLAIN " + ir + b"\r\n")
print("sasl-ir", f.readline().decode().split(" ", 2)[1])
s.sendall(b"y AUTHENTICATE PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0wrong") + b"\r\n")
print("again", f.readline().decode().strip())
"#,
        &[],
    );
    assert_eq!(
        out,
        "before-tls False\nafter-tls ['AUTH=LOGIN', 'AUTH=PLAIN', 'AUTH=SCRAM-SHA-256']\nplain OK\n\
login-mech OK\nsasl-ir OK\nagain y BAD Already authenticated\n"
    );
}

#[test]
fn condstore_esearch_and_uid_sets() {
    let (setup, _mta) = started(3);
    let out = run(
        &setup,
        r#"
c = connect("tls")
print("enable", c._simple_command("ENABLE", "CONDSTORE")[0], c.untagged_responses.pop("ENABLED", [b""])[0].decode())
typ, data = c.select("INBOX")
hms = int(c.untagged_responses.pop("HIGHESTMODSEQ")[0])
c.store("2", "+FLAGS", "(\\Seen)")
typ, data = c.fetch("1:*", "(FLAGS) (CHANGEDSINCE %d)" % hms)
print("changed", [x.decode() for x in data])
typ, data = c._simple_command("UID", "STORE", "1", "(UNCHANGEDSINCE 0)", "+FLAGS", "(\\Flagged)")
print("unchanged-since", typ, data[0].decode())
typ, data = c._simple_command("UID", "SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "UNSEEN")
print("esearch", c.untagged_responses.pop("ESEARCH", [b""])[0].decode())
typ, data = c.uid("FETCH", "9:*", "(FLAGS)")
print("star", [x.decode() for x in data if x])
typ, data = c.uid("SEARCH", None, "UID", "2:*", "NOT", "SEEN")
print("uid-search", data[0].decode())
c.logout()
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "enable OK CONDSTORE");
    assert!(
        lines[1].starts_with("changed ['2 (FLAGS (\\\\Seen \\\\Recent) MODSEQ ("),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[1].matches("FLAGS").count(),
        1,
        "only the changed message: {}",
        lines[1]
    );
    assert_eq!(lines[2], "unchanged-since OK [MODIFIED 1] Conditional STORE failed");
    assert!(lines[3].starts_with("esearch (TAG \""), "{}", lines[3]);
    assert!(
        lines[3].ends_with("\") UID MIN 1 MAX 3 COUNT 2 ALL 1,3"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "star ['3 (UID 3 FLAGS (\\\\Recent))']");
    assert_eq!(lines[5], "uid-search 3");
}

#[test]
fn quota_is_reported_and_enforced() {
    let setup = MtaSetup::new();
    setup.edit("quota = 0", "quota = 3000");
    setup.add_user(USER, PASS);
    let _mta = setup.start();
    wait_port(setup.imaps, Duration::from_secs(10));
    let out = run(
        &setup,
        r#"
c = connect("tls")
print("caps", b"QUOTA" in c.capability()[1][0].split())
c.append("INBOX", None, None, b"Subject: small\r\n\r\n" + b"x" * 1000 + b"\r\n")
typ, data = c.getquotaroot("INBOX")
print("root", [[y.decode() for y in x] for x in data])
typ, data = c.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"y" * 2500 + b"\r\n")
print("big", typ, data[0].decode())
typ, data = c.setquota('""', "(STORAGE 100)")
print("set", typ)
c.logout()
"#,
        &[],
    );
    assert_eq!(
        out,
        "caps True\nroot [['\"INBOX\" \"\"'], ['\"\" (STORAGE 1 2)']]\n\
big NO [OVERQUOTA] Mailbox quota exceeded\nset NO\n"
    );
}

#[test]
fn silent_clients_are_logged_out() {
    let setup = MtaSetup::new();
    setup.edit("login_timeout = \"1m\"", "login_timeout = \"2s\"");
    setup.add_user(USER, PASS);
    let _mta = setup.start();
    wait_port(setup.imap, Duration::from_secs(10));
    let out = run(
        &setup,
        r#"
import time
s = socket.create_connection(("127.0.0.1", imap_port), timeout=15)
f = s.makefile("rb")
f.readline()
start = time.monotonic()
print(f.readline().decode().strip())
print("closed", f.readline() == b"", time.monotonic() - start >= 1.5)
"#,
        &[],
    );
    assert_eq!(out, "* BYE Autologout; idle for too long\nclosed True True\n");
}

#[test]
fn list_extended_and_list_status() {
    let (setup, _mta) = started(2);
    let out = run(
        &setup,
        r#"
c = connect("tls")
c.create("Lists/rust"); c.subscribe("Lists/rust")
def show(*args):
    typ, data = c._simple_command("LIST", *args)
    lines = [x.decode() for x in c.untagged_responses.pop("LIST", [])]
    lines += ["STATUS " + x.decode() for x in c.untagged_responses.pop("STATUS", [])]
    print(typ, lines)
show("(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
show('""', "(INBOX Sent)", "RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN))")
show("(SPECIAL-USE)", '""', "*", "RETURN (SPECIAL-USE)")
c.logout()
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "OK ['(\\\\HasNoChildren \\\\Subscribed \\\\Archive) \"/\" \"Archive\"', \
'(\\\\HasNoChildren \\\\Subscribed \\\\Drafts) \"/\" \"Drafts\"', \
'(\\\\HasNoChildren \\\\Subscribed \\\\Junk) \"/\" \"Junk\"', \
'(\\\\NonExistent \\\\HasChildren) \"/\" \"Lists\" (\"CHILDINFO\" (\"SUBSCRIBED\"))', \
'(\\\\HasNoChildren \\\\Subscribed \\\\Sent) \"/\" \"Sent\"', \
'(\\\\HasNoChildren \\\\Subscribed \\\\Trash) \"/\" \"Trash\"']"
    );
    assert_eq!(
        lines[1],
        "OK ['(\\\\HasNoChildren) \"/\" \"INBOX\"', '(\\\\HasNoChildren \\\\Subscribed \\\\Sent) \"/\" \"Sent\"', \
'STATUS \"INBOX\" (MESSAGES 2 UNSEEN 2)', 'STATUS \"Sent\" (MESSAGES 0 UNSEEN 0)']"
    );
    assert_eq!(lines[2].matches("\"/\"").count(), 5, "{}", lines[2]);
    assert!(!lines[2].contains("INBOX"), "{}", lines[2]);
}

#[test]
fn sort_by_subject_sender_size_and_date() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
c = connect("tls")
for frm, subj, date, body, arrived in [
        ("carol@x", "Re: beta", "Tue, 3 Mar 2026 10:00:00 +0000", "a" * 30, '"07-Mar-2026 10:00:00 +0000"'),
        ("alice@x", "gamma", "Mon, 2 Mar 2026 10:00:00 +0000", "b" * 10, '"06-Mar-2026 10:00:00 +0000"'),
        ("bob@x", "[list] Fwd: alpha", "Wed, 4 Mar 2026 10:00:00 +0000", "c" * 20, '"05-Mar-2026 10:00:00 +0000"')]:
    c.append("INBOX", None, arrived, ("From: %s\r\nSubject: %s\r\nDate: %s\r\n\r\n%s\r\n" % (frm, subj, date, body)).encode())
c.select("INBOX")
for criteria in ["(SUBJECT)", "(FROM)", "(REVERSE SIZE)", "(DATE)", "(ARRIVAL)"]:
    typ, data = c.sort(criteria, "UTF-8", "ALL")
    print(criteria, data[0].decode())
typ, data = c.uid("SORT", "(SUBJECT)", "UTF-8", "NOT", "FROM", "bob")
print("uid", data[0].decode())
c.logout()
"#,
        &[],
    );
    assert_eq!(
        out,
        "(SUBJECT) 3 1 2\n(FROM) 2 3 1\n(REVERSE SIZE) 1 3 2\n(DATE) 2 1 3\n(ARRIVAL) 3 2 1\nuid 1 2\n"
    );
}

#[test]
fn qresync_reports_vanished_and_changed_messages() {
    let (setup, _mta) = started(3);
    let out = run(
        &setup,
        r#"
a = connect("tls")
a._simple_command("ENABLE", "QRESYNC")
a.select("INBOX")
validity = a.untagged_responses.pop("UIDVALIDITY")[0].decode()
modseq = a.untagged_responses.pop("HIGHESTMODSEQ")[0].decode()
a.uid("STORE", "1", "+FLAGS", "(\\Seen)")
a.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
a.expunge()
print("a", [x.decode() for x in a.untagged_responses.pop("VANISHED", [])], "EXPUNGE" in a.untagged_responses)
b = connect("plain")
b._simple_command("ENABLE", "QRESYNC")
typ, data = b._simple_command("SELECT", "INBOX", "(QRESYNC (%s %s 1:3))" % (validity, modseq))
b.state = "SELECTED"
print("b", typ, [x.decode() for x in b.untagged_responses.pop("VANISHED", [])],
      [x.decode().split(" MODSEQ")[0] for x in b.untagged_responses.pop("FETCH", [])])
typ, data = b._simple_command("UID", "FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %s VANISHED)" % modseq)
print("fetch", [x.decode() for x in b.untagged_responses.pop("VANISHED", [])],
      [x.decode().split(" MODSEQ")[0] for x in b.untagged_responses.pop("FETCH", [])])
c = connect("tls")
try:
    c._simple_command("SELECT", "INBOX", "(QRESYNC (%s %s))" % (validity, modseq)); print("accepted")
except imaplib.IMAP4.error as e:
    print("not-enabled", e)
"#,
        &[],
    );
    assert_eq!(
        out,
        "a ['2'] False\nb OK ['(EARLIER) 2'] ['1 (UID 1 FLAGS (\\\\Seen)']\n\
fetch ['(EARLIER) 2'] ['1 (UID 1 FLAGS (\\\\Seen)']\n\
not-enabled SELECT command error: BAD [b'ENABLE QRESYNC first']\n"
    );
}

#[test]
fn compress_deflate_carries_the_session() {
    let (setup, _mta) = started(1);
    let out = run(
        &setup,
        r#"
import zlib
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps_port), timeout=15))
f = s.makefile("rb")
f.readline()
s.sendall(b"a LOGIN " + user.encode() + b" " + pw.encode() + b"\r\n")
print(f.readline().decode().split(" ")[1])
# The first compressed command rides in the same packet as COMPRESS.
comp = zlib.compressobj(wbits=-15); decomp = zlib.decompressobj(wbits=-15)
s.sendall(b"b COMPRESS DEFLATE\r\n" + comp.compress(b"c SELECT INBOX\r\nd FETCH 1 (BODY.PEEK[TEXT])\r\n") + comp.flush(zlib.Z_SYNC_FLUSH))
print(f.readline().decode().strip())
text = b""
while b"d OK" not in text:
    chunk = f.read1(65536)
    assert chunk, text
    text += decomp.decompress(chunk)
lines = text.decode().split("\r\n")
print([l for l in lines if "EXISTS" in l or l.startswith(("c ", "d "))])
print("body" , "Hello number 0." in text.decode())
"#,
        &[],
    );
    assert_eq!(
        out,
        "OK\nb OK DEFLATE active\n['* 1 EXISTS', 'c OK [READ-WRITE] SELECT completed', 'd OK FETCH completed']\nbody True\n"
    );
}

#[test]
fn thread_references_and_ordered_subject() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
c = connect("tls")
msgs = [("<a@x>", "", "plan", 1), ("<b@x>", "<a@x>", "Re: plan", 2), ("<c@x>", "", "other", 3),
        ("<d@x>", "<a@x> <b@x>", "Re: plan", 4), ("<e@x>", "<a@x>", "Re: plan", 5)]
for mid, refs, subj, day in msgs:
    head = "Message-ID: %s\r\nSubject: %s\r\nDate: %d Mar 2026 10:00:00 +0000\r\n" % (mid, subj, day)
    if refs:
        head += "References: %s\r\n" % refs
    c.append("INBOX", None, None, (head + "\r\nbody\r\n").encode())
c.select("INBOX")
for alg in ["REFERENCES", "ORDEREDSUBJECT"]:
    typ, data = c.thread(alg, "UTF-8", "ALL")
    print(alg, data[0].decode())
typ, data = c.uid("THREAD", "REFERENCES", "UTF-8", "NOT", "SUBJECT", "other")
print("uid", data[0].decode())
c.logout()
"#,
        &[],
    );
    assert_eq!(
        out,
        "REFERENCES (1 (2 4)(5))(3)\nORDEREDSUBJECT (1 (2)(4)(5))(3)\nuid (1 (2 4)(5))\n"
    );
}

#[test]
fn thread_and_sort_group_by_rfc5256_base_subject() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
c = connect("tls")
# No References or In-Reply-To anywhere: only the subjects tie these together.
subjects = ["plan", "Re: plan", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", "[list] RE: =?UTF-8?B?R3LDvMOfZQ==?= (fwd)", "plan"]
for day, subj in enumerate(subjects, 1):
    head = "Message-ID: <m%d@x>\r\nSubject: %s\r\nDate: %d Mar 2026 10:00:00 +0000\r\n" % (day, subj, day)
    c.append("INBOX", None, None, (head + "\r\nbody\r\n").encode())
c.select("INBOX")
for alg in ["REFERENCES", "ORDEREDSUBJECT"]:
    typ, data = c.thread(alg, "UTF-8", "ALL")
    print(alg, data[0].decode())
typ, data = c.sort("(SUBJECT)", "UTF-8", "ALL")
print("SORT", data[0].decode())
c.logout()
"#,
        &[],
    );
    // REFERENCES step 5: the replies join their original; the second "plan"
    // is no reply, so both originals go under a dummy parent.
    assert_eq!(
        out,
        "REFERENCES ((1 2)(5))(3 4)\nORDEREDSUBJECT (1 (2)(5))(3 4)\nSORT 3 4 1 2 5\n"
    );
}

#[test]
fn status_recent_counts_unclaimed_messages_without_claiming() {
    let (setup, _mta) = started(2);
    let status = r#"
def recent(c):
    typ, data = c.status("INBOX", "(RECENT MESSAGES)")
    return data[0].decode().split("(")[1].rstrip(")")
a = connect("tls")
print(recent(a), "|", recent(a))
b = connect("plain")
b.select("INBOX", readonly=True)
print("after EXAMINE", recent(a))
"#;
    let out = run(
        &setup,
        &format!("{status}b.select('INBOX')\nprint('after SELECT', recent(a))\n"),
        &[],
    );
    assert_eq!(
        out,
        "RECENT 2 MESSAGES 2 | RECENT 2 MESSAGES 2\nafter EXAMINE RECENT 2 MESSAGES 2\nafter SELECT RECENT 0 MESSAGES 2\n"
    );
    // SELECT moved the first two to cur/; the new one waits alone in new/.
    deliver_notes(&setup, USER, 1);
    let out = run(&setup, &format!("{status}print('new', recent(a))\n"), &[]);
    assert_eq!(
        out,
        "RECENT 1 MESSAGES 3 | RECENT 1 MESSAGES 3\nafter EXAMINE RECENT 1 MESSAGES 3\nnew RECENT 1 MESSAGES 3\n"
    );
}

#[test]
fn lsub_and_list_subscribed_show_names_that_do_not_exist() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
c = connect("tls")
c.subscribe("Old"); c.subscribe("Gone/deep"); c.create("Work")
def mine(lines):
    return [x.decode() for x in lines if x and any(n in x.decode() for n in ("Old", "Gone", "Work"))]
for pattern in ["*", "%"]:
    typ, data = c.lsub('""', pattern)
    print("LSUB", pattern, mine(data))
for args in [("(SUBSCRIBED)", '""', "*"), ("(SUBSCRIBED RECURSIVEMATCH)", '""', "%"), ('""', "*")]:
    typ, data = c._simple_command("LIST", *args)
    print("LIST", args[0], mine(c.untagged_responses.pop("LIST", [])))
c.logout()
"#,
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            r#"LSUB * ['(\\Noselect) "/" "Gone/deep"', '(\\Noselect) "/" "Old"']"#,
            r#"LSUB % ['(\\Noselect) "/" "Gone"', '(\\Noselect) "/" "Old"']"#,
            r#"LIST (SUBSCRIBED) ['(\\NonExistent \\Subscribed) "/" "Gone/deep"', '(\\NonExistent \\Subscribed) "/" "Old"']"#,
            r#"LIST (SUBSCRIBED RECURSIVEMATCH) ['(\\NonExistent) "/" "Gone" ("CHILDINFO" ("SUBSCRIBED"))', '(\\NonExistent \\Subscribed) "/" "Old"']"#,
            r#"LIST "" ['(\\HasNoChildren) "/" "Work"']"#,
        ]
    );
}

#[test]
fn qresync_sequence_match_data_narrows_vanished() {
    let (setup, _mta) = started(5);
    let out = run(
        &setup,
        r#"
a = connect("tls")
a._simple_command("ENABLE", "QRESYNC")
a.select("INBOX")
validity = a.untagged_responses.pop("UIDVALIDITY")[0].decode()
modseq = a.untagged_responses.pop("HIGHESTMODSEQ")[0].decode()
a.uid("STORE", "2,4", "+FLAGS", "(\\Deleted)")
a.expunge()
b = connect("plain")
b._simple_command("ENABLE", "QRESYNC")
# Now message 1 is UID 1, 2 is UID 3, 3 is UID 5.
for match in ["", " (1,2 1,3)", " (1,2 1,2)", " (3 5)", " (2:3 3,5)"]:
    b.untagged_responses.clear()
    typ, data = b._simple_command("SELECT", "INBOX", "(QRESYNC (%s %s 1:5%s))" % (validity, modseq, match))
    print(repr(match), typ, [x.decode() for x in b.untagged_responses.pop("VANISHED", [])])
for bad in [" (1:2 1)", " (1:* 1:3)"]:
    try:
        b._simple_command("SELECT", "INBOX", "(QRESYNC (%s %s 1:5%s))" % (validity, modseq, bad)); print("accepted")
    except imaplib.IMAP4.error as e:
        print("BAD", e)
"#,
        &[],
    );
    assert_eq!(
        out,
        "'' OK ['(EARLIER) 2,4']\n' (1,2 1,3)' OK ['(EARLIER) 4']\n' (1,2 1,2)' OK ['(EARLIER) 2,4']\n\
' (3 5)' OK []\n' (2:3 3,5)' OK []\n\
BAD SELECT command error: BAD [b'sequence match sets differ in length']\n\
BAD SELECT command error: BAD [b'no * in sequence match data']\n"
    );
}
