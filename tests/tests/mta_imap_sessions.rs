//! Several IMAP sessions on one mailbox, end to end against the real
//! daemon: what each session is told (EXISTS, EXPUNGE, FETCH, RECENT,
//! FLAGS) must agree with what it was told before. A raw TLS client in
//! Python keeps each session's view of sequence numbers and records every
//! response that contradicts it.

use greyd_tests::mta::*;

const USER: &str = "alice@example.test";
const PASS: &str = "alice-pw";

/// Common Python: `Client(name)` is a logged-in raw IMAPS session
/// ([`RAW_IMAPS_CLIENT`]) that checks every response against its view
/// (`uids`, by sequence number - 1, `None` where the UID is not known yet),
/// appending what contradicts it to `errors`.
const PRELUDE: &str = r#"
import random, threading, time
class Client(RawClient):
    def __init__(self, name):
        self.errors = []; self.uids = []
        super().__init__(name)
    def error(self, text):
        self.errors.append("%s: %s" % (self.name, text))
    def check(self, parts):
        m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|FETCH|RECENT)\b", parts[0])
        if not m: return
        n, what = int(m.group(1)), m.group(2)
        if what == b"EXISTS":
            if n < len(self.uids): self.error("EXISTS %d below %d known" % (n, len(self.uids)))
            self.uids.extend([None] * (n - len(self.uids)))
        elif what == b"EXPUNGE":
            if not 1 <= n <= len(self.uids): self.error("EXPUNGE %d of %d" % (n, len(self.uids)))
            else: del self.uids[n - 1]
        elif what == b"RECENT":
            if n > len(self.uids): self.error("RECENT %d of %d" % (n, len(self.uids)))
        elif not 1 <= n <= len(self.uids):
            self.error("FETCH %d of %d" % (n, len(self.uids)))
        elif (u := re.search(rb"UID (\d+)", parts[0])):
            u = int(u.group(1)); known = self.uids[n - 1]
            if known is not None and known != u: self.error("seq %d was UID %d, now %d" % (n, known, u))
            lower = [x for x in self.uids[:n - 1] if x is not None]
            higher = [x for x in self.uids[n:] if x is not None]
            if (lower and lower[-1] >= u) or (higher and higher[0] <= u): self.error("UID %d out of order at %d" % (u, n))
            self.uids[n - 1] = u
    def fetch(self, items, seqs=None):
        """FETCH by sequence number: every number asked for that the session knows gets an answer."""
        if not self.uids: return [], b""
        lo, hi = seqs or (1, len(self.uids))
        untagged, tagged = self.cmd(b"FETCH %d:%d %s" % (lo, hi, items))
        got = {int(p[0].split()[1]) for p in untagged if re.match(rb"\* \d+ FETCH", p[0])}
        missing = sorted(set(range(lo, min(hi, len(self.uids)) + 1)) - got)
        if missing: self.error("FETCH %d:%d %s: no answer for %s" % (lo, hi, items.decode(), missing))
        if tagged.split()[1] != b"OK": self.error("FETCH: %s" % tagged.decode())
        return untagged, tagged
    def append(self, data, flags=b"()"):
        return self.cmd(b"APPEND INBOX %s {%d+}\r\n" % (flags, len(data)) + data)
def message(i):
    return b"From: Bob <bob@remote.test>\r\nSubject: stress %d\r\n\r\nBody %d.\r\n" % (i, i)
"#;

fn run(setup: &MtaSetup, body: &str) -> String {
    imaps_python(setup, USER, PASS, PRELUDE, body)
}

/// A message another session expunged is still answered for by FETCH until
/// the session may be told of the EXPUNGE: its UID and flags as last seen,
/// NIL contents, and `OK [EXPUNGEISSUED]`. (b's messages are not \Recent:
/// a claimed them.)
#[test]
fn fetch_answers_for_a_message_another_session_expunged() {
    let (setup, _mta) = imap_daemon(USER, PASS, 3);
    let out = run(
        &setup,
        r#"
a = Client("a"); b = Client("b")
a.cmd(b"SELECT INBOX"); b.cmd(b"SELECT INBOX")
a.cmd(b"STORE 2 +FLAGS.SILENT (\\Deleted)")
a.cmd(b"EXPUNGE")
untagged, tagged = b.fetch(b"(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
for p in untagged: print("fetch", b" ".join(x.strip() for x in p).decode())
print("tagged", tagged.split(None, 1)[1].decode())
untagged, tagged = b.cmd(b"NOOP")
print("noop", [p[0].decode() for p in untagged])
print("errors", a.errors + b.errors)
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0..3],
        [
            r#"fetch * 1 FETCH (UID 1 FLAGS () BODY[HEADER.FIELDS ("SUBJECT")] {19} Subject: note 0 )"#,
            r#"fetch * 2 FETCH (UID 2 FLAGS () BODY[HEADER.FIELDS ("SUBJECT")] NIL)"#,
            r#"fetch * 3 FETCH (UID 3 FLAGS () BODY[HEADER.FIELDS ("SUBJECT")] {19} Subject: note 2 )"#,
        ],
        "{out}"
    );
    assert!(lines[3].starts_with("tagged OK [EXPUNGEISSUED]"), "{out}");
    assert_eq!(lines[4], "noop ['* 2 EXPUNGE']", "{out}");
    assert_eq!(lines[5], "errors []", "{out}");
}

/// Three sessions STORE, EXPUNGE, FETCH and APPEND on one mailbox at once;
/// every untagged EXISTS, EXPUNGE, FETCH and RECENT each receives must fit
/// what it was told before, and every FETCH answers for every number.
#[test]
fn concurrent_sessions_are_told_a_consistent_story() {
    let (setup, _mta) = imap_daemon(USER, PASS, 6);
    let out = run(
        &setup,
        r#"
clients = [Client("s%d" % i) for i in range(3)]
for c in clients: c.cmd(b"SELECT INBOX")
ops = [0]
def work(c, seed):
    rng = random.Random(seed); end = time.time() + 6; i = 0
    while time.time() < end:
        i += 1; op = rng.randrange(7)
        known = len(c.uids)
        if op == 0 or known < 3:
            c.append(message(i))
        elif op == 1:
            n = rng.randint(1, known); c.cmd(b"STORE %d +FLAGS (\\Deleted)" % n)
        elif op == 2:
            c.cmd(b"EXPUNGE")
        elif op == 3:
            c.fetch(b"(UID FLAGS)")
        elif op == 4:
            n = rng.randint(1, known); c.fetch(b"(UID BODY.PEEK[])", (n, n))
        elif op == 5:
            n = rng.randint(1, known); c.cmd(b"STORE %d -FLAGS (\\Seen)" % n)
        else:
            c.cmd(b"NOOP")
        ops[0] += 1
threads = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
for t in threads: t.start()
for t in threads: t.join()
for c in clients: c.cmd(b"NOOP")
# After a NOOP each view holds the mailbox as it is: the same UIDs in each.
views = [c.fetch(b"(UID)") and c.uids for c in clients]
errors = [e for c in clients for e in c.errors]
print("ops", ops[0] > 100, ops[0])
print("views agree", all(v == views[0] for v in views), None not in views[0])
print("errors", len(errors), errors[:20])
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ops True"), "{out}");
    assert_eq!(lines[1], "views agree True True", "{out}");
    assert_eq!(lines[2], "errors 0 []", "{out}");
}

/// \Recent goes to one session only, also for mail that arrives while
/// several have the mailbox open; EXAMINE and STATUS count what no session
/// has claimed, and STATUS of the selected mailbox counts the session's own.
#[test]
fn recent_goes_to_exactly_one_session() {
    let (setup, _mta) = imap_daemon(USER, PASS, 2);
    let out = run(
        &setup,
        r#"
def recent(untagged):
    return [p[0].decode() for p in untagged if p[0].endswith(b" RECENT")]
def status(c):
    return re.search(rb"RECENT (\d+)", c.cmd(b"STATUS INBOX (RECENT)")[0][0][0]).group(1).decode()
a = Client("a"); b = Client("b"); x = Client("x")
print("status-before", status(x))
print("examine", recent(x.cmd(b"EXAMINE INBOX")[0]))
print("select-a", recent(a.cmd(b"SELECT INBOX")[0]))
print("select-b", recent(b.cmd(b"SELECT INBOX")[0]))
print("status-a", status(a), "status-b", status(b))
x.cmd(b"UNSELECT")
x.append(message(9))
na = recent(a.cmd(b"NOOP")[0]); nb = recent(b.cmd(b"NOOP")[0])
print("noop", na, nb)
flags = [re.search(rb"FLAGS \(([^)]*)\)", p[0]).group(1).decode() for p in b.fetch(b"(FLAGS)")[0]]
print("b-flags", flags)
print("status-x", status(x))
print("errors", a.errors + b.errors + x.errors)
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "status-before 2", "{out}");
    assert_eq!(lines[1], "examine ['* 2 RECENT']", "EXAMINE agrees with STATUS: {out}");
    assert_eq!(lines[2], "select-a ['* 2 RECENT']", "{out}");
    assert_eq!(lines[3], "select-b ['* 0 RECENT']", "{out}");
    assert_eq!(lines[4], "status-a 2 status-b 0", "{out}");
    // The new message is a's (it synced first) and b's RECENT stays 0.
    assert_eq!(lines[5], "noop ['* 3 RECENT'] ['* 0 RECENT']", "{out}");
    assert_eq!(lines[6], "b-flags ['', '', '']", "{out}");
    assert_eq!(lines[7], "status-x 0", "{out}");
    assert_eq!(lines[8], "errors []", "{out}");
}

/// APPEND to the selected mailbox tells of the new message before the
/// tagged OK, and a keyword's first use announces the new FLAGS and
/// PERMANENTFLAGS lists before the FETCH that carries it.
#[test]
fn append_exists_and_new_keyword_flags_come_first() {
    let (setup, _mta) = imap_daemon(USER, PASS, 1);
    let out = run(
        &setup,
        r#"
a = Client("a")
a.cmd(b"SELECT INBOX")
untagged, tagged = a.append(message(1))
print("append", [p[0].decode() for p in untagged], tagged.split()[1].decode())
untagged, tagged = a.cmd(b"STORE 2 +FLAGS ($Fresh)")
print("store", [p[0].decode().split(" (")[0] for p in untagged])
print("flags", untagged[0][0].decode())
print("errors", a.errors)
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "append ['* 2 EXISTS', '* 2 RECENT'] OK", "{out}");
    assert_eq!(
        lines[1], "store ['* FLAGS', '* OK [PERMANENTFLAGS', '* 2 FETCH']",
        "{out}"
    );
    assert_eq!(
        lines[2], r"flags * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Fresh)",
        "{out}"
    );
    assert_eq!(lines[3], "errors []", "{out}");
}

/// FETCH MODSEQ and SEARCH MODSEQ enable CONDSTORE as ENABLE does (RFC 7162
/// §3.1): later untagged FETCHes carry UID and MODSEQ. The MODSEQ search key
/// takes an entry name and type.
#[test]
fn modseq_in_fetch_or_search_enables_condstore() {
    let (setup, _mta) = imap_daemon(USER, PASS, 2);
    let out = run(
        &setup,
        r#"
a = Client("a"); b = Client("b"); c = Client("c")
for s in (a, b, c): s.cmd(b"SELECT INBOX")
m1 = re.search(rb"MODSEQ \((\d+)\)", a.cmd(b"FETCH 1 (FLAGS MODSEQ)")[0][0][0]).group(1)
untagged, tagged = b.cmd(b'SEARCH RETURN (MIN) MODSEQ "/flags/\\\\seen" all 1')
line = re.sub(rb'TAG "[^"]+"', b"TAG t", untagged[0][0]).replace(b"MODSEQ " + m1, b"MODSEQ m1")
print("search", tagged.split()[1].decode(), line.decode())
c.cmd(b"STORE 2 +FLAGS (\\Flagged)")
for s in (a, b):
    print("noop", [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (n)", p[0]).decode() for p in s.cmd(b"NOOP")[0]])
untagged, tagged = a.cmd(b"STORE 1 +FLAGS (\\Seen)")
print("store", [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (n)", p[0]).decode() for p in untagged])
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "search OK * ESEARCH (TAG t) MIN 1 MODSEQ m1", "{out}");
    assert_eq!(
        lines[1], r"noop ['* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ (n))']",
        "{out}"
    );
    assert_eq!(
        lines[2], r"noop ['* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (n))']",
        "{out}"
    );
    assert_eq!(
        lines[3], r"store ['* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) MODSEQ (n))']",
        "{out}"
    );
}
