//! The mta's IMAP4rev2 side end to end: ENABLE IMAP4rev2 and its response
//! rules, SEARCHRES, BINARY, STATUS=SIZE/DELETED and MULTIAPPEND, spoken by
//! Python's imaplib over IMAPS, and by a raw TLS socket where imaplib cannot
//! say it (literal8, several messages in one APPEND).

use greyd_tests::mta::*;

const USER: &str = "alice@example.test";
const PASS: &str = "alice-pw";

fn started(n: usize) -> (MtaSetup, greyd_tests::Daemon) {
    imap_daemon(USER, PASS, n)
}

/// Common Python: `connect()` is a logged-in imaplib IMAP4_SSL; `Raw()` a
/// logged-in raw TLS client ([`RAW_IMAPS_CLIENT`]).
const PRELUDE: &str = r#"
import imaplib, base64, os
def connect():
    c = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx, timeout=15)
    c.login(user, pw)
    return c
def caps(c):
    return c.capability()[1][0].decode().upper().split()
def pop(c, name):
    return [x.decode() if isinstance(x, bytes) else x for x in c.untagged_responses.pop(name, [])]
Raw = RawClient
"#;

fn run(setup: &MtaSetup, body: &str) -> String {
    imaps_python(setup, USER, PASS, PRELUDE, body)
}

#[test]
fn enable_imap4rev2_switches_the_response_rules() {
    let (setup, _mta) = started(3);
    let out = run(
        &setup,
        r#"
old = connect()
print("caps", "IMAP4REV1" in caps(old) and "IMAP4REV2" in caps(old),
      sorted(x for x in caps(old) if x.startswith("LITERAL")))
old.select("INBOX")
print("rev1-recent", pop(old, "RECENT"))
typ, data = old.search(None, "ALL")
print("rev1-search", data[0].decode())

c = connect()
typ, data = c._simple_command("ENABLE", "IMAP4rev2")
print("enable", typ, pop(c, "ENABLED"))
c.select("INBOX")
print("select", pop(c, "RECENT"), pop(c, "UNSEEN"), pop(c, "LIST"), pop(c, "EXISTS"))
typ, data = c.fetch("1", "(FLAGS)")
print("flags", data[0].decode())
typ, data = c._simple_command("SEARCH", "ALL")
print("esearch", typ, re.sub(r'TAG "[^"]+"', "TAG t", pop(c, "ESEARCH")[0]), pop(c, "SEARCH"))
typ, data = c._simple_command("UID", "SEARCH", "SUBJECT", "nothing-like-this")
print("empty", re.sub(r'TAG "[^"]+"', "TAG t", pop(c, "ESEARCH")[0]))
c.store("2", "+FLAGS", "(\\Deleted)")
typ, data = c.fetch("1:3", "(RFC822.SIZE)")
size = sum(int(re.search(rb"RFC822.SIZE (\d+)", x).group(1)) for x in data)
typ, data = c.status("INBOX", "(MESSAGES DELETED SIZE)")
print("status", data[0].decode().endswith(" (MESSAGES 3 DELETED 1 SIZE %d)" % size))
typ, data = c._simple_command("LIST", '""', "INBOX", "RETURN", "(STATUS (DELETED SIZE))")
print("list-status", pop(c, "STATUS")[0].endswith(" (DELETED 1 SIZE %d)" % size))
old.append("INBOX", None, None, b"Subject: late\r\n\r\nlate\r\n")
c.noop()
print("new-mail", pop(c, "EXISTS"), pop(c, "RECENT"))
c.select("Sent")
print("closed", "CLOSED" in c.untagged_responses)
old.create("Entw&APw-rfe")
typ, data = c.list('""', "Entw*")
def text(data):
    return b"".join(x if isinstance(x, bytes) else x[1] for x in data).decode("utf-8")
print("utf8-list", [x[1].decode("utf-8") for x in data if isinstance(x, tuple)], old.list('""', "Entw*")[1][0].decode().split()[-1])
r = Raw()
r.cmd(b"ENABLE IMAP4rev2")
print("utf8-select", r.cmd('SELECT "Entwürfe"'.encode())[1].split()[1].decode())
print("enable-selected", r.cmd(b"ENABLE CONDSTORE")[1].split()[1].decode())
big = b"Subject: big\r\n\r\n" + b"y" * 6000 + b"\r\n"
untagged, tagged = r.cmd(b"APPEND INBOX {%d+}\r\n" % len(big) + big)
print("literal-plus", tagged.split()[1].decode())
u = connect()
u.enable("UTF8=ACCEPT")
print("utf8-accept", u.select('"Entwürfe"')[0], text(u.status('"Entwürfe"', "(MESSAGES)")[1]))
c.logout(); old.logout(); u.logout()
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "caps True ['LITERAL+']");
    assert_eq!(lines[1], "rev1-recent ['3']");
    assert_eq!(lines[2], "rev1-search 1 2 3");
    assert_eq!(lines[3], "enable OK ['IMAP4rev2']");
    assert_eq!(lines[4], r#"select [] [] ['(\\HasNoChildren) "/" "INBOX"'] ['3']"#);
    assert_eq!(lines[5], "flags 1 (FLAGS ())", "no \\Recent under IMAP4rev2");
    assert_eq!(lines[6], "esearch OK (TAG t) ALL 1:3 []");
    assert_eq!(lines[7], "empty (TAG t) UID");
    assert_eq!(lines[8], "status True");
    assert_eq!(lines[9], "list-status True");
    assert_eq!(lines[10], "new-mail ['4'] []");
    assert_eq!(lines[11], "closed True");
    assert_eq!(
        lines[12], "utf8-list ['Entwürfe'] \"Entw&APw-rfe\"",
        "UTF-8 names under IMAP4rev2 only"
    );
    assert_eq!(lines[13], "utf8-select OK");
    assert_eq!(lines[14], "enable-selected BAD", "ENABLE only before SELECT");
    assert_eq!(
        lines[15], "literal-plus OK",
        "LITERAL+ still holds under IMAP4rev2: a non-synchronizing literal over 4096 octets"
    );
    assert_eq!(
        lines[16], "utf8-accept OK Entwürfe (MESSAGES 0)",
        "and after ENABLE UTF8=ACCEPT"
    );
}

#[test]
fn searchres_saves_a_result_for_dollar() {
    let (setup, _mta) = started(5);
    let out = run(
        &setup,
        r#"
c = connect()
print("caps", "SEARCHRES" in caps(c))
c.select("INBOX")
typ, data = c._simple_command("FETCH", "$", "(FLAGS)")
print("empty-before", typ, pop(c, "FETCH"))
typ, data = c._simple_command("SEARCH", "RETURN", "(SAVE)", "OR", "SUBJECT", '"note 1"', "SUBJECT", '"note 3"')
print("save", typ, pop(c, "ESEARCH"), pop(c, "SEARCH"))
c._simple_command("FETCH", "$", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("fetch", [(x[0].split()[0].decode(), x[1].decode().strip()) for x in pop(c, "FETCH") if isinstance(x, tuple)])
typ, data = c._simple_command("UID", "FETCH", "$", "(FLAGS)")
print("uid-fetch", sorted(re.search(r"UID (\d+)", x).group(1) for x in pop(c, "FETCH")))
c._simple_command("STORE", "$", "+FLAGS.SILENT", "(\\Flagged)")
typ, data = c.search(None, "FLAGGED")
print("stored", data[0].decode())
typ, data = c.search(None, "$", "SUBJECT", '"note 3"')
print("search-dollar", data[0].decode())
typ, data = c._simple_command("SEARCH", "RETURN", "(SAVE MAX)", "FLAGGED")
print("save-max", re.sub(r'TAG "[^"]+"', "TAG t", pop(c, "ESEARCH")[0]))
typ, data = c._simple_command("FETCH", "$", "(UID)")
print("max-only", pop(c, "FETCH"))
typ, data = c._simple_command("SEARCH", "RETURN", "(SAVE COUNT)", "FLAGGED")
print("save-count", re.sub(r'TAG "[^"]+"', "TAG t", pop(c, "ESEARCH")[0]))
c.store("2", "+FLAGS", "(\\Deleted)"); c.expunge()
typ, data = c._simple_command("FETCH", "$", "(UID)")
print("after-expunge", pop(c, "FETCH"))
typ, data = c._simple_command("MOVE", "$", "Trash")
print("move", typ, c.select("Trash")[1][0].decode())
typ, data = c._simple_command("FETCH", "$", "(UID)")
print("reset-by-select", typ, pop(c, "FETCH"))
try:
    c._simple_command("FETCH", "$,1", "(UID)"); print("accepted")
except imaplib.IMAP4.error as e:
    print("bad", "BAD" in str(e) or "expected" in str(e))
c.logout()
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "caps True");
    assert_eq!(lines[1], "empty-before OK []", "no saved result is the empty set");
    assert_eq!(lines[2], "save OK [] []", "SAVE alone answers no ESEARCH");
    assert_eq!(lines[3], "fetch [('2', 'Subject: note 1'), ('4', 'Subject: note 3')]");
    assert_eq!(lines[4], "uid-fetch ['2', '4']");
    assert_eq!(lines[5], "stored 2 4");
    assert_eq!(lines[6], "search-dollar 4");
    assert_eq!(lines[7], "save-max (TAG t) MAX 4");
    assert_eq!(lines[8], "max-only ['4 (UID 4)']", "with MAX only the maximum is saved");
    assert_eq!(lines[9], "save-count (TAG t) COUNT 2");
    assert_eq!(
        lines[10], "after-expunge ['3 (UID 4)']",
        "expunged messages leave the saved result"
    );
    assert_eq!(lines[11], "move OK 1");
    assert_eq!(lines[12], "reset-by-select OK []");
    assert_eq!(lines[13], "bad True");
}

#[test]
fn binary_fetch_decodes_transfer_encodings() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
payload = bytes(range(256)) * 3 + b"\x00end"
b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
msg = (b"From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
       b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
       b"Gr=C3=BC=C3=9Fe, =\r\nWelt\r\n"
       b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 +
       b"--XX\r\nContent-Type: application/x-old\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n"
       b"--XX--\r\n")
c = connect()
print("caps", "BINARY" in caps(c))
c.append("INBOX", None, None, msg)
c.select("INBOX")
typ, data = c.fetch("1", "(BINARY.PEEK[2] BINARY.SIZE[2])")
print("attachment", data[0][1] == payload, data[0][0].decode().endswith("BINARY[2] ~{%d}" % len(payload)),
      data[1].decode())
typ, data = c.fetch("1", "(BINARY.PEEK[2]<256.4>)")
print("partial", data[0][0].decode().split(" ", 1)[1], list(data[0][1]))
typ, data = c.fetch("1", "(BINARY.PEEK[1])")
print("text", repr(data[0][1].decode("utf-8")))
typ, data = c.fetch("1", "(BINARY.PEEK[3])")
print("unknown-cte", typ, data[0].decode().startswith("[UNKNOWN-CTE]"))
typ, data = c.fetch("1", "(FLAGS)")
print("unseen", data[0].decode())
typ, data = c.fetch("1", "(BINARY[1])")
typ, data = c.fetch("1", "(FLAGS)")
print("seen", data[0].decode())

r = Raw()
raw = b"Subject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\nA\x00B\x00C\r\n"
untagged, tagged = r.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(raw) + raw)
print("append8", tagged.split()[1].decode())
r.cmd(b"SELECT INBOX")
untagged, tagged = r.cmd(b"FETCH 2 (BINARY.PEEK[1] BODY.PEEK[])")
parts = untagged[0]
print("literal8", parts[0].endswith(b"BINARY[1] ~{7}"), parts[1] == b"A\x00B\x00C\r\n", parts[3] == raw)

# A session whose only sign of BINARY is a literal8 APPEND gets BODY[] with NUL as literal8.
s = Raw("s")
raw = b"Subject: nul 2\r\n\r\nX\x00Y\r\n"
s.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(raw) + raw)
s.cmd(b"SELECT INBOX")
untagged, tagged = s.cmd(b"FETCH 3 (BODY.PEEK[])")
parts = untagged[0]
print("append-literal8", parts[0].endswith(b"BODY[] ~{%d}" % len(raw)), parts[1] == raw)
c.logout()
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "caps True");
    assert_eq!(lines[1], "attachment True True  BINARY.SIZE[2] 772)");
    assert_eq!(lines[2], "partial (BINARY[2]<256> ~{4} [0, 1, 2, 3]");
    assert_eq!(lines[3], "text 'Grüße, Welt'");
    assert_eq!(lines[4], "unknown-cte NO True");
    assert_eq!(
        lines[5], "unseen 1 (FLAGS (\\Recent))",
        "BINARY.PEEK leaves \\Seen alone"
    );
    assert_eq!(lines[6], "seen 1 (FLAGS (\\Seen \\Recent))", "BINARY sets \\Seen");
    assert_eq!(lines[7], "append8 OK");
    assert_eq!(lines[8], "literal8 True True True");
    assert_eq!(
        lines[9], "append-literal8 True True",
        "a literal8 APPEND shows the client reads literal8"
    );
}

#[test]
fn multiappend_is_all_or_nothing() {
    let (setup, _mta) = started(0);
    let out = run(
        &setup,
        r#"
def lit(data):
    return b"{%d+}\r\n" % len(data) + data
one = b"Subject: one\r\n\r\nfirst\r\n"
two = b"Subject: two\r\n\r\n" + b"x" * 5000 + b"\r\n"
c = connect()
print("caps", "MULTIAPPEND" in caps(c))
r = Raw()
untagged, tagged = r.cmd(b"APPEND Drafts (\\Seen) " + lit(one) + b' "17-Jul-1996 02:44:25 -0700" ' + lit(two))
print("ok", re.sub(rb"APPENDUID \d+", b"APPENDUID v", tagged.split(b" ", 1)[1]).decode())
keywords = b"(" + b" ".join(b"$k%d" % i for i in range(30)) + b")"
untagged, tagged = r.cmd(b"APPEND Drafts ($first) " + lit(one) + b" " + keywords + b" " + lit(two))
print("refused", tagged.split()[1].decode(), b"[LIMIT]" in tagged)
typ, data = c.status("Drafts", "(MESSAGES)")
print("status", data[0].decode().endswith(" (MESSAGES 2)"))
c.select("Drafts")
typ, data = c.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("messages", [x[0].decode() for x in data if isinstance(x, tuple)])
untagged, tagged = r.cmd(b"APPEND Nowhere " + lit(one) + b" " + lit(two))
print("trycreate", b"[TRYCREATE]" in tagged)
c.logout()
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "caps True");
    assert_eq!(lines[1], "ok OK [APPENDUID v 1:2] APPEND completed");
    assert_eq!(lines[2], "refused NO True");
    assert_eq!(lines[3], "status True", "the failed MULTIAPPEND left nothing");
    assert!(
        lines[4].contains("1 (FLAGS (\\\\Seen \\\\Recent) INTERNALDATE"),
        "{}",
        lines[4]
    );
    assert!(
        lines[4].contains("2 (FLAGS (\\\\Recent) INTERNALDATE \"17-Jul-1996 09:44:25 +0000\""),
        "{}",
        lines[4]
    );
    assert_eq!(lines[5], "trycreate True");
    let drafts = setup.maildir(USER).join(".Drafts");
    let files = |d: &str| std::fs::read_dir(drafts.join(d)).map_or(0, |r| r.count());
    assert_eq!(files("cur") + files("new"), 2, "no file of the refused APPEND stayed");
    assert_eq!(files("tmp"), 0);
}

/// Issue 11: a BINARY APPEND with NUL, bare LFs and a bare CR before CRLF
/// comes back byte for byte from FETCH BINARY[] and BODY[], RFC822.SIZE
/// counts those bytes, COPY keeps them, and POP3 sends the same bytes with
/// LIST giving their number; text APPENDed with LF lines still reads as CRLF.
#[test]
fn binary_append_keeps_its_exact_bytes() {
    let (setup, _mta) = started(0);
    let pop3s = format!("pop3s_port = {}\n", setup.pop3s.port());
    let out = run(
        &setup,
        &(pop3s
            + r#"
raw = (b"Subject: exact\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: binary\r\n\r\n"
       b"\x00bare\nLF\n.dot after LF\r\nCR\r\r\n\n\x00end")
def fetch(r, n):
    untagged, tagged = r.cmd(b"FETCH %d (RFC822.SIZE BINARY.PEEK[] BODY.PEEK[])" % n)
    parts = untagged[0]
    size = int(re.search(rb"RFC822\.SIZE (\d+)", parts[0]).group(1))
    return size, parts[1], parts[3]
r = Raw()
untagged, tagged = r.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(raw) + raw)
print("append", tagged.split()[1].decode())
untagged, tagged = r.cmd(b"APPEND INBOX {%d+}\r\n" % len(b"Subject: lf\n\nlf text\n") + b"Subject: lf\n\nlf text\n")
r.cmd(b"CREATE Kept")
r.cmd(b"SELECT INBOX")
size, binary, body = fetch(r, 1)
print("inbox", size == len(raw), binary == raw, body == raw)
size, binary, body = fetch(r, 2)
print("text", size, body == b"Subject: lf\r\n\r\nlf text\r\n")
r.cmd(b"COPY 1 Kept")
r.cmd(b"SELECT Kept")
size, binary, body = fetch(r, 1)
print("copy", size == len(raw), binary == raw, body == raw)
r.cmd(b"LOGOUT")

p = ctx.wrap_socket(socket.create_connection(("127.0.0.1", pop3s_port), timeout=20))
pf = p.makefile("rb")
def reply(line):
    if line: p.sendall(line + b"\r\n")
    return pf.readline()
reply(None)
reply(b"USER " + user.encode()); reply(b"PASS " + pw.encode())
listed = int(reply(b"LIST 1").split()[2])
print("pop3-list", listed == len(raw))
print("pop3-retr", reply(b"RETR 1").split()[:2] == [b"+OK", str(len(raw)).encode()])
# Dot-stuffed at every line start (after LF), ended by CRLF "." CRLF.
data = b""
while not data.endswith(b"\r\n.\r\n"):
    data += pf.readline()
lines = data[:-3].split(b"\n")
unstuffed = b"\n".join(l[1:] if l.startswith(b".") else l for l in lines)
print("pop3-bytes", unstuffed == raw + b"\r\n", b"\n..dot after LF" in data)
reply(b"QUIT")
"#),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "append OK");
    assert_eq!(lines[1], "inbox True True True", "FETCH gives back what APPEND sent");
    assert_eq!(lines[2], "text 24 True", "LF text is served with CRLF as before");
    assert_eq!(lines[3], "copy True True True", "COPY keeps the exact bytes");
    assert_eq!(lines[4], "pop3-list True");
    assert_eq!(lines[5], "pop3-retr True");
    assert_eq!(lines[6], "pop3-bytes True True");
}
